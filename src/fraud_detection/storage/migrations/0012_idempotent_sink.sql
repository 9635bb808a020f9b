-- The detector's sink applies each unit of a partition's rows by content (R__detector_sink.sql): a unit has
-- no identity, so a task that Spark runs again, with its rows in another order or grouping, writes only what
-- is missing, and the batch's counters count what each unit changed. The ledger of units (0009) goes.
DROP FUNCTION detector_commit(text, bigint, integer, integer, timestamptz, bigint, bigint, jsonb, jsonb, jsonb);
DROP TABLE detector_commits;

-- Records whose transaction id the card had already (redeliveries, replays within the watermark): kept by
-- their Kafka coordinates, so that each is counted once however often its batch runs.
CREATE TABLE duplicate_transactions (
    topic            text        NOT NULL,
    kafka_partition  integer     NOT NULL,
    kafka_offset     bigint      NOT NULL,
    transaction_id   text        NOT NULL,
    card_id          text        NOT NULL,
    kafka_timestamp  timestamptz,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);
CREATE INDEX duplicate_transactions_recorded_at_idx ON duplicate_transactions (recorded_at);

-- Each streaming run (a checkpoint's query id, the same across restarts) and the rule it runs: a checkpoint
-- keeps one rule for its life (detector/session.py). An alert names the run that raised it.
CREATE TABLE detector_runs (
    run_id               text        PRIMARY KEY,
    rule                 text        NOT NULL,
    threshold            integer     NOT NULL,
    window_ms            bigint      NOT NULL,
    allowed_lateness_ms  bigint      NOT NULL,
    operator             text        NOT NULL,
    trigger              text        NOT NULL,
    first_started_at     timestamptz NOT NULL DEFAULT now(),
    last_started_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX detector_runs_last_started_at_idx ON detector_runs (last_started_at);
-- No foreign key: a run's first batch can commit before the detector has recorded the run.
ALTER TABLE alerts ADD COLUMN run_id text;  -- null: raised before this migration
