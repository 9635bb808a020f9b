"""The terminal view of `make run`: the newest alerts and the detection totals, refreshed each second.

On a terminal it redraws in place; otherwise (CI, pipes) it logs one summary line every ten seconds.
Until the first alert it says what is under way: the detector starting or reading, the attacks the
generator has begun and how far each has got.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from fraud_detection.display import Display
from fraud_detection.heartbeat import read_status
from fraud_detection.storage import postgres, reports

log = logging.getLogger(__name__)


def waiting_lines(progress: reports.DetectorProgress, generator: dict | None, threshold: int) -> list[str]:
    """What is happening while nothing has been detected yet."""
    if progress.batches == 0:
        detector = "detector: running, waiting for its first batch"
    else:
        detector = f"detector: {progress.batches:,} batches, {progress.input_rows:,} transactions checked"
    if generator is None:
        return ["(no alerts yet)", detector, "generator: starting"]
    lines = ["(no alerts yet)", detector,
             f"generator: {generator['sent']:,} transactions sent, {generator['attacks_injected']} attacks begun"]
    for card, made, planned in generator["attacks_in_progress"][:5]:
        due = f"alert due at swipe {threshold + 1}" if made <= threshold else "over the threshold: alert due now"
        lines.append(f"  attack on {card}: {made} of {planned} swipes made ({due})")
    return lines


def delivery_line(found: list[reports.Deliveries]) -> str:
    """`notify`'s outcomes per destination, when it runs."""
    return "notifications: " + "   ".join(
        f"{d.destination} {d.delivered:,} delivered, {d.pending} pending, {d.failed} failed"
        f" (p50 {_seconds(d.latency_p50_s).strip()}, p99 {_seconds(d.latency_p99_s).strip()})" for d in found)


def render(recent: list[reports.RecentAlert], totals: reports.Totals, health: reports.Health,
           waiting: list[str] = (), log_dir: Path = Path(".local/logs"),
           deliveries: list[reports.Deliveries] = ()) -> str:
    """The whole screen as text."""
    lines = [
        f"fraud-detection: live velocity alerts (Ctrl-C stops everything; logs in {log_dir})",
        "",
        f"processed {health.rate_per_s:>8,.0f} tx/s   alert latency p50 {_seconds(health.latency_p50_s)}"
        f"  p99 {_seconds(health.latency_p99_s)} (last 5 min)   recall {_percent(totals.recall)}",
        f"attacks injected {totals.attacks:>6,}   detected {totals.attacks_detected:>6,}   "
        f"decoys {totals.decoys:>6,}   decoys alerted {totals.decoys_alerted:>4,}   "
        f"alerts {totals.alerts:>6,}   rejected records {totals.rejected:>6,}",
        *([delivery_line(deliveries)] if deliveries else []),
        "",
        f"{'card':<22} {'txns':>5}  {'window (UTC event time)':<25} {'latency':>9}"
        + ("  sent to" if deliveries else ""),
    ]
    for a in recent:
        window = f"{a.first_event_time:%H:%M:%S} - {a.last_event_time:%H:%M:%S}"
        latency = "-" if a.latency_ms is None else f"{a.latency_ms / 1000:.2f} s"
        sent = f"  {a.delivered_to or '-'}" if deliveries else ""
        lines.append(f"{a.card_id:<22} {a.txn_count:>5}  {window:<25} {latency:>9}{sent}")
    if not recent:
        lines.extend(waiting)
    return "\n".join(lines)


def summary_line(totals: reports.Totals, health: reports.Health, deliveries: list[reports.Deliveries] = ()) -> str:
    sent = "".join(f" {d.destination}_delivered={d.delivered} {d.destination}_failed={d.failed}" for d in deliveries)
    return (f"event=live rate={health.rate_per_s:.0f} latency_p50_s={_seconds(health.latency_p50_s).strip()} "
            f"latency_p99_s={_seconds(health.latency_p99_s).strip()} "
            f"recall={_percent(totals.recall).replace(' ', '')} "
            f"attacks={totals.attacks} detected={totals.attacks_detected} decoys={totals.decoys} "
            f"decoys_alerted={totals.decoys_alerted} alerts={totals.alerts} rejected={totals.rejected}{sent}")


def _seconds(value: float | None) -> str:
    return "   -  " if value is None else f"{value:5.2f}s"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


class LiveView:
    """Redraws (or logs) the view when due; ``generator_status`` is the generator's heartbeat file."""

    def __init__(self, database_url: str, stream=None, *, threshold: int, generator_status: Path | None = None,
                 log_dir: Path = Path(".local/logs"), every_s: float = 1.0, log_every_s: float = 10.0) -> None:
        self._log_dir = log_dir
        self._db = postgres.LazyConnection(database_url)
        self._display = Display(stream if stream is not None else sys.stdout, every_s=every_s,
                                log_every_s=log_every_s, screen=True)
        self._threshold = threshold
        self._generator_status = generator_status

    @property
    def on_terminal(self) -> bool:
        return self._display.on_terminal

    def refresh(self) -> None:
        """Redraw (or log) if due; a database hiccup skips a frame rather than stopping the pipeline."""
        if not self._display.due():
            return
        try:
            conn = self._db.get()
            totals, health, sent = reports.totals(conn), reports.health(conn), reports.deliveries(conn)
            if not self.on_terminal:
                self._display.show(summary_line(totals, health, sent))
                return
            recent = reports.newest_alerts(conn)
            waiting = [] if recent else waiting_lines(
                reports.detector_progress(conn),
                read_status(self._generator_status) if self._generator_status else None, self._threshold)
            self._display.show(render(recent, totals, health, waiting, self._log_dir, sent))
        except Exception as err:  # noqa: BLE001 (the view is best effort)
            log.debug("event=live_view_skipped error=%s", err)
            self._db.reset()

    def close(self) -> None:
        self._db.close()
