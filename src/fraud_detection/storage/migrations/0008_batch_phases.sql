-- Where each detector batch's time went, for `make bench` and the dashboard: Spark's phases (its progress
-- durationMs, without the total already in batch_duration_ms), the state operators' task times summed over
-- their partitions (stateCommit, stateUpdates, stateRemovals: partitions run in parallel, so these can exceed
-- the batch's wall time), and the sink's own steps (sinkJob: the batch's Spark job, run by the sink's
-- collect; sinkWrite: the PostgreSQL transaction).
ALTER TABLE pipeline_metrics ADD COLUMN batch_phases_ms jsonb;
COMMENT ON COLUMN pipeline_metrics.batch_phases_ms IS
    'milliseconds per phase of the batch (see migration 0008), recorded with batch_duration_ms';
