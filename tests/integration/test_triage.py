"""Alert triage on the real PostgreSQL: the CLI, two people at once, the detector writing meanwhile, and the
schema's constraints against the pure rule."""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta, timezone
from itertools import product

import psycopg2
import pytest

from fraud_detection.cli import main
from fraud_detection.storage import postgres
from fraud_detection.triage import store
from fraud_detection.triage.status import TRANSITIONS, Status, TransitionError
from tests.integration import sink_units

MINUTE_MS = 60_000
EVENT_DAY = datetime(2026, 3, 14, 9, 0, tzinfo=timezone.utc)  # bursts' event times, far from midnight


def alert(alert_id: str, card: str, count: int, t0_ms: int) -> sink_units.AlertRow:
    last = t0_ms + count * MINUTE_MS
    return sink_units.alert(alert_id, card, t0_ms, last, count, 1000 * count, f"tx-{alert_id}-{count}", last,
                            last)


def write(url: str, batch_id: int, batch: sink_units.Unit, now: datetime) -> None:
    with postgres.connection(url) as conn:
        sink_units.apply(conn, "run-1", batch_id, batch, now)


def triage_row(url: str, alert_id: str) -> dict:
    with postgres.connection(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, acknowledged_by, acknowledged_at, acknowledged_note, resolved_by, resolved_at,"
                    " resolved_note, txn_count, version, merged_into FROM alerts WHERE alert_id = %s", (alert_id,))
        return dict(zip([c.name for c in cur.description], cur.fetchone(), strict=True))


@pytest.fixture
def three_alerts(database_url, monkeypatch):
    """Alerts a1 (card c-1) and a3 (card c-2) committed by the sink two minutes ago, a2 (card c-1) one minute
    ago; the CLI's database."""
    monkeypatch.setenv("FRAUD_DATABASE_URL", database_url)
    now = datetime.now(timezone.utc)
    t0 = int(EVENT_DAY.timestamp() * 1000)  # fixed: windows read the same whatever the hour the test runs
    write(database_url, 0, sink_units.Unit(alerts=[alert("a1", "c-1", 6, t0), alert("a3", "c-2", 8, t0)]),
          now - timedelta(minutes=2))
    write(database_url, 1, sink_units.Unit(alerts=[alert("a2", "c-1", 7, t0 + 15 * MINUTE_MS)]),
          now - timedelta(minutes=1))
    return database_url


def listed_ids(capsys, *argv: str) -> list[str]:
    assert main(["alerts", "list", *argv]) == 0
    return [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:] if line.startswith("a")]


def test_ack_resolve_and_list_through_the_command_line(three_alerts, capsys):
    """ack and resolve record who, when and the note, in alerts and its history; list filters by status and card."""
    url = three_alerts
    assert listed_ids(capsys) == ["a2", "a1", "a3"]  # newest first (one commit: by id), all open
    before = datetime.now(timezone.utc)
    assert main(["alerts", "ack", "a1", "--by", "ann", "--note", "calling the cardholder"]) == 0
    assert re.fullmatch(r"alert a1: open -> acknowledged by ann at \S+ \S+ UTC\n", capsys.readouterr().out)
    assert main(["alerts", "resolve", "a1", "--by", "bob", "--note", "card blocked"]) == 0
    assert main(["alerts", "resolve", "a3", "--by", "bob"]) == 0
    capsys.readouterr()
    after = datetime.now(timezone.utc)

    row = triage_row(url, "a1")
    assert (row["status"], row["acknowledged_by"], row["acknowledged_note"], row["resolved_by"],
            row["resolved_note"]) == ("resolved", "ann", "calling the cardholder", "bob", "card blocked")
    assert before - timedelta(seconds=1) <= row["acknowledged_at"] <= row["resolved_at"] <= after + timedelta(seconds=1)
    with postgres.connection(url) as conn:
        changes = store.history(conn, "a1")
    assert [(c.from_status, c.to_status, c.changed_by, c.note) for c in changes] == [
        (Status.OPEN, Status.ACKNOWLEDGED, "ann", "calling the cardholder"),
        (Status.ACKNOWLEDGED, Status.RESOLVED, "bob", "card blocked")]
    assert [c.changed_at for c in changes] == [row["acknowledged_at"], row["resolved_at"]]

    assert listed_ids(capsys) == ["a2"]
    assert listed_ids(capsys, "--status", "resolved") == ["a1", "a3"]
    assert listed_ids(capsys, "--status", "acknowledged") == []
    assert listed_ids(capsys, "--status", "all", "--card", "c-1") == ["a2", "a1"]
    assert listed_ids(capsys, "--status", "all", "--limit", "1") == ["a2"]
    assert main(["alerts", "list", "--status", "resolved", "--card", "c-1"]) == 0
    line = capsys.readouterr().out.splitlines()[1].split()
    assert line[:3] == ["a1", "c-1", "6"] and line[7:9] == ["resolved", "bob"] and line[9].endswith(("s", "m"))


def test_refusals_exit_1_saying_why(three_alerts, capsys):
    """Resolving twice names who resolved it and when; an unknown id says how to find ids; nothing is recorded."""
    assert main(["alerts", "resolve", "a1", "--by", "bob"]) == 0
    resolved_at = triage_row(three_alerts, "a1")["resolved_at"]
    capsys.readouterr()
    assert main(["alerts", "resolve", "a1", "--by", "cat"]) == 1
    assert capsys.readouterr().err == (
        f"fraud-detection alerts resolve: alert a1 is already resolved by bob at "
        f"{resolved_at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC; a resolved alert stays resolved\n")
    assert main(["alerts", "ack", "a1", "--by", "cat"]) == 1
    assert "already resolved by bob" in capsys.readouterr().err
    assert main(["alerts", "ack", "no-such-alert", "--by", "cat"]) == 1
    assert capsys.readouterr().err == ("fraud-detection alerts ack: no alert 'no-such-alert': "
                                       "`fraud-detection alerts list --status all` shows the ids\n")
    with postgres.connection(three_alerts) as conn:
        assert len(store.history(conn, "a1")) == 1
    assert triage_row(three_alerts, "a1")["resolved_by"] == "bob"


