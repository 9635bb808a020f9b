from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraud_detection.rules import velocity
from fraud_detection.rules.model import Status, parse_rule, velocity_rule
from fraud_detection.rules.oracle import detect, version_at
from fraud_detection.transaction import Transaction

MIN = 60_000
KINDS = ("count", "sum(amount)", "count_distinct(country)", "count_distinct(merchant_id)")


def txn(tid, minute, card="c", amount_cents=1_000, merchant="m1", country="FR", channel="pos", mcc="5411"):
    return Transaction(tid, card, amount_cents, "EUR", merchant, mcc, country, channel, int(minute * MIN))


def rule(**changes):
    base = {"rule_id": 2, "name": "test", "key": "card_id", "aggregate": "count", "limit": 5,
            "window_seconds": 600}
    return parse_rule({**base, **changes})


def test_distinct_countries_in_an_hour():
    """A card used in three countries within an hour alerts once, valued at the number of countries."""
    txns = [txn("a", 0, country="FR"), txn("b", 10, country="DE"), txn("c", 20, country="FR"),
            txn("d", 50, country="ES"), txn("e", 130, country="IT")]
    [alert] = detect(txns, [rule(aggregate="count_distinct(country)", limit=2, window_seconds=3600)])
    assert (alert.value, alert.txn_count, alert.first_trigger_id, alert.last_trigger_id) == (3, 4, "d", "d")


def test_sum_of_amounts_reports_currency_units():
    """Spending above 100.00 in ten minutes alerts with the covered total in currency units."""
    txns = [txn(str(i), i, amount_cents=3_000) for i in range(5)]
    [alert] = detect(txns, [rule(aggregate="sum(amount)", limit=100)])
    assert (alert.value, alert.txn_count, alert.first_trigger_id, alert.last_trigger_id) == (
        Decimal("150"), 5, "3", "4")


def test_a_merchant_key_adds_up_many_cards():
    """Keyed by merchant, six different cards at one merchant are one alert; by card, none."""
    txns = [txn(str(i), i, card=f"card{i}") for i in range(6)]
    [alert] = detect(txns, [rule(key="merchant_id")])
    assert (alert.key, alert.key_value, alert.txn_count) == ("merchant_id", "m1", 6)
    assert detect(txns, [rule()]) == []


def test_the_filter_decides_what_counts():
    """Only admitted transactions count, and only they can trigger: five e-commerce swipes among pos ones."""
    txns = [txn(f"e{i}", i, channel="ecommerce") for i in range(5)] + [txn(f"p{i}", i + 0.5) for i in range(5)]
    assert len(detect(txns, [rule()])) == 1
    assert detect(txns, [rule(filter={"channels": ["ecommerce"]})]) == []
    assert len(detect(txns, [rule(limit=4, filter={"channels": ["ecommerce"]})])) == 1


def test_a_new_version_applies_from_its_effective_time():
    """Version 2 (limit 2) judges transactions from minute 20 on; version 1 (limit 5) those before. A burst ends
    where the versions change, and each alert carries the version that raised it."""
    v1 = rule(limit=2)
    v2 = replace(v1, version=2, limit=Decimal(5), effective_from_ms=20 * MIN)
    txns = [txn(f"t{i}", 15 + i) for i in range(10)]  # minutes 15..24
    alerts = detect(txns, [v2, v1])
    assert [(a.version, a.first_trigger_id, a.last_trigger_id) for a in alerts] == [
        (1, "t2", "t4"), (2, "t5", "t9")]


def test_disabled_versions_raise_nothing_and_shadow_ones_are_marked():
    """Disabling is a version too; a shadow version's alerts carry its status."""
    txns = [txn(str(i), i) for i in range(6)]
    active = rule()
    assert detect(txns, [active, replace(active, version=2, status=Status.DISABLED, effective_from_ms=0)]) == []
    [alert] = detect(txns, [replace(active, status=Status.SHADOW)])
    assert alert.status is Status.SHADOW


def test_version_in_force_is_the_highest_already_effective():
    """A later version with an earlier effective time wins from then on; before any, nothing applies."""
    v1, v2 = rule(effective_from_ms=10), rule(version=2, effective_from_ms=5)
    assert version_at([v1, v2], 4) is None
    assert version_at([v1, v2], 7) is v2 and version_at([v1, v2], 12) is v2


