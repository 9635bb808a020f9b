-- Alerts leave PostgreSQL through a transactional outbox: the sink writes each new or changed alert's
-- message in the same transaction as the alert, and the relay (`fraud-detection relay`) publishes it to
-- the alerts topic, then marks it published. Nothing is published that was not committed; a crash between
-- the two publishes the same (alert_id, version) again, which consumers deduplicate.

-- A counter per alert: 1 when raised, +1 each time it grows or is merged into another.
ALTER TABLE alerts ADD COLUMN version integer NOT NULL DEFAULT 1;

CREATE TABLE alert_outbox (
    id            bigserial   PRIMARY KEY,  -- insertion order; each card's messages in its commit order
    alert_id      text        NOT NULL,
    version       integer     NOT NULL,
    card_id       text        NOT NULL,     -- the Kafka key
    payload       jsonb       NOT NULL,     -- src/fraud_detection/alert.schema.json
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    UNIQUE (alert_id, version)
);
CREATE INDEX alert_outbox_unpublished_idx ON alert_outbox (id) WHERE published_at IS NULL;
