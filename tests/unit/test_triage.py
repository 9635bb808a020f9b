"""Alert triage as pure logic: the legal status changes, their refusals, and the list table."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import product

import pytest

from fraud_detection.triage import table
from fraud_detection.triage.status import TRANSITIONS, AlertTriage, Status, TransitionError, change

T = datetime(2026, 11, 28, 10, 0, 0, tzinfo=timezone.utc)
LEGAL = {(Status.OPEN, Status.ACKNOWLEDGED), (Status.OPEN, Status.RESOLVED), (Status.ACKNOWLEDGED, Status.RESOLVED)}


def alert_in(status: Status, **overrides) -> AlertTriage:
    """An alert that reached ``status`` the ordinary way: acknowledged by ann, resolved by bob."""
    fields = {"alert_id": "a1", "status": status, "version": 3}
    if status is not Status.OPEN:
        fields |= {"acknowledged_by": "ann", "acknowledged_at": T, "acknowledged_note": "looking"}
    if status is Status.RESOLVED:
        fields |= {"resolved_by": "bob", "resolved_at": T + timedelta(minutes=5), "resolved_note": "card blocked"}
    return AlertTriage(**fields | overrides)


def test_transitions_are_exactly_the_three_forward_steps():
    """open -> acknowledged, open -> resolved, acknowledged -> resolved; nothing else."""
    assert {(frm, to) for frm, targets in TRANSITIONS.items() for to in targets} == LEGAL
    assert set(TRANSITIONS) == set(Status)


@pytest.mark.parametrize(("frm", "to"), sorted(product(Status, Status)))
def test_every_pair_is_either_applied_or_refused(frm, to):
    """A legal change sets the new status and records from/to/who/when/note/version; any other raises."""
    at = T + timedelta(hours=1)
    if (frm, to) not in LEGAL:
        with pytest.raises(TransitionError, match="alert a1 is"):
            change(alert_in(frm), to, "cat", at, "n")
        return
    after, recorded = change(alert_in(frm), to, "cat", at, "n")
    assert after.status is to
    assert (recorded.alert_id, recorded.from_status, recorded.to_status, recorded.changed_by, recorded.changed_at,
            recorded.note, recorded.alert_version) == ("a1", frm, to, "cat", at, "n", 3)


def test_acknowledging_records_who_when_and_the_note():
    """An acknowledgement fills the acknowledged_* fields and leaves the resolved_* ones empty."""
    after, _ = change(alert_in(Status.OPEN), Status.ACKNOWLEDGED, "ann", T, "calling the bank")
    assert (after.acknowledged_by, after.acknowledged_at, after.acknowledged_note) == ("ann", T, "calling the bank")
    assert (after.resolved_by, after.resolved_at, after.resolved_note) == (None, None, None)


def test_resolving_an_acknowledged_alert_keeps_the_acknowledgement():
    """Resolving after an acknowledgement adds the resolution; who acknowledged, and when, stay."""
    later = T + timedelta(minutes=30)
    after, _ = change(alert_in(Status.ACKNOWLEDGED), Status.RESOLVED, "bob", later, "false positive")
    assert (after.acknowledged_by, after.acknowledged_at, after.acknowledged_note) == ("ann", T, "looking")
    assert (after.resolved_by, after.resolved_at, after.resolved_note) == ("bob", later, "false positive")


def test_resolving_straight_from_open_counts_as_taken_then():
    """open -> resolved also sets acknowledged_by/at (time to acknowledge), but not the acknowledgement's note."""
    after, recorded = change(alert_in(Status.OPEN), Status.RESOLVED, "bob", T, "blocked")
    assert (after.acknowledged_by, after.acknowledged_at, after.acknowledged_note) == ("bob", T, None)
    assert (after.resolved_by, after.resolved_at, after.resolved_note) == ("bob", T, "blocked")
    assert recorded.from_status is Status.OPEN


def test_resolving_twice_says_who_resolved_it_and_when():
    """The second resolve names the first resolver and the time, in UTC."""
    with pytest.raises(TransitionError) as refused:
        change(alert_in(Status.RESOLVED), Status.RESOLVED, "cat", T + timedelta(hours=1))
    assert str(refused.value) == ("alert a1 is already resolved by bob at 2026-11-28 10:05:00 UTC; "
                                  "a resolved alert stays resolved")


def test_acknowledging_twice_says_who_was_first():
    """The second acknowledgement names the first one's author and time."""
    with pytest.raises(TransitionError, match=r"already acknowledged by ann at 2026-11-28 10:00:00 UTC$"):
        change(alert_in(Status.ACKNOWLEDGED), Status.ACKNOWLEDGED, "cat", T + timedelta(hours=1))


def test_acknowledging_a_resolved_alert_says_it_is_resolved():
    """No going back: acknowledging a resolved alert names who resolved it."""
    with pytest.raises(TransitionError, match="already resolved by bob"):
        change(alert_in(Status.RESOLVED), Status.ACKNOWLEDGED, "cat", T)


