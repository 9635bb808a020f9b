"""The velocity rule, exactly, with no Spark: the oracle for tests and the definition of the semantics.

For each card, a transaction at event time ``t`` *triggers* when the card has more than ``threshold``
transactions with event time in ``(t - window, t]``. Consecutive triggering transactions of a card (in
event-time order) form one burst, reported as one alert. The alert spans from the first transaction in
the window of its first trigger to its last trigger. A ``transaction_id`` seen twice counts once.

Ties: transactions with equal event times are in each other's windows, so they trigger together.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

DEFAULT_THRESHOLD = 5
DEFAULT_WINDOW_MS = 10 * 60 * 1000


@dataclass(frozen=True, slots=True)
class Event:
    card_id: str
    transaction_id: str
    event_time_ms: int
    amount_cents: int = 0


@dataclass(frozen=True, slots=True)
class Alert:
    card_id: str
    first_event_time_ms: int
    last_event_time_ms: int
    txn_count: int
    amount_total_cents: int
    first_trigger_id: str
    last_trigger_id: str


def detect(
    events: Iterable[Event], threshold: int = DEFAULT_THRESHOLD, window_ms: int = DEFAULT_WINDOW_MS
) -> list[Alert]:
    """All alerts of the rule over ``events`` in any arrival order, sorted by card and time."""
    if threshold < 1 or window_ms < 1:
        raise ValueError("threshold and window_ms must be positive")
    by_card: dict[str, dict[str, Event]] = defaultdict(dict)
    for event in events:
        by_card[event.card_id].setdefault(event.transaction_id, event)
    alerts: list[Alert] = []
    for card_id in sorted(by_card):
        ordered = sorted(by_card[card_id].values(), key=lambda e: (e.event_time_ms, e.transaction_id))
        alerts.extend(_card_alerts(card_id, ordered, threshold, window_ms))
    return alerts


def _card_alerts(card_id: str, ordered: list[Event], threshold: int, window_ms: int) -> list[Alert]:
    times = [e.event_time_ms for e in ordered]

    def triggers(i: int, window_start: int) -> bool:
        return bisect_right(times, times[i]) - window_start > threshold

    return [_alert(card_id, ordered, *burst) for burst in bursts(times, window_ms, triggers)]


def bursts(times: list[int], window_ms: int, triggers: Callable[[int, int], bool]) -> list[tuple[int, int, int]]:
    """The runs of consecutive triggering positions in sorted ``times``, each as (the first position in its first
    trigger's window, its first trigger, its last trigger); ``triggers(i, window_start)`` judges position i, whose
    window ``(times[i] - window_ms, times[i]]`` starts at position window_start."""
    runs: list[tuple[int, int, int]] = []
    burst_start: int | None = None  # index of the first transaction in the burst's first window
    first_trigger = last_trigger = -1
    for i, t in enumerate(times):
        window_start = bisect_right(times, t - window_ms)
        if triggers(i, window_start):
            if burst_start is None:
                burst_start, first_trigger = window_start, i
            last_trigger = i
        elif burst_start is not None:
            runs.append((burst_start, first_trigger, last_trigger))
            burst_start = None
    if burst_start is not None:
        runs.append((burst_start, first_trigger, last_trigger))
    return runs


def _alert(card_id: str, ordered: list[Event], start: int, first_trigger: int, last_trigger: int) -> Alert:
    covered = ordered[start : last_trigger + 1]
    return Alert(
        card_id=card_id,
        first_event_time_ms=covered[0].event_time_ms,
        last_event_time_ms=covered[-1].event_time_ms,
        txn_count=len(covered),
        amount_total_cents=sum(e.amount_cents for e in covered),
        first_trigger_id=ordered[first_trigger].transaction_id,
        last_trigger_id=ordered[last_trigger].transaction_id,
    )
