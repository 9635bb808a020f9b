-- The detector's writes, called by its sink (velocity-operator's sink package) for each unit of a partition's
-- rows. A unit has no identity: every write is idempotent by content, so a unit applied again, whole or in
-- part, in another order or grouping (a task that Spark runs again, a real-time batch replayed) adds nothing,
-- and the counters added to the batch's pipeline_metrics row are what the unit changed:
-- - an alert is inserted, or updated when it grew (a burst only grows: its same or an older state changes
--   nothing; a triage status stays, migration 0007);
-- - a merge applies once; rejected records (0001) and duplicates (0012) are keyed by their Kafka coordinates;
-- - each version an alert reaches queues its message (alert.schema.json) in alert_outbox once (0005).
-- Input rows are not the sink's to count: Spark's progress records them (detector/sink.py).
--
-- p_alerts:     [{alert_id, rule, card_id, first_event_time_ms, last_event_time_ms, txn_count, amount_total_cents,
--                 trigger_transaction_id, trigger_kafka_timestamp_ms, trigger_event_time_ms}]
-- p_merges:     [{alert_id, merged_into}]
-- p_rejected:   [{topic, kafka_partition, kafka_offset, reason, detail, raw_key, raw_value (base64 or null),
--                 kafka_timestamp_ms}]
-- p_duplicates: [{topic, kafka_partition, kafka_offset, transaction_id, card_id, kafka_timestamp_ms}]
-- Returns what changed: alerts new and grown, merges, rejected records (late ones among them), duplicates,
-- and the latency (p_now minus the trigger's Kafka time) of the new alerts.
DROP FUNCTION IF EXISTS detector_apply;
CREATE FUNCTION detector_apply(
    p_run_id text, p_batch_id bigint, p_now timestamptz,
    p_alerts jsonb, p_merges jsonb, p_rejected jsonb, p_duplicates jsonb)
RETURNS TABLE (alerts_new bigint, alerts_updated bigint, alerts_merged bigint, rejected_rows bigint,
               late_rows bigint, duplicate_rows bigint, latency_max_ms double precision,
               latency_mean_ms double precision)
LANGUAGE plpgsql AS $$
DECLARE
    v_changed text[];
    v_merged text[];
BEGIN
    WITH upserted AS (
        INSERT INTO alerts AS t (alert_id, rule, card_id, first_event_time, last_event_time, txn_count, amount_total,
                                 trigger_transaction_id, trigger_kafka_timestamp, trigger_event_time, detected_at,
                                 updated_at, run_id)
        SELECT a.alert_id, a.rule, a.card_id, detector_time(a.first_event_time_ms),
               detector_time(a.last_event_time_ms), a.txn_count, a.amount_total_cents / 100.0, a.trigger_transaction_id,
               detector_time(a.trigger_kafka_timestamp_ms), detector_time(a.trigger_event_time_ms), p_now, p_now,
               p_run_id
        FROM jsonb_to_recordset(p_alerts) AS a (alert_id text, rule text, card_id text, first_event_time_ms bigint,
             last_event_time_ms bigint, txn_count integer, amount_total_cents bigint, trigger_transaction_id text,
             trigger_kafka_timestamp_ms bigint, trigger_event_time_ms bigint)
        ORDER BY a.card_id, a.alert_id
        ON CONFLICT (alert_id) DO UPDATE SET first_event_time = EXCLUDED.first_event_time,
            last_event_time = EXCLUDED.last_event_time, txn_count = EXCLUDED.txn_count,
            amount_total = EXCLUDED.amount_total, updated_at = EXCLUDED.updated_at, version = t.version + 1
        WHERE EXCLUDED.txn_count > t.txn_count
        RETURNING t.alert_id, (xmax = 0) AS inserted,
                  extract(epoch FROM p_now - t.trigger_kafka_timestamp) * 1000 AS latency_ms
    )
    SELECT coalesce(array_agg(u.alert_id), '{}'), count(*) FILTER (WHERE u.inserted),
           count(*) FILTER (WHERE NOT u.inserted), max(u.latency_ms) FILTER (WHERE u.inserted),
           avg(u.latency_ms) FILTER (WHERE u.inserted)
    INTO v_changed, alerts_new, alerts_updated, latency_max_ms, latency_mean_ms FROM upserted u;

    WITH merged AS (
        UPDATE alerts SET merged_into = m.merged_into, updated_at = p_now, version = version + 1
        FROM jsonb_to_recordset(p_merges) AS m (alert_id text, merged_into text)
        WHERE alerts.alert_id = m.alert_id AND alerts.merged_into IS DISTINCT FROM m.merged_into
        RETURNING alerts.alert_id
    )
    SELECT coalesce(array_agg(alert_id), '{}'), count(*) INTO v_merged, alerts_merged FROM merged;

    INSERT INTO alert_outbox (alert_id, version, card_id, payload)
    SELECT alert_id, version, card_id, jsonb_build_object(
               'alert_id', alert_id, 'version', version, 'rule', rule, 'card_id', card_id,
               'status', CASE WHEN merged_into IS NULL THEN 'open' ELSE 'merged' END, 'merged_into', merged_into,
               'txn_count', txn_count, 'amount_total', amount_total,
               'first_event_time', to_json(first_event_time), 'last_event_time', to_json(last_event_time),
               'trigger_transaction_id', trigger_transaction_id, 'trigger_event_time', to_json(trigger_event_time),
               'detected_at', to_json(detected_at), 'schema_version', 1)
    FROM alerts
    WHERE alert_id = ANY (v_changed || v_merged)
    ORDER BY card_id, alert_id
    ON CONFLICT (alert_id, version) DO NOTHING;

    WITH inserted AS (
        INSERT INTO rejected_transactions (topic, kafka_partition, kafka_offset, reason, detail, raw_key,
                                           raw_payload, kafka_timestamp, rejected_at)
        SELECT r.topic, r.kafka_partition, r.kafka_offset, r.reason, r.detail, decode(r.raw_key, 'base64'),
               decode(r.raw_value, 'base64'), detector_time(r.kafka_timestamp_ms), p_now
        FROM jsonb_to_recordset(p_rejected) AS r (topic text, kafka_partition integer, kafka_offset bigint,
             reason text, detail text, raw_key text, raw_value text, kafka_timestamp_ms bigint)
        ON CONFLICT DO NOTHING
        RETURNING reason
    )
    SELECT count(*), count(*) FILTER (WHERE reason = 'late') INTO rejected_rows, late_rows FROM inserted;

    WITH inserted AS (
        INSERT INTO duplicate_transactions (topic, kafka_partition, kafka_offset, transaction_id, card_id,
                                            kafka_timestamp, recorded_at)
        SELECT d.topic, d.kafka_partition, d.kafka_offset, d.transaction_id, d.card_id,
               detector_time(d.kafka_timestamp_ms), p_now
        FROM jsonb_to_recordset(p_duplicates) AS d (topic text, kafka_partition integer, kafka_offset bigint,
             transaction_id text, card_id text, kafka_timestamp_ms bigint)
        ON CONFLICT DO NOTHING
        RETURNING 1
    )
    SELECT count(*) INTO duplicate_rows FROM inserted;

    INSERT INTO pipeline_metrics AS m (component, run_id, batch_id, recorded_at, input_rows, rejected_rows, late_rows,
                                       duplicate_rows, alerts_merged, alerts_written, alerts_new,
                                       alert_latency_max_ms, alert_latency_mean_ms)
    VALUES ('detector', p_run_id, p_batch_id, p_now, NULL, rejected_rows - late_rows, late_rows, duplicate_rows,
            alerts_merged, alerts_new + alerts_updated, alerts_new, latency_max_ms, latency_mean_ms)
    ON CONFLICT (component, run_id, batch_id) DO UPDATE SET
        rejected_rows = m.rejected_rows + EXCLUDED.rejected_rows, late_rows = m.late_rows + EXCLUDED.late_rows,
        duplicate_rows = m.duplicate_rows + EXCLUDED.duplicate_rows,
        alerts_merged = m.alerts_merged + EXCLUDED.alerts_merged,
        alerts_written = m.alerts_written + EXCLUDED.alerts_written, alerts_new = m.alerts_new + EXCLUDED.alerts_new,
        alert_latency_max_ms = greatest(m.alert_latency_max_ms, EXCLUDED.alert_latency_max_ms),
        alert_latency_mean_ms = CASE WHEN m.alerts_new + EXCLUDED.alerts_new > 0 THEN
            (coalesce(m.alert_latency_mean_ms, 0) * m.alerts_new
             + coalesce(EXCLUDED.alert_latency_mean_ms, 0) * EXCLUDED.alerts_new) / (m.alerts_new + EXCLUDED.alerts_new)
            END;

    RETURN NEXT;
END;
$$;