def test_a_merged_alert_is_refused_naming_the_survivor():
    """Triage of a burst that merged into an earlier alert points to that alert."""
    with pytest.raises(TransitionError, match="merged into a0, which carries on"):
        change(alert_in(Status.OPEN, merged_into="a0"), Status.ACKNOWLEDGED, "cat", T)


def test_someone_must_be_named_and_an_empty_note_is_no_note():
    """A blank author is refused; an empty note is stored as none."""
    with pytest.raises(TransitionError, match="--by NAME"):
        change(alert_in(Status.OPEN), Status.ACKNOWLEDGED, "  ", T)
    _, recorded = change(alert_in(Status.OPEN), Status.ACKNOWLEDGED, "ann", T, "")
    assert recorded.note is None


@pytest.mark.parametrize(("seconds", "shown"), [(-3, "0s"), (0, "0s"), (59.9, "59s"), (60, "1m"), (3599, "59m"),
                                                 (3600, "1h00m"), (3 * 3600 + 5 * 60, "3h05m"), (86400, "1d00h"),
                                                 (2 * 86400 + 4 * 3600 + 59, "2d04h")])
def test_age_is_whole_units_coarser_as_it_grows(seconds, shown):
    """Ages read at a glance; a clock a little ahead of the database shows 0s, not a negative age."""
    assert table.age(seconds) == shown


def listed(alert_id: str, status: Status, grew: bool = False, **overrides) -> table.ListedAlert:
    fields = {"alert_id": alert_id, "card_id": "c-1", "txn_count": 7, "first_event_time": T,
              "last_event_time": T + timedelta(minutes=4, seconds=30), "detected_at": T + timedelta(minutes=3),
              "status": status, "acknowledged_by": "ann" if status is not Status.OPEN else None,
              "resolved_by": "bob" if status is Status.RESOLVED else None, "grew_since_change": grew}
    return table.ListedAlert(**fields | overrides)


def test_the_list_shows_id_card_count_window_status_who_and_age():
    """One line per alert under a header; who is the resolver of a resolved alert, else the acknowledger."""
    now = T + timedelta(minutes=15)
    lines = table.render([listed("a1", Status.OPEN), listed("a2", Status.ACKNOWLEDGED),
                          listed("a3", Status.RESOLVED)], now).splitlines()
    assert lines[0].split() == ["id", "card", "txns", "window", "(UTC", "event", "time)", "status", "by", "age"]
    assert lines[1].split() == ["a1", "c-1", "7", "2026-11-28", "10:00:00", "-", "10:04:30", "open", "-", "12m"]
    assert lines[2].split()[7:] == ["acknowledged", "ann", "12m"]
    assert lines[3].split()[7:] == ["resolved", "bob", "12m"]
    assert len(lines) == 4
    assert lines[0].index("status") == lines[1].index("open") and lines[0].index("by") == lines[2].index("ann")
    assert len({len(line) for line in lines}) == 1, "columns line up"


def test_an_alert_that_grew_since_its_status_was_set_is_marked():
    """A star on the status and a footnote saying to look again."""
    text = table.render([listed("a1", Status.ACKNOWLEDGED, grew=True)], T + timedelta(minutes=5))
    assert "acknowledged*" in text
    assert text.endswith("* the alert grew after its status was set: look at it again")


def test_a_window_across_midnight_says_so_and_an_empty_list_says_nothing_matches():
    """The end of a window on a later UTC day carries +1d; no rows print a sentence, not a bare header."""
    late = listed("a1", Status.OPEN, first_event_time=datetime(2026, 11, 28, 23, 58, tzinfo=timezone.utc),
                  last_event_time=datetime(2026, 11, 29, 0, 3, tzinfo=timezone.utc))
    assert table.window(late) == "2026-11-28 23:58:00 - 00:03:00 +1d"
    assert table.render([], T) == "no alerts match"


def test_the_stores_column_lists_are_the_records_fields():
    """triage.store's constant queries name exactly the fields of the records they read and write."""
    from dataclasses import fields

    from fraud_detection.triage import store
    from fraud_detection.triage.status import AlertTriage, StatusChange

    assert tuple(f.name for f in fields(AlertTriage)) == store.TRIAGE_COLUMNS
    assert tuple(f.name for f in fields(StatusChange)) == store.CHANGE_COLUMNS
    detectors = ("alert_id", "version", "merged_into")
    assert tuple(n for n in store.TRIAGE_COLUMNS if n not in detectors) == store.WRITTEN_COLUMNS
    assert store.LOCK_ALERT.startswith("SELECT " + ", ".join(store.TRIAGE_COLUMNS) + ", ")
    assert ", ".join(f"{n} = %s" for n in store.WRITTEN_COLUMNS) in store.WRITE_STATUS
    assert f"({', '.join(store.CHANGE_COLUMNS)})" in store.RECORD_CHANGE
    assert store.READ_HISTORY.startswith("SELECT " + ", ".join(store.CHANGE_COLUMNS) + " FROM")
