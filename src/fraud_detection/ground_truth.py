"""Ground truth: the episodes a producer knows it sent (injected attacks and decoys, labelled fraud).

Pure values, no I/O. The generator's traffic model and the CSV replay both hand their episodes to
``storage.postgres.GroundTruthRecorder``; ``evaluation.quality`` and the ``attack_outcomes`` view
(migration 0004) judge alerts against them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# The episode kinds: the ``injected_attacks.kind`` check constraint (migration 0001) lists the same four,
# and tests/unit/test_ground_truth.py holds them to it.
ATTACK = "attack"                          # an injected velocity attack: must raise an alert
LABELLED_FRAUD = "labelled_fraud"          # fraud labelled in a replayed data set
DECOY_BELOW_THRESHOLD = "decoy_below_threshold"  # exactly `threshold` swipes in a window: must not alert
DECOY_SLOW = "decoy_slow"                  # `threshold + 1` swipes spread over more than a window
ATTACK_KINDS = (ATTACK, LABELLED_FRAUD)
DECOY_KINDS = (DECOY_BELOW_THRESHOLD, DECOY_SLOW)
KINDS = ATTACK_KINDS + DECOY_KINDS


@dataclass(frozen=True, slots=True)
class Episode:
    """One attack, decoy or labelled fraud episode of one card, in event time."""

    card_id: str
    kind: str
    first_event_time_ms: int
    last_event_time_ms: int
    txn_count: int

    @property
    def is_attack(self) -> bool:
        return self.kind in ATTACK_KINDS


def episodes_from_labels(fraud_swipes: Iterable[tuple[str, int]], window_ms: int) -> list[Episode]:
    """Labelled fraud ``(card_id, event_time_ms)`` grouped per card into episodes whose consecutive
    swipes are at most ``window_ms`` apart (the rule's window: one burst, one expected alert)."""
    by_card: dict[str, list[int]] = {}
    for card, event_ms in fraud_swipes:
        by_card.setdefault(card, []).append(event_ms)
    episodes = []
    for card, times in by_card.items():
        times.sort()
        start = 0
        for i in range(1, len(times) + 1):
            if i == len(times) or times[i] - times[i - 1] > window_ms:
                episodes.append(Episode(card, LABELLED_FRAUD, times[start], times[i - 1], i - start))
                start = i
    return episodes
