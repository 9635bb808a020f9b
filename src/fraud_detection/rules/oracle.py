"""Every rule kind, exactly, with no Spark: the definition the detector is held to, generalising velocity.py.

For a rule version and one value of its key, take the key's transactions its filter admits, in event-time
order (a ``transaction_id`` seen twice counts once). A transaction at event time ``t`` *triggers* when the
version in force at ``t`` is this one (the highest version whose ``effective_from_ms`` is at or before ``t``)
and the aggregate over the admitted transactions in ``(t - window, t]`` passes the comparison. Consecutive
triggering transactions form one burst, reported as one alert; a transaction that does not trigger, or is
judged by another version, ends it. The alert covers the admitted transactions from the first one in its
first trigger's window to its last trigger, and its value is the aggregate over them. Disabled versions raise
nothing; shadow ones raise alerts marked shadow.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from fraud_detection.rules.model import Function, Rule, Status
from fraud_detection.rules.velocity import bursts
from fraud_detection.transaction import Transaction


@dataclass(frozen=True, slots=True)
class RuleAlert:
    rule_id: int
    version: int
    status: Status
    key: str
    key_value: str
    first_event_time_ms: int
    last_event_time_ms: int
    txn_count: int
    value: Decimal  # the aggregate over the covered transactions, in its unit (currency units for a sum)
    first_trigger_id: str
    last_trigger_id: str


def detect(transactions: Iterable[Transaction], rules: Iterable[Rule]) -> list[RuleAlert]:
    """All alerts of every rule version over ``transactions`` in any arrival order, sorted by rule, key, time."""
    unique: dict[str, Transaction] = {}
    for txn in transactions:
        unique.setdefault(txn.transaction_id, txn)
    versions: dict[int, list[Rule]] = defaultdict(list)
    for rule in rules:
        versions[rule.rule_id].append(rule)
    alerts: list[RuleAlert] = []
    for rule_id in sorted(versions):
        in_force = sorted(versions[rule_id], key=lambda r: r.version)
        numbers = [r.version for r in in_force]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"rule {rule_id} has a version twice: {numbers}")
        for rule in in_force:
            if rule.status is not Status.DISABLED:
                alerts.extend(_version_alerts(rule, in_force, unique.values()))
    return sorted(alerts, key=lambda a: (a.rule_id, a.key_value, a.first_event_time_ms, a.version))


def version_at(versions: Sequence[Rule], event_time_ms: int) -> Rule | None:
    """The version in force at an event time: the highest whose effective time is at or before it."""
    applicable = [r for r in versions if r.effective_from_ms <= event_time_ms]
    return max(applicable, key=lambda r: r.version, default=None)


def aggregate(rule: Rule, covered: Sequence[Transaction]) -> int:
    """The rule's aggregate over transactions, in base units (a sum in cents)."""
    function = rule.aggregate.function
    if function is Function.COUNT:
        return len(covered)
    if function is Function.SUM:
        return sum(t.amount_cents for t in covered)
    return len({getattr(t, rule.aggregate.field) for t in covered})


def _version_alerts(rule: Rule, versions: Sequence[Rule], transactions: Iterable[Transaction]) -> list[RuleAlert]:
    by_key: dict[str, list[Transaction]] = defaultdict(list)
    for txn in transactions:
        if rule.filter.admits(txn.channel, txn.merchant_category, txn.amount_cents):
            by_key[getattr(txn, rule.key)].append(txn)
    alerts: list[RuleAlert] = []
    for key_value, txns in by_key.items():
        ordered = sorted(txns, key=lambda t: (t.event_time_ms, t.transaction_id))
        alerts.extend(_key_alerts(rule, versions, key_value, ordered))
    return alerts


def _key_alerts(rule: Rule, versions: Sequence[Rule], key_value: str, ordered: list[Transaction]) -> list[RuleAlert]:
    times = [t.event_time_ms for t in ordered]

    def triggers(i: int, window_start: int) -> bool:
        t = times[i]
        return version_at(versions, t) is rule and rule.triggers(
            aggregate(rule, ordered[window_start : bisect_right(times, t)]))

    return [_alert(rule, key_value, ordered, *burst) for burst in bursts(times, rule.window_ms, triggers)]


def _alert(
    rule: Rule, key_value: str, ordered: list[Transaction], start: int, first_trigger: int, last_trigger: int
) -> RuleAlert:
    covered = ordered[start : last_trigger + 1]
    value = Decimal(aggregate(rule, covered))
    return RuleAlert(
        rule_id=rule.rule_id, version=rule.version, status=rule.status, key=rule.key, key_value=key_value,
        first_event_time_ms=covered[0].event_time_ms, last_event_time_ms=covered[-1].event_time_ms,
        txn_count=len(covered), value=value / 100 if rule.aggregate.function is Function.SUM else value,
        first_trigger_id=ordered[first_trigger].transaction_id, last_trigger_id=ordered[last_trigger].transaction_id,
    )
