"""Ground truth's one definition of the episode kinds, held to the schema and the SQL views that use it."""

from __future__ import annotations

import re

from fraud_detection.ground_truth import ATTACK_KINDS, KINDS, Episode
from fraud_detection.storage.schema import available_migrations


def _migration(version: int) -> str:
    return next(m.sql for m in available_migrations() if m.version == version)


def test_the_kinds_are_the_ones_the_table_accepts():
    """injected_attacks' check constraint (migration 0001) names exactly ground_truth.KINDS."""
    constraint = re.search(r"kind\s+text\s+NOT NULL CHECK \(kind IN \(([^)]*)\)\)", _migration(1))
    assert constraint is not None
    assert set(re.findall(r"'(\w+)'", constraint.group(1))) == set(KINDS)


def test_the_outcome_views_count_the_same_kinds_as_attacks():
    """Both views of migration 0004 treat exactly ground_truth.ATTACK_KINDS as attacks."""
    lists = re.findall(r"kind IN \(([^)]*)\)", _migration(4))
    assert len(lists) == 2
    assert all(set(re.findall(r"'(\w+)'", kinds)) == set(ATTACK_KINDS) for kinds in lists)


def test_an_episode_knows_whether_it_is_an_attack():
    """Attacks and labelled fraud must be alerted; decoys must not."""
    assert [Episode("c", kind, 0, 1, 6).is_attack for kind in KINDS] == [kind in ATTACK_KINDS for kind in KINDS]
    assert set(ATTACK_KINDS) < set(KINDS)
