"""detector_apply (R__detector_sink.sql), the SQL the sink calls per unit of rows: units of a batch add up, and a
unit applied again, whole or regrouped, in any order, adds nothing, neither rows nor counts."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone

from fraud_detection.storage import detections, postgres, schema
from tests.integration import sink_units
from tests.integration.sink_units import DuplicateRow, RejectedRow, Unit

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
T0 = int((NOW - timedelta(minutes=10)).timestamp() * 1000)


def _alert(alert_id: str, card: str, count: int, kafka_lag_ms: int) -> sink_units.AlertRow:
    last = T0 + count * 1000
    return sink_units.alert(alert_id, card, T0, last, count, 1250 * count, f"tx-{count}",
                            int(NOW.timestamp() * 1000) - kafka_lag_ms, last)


def _rejected(offset: int, reason: str, raw: bytes | None) -> RejectedRow:
    return RejectedRow("transactions", 1, offset, reason, "why", None, raw, T0)


def _duplicate(offset: int) -> DuplicateRow:
    return DuplicateRow("transactions", 0, offset, f"tx-{offset}", "c1", T0)


def _metrics(conn, batch_id: int) -> tuple:
    return postgres.fetch_all(conn, "SELECT input_rows, rejected_rows, late_rows, duplicate_rows, alerts_written,"
                                    " alerts_new, alerts_merged, alert_latency_max_ms, alert_latency_mean_ms"
                                    " FROM pipeline_metrics WHERE batch_id = %s", (batch_id,))[0]


def _state(conn) -> dict:
    """Everything the sink writes, as comparable values."""
    query = {
        "alerts": "SELECT alert_id, txn_count, version, merged_into, run_id FROM alerts ORDER BY 1",
        "outbox": "SELECT alert_id, version, payload ->> 'status' FROM alert_outbox ORDER BY 1, 2",
        "rejected": "SELECT kafka_offset, reason, raw_payload FROM rejected_transactions ORDER BY 1",
        "duplicates": "SELECT kafka_offset, transaction_id FROM duplicate_transactions ORDER BY 1",
        "metrics": "SELECT batch_id, rejected_rows, late_rows, duplicate_rows, alerts_written, alerts_new,"
                   " alerts_merged FROM pipeline_metrics ORDER BY 1",
    }
    return {name: [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                   for row in postgres.fetch_all(conn, sql)] for name, sql in query.items()}


def test_units_of_a_batch_add_up_and_a_unit_applied_again_adds_nothing(database_url):
    """Two partitions' units make the batch's counters; a task Spark runs again sends a unit twice."""
    with postgres.connection(database_url) as conn:
        first = sink_units.apply(conn, "run-1", 0, Unit(alerts=[_alert("a1", "c1", 6, 100)],
                                                        rejected=[_rejected(1, "late", None)]), NOW)
        assert (first.alerts_new, first.late_rows, first.latency_max_ms) == (1, 1, 100.0)
        second = Unit(alerts=[_alert("a2", "c2", 6, 300), _alert("a3", "c3", 6, 500)],
                      rejected=[_rejected(2, "invalid_json", b"{")], duplicates=[_duplicate(5)])
        assert sink_units.apply(conn, "run-1", 0, second, NOW).alerts_new == 2
        again = sink_units.apply(conn, "run-1", 0, second, NOW)
        assert again == sink_units.Applied(0, 0, 0, 0, 0, 0, None, None)
        assert _metrics(conn, 0) == (None, 1, 1, 1, 3, 3, 0, 500.0, 300.0)


def test_a_partition_applied_again_in_another_order_and_grouping_writes_exactly_what_one_clean_run_writes(
        database_url, pg_server):
    """A retried task's rows come in another order, so its units hold other rows: the first attempt commits
    one unit and fails, the second commits all of them regrouped; the result is one clean commit's."""
    rows = ([("alert", a) for a in (_alert(f"a{i}", f"c{i}", 6 + i % 3, 100 * i) for i in range(8))]
            + [("rejected", _rejected(i, "invalid_json" if i % 2 else "late", bytes([i, 255]))) for i in range(10)]
            + [("duplicate", _duplicate(i)) for i in range(4)])

    def units(ordered: list, size: int) -> list[Unit]:
        out = []
        for start in range(0, len(ordered), size):
            unit = Unit()
            for kind, row in ordered[start:start + size]:
                {"alert": unit.alerts, "rejected": unit.rejected, "duplicate": unit.duplicates}[kind].append(row)
            out.append(unit)
        return out

    clean_url = pg_server.create_database(f"apply_clean_{uuid.uuid4().hex[:12]}")
    schema.migrate(clean_url)
    with postgres.connection(clean_url) as conn:
        for unit in units(rows, len(rows)):
            sink_units.apply(conn, "run-1", 0, unit, NOW)
        clean = _state(conn)

    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    with postgres.connection(database_url) as conn:
        sink_units.apply(conn, "run-1", 0, units(rows, 5)[0], NOW)  # attempt 1: its first unit, then a failure
        for unit in units(shuffled, 5):  # attempt 2: every row, in another order, in other units
            sink_units.apply(conn, "run-1", 0, unit, NOW)
        assert _state(conn) == clean
        assert _metrics(conn, 0)[1:7] == (5, 5, 4, 8, 8, 0)


