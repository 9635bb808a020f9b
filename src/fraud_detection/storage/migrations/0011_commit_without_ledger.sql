-- Real-time mode: a unit without a ledger row. The JVM sink commits each row as it arrives there, and a
-- batch that Spark runs again may emit its rows in another order (the pipelined shuffle interleaves the Kafka
-- partitions as they come), so a unit's (partition, slice) no longer names the same rows twice and the
-- ledger could skip a unit it never saw. With p_slice null the unit is applied without the ledger: its writes
-- are idempotent (see 0009), and only the batch's counters in pipeline_metrics can count a replay twice.
-- Micro-batch units keep the ledger, as before. Parameters and result: as in 0009.

CREATE OR REPLACE FUNCTION detector_commit(
    p_run_id text, p_batch_id bigint, p_partition_id integer, p_slice integer, p_now timestamptz,
    p_input_rows bigint, p_duplicates bigint, p_alerts jsonb, p_merges jsonb, p_rejected jsonb)
RETURNS TABLE (alerts_new bigint, alerts_updated bigint, latency_max_ms double precision,
               latency_mean_ms double precision)
LANGUAGE plpgsql AS $$
DECLARE
    v_new bigint;
    v_updated bigint;
    v_max double precision;
    v_mean double precision;
    v_merged bigint;
    v_rejected bigint;
    v_late bigint;