def test_a_version_given_twice_is_an_error():
    """Two rules with the same id and version cannot both be the definition."""
    with pytest.raises(ValueError, match="has a version twice"):
        detect([], [rule(), rule()])


def test_rules_run_side_by_side():
    """Two rules over the same traffic raise their own alerts, sorted by rule."""
    txns = [txn(str(i), i, country="FR" if i % 2 else "DE") for i in range(6)]
    alerts = detect(txns, [rule(rule_id=3, aggregate="count_distinct(country)", limit=1), velocity_rule()])
    assert [a.rule_id for a in alerts] == [1, 3]


records = st.lists(
    st.tuples(st.sampled_from("ab"), st.integers(0, 40 * MIN), st.integers(1, 5_000), st.sampled_from("xyz"),
              st.sampled_from(("FR", "DE", "ES"))),
    max_size=50,
)


def as_transactions(raw):
    return [Transaction(f"t{i:03d}", card, cents, "EUR", merchant, "5411", country, "pos", t)
            for i, (card, t, cents, merchant, country) in enumerate(raw)]


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 40 * MIN)), max_size=60),
       st.integers(1, 6), st.integers(1, 15))
def test_rule_one_agrees_with_the_velocity_oracle(raw, threshold, window_minutes):
    """The general oracle and velocity.py are the same definition for rule 1, redeliveries included."""
    txns = [txn(f"t{i}", 0, card=card)._replace(event_time_ms=t) for i, (card, t) in enumerate(raw)]
    txns += txns[: len(txns) // 3]
    events = [velocity.Event(t.card_id, t.transaction_id, t.event_time_ms, t.amount_cents) for t in txns]
    expected = velocity.detect(events, threshold, window_minutes * MIN)
    got = detect(txns, [velocity_rule(threshold, window_minutes * MIN)])
    assert [(a.key_value, a.first_event_time_ms, a.last_event_time_ms, a.txn_count, a.first_trigger_id,
             a.last_trigger_id) for a in got] == [
        (a.card_id, a.first_event_time_ms, a.last_event_time_ms, a.txn_count, a.first_trigger_id,
         a.last_trigger_id) for a in expected]


@given(records, st.sampled_from(KINDS), st.randoms())
def test_arrival_order_does_not_matter_for_any_kind(raw, kind, rnd):
    """Every kind's alerts depend on event times only, not on the order of arrival."""
    txns = as_transactions(raw)
    shuffled = txns[:]
    rnd.shuffle(shuffled)
    rules = [rule(aggregate=kind, limit=2 if "distinct" in kind else 40 if kind == "sum(amount)" else 4)]
    assert detect(txns, rules) == detect(shuffled, rules)


@given(records, st.sampled_from(KINDS), st.integers(1, 60))
def test_every_kind_matches_brute_force(raw, kind, limit):
    """Per card, the alerts are the runs of transactions whose brute-force aggregate over (t - 10 min, t]
    passes the limit, and each alert's value is its aggregate over the transactions it covers."""
    txns = as_transactions(raw)
    the_rule = rule(aggregate=kind, limit=limit if kind == "sum(amount)" else limit % 4)
    alerts = detect(txns, [the_rule])
    for card in "ab":
        ordered = sorted((t for t in txns if t.card_id == card), key=lambda t: (t.event_time_ms, t.transaction_id))
        triggers = [the_rule.triggers(brute_force(kind, trailing_window(ordered, t.event_time_ms))) for t in ordered]
        runs = sum(1 for i, hit in enumerate(triggers) if hit and (i == 0 or not triggers[i - 1]))
        mine = [a for a in alerts if a.key_value == card]
        assert len(mine) == runs
        for a in mine:
            covered = [o for o in ordered if a.first_event_time_ms <= o.event_time_ms <= a.last_event_time_ms]
            assert (a.txn_count, a.value) == (
                len(covered), Decimal(brute_force(kind, covered)) / (100 if kind == "sum(amount)" else 1))


def trailing_window(ordered, t):
    return [o for o in ordered if t - 10 * MIN < o.event_time_ms <= t]


def brute_force(kind, window):
    if kind == "count":
        return len(window)
    if kind == "sum(amount)":
        return sum(t.amount_cents for t in window)
    return len({t.country if kind.endswith("(country)") else t.merchant_id for t in window})
