"""Alert triage as pure logic: the statuses, the legal changes between them and what a change records.

open -> acknowledged -> resolved, or open -> resolved straight away; nothing goes back, and nothing happens
twice. Migration 0007 holds the same rule as CHECK constraints; a test holds the two to each other.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timezone


class Status(str, enum.Enum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.OPEN: frozenset({Status.ACKNOWLEDGED, Status.RESOLVED}),
    Status.ACKNOWLEDGED: frozenset({Status.RESOLVED}),
    Status.RESOLVED: frozenset(),
}


class TransitionError(ValueError):
    """A status change the alert's current state does not allow; the message says why and by whom."""


@dataclass(frozen=True, slots=True)
class AlertTriage:
    """An alert's triage state, as stored (field names are the ``alerts`` columns)."""

    alert_id: str
    status: Status
    version: int = 1
    merged_into: str | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_note: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolved_note: str | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One row of ``alert_status_history`` (field names are its columns)."""

    alert_id: str
    from_status: Status
    to_status: Status
    changed_by: str
    changed_at: datetime
    note: str | None
    alert_version: int


def change(current: AlertTriage, to: Status, by: str, at: datetime,
           note: str | None = None) -> tuple[AlertTriage, StatusChange]:
    """The alert after ``by`` moves it to ``to`` at ``at``, and the history row; TransitionError if illegal."""
    if not by.strip():
        raise TransitionError("say who is changing the alert's status (--by NAME)")
    if current.merged_into is not None:
        raise TransitionError(f"alert {current.alert_id} was merged into {current.merged_into}, which carries on: "
                              f"change that one instead")
    if to not in TRANSITIONS[current.status]:
        raise TransitionError(_refusal(current, to))
    note = note or None
    if to is Status.ACKNOWLEDGED:
        after = replace(current, status=to, acknowledged_by=by, acknowledged_at=at, acknowledged_note=note)
    else:  # resolved straight from open also counts as taken then, for time to acknowledge
        after = replace(current, status=to, resolved_by=by, resolved_at=at, resolved_note=note,
                        acknowledged_by=current.acknowledged_by or by,
                        acknowledged_at=current.acknowledged_at or at)
    return after, StatusChange(current.alert_id, current.status, to, by, at, note, current.version)


def _refusal(current: AlertTriage, to: Status) -> str:
    if current.status is Status.RESOLVED:
        return (f"alert {current.alert_id} is already resolved by {current.resolved_by} at "
                f"{moment(current.resolved_at)}; a resolved alert stays resolved")
    if current.status is to:
        return (f"alert {current.alert_id} is already acknowledged by {current.acknowledged_by} at "
                f"{moment(current.acknowledged_at)}")
    return f"alert {current.alert_id} is {current.status.value}; it cannot go back to {to.value}"


def moment(at: datetime | None) -> str:
    """A stored time as people read it here: UTC, to the second."""
    return "-" if at is None else f"{at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
