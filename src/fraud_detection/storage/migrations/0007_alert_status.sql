-- Triage: people acknowledge and resolve alerts (`fraud-detection alerts ack|resolve`, triage/store.py).
-- open -> acknowledged -> resolved, or open -> resolved; nothing goes back. triage/status.py holds the same
-- rule in Python; a test holds the two to each other.
--
-- The detector never writes these columns: its upsert of a grown alert and its merge name only their own
-- columns, so a status survives the alert growing. When a burst merges into an earlier alert, the survivor
-- keeps its own status and the merged-away alert keeps its (now historical) one; triage of a merged-away
-- alert is refused, naming the survivor. (Not to be confused with the alerts topic's `status`, open or
-- merged, which says whether the alert is live.)

ALTER TABLE alerts ADD COLUMN status text NOT NULL DEFAULT 'open'
    CONSTRAINT alerts_status_known CHECK (status IN ('open', 'acknowledged', 'resolved'));
-- Acknowledged: when someone first took the alert, by acknowledging it or by resolving it straight from open
-- (so "time to acknowledge" covers both). The note is the acknowledgement's own.
ALTER TABLE alerts ADD COLUMN acknowledged_by text;
ALTER TABLE alerts ADD COLUMN acknowledged_at timestamptz;
ALTER TABLE alerts ADD COLUMN acknowledged_note text;
ALTER TABLE alerts ADD COLUMN resolved_by text;
ALTER TABLE alerts ADD COLUMN resolved_at timestamptz;
ALTER TABLE alerts ADD COLUMN resolved_note text;
ALTER TABLE alerts ADD CONSTRAINT alerts_status_recorded CHECK (
    (acknowledged_by IS NULL) = (acknowledged_at IS NULL) AND (resolved_by IS NULL) = (resolved_at IS NULL)
    AND CASE status
        WHEN 'open' THEN acknowledged_at IS NULL AND resolved_at IS NULL
        WHEN 'acknowledged' THEN acknowledged_at IS NOT NULL AND resolved_at IS NULL
        ELSE acknowledged_at IS NOT NULL AND resolved_at IS NOT NULL
    END);

-- The dashboard's open-alerts panels and time to acknowledge.
CREATE INDEX alerts_open_idx ON alerts (detected_at) WHERE status = 'open' AND merged_into IS NULL;
CREATE INDEX alerts_acknowledged_at_idx ON alerts (acknowledged_at);

-- Every status change, in order. alert_version is the alert's version the person saw: an alert that grew
-- since its last change has a higher version now.
CREATE TABLE alert_status_history (
    id             bigserial   PRIMARY KEY,
    alert_id       text        NOT NULL REFERENCES alerts (alert_id),
    from_status    text        NOT NULL,
    to_status      text        NOT NULL,
    changed_by     text        NOT NULL CHECK (changed_by <> ''),
    changed_at     timestamptz NOT NULL,
    note           text,
    alert_version  integer     NOT NULL,
    CHECK ((from_status, to_status) IN (('open', 'acknowledged'), ('open', 'resolved'), ('acknowledged', 'resolved')))
);
CREATE INDEX alert_status_history_alert_idx ON alert_status_history (alert_id, id);
