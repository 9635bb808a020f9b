"""Which alert versions go to a destination, and whether one already settled there is sent again. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from fraud_detection.notifications.messages import Alert


@dataclass(frozen=True, slots=True)
class Route:
    """A destination takes alerts of ``rules`` (empty: every rule) with at least ``min_count`` transactions."""

    rules: frozenset[str] = frozenset()
    min_count: int = 1

    def accepts(self, alert: Alert) -> bool:
        rule_matches = not self.rules or alert.rule in self.rules
        big_enough = alert.txn_count >= self.min_count
        return rule_matches and big_enough


class Status(str, Enum):
    """A row of notification_deliveries (migration 0006)."""

    PENDING = "pending"      # attempted, not settled yet (the notifier stopped or died meanwhile)
    DELIVERED = "delivered"  # the destination acknowledged it (2xx)
    FAILED = "failed"        # given up: a permanent error, or the give-up deadline passed


class Decision(str, Enum):
    SEND = "send"
    DUPLICATE = "duplicate"    # this version was delivered already
    SUPERSEDED = "superseded"  # a newer version of the alert was delivered already


def decide(version: int, settled: Mapping[int, Status]) -> Decision:
    """Whether to send ``version`` of an alert given its versions' rows at this destination.

    A redelivered copy of a delivered version is not sent again. An older version that comes back after a
    newer one was delivered (the relay republishing after a crash) would tell the reader old news: skipped.
    Anything else is sent, including a copy of a version that failed before (another chance).
    """
    if settled.get(version) is Status.DELIVERED:
        return Decision.DUPLICATE
    newer_delivered = any(v > version and s is Status.DELIVERED for v, s in settled.items())
    return Decision.SUPERSEDED if newer_delivered else Decision.SEND
