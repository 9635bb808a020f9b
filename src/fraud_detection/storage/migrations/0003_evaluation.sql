-- Detection quality and dashboards.

-- Event time of the transaction that raised the alert: with the ground truth's first event time it gives
-- how far into an attack (in event time) the rule fired. Null for alerts raised before this migration.
ALTER TABLE alerts ADD COLUMN trigger_event_time timestamptz;

-- Ground truth is matched to alerts by card and overlapping event-time span.
CREATE INDEX alerts_card_span_idx ON alerts (card_id, first_event_time, last_event_time) WHERE merged_into IS NULL;

-- (Correction to 0002's comment: input rows commit with their batch, counted by the operator; only the
-- batch duration arrives from Spark's progress listener afterwards.)
COMMENT ON COLUMN pipeline_metrics.input_rows IS
    'records the detector read in this micro-batch (counted by the operator, committed with the batch)';
COMMENT ON COLUMN pipeline_metrics.batch_duration_ms IS
    'Spark''s trigger execution time of the batch, recorded just after it commits';
