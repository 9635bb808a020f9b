-- Retention of the pipeline's own bookkeeping (`fraud-detection db prune`, the chart's CronJob): per-batch
-- metrics, the duplicates counted once each (0012) and published outbox messages grow for as long as the
-- pipeline runs. Alerts, dead letters, ground truth and deliveries are records: they are kept.
-- Deletes the bookkeeping from before `older_than`; one row per table with the rows it deleted.
CREATE OR REPLACE FUNCTION prune_history(older_than timestamptz)
RETURNS TABLE (history text, deleted bigint)
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pipeline_metrics WHERE recorded_at < older_than;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    history := 'pipeline_metrics';
    RETURN NEXT;

    -- A batch run again after a crash is never this old: its duplicates are not counted twice.
    DELETE FROM duplicate_transactions WHERE recorded_at < older_than;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    history := 'duplicate_transactions';
    RETURN NEXT;

    -- Unpublished messages stay: the relay has yet to send them.
    DELETE FROM alert_outbox WHERE published_at < older_than;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    history := 'alert_outbox';
    RETURN NEXT;
END
$$;
