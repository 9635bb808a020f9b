"""Detection quality from ground truth and alerts: matching, recall, precision, delays, the three reports."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from fraud_detection.evaluation import report
from fraud_detection.evaluation.quality import AlertRecord, Truth, evaluate, explain_miss, percentile

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def truth(card, kind, first, last, count=6):
    return Truth("generator:test", card, kind, at(first), at(last), count)


def alert(alert_id, card, first, last, trigger=None, kafka=None, detected=None):
    return AlertRecord(alert_id, card, at(first), at(last), 6, None if trigger is None else at(trigger),
                       None if kafka is None else at(kafka), at(detected if detected is not None else last))


CASE = evaluate(
    [truth("a", "attack", 0, 5), truth("b", "attack", 10, 12), truth("c", "labelled_fraud", 20, 21),
     truth("d", "decoy_below_threshold", 0, 9), truth("e", "decoy_slow", 0, 11)],
    [alert("x1", "a", 1, 5, trigger=3, kafka=3, detected=3.05),   # catches a (3 min into it, 3 s wall clock)
     alert("x2", "a", 4, 6, trigger=5, kafka=5, detected=5.1),    # a second alert on a: true, not double-counted
     alert("x3", "c", 21, 22, trigger=21, kafka=21, detected=21.01),  # overlaps c's last minute: caught
     alert("x4", "d", 3, 8),                                       # fired on a decoy: false
     alert("x5", "b", 13, 14)],                                   # same card as b, after it: false
    threshold=5, window_ms=10 * 60_000, rejected_by_card={"b": 2},
)


def test_attacks_match_overlapping_alerts_of_the_same_card():
    """Recall counts attacks with an overlapping alert; labelled fraud counts as an attack; b is missed."""
    assert (CASE.attacks, CASE.detected) == (3, 2)
    assert CASE.recall == pytest.approx(2 / 3)
    assert [t.card_id for t in CASE.missed] == ["b"]


def test_alerts_that_overlap_no_attack_are_false_and_decoys_are_named():
    """Precision: 3 of 5 alerts overlap an attack; the decoy alert names its decoy."""
    assert CASE.alerts == 5 and len(CASE.false_alerts) == 2
    assert CASE.precision == pytest.approx(3 / 5)
    assert {(f.alert.alert_id, f.decoy.kind if f.decoy else None) for f in CASE.false_alerts} == {
        ("x4", "decoy_below_threshold"), ("x5", None)}
    assert (CASE.decoys, CASE.decoys_alerted) == (2, 1)


def test_delays_come_from_the_first_alert_of_each_attack():
    """Event-time delay = raising transaction - attack start; wall clock = stored - Kafka timestamp."""
    assert CASE.delays("event_time") == pytest.approx([60.0, 180.0])
    assert CASE.delays("processing") == pytest.approx([0.6, 3.0])


def test_empty_inputs_give_no_ratios_rather_than_errors():
    """Nothing injected and nothing alerted: recall and precision are undefined, not 0 or a crash."""
    empty = evaluate([], [], 5, 600_000)
    assert (empty.recall, empty.precision, empty.delays("event_time")) == (None, None, [])
    assert "n/a" in report.to_table(empty)
    assert "No attacks or alerts" in report.to_html(empty)


@pytest.mark.parametrize(("count", "minutes", "rejected", "reason", "detail"), [
    (5, 2, 3, "too_few_transactions", "5 transactions; the rule needs more than 5"),
    (9, 10, 0, "spread_wider_than_window", "9 transactions over 10 min: no 10 min window held more than 5"),
    (9, 60 * 48, 0, "spread_wider_than_window", "over 2.0 d"),
    (6, 9.99, 1, "rejected_or_late", "1 of the card's records were rejected"),
    (6, 9.99, 0, "unexplained", "the detector should have alerted"),
])
def test_every_miss_has_a_reason(count, minutes, rejected, reason, detail):
    """The rule's limits come first (too few, too spread), then records the detector never counted; what is
    left is an engine defect, and says so."""
    miss = explain_miss(truth("z", "labelled_fraud", 0, minutes, count), 5, 10 * 60_000, rejected)
    assert (miss.reason, miss.rejected) == (reason, rejected)
    assert detail in miss.detail


def test_missed_attacks_are_explained_in_every_report():
    """b (6 swipes in 2 minutes, 2 of its records rejected) is missed for the rejected records."""
    [miss] = CASE.misses
    assert (miss.attack.card_id, miss.reason) == ("b", "rejected_or_late")
    data = json.loads(report.to_json(CASE))
    assert data["missed_by_reason"] == {"too_few_transactions": 0, "spread_wider_than_window": 0,
                                        "rejected_or_late": 1, "unexplained": 0}
    [row] = data["missed_attacks"]
    assert (row["reason"], row["rejected_records"]) == ("rejected_or_late", 2)
    assert "spread_wider_than_window 0, rejected_or_late 1" in report.to_table(CASE)
    assert "rejected_or_late" in report.to_html(CASE)


@pytest.mark.parametrize(("q", "expected"), [(0.0, 1.0), (0.5, 2.5), (0.9, 3.7), (1.0, 4.0)])
def test_percentile_interpolates_like_postgres_percentile_cont(q, expected):
    """The same definition as the dashboard's percentile_cont."""
    assert percentile([1.0, 2.0, 3.0, 4.0], q) == pytest.approx(expected)


def test_json_report_has_the_figures_and_the_lists():
    """JSON: recall, precision, delay percentiles, missed attacks and false alerts."""
    data = json.loads(report.to_json(CASE))
    assert data["recall"] == pytest.approx(2 / 3) and data["precision"] == pytest.approx(0.6)
    assert data["event_time_delay_s"]["p50"] == pytest.approx(120.0)
    assert [m["card_id"] for m in data["missed_attacks"]] == ["b"]
    assert {f["alert_id"] for f in data["false_alerts_list"]} == {"x4", "x5"}


def test_table_report_shows_headline_and_lists():
    """The terminal table leads with recall and precision and lists what went wrong."""
    text = report.to_table(CASE)
    assert "recall 66.7 %" in text and "precision 60.0 %" in text
    assert "missed attacks: 1" in text and "false alerts: 2" in text


def test_html_report_is_self_contained_with_both_plots():
    """One page: inline SVG timeline and histograms, no scripts, stylesheets or images from elsewhere."""
    page = report.to_html(CASE)
    assert page.count("<svg") == 3
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert "Missed attacks: 1" in page and "False alerts: 2" in page
