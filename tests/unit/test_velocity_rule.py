import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fraud_detection.rules.velocity import Alert, Event, detect

MIN = 60_000


def swipes(card, minutes, prefix="t"):
    return [Event(card, f"{prefix}{i}", int(m * MIN), 100) for i, m in enumerate(minutes)]


def test_five_in_a_window_is_not_an_alert():
    """Exactly the threshold within the window does not trigger: the rule is 'more than 5'."""
    assert detect(swipes("c", [0, 1, 2, 3, 4])) == []


def test_sixth_swipe_within_ten_minutes_alerts():
    """Six swipes within ten minutes make one alert spanning all six."""
    [alert] = detect(swipes("c", [0, 1, 2, 3, 4, 9.99]))
    assert (alert.txn_count, alert.first_event_time_ms, alert.last_event_time_ms) == (6, 0, int(9.99 * MIN))
    assert alert.first_trigger_id == alert.last_trigger_id == "t5"
    assert alert.amount_total_cents == 600


def test_window_is_open_at_its_start():
    """A swipe exactly one window earlier is outside (t - window, t]."""
    assert detect(swipes("c", [0, 2, 4, 6, 8, 10])) == []


def test_straddling_a_clock_boundary_is_caught():
    """A burst across a 10-minute clock boundary alerts, unlike tumbling windows."""
    assert len(detect(swipes("c", [7, 8, 9, 11, 12, 13]))) == 1


def test_burst_grows_into_one_alert_and_a_gap_opens_a_new_one():
    """Consecutive triggering swipes are one alert; a non-triggering swipe ends it."""
    burst = [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]
    later = [30, 30.5, 31, 31.5, 32, 32.5]
    alerts = detect(swipes("c", burst + later))
    assert [a.txn_count for a in alerts] == [8, 6]


def test_duplicate_ids_count_once():
    """A redelivered transaction_id is not a second swipe."""
    events = swipes("c", [0, 1, 2, 3, 4])
    events.append(Event("c", "t4", 5 * MIN, 100))
    assert detect(events) == []


def test_cards_are_independent():
    """Swipes of different cards never add up."""
    events = swipes("a", [0, 1, 2]) + swipes("b", [0, 1, 2], prefix="u")
    assert detect(events) == []


def test_equal_times_trigger_together():
    """Six swipes in the same millisecond are one alert of six."""
    [alert] = detect(swipes("c", [1] * 6))
    assert alert.txn_count == 6


@pytest.mark.parametrize(("threshold", "window_minutes", "expected"), [(2, 1, 1), (2, 0.4, 0), (6, 10, 0)])
def test_threshold_and_window_are_parameters(threshold, window_minutes, expected):
    """Both the threshold and the window are configurable."""
    alerts = detect(swipes("c", [0, 0.25, 0.5, 0.75, 1, 1.25]), threshold, int(window_minutes * MIN))
    assert len(alerts) == expected


def test_rejects_nonsense_parameters():
    """A zero threshold or window is an error, not an empty result."""
    with pytest.raises(ValueError):
        detect([], threshold=0)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 40 * MIN)), max_size=60), st.randoms())
def test_arrival_order_does_not_matter(raw, rnd):
    """The alerts depend on event times only, not on the order of arrival."""
    events = [Event(card, f"{card}{i}", t, 1) for i, (card, t) in enumerate(raw)]
    shuffled = events[:]
    rnd.shuffle(shuffled)
    assert detect(events) == detect(shuffled)


@given(st.lists(st.integers(0, 60 * MIN), min_size=1, max_size=40))
@example(times=[0, 0, 2, 2, 2, 2, 600_000, 600_001])  # two alerts sharing the transactions at 2 (CI, 2026-11-30)
def test_every_alert_matches_brute_force(times):
    """Alerts agree with a brute-force count over every transaction: one alert per run of consecutive
    triggering transactions, each triggering transaction inside an alert's span. (Spans of neighbouring
    alerts may share transactions: a burst's span starts at the first transaction of its first trigger's
    window, which can belong to the burst before.)"""
    events = [Event("c", f"t{i:03d}", t, 1) for i, t in enumerate(times)]
    ordered = sorted(events, key=lambda e: (e.event_time_ms, e.transaction_id))
    triggers = [sum(1 for o in ordered if e.event_time_ms - 10 * MIN < o.event_time_ms <= e.event_time_ms) > 5
                for e in ordered]
    runs = sum(1 for i, t in enumerate(triggers) if t and (i == 0 or not triggers[i - 1]))
    alerts = detect(events)
    assert len(alerts) == runs
    assert all(any(a.first_event_time_ms <= e.event_time_ms <= a.last_event_time_ms for a in alerts)
               for e, t in zip(ordered, triggers, strict=True) if t)
    assert all(isinstance(a, Alert) and a.txn_count > 5 for a in alerts)
