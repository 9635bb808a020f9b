"""The terminal view of `make run`: the newest alerts and the detection totals, refreshed each second.

On a terminal it redraws in place; otherwise (CI, pipes) it logs one summary line every ten seconds.
"""

from __future__ import annotations

import logging
import sys
import time

from fraud_detection.storage import postgres, reports

log = logging.getLogger(__name__)

CLEAR = "\033[H\033[2J"


def render(recent: list[reports.RecentAlert], totals: reports.Totals, health: reports.Health) -> str:
    """The whole screen as text."""
    lines = [
        "fraud-detection: live velocity alerts (Ctrl-C stops everything; logs in .local/logs)",
        "",
        f"processed {health.rate_per_s:>8,.0f} tx/s   alert latency p50 {_seconds(health.latency_p50_s)}"
        f"  p99 {_seconds(health.latency_p99_s)} (last 5 min)   recall {_percent(totals.recall)}",
        f"attacks injected {totals.attacks:>6,}   detected {totals.attacks_detected:>6,}   "
        f"decoys {totals.decoys:>6,}   decoys alerted {totals.decoys_alerted:>4,}   "
        f"alerts {totals.alerts:>6,}   rejected records {totals.rejected:>6,}",
        "",
        f"{'card':<22} {'txns':>5}  {'window (UTC event time)':<25} {'latency':>9}",
    ]
    for a in recent:
        window = f"{a.first_event_time:%H:%M:%S} - {a.last_event_time:%H:%M:%S}"
        latency = "-" if a.latency_ms is None else f"{a.latency_ms / 1000:.2f} s"
        lines.append(f"{a.card_id:<22} {a.txn_count:>5}  {window:<25} {latency:>9}")
    if not recent:
        lines.append("(no alerts yet: the detector needs ~15 s to start, attacks come about every 20 s)")
    return "\n".join(lines)


def summary_line(totals: reports.Totals, health: reports.Health) -> str:
    return (f"event=live rate={health.rate_per_s:.0f} latency_p50_s={_seconds(health.latency_p50_s).strip()} "
            f"latency_p99_s={_seconds(health.latency_p99_s).strip()} "
            f"recall={_percent(totals.recall).replace(' ', '')} "
            f"attacks={totals.attacks} detected={totals.attacks_detected} decoys={totals.decoys} "
            f"decoys_alerted={totals.decoys_alerted} alerts={totals.alerts} rejected={totals.rejected}")


def _seconds(value: float | None) -> str:
    return "   -  " if value is None else f"{value:5.2f}s"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


class LiveView:
    def __init__(self, database_url: str, stream=None, every_s: float = 1.0, log_every_s: float = 10.0) -> None:
        self._db = postgres.LazyConnection(database_url)
        self._stream = stream if stream is not None else sys.stdout
        self._tty = self._stream.isatty()
        self._every_s = every_s if self._tty else log_every_s
        self._next = 0.0

    @property
    def on_terminal(self) -> bool:
        return self._tty

    def refresh(self) -> None:
        """Redraw (or log) if due; a database hiccup skips a frame rather than stopping the pipeline."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._every_s
        try:
            conn = self._db.get()
            totals, health = reports.totals(conn), reports.health(conn)
            if self._tty:
                self._stream.write(CLEAR + render(reports.newest_alerts(conn), totals, health) + "\n")
                self._stream.flush()
            else:
                log.info(summary_line(totals, health))
        except Exception as err:  # noqa: BLE001 (the view is best effort)
            log.debug("event=live_view_skipped error=%s", err)
            self._db.reset()

    def close(self) -> None:
        self._db.close()
