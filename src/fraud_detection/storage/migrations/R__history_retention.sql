-- Retention of the pipeline's own bookkeeping (`fraud-detection db prune`, the chart's CronJob): per-batch
-- metrics, the detector's commit ledger and published outbox messages grow for as long as the pipeline runs.
-- Alerts, dead letters, ground truth and deliveries are records: they are kept. (Created by migration 0010.)
-- Deletes the bookkeeping from before `older_than`; one row per table with the rows it deleted.
CREATE OR REPLACE FUNCTION prune_history(older_than timestamptz)
RETURNS TABLE (history text, deleted bigint)
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pipeline_metrics WHERE recorded_at < older_than;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    history := 'pipeline_metrics';
    RETURN NEXT;

    -- Each run keeps its newest batch whatever its age: a checkpoint may run that batch again after a crash
    -- (its commit reached PostgreSQL, not Spark's commit log), and the ledger is what makes that a no-op.
    DELETE FROM detector_commits c WHERE c.committed_at < older_than
        AND EXISTS (SELECT 1 FROM detector_commits n WHERE n.run_id = c.run_id AND n.batch_id > c.batch_id);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    history := 'detector_commits';
    RETURN NEXT;

    -- Unpublished messages stay: the relay has yet to send them.
    DELETE FROM alert_outbox WHERE published_at < older_than;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    history := 'alert_outbox';
    RETURN NEXT;
END
$$;
