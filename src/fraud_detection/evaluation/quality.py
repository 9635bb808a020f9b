"""Match ground truth with alerts and compute recall, precision and detection delays (pure, no I/O).

An attack (or labelled fraud episode) is detected when a live alert of the same card overlaps its event-time
span: the rule of the ``episode_outcomes`` view (migration 0004) that `storage/reports.py` and the dashboard
read. An alert that overlaps no attack is a false alert; if it overlaps a decoy (a near-threshold legitimate
burst) the rule itself erred.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

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


@dataclass
class Evaluation:
    detections: list[Detection] = field(default_factory=list)
    false_alerts: list[FalseAlert] = field(default_factory=list)
    alerts: int = 0
    decoys: int = 0
    decoys_alerted: int = 0

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


def evaluate(truth: list[Truth], alerts: list[AlertRecord]) -> Evaluation:
    """Match every attack to its earliest overlapping alert; every alert to an attack, or it is false."""
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
    result.decoys_alerted = sum(1 for d in decoys if any(overlaps(a, d) for a in by_card.get(d.card_id, [])))
    return result


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in [0, 1]) of sorted values, as PostgreSQL's percentile_cont."""
    if not sorted_values:
        return None
    position = q * (len(sorted_values) - 1)
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)
