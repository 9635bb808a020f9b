"""notification_deliveries (migration 0006): what each destination was sent and how it settled.

Times are passed in (epoch seconds) so the give-up deadline and the rows use the notifier's one clock.
"""

from __future__ import annotations

from typing import NamedTuple

from fraud_detection.notifications.messages import Alert
from fraud_detection.notifications.routing import Status


class Attempted(NamedTuple):
    first_attempt_at: float  # epoch seconds
    attempts: int


def versions(conn, destination: str, alert_id: str) -> dict[int, Status]:
    """Each recorded version of the alert at ``destination`` and its status."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT version, status FROM notification_deliveries WHERE destination = %s AND alert_id = %s",
                    (destination, alert_id))
        return {version: Status(status) for version, status in cur.fetchall()}


def begin(conn, destination: str, alert: Alert, now: float) -> Attempted:
    """Mark the version pending before its first attempt. A pending row from an earlier run keeps its first
    attempt (the deadline does not restart with the notifier); a failed one gets a new deadline."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO notification_deliveries AS d (destination, alert_id, version, card_id, status,"
            " first_attempt_at, updated_at) VALUES (%s, %s, %s, %s, 'pending', to_timestamp(%s), to_timestamp(%s))"
            " ON CONFLICT (destination, alert_id, version) DO UPDATE SET status = 'pending',"
            " updated_at = EXCLUDED.updated_at, first_attempt_at = CASE WHEN d.status = 'failed'"
            " THEN EXCLUDED.first_attempt_at ELSE d.first_attempt_at END"
            " RETURNING extract(epoch FROM first_attempt_at)::float8, attempts",
            (destination, alert.alert_id, alert.version, alert.card_id, now, now),
        )
        first, attempts = cur.fetchone()
    return Attempted(first, attempts)


def attempted(conn, destination: str, alert: Alert, attempts: int, error: str, now: float) -> None:
    """A retryable failure: still pending, with the count and the error so far."""
    _update(conn, destination, alert, Status.PENDING, attempts, error, None, now)


def settle(conn, destination: str, alert: Alert, status: Status, attempts: int, error: str | None,
           now: float) -> None:
    """Delivered (acknowledged) or failed (the dead letter, keeping the last error)."""
    _update(conn, destination, alert, status, attempts, error, now if status is Status.DELIVERED else None, now)


def _update(conn, destination: str, alert: Alert, status: Status, attempts: int, error: str | None,
            delivered_at: float | None, now: float) -> None:
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE notification_deliveries SET status = %s, attempts = %s, last_error = COALESCE(%s, last_error),"
            " delivered_at = to_timestamp(%s), updated_at = to_timestamp(%s)"
            " WHERE destination = %s AND alert_id = %s AND version = %s",
            (status.value, attempts, error, delivered_at, now, destination, alert.alert_id, alert.version),
        )
