"""`fraud-detection alerts list` as a terminal table: pure, from the rows store.list_alerts reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from fraud_detection.triage.status import Status


@dataclass(frozen=True, slots=True)
class ListedAlert:
    """One live alert in the list (field names are the columns store.list_alerts selects)."""

    alert_id: str
    card_id: str
    txn_count: int
    first_event_time: datetime
    last_event_time: datetime
    detected_at: datetime
    status: Status
    acknowledged_by: str | None
    resolved_by: str | None
    grew_since_change: bool  # the alert grew after its status was last set: worth another look

    @property
    def changed_by(self) -> str | None:
        return self.resolved_by if self.status is Status.RESOLVED else self.acknowledged_by


def render(alerts: list[ListedAlert], now: datetime) -> str:
    """The alerts, newest first as given, with their age at ``now``; a footnote when one grew since triage."""
    if not alerts:
        return "no alerts match"
    header = (f"{'id':<36}  {'card':<22} {'txns':>5}  {'window (UTC event time)':<30}  {'status':<13} "
              f"{'by':<12} {'age':>7}")
    lines = [header]
    for a in alerts:
        status = a.status.value + ("*" if a.grew_since_change else "")
        lines.append(f"{a.alert_id:<36}  {a.card_id:<22} {a.txn_count:>5}  {window(a):<30}  {status:<13} "
                     f"{a.changed_by or '-':<12} {age((now - a.detected_at).total_seconds()):>7}")
    if any(a.grew_since_change for a in alerts):
        lines += ["", "* the alert grew after its status was set: look at it again"]
    return "\n".join(lines)


def window(alert: ListedAlert) -> str:
    first, last = (t.astimezone(timezone.utc) for t in (alert.first_event_time, alert.last_event_time))
    days = (last.date() - first.date()).days
    return f"{first:%Y-%m-%d %H:%M:%S} - {last:%H:%M:%S}" + (f" +{days}d" if days else "")


def age(seconds: float) -> str:
    """Whole units, coarser as it grows: 45s, 12m, 3h05m, 2d04h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
