-- Alerts, rejected records, ground truth and pipeline metrics.
-- Times are timestamptz (UTC); money is numeric(14, 2). Indexes serve the dashboards' time-range queries.

CREATE TABLE alerts (
    alert_id                 text PRIMARY KEY,
    rule                     text        NOT NULL,
    card_id                  text        NOT NULL,
    first_event_time         timestamptz NOT NULL,
    last_event_time          timestamptz NOT NULL,
    txn_count                integer     NOT NULL CHECK (txn_count > 0),
    amount_total             numeric(14, 2) NOT NULL,
    trigger_transaction_id   text        NOT NULL,
    trigger_kafka_timestamp  timestamptz,
    detected_at              timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_detected_at_idx ON alerts (detected_at);
CREATE INDEX alerts_first_event_time_idx ON alerts (first_event_time);
CREATE INDEX alerts_card_idx ON alerts (card_id, first_event_time);

-- Every record the detector could not accept, with the raw payload and where it came from.
CREATE TABLE rejected_transactions (
    topic            text        NOT NULL,
    kafka_partition  integer     NOT NULL,
    kafka_offset     bigint      NOT NULL,
    reason           text        NOT NULL,
    detail           text,
    raw_key          bytea,
    raw_payload      bytea,
    kafka_timestamp  timestamptz,
    rejected_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);
CREATE INDEX rejected_transactions_rejected_at_idx ON rejected_transactions (rejected_at);
CREATE INDEX rejected_transactions_reason_idx ON rejected_transactions (reason, rejected_at);

-- Ground truth: what the generator injected, or the fraud labels of a replayed data set.
CREATE TABLE injected_attacks (
    source            text        NOT NULL,
    card_id           text        NOT NULL,
    kind              text        NOT NULL CHECK (kind IN ('attack', 'decoy_below_threshold', 'decoy_slow', 'labelled_fraud')),
    first_event_time  timestamptz NOT NULL,
    last_event_time   timestamptz NOT NULL,
    txn_count         integer     NOT NULL CHECK (txn_count > 0),
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, card_id, first_event_time),
    CHECK (last_event_time >= first_event_time)
);
CREATE INDEX injected_attacks_first_event_time_idx ON injected_attacks (first_event_time);
CREATE INDEX injected_attacks_card_idx ON injected_attacks (card_id, first_event_time);

-- One row per micro-batch of a streaming component.
CREATE TABLE pipeline_metrics (
    component               text        NOT NULL,
    batch_id                bigint      NOT NULL,
    recorded_at             timestamptz NOT NULL DEFAULT now(),
    input_rows              bigint      NOT NULL,
    rejected_rows           bigint      NOT NULL DEFAULT 0,
    late_rows               bigint      NOT NULL DEFAULT 0,
    alerts_written          bigint      NOT NULL DEFAULT 0,
    batch_duration_ms       double precision,
    alert_latency_max_ms    double precision,
    alert_latency_mean_ms   double precision,
    PRIMARY KEY (component, batch_id)
);
CREATE INDEX pipeline_metrics_recorded_at_idx ON pipeline_metrics (recorded_at);