def test_by_defaults_to_the_os_user(three_alerts, monkeypatch):
    """Without --by the change is recorded under the OS user name (getpass: LOGNAME first)."""
    monkeypatch.setenv("LOGNAME", "oncall-7")
    assert main(["alerts", "ack", "a2"]) == 0
    assert triage_row(three_alerts, "a2")["acknowledged_by"] == "oncall-7"


def waiting_for_locks(url: str) -> int:
    with postgres.connection(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'")
        return cur.fetchone()[0]


def test_two_people_acknowledging_at_once_one_wins(three_alerts):
    """Both wait on the alert's row lock, then go one after the other: exactly one succeeds, the other is told
    who was first, and the history holds one acknowledgement."""
    url = three_alerts
    outcomes: dict[str, object] = {}

    def acknowledge(person: str) -> None:
        with postgres.connection(url) as conn:
            try:
                outcomes[person] = store.change_status(conn, "a1", Status.ACKNOWLEDGED, person)
            except TransitionError as err:
                outcomes[person] = err

    with postgres.connection(url) as holder:
        with holder.cursor() as cur:  # someone mid-change: both must queue behind this lock
            cur.execute("SELECT 1 FROM alerts WHERE alert_id = 'a1' FOR UPDATE")
        threads = [threading.Thread(target=acknowledge, args=(p,)) for p in ("ann", "bob")]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while waiting_for_locks(url) < 2:
            assert time.monotonic() < deadline, "both changes should wait for the row lock"
            time.sleep(0.05)
        holder.rollback()
    for t in threads:
        t.join(timeout=20)
    winners = [p for p, o in outcomes.items() if not isinstance(o, Exception)]
    assert len(winners) == 1 and len(outcomes) == 2
    (loser,) = set(outcomes) - set(winners)
    assert f"already acknowledged by {winners[0]} at" in str(outcomes[loser])
    with postgres.connection(url) as conn:
        assert [c.changed_by for c in store.history(conn, "a1")] == winners
    assert triage_row(url, "a1")["acknowledged_by"] == winners[0]


def test_the_detector_growing_or_merging_an_alert_keeps_its_status(three_alerts, capsys):
    """A grown alert keeps its status, who and when (and list marks it as grown); a merged-away alert keeps its
    own, the survivor its own, and triage of the merged-away one is refused naming the survivor."""
    url = three_alerts
    with postgres.connection(url) as conn:
        store.change_status(conn, "a1", Status.ACKNOWLEDGED, "ann", "looking")
        store.change_status(conn, "a2", Status.RESOLVED, "bob", "false positive")
    acknowledged = triage_row(url, "a1")
    with postgres.connection(url) as conn:
        (first,) = postgres.fetch_all(conn, "SELECT first_event_time FROM alerts WHERE alert_id = 'a1'")[0]
    t0 = int(first.timestamp() * 1000)
    now = datetime.now(timezone.utc)
    write(url, 2, sink_units.Unit(alerts=[alert("a1", "c-1", 9, t0)]), now)  # a1 grows
    write(url, 3, sink_units.Unit(merges={"a2": "a1"}), now)  # a2's burst joins a1

    grown = triage_row(url, "a1")
    assert (grown["txn_count"], grown["version"]) == (9, 2)
    assert {k: grown[k] for k in acknowledged if k not in ("txn_count", "version")} == {
        k: acknowledged[k] for k in acknowledged if k not in ("txn_count", "version")}
    merged = triage_row(url, "a2")
    assert (merged["status"], merged["resolved_by"], merged["merged_into"]) == ("resolved", "bob", "a1")
    assert main(["alerts", "list", "--card", "c-1", "--status", "all"]) == 0
    out = capsys.readouterr().out
    assert "acknowledged*" in out and "a2" not in out.split()
    assert main(["alerts", "resolve", "a2", "--by", "cat"]) == 1
    assert "alert a2 was merged into a1, which carries on" in capsys.readouterr().err


def test_the_schema_allows_exactly_the_transitions_of_the_rule(three_alerts):
    """Migration 0007's CHECKs and triage.status agree: history takes only legal steps, alerts only known and
    consistently recorded statuses."""
    legal = {(frm.value, to.value) for frm, targets in TRANSITIONS.items() for to in targets}
    with postgres.connection(three_alerts) as conn:
        for frm, to in product([*(s.value for s in Status), "closed"], repeat=2):
            try:
                with conn, conn.cursor() as cur:
                    cur.execute("INSERT INTO alert_status_history (alert_id, from_status, to_status, changed_by,"
                                " changed_at, alert_version) VALUES ('a1', %s, %s, 'x', now(), 1)", (frm, to))
                accepted = True
            except psycopg2.errors.CheckViolation:
                accepted = False
            assert accepted == ((frm, to) in legal), (frm, to)
        for assignment in ("status = 'closed'", "status = 'acknowledged'",
                           "status = 'open', resolved_by = 'x', resolved_at = now()",
                           "status = 'resolved', resolved_by = 'x', resolved_at = now()",
                           "status = 'acknowledged', acknowledged_by = 'x'"):
            with pytest.raises(psycopg2.errors.CheckViolation), conn, conn.cursor() as cur:
                cur.execute(f"UPDATE alerts SET {assignment} WHERE alert_id = 'a1'")  # noqa: S608 (constants)
