"""Match ground truth with alerts and compute recall, precision and detection delays (pure, no I/O).

An attack (or labelled fraud episode) is detected when a live alert of the same card overlaps its event-time
span: the rule of the ``episode_outcomes`` view (migration 0004) that `storage/reports.py` and the dashboard
read. An alert that overlaps no attack is a false alert; if it overlaps a decoy (a near-threshold legitimate
burst) the rule itself erred.

Every missed attack gets a reason (`explain_miss`): what the rule cannot catch is told apart from what the
engine should have caught.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fraud_detection.ground_truth import ATTACK_KINDS


@dataclass(frozen=True, slots=True)
class Truth:
    source: str
    card_id: str
    kind: str
    first_event_time: datetime
    last_event_time: datetime
    txn_count: int

    @property
    def is_attack(self) -> bool:
        return self.kind in ATTACK_KINDS


@dataclass(frozen=True, slots=True)
class AlertRecord:
    alert_id: str
    card_id: str
    first_event_time: datetime
    last_event_time: datetime
    txn_count: int
    trigger_event_time: datetime | None
    trigger_kafka_timestamp: datetime | None
    detected_at: datetime


def overlaps(alert: AlertRecord, truth: Truth) -> bool:
    return (alert.card_id == truth.card_id and alert.first_event_time <= truth.last_event_time
            and alert.last_event_time >= truth.first_event_time)


@dataclass(frozen=True, slots=True)
class Detection:
    """One attack and the first alert that caught it (None: missed)."""

    attack: Truth
    alert: AlertRecord | None

    @property
    def event_time_delay_s(self) -> float | None:
        """Event-time seconds from the attack's first transaction to the one that raised the alert."""
        if self.alert is None or self.alert.trigger_event_time is None:
            return None
        return (self.alert.trigger_event_time - self.attack.first_event_time).total_seconds()

    @property
    def processing_delay_s(self) -> float | None:
        """Wall-clock seconds from the raising transaction's arrival in Kafka to the stored alert."""
        if self.alert is None or self.alert.trigger_kafka_timestamp is None:
            return None
        return (self.alert.detected_at - self.alert.trigger_kafka_timestamp).total_seconds()


@dataclass(frozen=True, slots=True)
class FalseAlert:
    alert: AlertRecord
    decoy: Truth | None  # the legitimate near-threshold burst it fired on, if one was injected there


# Why an attack was missed, in the order they are tried: the first two are the rule's limits, the third is
# data the detector never counted, the last is what an exact engine cannot explain (a defect to report).
MISS_REASONS = ("too_few_transactions", "spread_wider_than_window", "rejected_or_late", "unexplained")


@dataclass(frozen=True, slots=True)
class Miss:
    attack: Truth
    reason: str
    detail: str
    rejected: int  # the card's records the detector rejected (malformed or late), found by Kafka key


def explain_miss(attack: Truth, threshold: int, window_ms: int, rejected: int = 0) -> Miss:
    """Why the velocity rule (more than ``threshold`` in ``window_ms``) raised nothing over a missed attack;
    ``rejected`` counts the card's records the detector rejected (malformed or late)."""
    span = attack.last_event_time - attack.first_event_time
    window = timedelta(milliseconds=window_ms)
    if attack.txn_count <= threshold:
        return Miss(attack, "too_few_transactions",
                    f"{attack.txn_count} transactions; the rule needs more than {threshold}", rejected)
    if span >= window:
        return Miss(attack, "spread_wider_than_window",
                    f"{attack.txn_count} transactions over {_duration(span)}: no {_duration(window)} window "
                    f"held more than {threshold} of the card's transactions", rejected)
    if rejected:
        return Miss(attack, "rejected_or_late",
                    f"{rejected} of the card's records were rejected (malformed or late)", rejected)
    return Miss(attack, "unexplained", f"{attack.txn_count} transactions within {_duration(span)} and nothing "
                                       "rejected: the detector should have alerted", rejected)


def _duration(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    return f"{round(seconds / 60, 1):g} min" if seconds < 86_400 else f"{seconds / 86_400:.1f} d"


@dataclass
class Evaluation:
    detections: list[Detection] = field(default_factory=list)
    false_alerts: list[FalseAlert] = field(default_factory=list)
    alerts: int = 0
    decoys: int = 0
    decoys_alerted: int = 0
    misses: list[Miss] = field(default_factory=list)  # the missed attacks, each with its reason

    @property
    def attacks(self) -> int:
        return len(self.detections)

    @property
    def detected(self) -> int:
        return sum(1 for d in self.detections if d.alert is not None)

    @property
    def missed(self) -> list[Truth]:
        return [d.attack for d in self.detections if d.alert is None]

    @property
    def recall(self) -> float | None:
        return self.detected / self.attacks if self.attacks else None

    @property
    def precision(self) -> float | None:
        return (self.alerts - len(self.false_alerts)) / self.alerts if self.alerts else None

    def delays(self, kind: str) -> list[float]:
        """Per detected attack: ``event_time`` or ``processing`` delays in seconds, sorted."""
        values = (getattr(d, f"{kind}_delay_s") for d in self.detections)
        return sorted(v for v in values if v is not None)


def evaluate(truth: list[Truth], alerts: list[AlertRecord], threshold: int, window_ms: int,
             rejected_by_card: Mapping[str, int] | None = None) -> Evaluation:
    """Match every attack to its earliest overlapping alert; every alert to an attack, or it is false. Each
    missed attack is explained against the rule's ``threshold`` and ``window_ms`` and the card's rejected
    records (``rejected_by_card``)."""
    by_card: dict[str, list[AlertRecord]] = {}
    for alert in sorted(alerts, key=lambda a: (a.detected_at, a.alert_id)):
        by_card.setdefault(alert.card_id, []).append(alert)
    attacks = sorted((t for t in truth if t.is_attack), key=lambda t: (t.first_event_time, t.card_id))
    decoys = [t for t in truth if not t.is_attack]
    result = Evaluation(alerts=len(alerts), decoys=len(decoys))
    for attack in attacks:
        caught = next((a for a in by_card.get(attack.card_id, []) if overlaps(a, attack)), None)
        result.detections.append(Detection(attack, caught))
    for alert in alerts:
        if not any(overlaps(alert, t) for t in attacks if t.card_id == alert.card_id):
            decoy = next((t for t in decoys if overlaps(alert, t)), None)
            result.false_alerts.append(FalseAlert(alert, decoy))
    rejected = rejected_by_card or {}
    result.misses = [explain_miss(t, threshold, window_ms, rejected.get(t.card_id, 0)) for t in result.missed]
    result.decoys_alerted = sum(1 for d in decoys if any(overlaps(a, d) for a in by_card.get(d.card_id, [])))
    return result


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in [0, 1]) of sorted values, as PostgreSQL's percentile_cont."""
    if not sorted_values:
        return None
    position = q * (len(sorted_values) - 1)
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)
