"""Alert triage in PostgreSQL: each status change in one transaction with the alert's row locked, and the
list of live alerts. The rule itself is triage.status; this module only reads and writes."""

from __future__ import annotations

from datetime import datetime

from psycopg2.extras import RealDictCursor

from fraud_detection.triage.status import AlertTriage, Status, StatusChange, change
from fraud_detection.triage.table import ListedAlert

# The queries are constant text (tests/integration/test_security.py checks every query of the package); the
# column lists are the records' field names, which a unit test holds them to.
TRIAGE_COLUMNS = ("alert_id", "status", "version", "merged_into", "acknowledged_by", "acknowledged_at",
                  "acknowledged_note", "resolved_by", "resolved_at", "resolved_note")
CHANGE_COLUMNS = ("alert_id", "from_status", "to_status", "changed_by", "changed_at", "note", "alert_version")
# What a change writes: the triage columns only; the id, version and merged_into are the detector's.
WRITTEN_COLUMNS = ("status", "acknowledged_by", "acknowledged_at", "acknowledged_note", "resolved_by", "resolved_at",
                   "resolved_note")
LOCK_ALERT = ("SELECT alert_id, status, version, merged_into, acknowledged_by, acknowledged_at, acknowledged_note,"
              " resolved_by, resolved_at, resolved_note, coalesce(%s::timestamptz, now())"
              " FROM alerts WHERE alert_id = %s FOR UPDATE")
WRITE_STATUS = ("UPDATE alerts SET status = %s, acknowledged_by = %s, acknowledged_at = %s, acknowledged_note = %s,"
                " resolved_by = %s, resolved_at = %s, resolved_note = %s WHERE alert_id = %s")
RECORD_CHANGE = ("INSERT INTO alert_status_history (alert_id, from_status, to_status, changed_by, changed_at, note,"
                 " alert_version) VALUES (%s, %s, %s, %s, %s, %s, %s)")
READ_HISTORY = ("SELECT alert_id, from_status, to_status, changed_by, changed_at, note, alert_version"
                " FROM alert_status_history WHERE alert_id = %s ORDER BY id")


class UnknownAlertError(LookupError):
    """No alert has that id."""


def change_status(conn, alert_id: str, to: Status, by: str, note: str | None = None,
                  at: datetime | None = None) -> StatusChange:
    """Move the alert to ``to`` and record it; ``at`` defaults to the database's clock.

    The row lock makes concurrent changes of one alert queue up: the second sees what the first committed,
    so of two people acknowledging at once, one succeeds and the other is told who was first.
    """
    with conn, conn.cursor() as cur:
        cur.execute(LOCK_ALERT, (at, alert_id))
        row = cur.fetchone()
        if row is None:
            raise UnknownAlertError(f"no alert {alert_id!r}: `fraud-detection alerts list --status all` shows the ids")
        stored = dict(zip(TRIAGE_COLUMNS, row[:-1], strict=True))
        after, recorded = change(_with_status(AlertTriage, stored), to, by, row[-1], note)
        cur.execute(WRITE_STATUS, (*_values(after, WRITTEN_COLUMNS), alert_id))
        cur.execute(RECORD_CHANGE, _values(recorded, CHANGE_COLUMNS))
    return recorded


def _values(record, names: tuple[str, ...]) -> tuple:
    """The record's values for these columns, statuses as their text."""
    return tuple(v.value if isinstance(v := getattr(record, name), Status) else v for name in names)


def _with_status(kind, row: dict):
    """A record from a row keyed by column name, its text statuses as Status."""
    return kind(**{name: Status(v) if name.endswith("status") else v for name, v in row.items()})


def list_alerts(conn, status: Status | None = None, card_id: str | None = None,
                limit: int = 50) -> tuple[list[ListedAlert], datetime]:
    """Live (not merged) alerts, newest first, of one status and card if given; and the database's now."""
    with conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(
            "SELECT alert_id, card_id, txn_count, first_event_time, last_event_time, detected_at, status,"
            " acknowledged_by, resolved_by,"
            " coalesce(version > (SELECT h.alert_version FROM alert_status_history h"
            "  WHERE h.alert_id = alerts.alert_id ORDER BY h.id DESC LIMIT 1), false) AS grew_since_change"
            " FROM alerts WHERE merged_into IS NULL"
            " AND (%(status)s::text IS NULL OR status = %(status)s) AND (%(card)s::text IS NULL OR card_id = %(card)s)"
            " ORDER BY detected_at DESC, alert_id LIMIT %(limit)s",
            {"status": None if status is None else status.value, "card": card_id, "limit": limit},
        )
        rows = cur.fetchall()
        cur.execute("SELECT now() AS now")
        now = cur.fetchone()["now"]
    return [_with_status(ListedAlert, row) for row in rows], now


def history(conn, alert_id: str) -> list[StatusChange]:
    """The alert's status changes, oldest first."""
    with conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(READ_HISTORY, (alert_id,))
        return [_with_status(StatusChange, row) for row in cur.fetchall()]
