-- `fraud-detection notify` delivers each alert version from the alerts topic to each destination (slack,
-- webhook, sns) and records it here: a row is written before the first attempt (pending), and settled
-- as delivered after the destination acknowledged it or as failed (the dead letter, with the last error)
-- once it gave up. The notifier reads it before sending, so a redelivered message (a restart, the relay
-- republishing) is not sent again to a destination that acknowledged it. The alert itself is in
-- alert_outbox (alert_id, version).
CREATE TABLE notification_deliveries (
    destination       text        NOT NULL,
    alert_id          text        NOT NULL,
    version           integer     NOT NULL,
    card_id           text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          integer     NOT NULL DEFAULT 0,
    last_error        text,
    first_attempt_at  timestamptz NOT NULL,  -- the give-up deadline counts from here, across restarts
    delivered_at      timestamptz,
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (destination, alert_id, version)
);
CREATE INDEX notification_deliveries_unsettled_idx ON notification_deliveries (destination, updated_at)
    WHERE status <> 'delivered';