BEGIN
    IF p_slice IS NOT NULL THEN
        INSERT INTO detector_commits (run_id, batch_id, partition_id, slice)
            SELECT p_run_id, p_batch_id, p_partition_id, p_slice
            WHERE NOT EXISTS (SELECT 1 FROM detector_commits c  -- the whole batch, committed by the batch sink
                              WHERE c.run_id = p_run_id AND c.batch_id = p_batch_id AND c.partition_id = -1)
            ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;

    -- An alert that grew is updated in the columns the detector owns (a triage status stays, migration 0007).
    WITH upserted AS (
        INSERT INTO alerts AS t (alert_id, rule, card_id, first_event_time, last_event_time, txn_count, amount_total,
                                 trigger_transaction_id, trigger_kafka_timestamp, trigger_event_time, detected_at,
                                 updated_at)
        SELECT a.alert_id, 'velocity', a.card_id, detector_time(a.first_event_time_ms),
               detector_time(a.last_event_time_ms), a.txn_count, a.amount_total_cents / 100.0, a.trigger_transaction_id,
               detector_time(a.trigger_kafka_timestamp_ms), detector_time(a.trigger_event_time_ms), p_now, p_now
        FROM jsonb_to_recordset(p_alerts) AS a (alert_id text, card_id text, first_event_time_ms bigint,
             last_event_time_ms bigint, txn_count integer, amount_total_cents bigint, trigger_transaction_id text,
             trigger_kafka_timestamp_ms bigint, trigger_event_time_ms bigint)
        ON CONFLICT (alert_id) DO UPDATE SET first_event_time = EXCLUDED.first_event_time,
            last_event_time = EXCLUDED.last_event_time, txn_count = EXCLUDED.txn_count,
            amount_total = EXCLUDED.amount_total, updated_at = EXCLUDED.updated_at, version = t.version + 1
        WHERE EXCLUDED.txn_count > t.txn_count  -- a burst only grows: the same or an older state changes nothing
        RETURNING (xmax = 0) AS inserted, extract(epoch FROM p_now - trigger_kafka_timestamp) * 1000 AS latency_ms
    )
    SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted),
           max(latency_ms) FILTER (WHERE inserted), avg(latency_ms) FILTER (WHERE inserted)
    INTO v_new, v_updated, v_max, v_mean FROM upserted;

    UPDATE alerts SET merged_into = m.merged_into, updated_at = p_now, version = version + 1
    FROM jsonb_to_recordset(p_merges) AS m (alert_id text, merged_into text)
    WHERE alerts.alert_id = m.alert_id AND alerts.merged_into IS DISTINCT FROM m.merged_into;
    v_merged := jsonb_array_length(p_merges);

    -- The alerts topic's message (alert.schema.json) for each alert raised, grown or merged, built from the
    -- committed row; the relay publishes it (migration 0005). An unchanged alert's version is already queued.
    INSERT INTO alert_outbox (alert_id, version, card_id, payload)
    SELECT alert_id, version, card_id, jsonb_build_object(
               'alert_id', alert_id, 'version', version, 'rule', rule, 'card_id', card_id,
               'status', CASE WHEN merged_into IS NULL THEN 'open' ELSE 'merged' END, 'merged_into', merged_into,
               'txn_count', txn_count, 'amount_total', amount_total,
               'first_event_time', to_json(first_event_time), 'last_event_time', to_json(last_event_time),
               'trigger_transaction_id', trigger_transaction_id, 'trigger_event_time', to_json(trigger_event_time),
               'detected_at', to_json(detected_at), 'schema_version', 1)
    FROM alerts
    WHERE alert_id IN (SELECT a ->> 'alert_id' FROM jsonb_array_elements(p_alerts) a
                       UNION SELECT m ->> 'alert_id' FROM jsonb_array_elements(p_merges) m)
    ORDER BY card_id, alert_id
    ON CONFLICT (alert_id, version) DO NOTHING;

    INSERT INTO rejected_transactions (topic, kafka_partition, kafka_offset, reason, detail, raw_key, raw_payload,
                                       kafka_timestamp, rejected_at)
    SELECT r.topic, r.kafka_partition, r.kafka_offset, r.reason, r.detail, decode(r.raw_key, 'base64'),
           decode(r.raw_value, 'base64'), detector_time(r.kafka_timestamp_ms), p_now
    FROM jsonb_to_recordset(p_rejected) AS r (topic text, kafka_partition integer, kafka_offset bigint, reason text,
         detail text, raw_key text, raw_value text, kafka_timestamp_ms bigint)
    ON CONFLICT DO NOTHING;
    SELECT count(*), count(*) FILTER (WHERE r ->> 'reason' = 'late') INTO v_rejected, v_late
    FROM jsonb_array_elements(p_rejected) r;

    INSERT INTO pipeline_metrics AS m (component, run_id, batch_id, recorded_at, input_rows, rejected_rows, late_rows,
                                       duplicate_rows, alerts_merged, alerts_written, alerts_new,
                                       alert_latency_max_ms, alert_latency_mean_ms)
    VALUES ('detector', p_run_id, p_batch_id, p_now, p_input_rows, v_rejected - v_late, v_late, p_duplicates,
            v_merged, v_new + v_updated, v_new, v_max, v_mean)
    ON CONFLICT (component, run_id, batch_id) DO UPDATE SET
        input_rows = coalesce(m.input_rows + EXCLUDED.input_rows, m.input_rows, EXCLUDED.input_rows),
        rejected_rows = m.rejected_rows + EXCLUDED.rejected_rows, late_rows = m.late_rows + EXCLUDED.late_rows,
        duplicate_rows = m.duplicate_rows + EXCLUDED.duplicate_rows,
        alerts_merged = m.alerts_merged + EXCLUDED.alerts_merged,
        alerts_written = m.alerts_written + EXCLUDED.alerts_written, alerts_new = m.alerts_new + EXCLUDED.alerts_new,
        alert_latency_max_ms = greatest(m.alert_latency_max_ms, EXCLUDED.alert_latency_max_ms),
        alert_latency_mean_ms = CASE WHEN m.alerts_new + EXCLUDED.alerts_new > 0 THEN
            (coalesce(m.alert_latency_mean_ms, 0) * m.alerts_new
             + coalesce(EXCLUDED.alert_latency_mean_ms, 0) * EXCLUDED.alerts_new) / (m.alerts_new + EXCLUDED.alerts_new)
            END;

    RETURN QUERY SELECT v_new, v_updated, v_max, v_mean;
END;
$$;
