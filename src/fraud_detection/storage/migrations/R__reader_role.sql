-- fraud_reader: the role of whoever only reads, Grafana's datasource and reports such as `evaluate`. It may
-- SELECT what the dashboards and reports read, and nothing else: no write, no dead letter's raw payload (it
-- can hold a card number), no ledger of deliveries' errors, no function that writes. The owner of the
-- schema grants it here, on every change of this file.
--
-- Where the migrating role may create roles (the local stack, a database admin), a missing fraud_reader is
-- created without a login, for a login role to join. Elsewhere it must exist before the migration: the
-- chart's CloudNativePG cluster makes it a managed role; an external database's admin creates it
-- (CREATE ROLE fraud_reader LOGIN PASSWORD '...', README "Roles").
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fraud_reader') THEN
        IF (SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            CREATE ROLE fraud_reader NOLOGIN;
        ELSE
            RAISE EXCEPTION 'role fraud_reader does not exist and % may not create it', current_user
                USING HINT = 'create it first: CREATE ROLE fraud_reader LOGIN PASSWORD ''...'' (the chart''s'
                             ' CloudNativePG cluster does, as a managed role)';
        END IF;
    END IF;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM fraud_reader;
GRANT USAGE ON SCHEMA public TO fraud_reader;
GRANT SELECT ON alerts, alert_outcomes, episode_outcomes, injected_attacks, pipeline_metrics, detector_runs,
    alert_outbox, alert_status_history TO fraud_reader;
-- raw_key is the card id the record was keyed by (alerts show card ids too): `evaluate` counts a missed
-- attack's rejected records by it.
GRANT SELECT (topic, kafka_partition, kafka_offset, reason, detail, raw_key, kafka_timestamp, rejected_at)
    ON rejected_transactions TO fraud_reader;
GRANT SELECT (destination, alert_id, version, status, attempts, first_attempt_at, updated_at)
    ON notification_deliveries TO fraud_reader;

-- Functions run with their caller's rights, so the reader could not write through them anyway; none of
-- them is for it, and the owner keeps every right to them.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
