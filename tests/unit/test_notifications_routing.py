"""Which alert versions go to a destination, and which redelivered ones are not sent again."""

from __future__ import annotations

import pytest

from fraud_detection.notifications.routing import Decision, Route, Status, decide
from tests.unit.test_notifications_messages import parsed


@pytest.mark.parametrize(("route", "rule", "count", "accepted"), [
    (Route(), "velocity", 1, True),
    (Route(frozenset({"velocity"})), "velocity", 6, True),
    (Route(frozenset({"velocity"})), "geo", 6, False),
    (Route(min_count=10), "velocity", 9, False),
    (Route(min_count=10), "velocity", 10, True),
    (Route(frozenset({"geo", "velocity"}), 8), "geo", 8, True),
])
def test_a_route_takes_its_rules_from_a_minimum_count(route, rule, count, accepted):
    """By rule (empty: all) and by at least min_count transactions."""
    assert route.accepts(parsed(rule=rule, txn_count=count)) is accepted


@pytest.mark.parametrize(("version", "settled", "decision"), [
    (1, {}, Decision.SEND),
    (1, {1: Status.DELIVERED}, Decision.DUPLICATE),
    (1, {1: Status.PENDING}, Decision.SEND),           # attempted before a restart: resumed
    (1, {1: Status.FAILED}, Decision.SEND),            # a redelivered copy of a dead letter: another chance
    (2, {1: Status.DELIVERED}, Decision.SEND),         # every version is delivered
    (1, {1: Status.FAILED, 2: Status.DELIVERED}, Decision.SUPERSEDED),
    (2, {1: Status.DELIVERED, 3: Status.FAILED}, Decision.SEND),
])
def test_only_acknowledged_versions_and_older_ones_are_not_sent_again(version, settled, decision):
    """A delivered version is a duplicate; an older one than a delivered version is stale; others go."""
    assert decide(version, settled) is decision