def test_an_older_state_a_merge_and_an_outbox_message_apply_once(database_url):
    """An at-least-once replay sends an alert's older state, or a merge again: nothing goes back or doubles."""
    merged = Unit(alerts=[_alert("a1", "c1", 6, 100), _alert("a2", "c1", 6, 100)], merges={"a2": "a1"},
                  rejected=[_rejected(7, "invalid_json", b"\xff")])
    with postgres.connection(database_url) as conn:
        sink_units.apply(conn, "run-1", 0, merged, NOW)
        assert sink_units.apply(conn, "run-1", 0, merged, NOW).alerts_merged == 0
        state = _state(conn)
        assert state["alerts"] == [("a1", 6, 1, None, "run-1"), ("a2", 6, 2, "a1", "run-1")]
        assert state["outbox"] == [("a1", 1, "open"), ("a2", 2, "merged")]  # a2 raised and merged in one unit
        assert state["rejected"] == [(7, "invalid_json", b"\xff")]  # base64 in the JSON, raw bytes in the table
        assert sink_units.apply(conn, "run-1", 1, Unit(alerts=[_alert("a1", "c1", 7, 100)]), NOW).alerts_updated == 1
        older = sink_units.apply(conn, "run-1", 1, Unit(alerts=[_alert("a1", "c1", 6, 100)]), NOW)
        assert (older.alerts_new, older.alerts_updated) == (0, 0)
        (payload,) = postgres.fetch_all(conn, "SELECT payload FROM alert_outbox WHERE alert_id = 'a1'"
                                              " AND version = 2")[0]
        assert (payload["txn_count"], payload["amount_total"], payload["status"], payload["rule"]) == (
            7, 87.5, "open", "velocity")
        assert json.dumps(payload)


def test_progress_sets_input_rows_and_a_lost_progress_is_filled_from_the_offset_log(database_url):
    """Input rows come from Spark's progress; after a crash lost the last events, the offset log's counts
    fill exactly the batches after the last one recorded."""
    with postgres.connection(database_url) as conn:
        sink_units.apply(conn, "run-1", 0, Unit(alerts=[_alert("a1", "c1", 6, 100)]), NOW)
        detections.record_progress(conn, "run-1", 0, 5000, 412.0, {"addBatch": 300.0})
        detections.record_progress(conn, "run-1", 1, 4000, 95.0, {"addBatch": 60.0})  # a batch with no output
        sink_units.apply(conn, "run-1", 2, Unit(alerts=[_alert("a2", "c2", 6, 100)]), NOW)  # its progress lost
        offset_log = {0: 4999, 1: 4001, 2: 3000, 3: 10}  # batch 3: committed, no output, progress lost
        assert detections.record_missing_input_rows(conn, "run-1", offset_log) == [2, 3]
        assert detections.record_missing_input_rows(conn, "run-1", offset_log) == []
        rows = postgres.fetch_all(conn, "SELECT batch_id, input_rows, alerts_new FROM pipeline_metrics ORDER BY 1")
        assert rows == [(0, 5000, 1), (1, 4000, 0), (2, 3000, 1), (3, 10, 0)]


def test_a_run_is_recorded_once_with_its_rule_and_restarts_update_it(database_url):
    with postgres.connection(database_url) as conn:
        detections.record_run(conn, "run-1", "velocity", 5, 600_000, 120_000, "mapgroups", "microbatch")
        detections.record_run(conn, "run-1", "velocity", 5, 600_000, 300_000, "mapgroups", "availablenow")
        rows = postgres.fetch_all(conn, "SELECT run_id, threshold, window_ms, allowed_lateness_ms, trigger,"
                                        " last_started_at >= first_started_at FROM detector_runs")
        assert rows == [("run-1", 5, 600_000, 300_000, "availablenow", True)]
