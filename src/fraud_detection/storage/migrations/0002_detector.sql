-- The detector's exactly-once sink: alerts that merged, and micro-batches keyed by the streaming run.

-- When out-of-order events join two bursts, the alert published first keeps its id; the other points to it.
ALTER TABLE alerts ADD COLUMN merged_into text REFERENCES alerts (alert_id);
CREATE INDEX alerts_live_idx ON alerts (detected_at) WHERE merged_into IS NULL;

-- A checkpoint's batch ids restart at 0, so a batch is identified by the query (run) id as well. The
-- detector inserts the row in the same transaction as the batch's alerts: a batch replayed after a crash
-- finds its row and writes nothing. Input rows and duration arrive from Spark's progress just after.
ALTER TABLE pipeline_metrics ADD COLUMN run_id text NOT NULL DEFAULT '';
ALTER TABLE pipeline_metrics DROP CONSTRAINT pipeline_metrics_pkey;
ALTER TABLE pipeline_metrics ADD PRIMARY KEY (component, run_id, batch_id);
ALTER TABLE pipeline_metrics ALTER COLUMN input_rows DROP NOT NULL;
ALTER TABLE pipeline_metrics ADD COLUMN duplicate_rows bigint NOT NULL DEFAULT 0;
ALTER TABLE pipeline_metrics ADD COLUMN alerts_merged bigint NOT NULL DEFAULT 0;
