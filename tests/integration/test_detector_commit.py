"""detector_commit (migration 0009), the SQL both sinks call: units of a batch add up, a unit commits once,
and its writes are idempotent without the ledger too (at-least-once replays, as in Spark's real-time mode)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from psycopg2.extras import Json

from fraud_detection.storage import detections, postgres

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
T0 = int((NOW - timedelta(minutes=10)).timestamp() * 1000)


def _alert(alert_id: str, card: str, count: int, kafka_lag_ms: int) -> dict:
    last = T0 + count * 1000
    return {"alert_id": alert_id, "card_id": card, "first_event_time_ms": T0, "last_event_time_ms": last,
            "txn_count": count, "amount_total_cents": 1250 * count, "trigger_transaction_id": f"tx-{count}",
            "trigger_kafka_timestamp_ms": int(NOW.timestamp() * 1000) - kafka_lag_ms, "trigger_event_time_ms": last}


def _rejected(offset: int, reason: str, raw_value: str | None) -> dict:
    return {"topic": "transactions", "kafka_partition": 1, "kafka_offset": offset, "reason": reason,
            "detail": "why", "raw_key": None, "raw_value": raw_value, "kafka_timestamp_ms": T0}


def _commit(cur, batch_id: int, partition: int, alerts=(), merges=(), rejected=(), slice_=0, input_rows=None):
    cur.execute("SELECT * FROM detector_commit(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                ("run-1", batch_id, partition, slice_, NOW, input_rows, 1, Json(list(alerts)), Json(list(merges)),
                 Json(list(rejected))))
    return cur.fetchone()


def _metrics(cur, batch_id: int) -> tuple:
    cur.execute("SELECT input_rows, rejected_rows, late_rows, duplicate_rows, alerts_written, alerts_new,"
                " alert_latency_max_ms, alert_latency_mean_ms FROM pipeline_metrics WHERE batch_id = %s", (batch_id,))
    return cur.fetchone()


def test_partitions_of_a_batch_add_up_and_each_commits_once(database_url):
    with postgres.connection(database_url) as conn, conn, conn.cursor() as cur:
        assert _commit(cur, 0, 0, alerts=[_alert("a1", "c1", 6, 100)],
                       rejected=[_rejected(1, "late", None)]) == (1, 0, 100.0, 100.0)
        assert _commit(cur, 0, 1, alerts=[_alert("a2", "c2", 6, 300), _alert("a3", "c3", 6, 500)],
                       rejected=[_rejected(2, "invalid_json", "e30=")]) == (2, 0, 500.0, 400.0)
        assert _commit(cur, 0, 1, alerts=[_alert("a2", "c2", 7, 300)]) is None  # Spark ran the task again
        assert _metrics(cur, 0) == (None, 1, 1, 2, 3, 3, 500.0, 300.0)
        cur.execute("SELECT alert_id, txn_count, version FROM alerts ORDER BY alert_id")
        assert cur.fetchall() == [("a1", 6, 1), ("a2", 6, 1), ("a3", 6, 1)]


def test_a_batch_committed_whole_is_not_committed_again_by_partition(database_url):
    with postgres.connection(database_url) as conn:
        result = detections.BatchResult(alerts=[detections.AlertRow(**_alert("a1", "c1", 6, 100))], input_rows=40)
        assert detections.write_batch(conn, "run-1", 3, result, NOW) is not None
        with conn, conn.cursor() as cur:
            assert _commit(cur, 3, 0, alerts=[_alert("a1", "c1", 7, 100)]) is None
            assert _metrics(cur, 3)[0] == 40


def test_replayed_writes_change_nothing_even_without_the_ledger(database_url):
    """An at-least-once sink sends the same rows again under another unit, or an alert's older state: no alert
    version, outbox message, merge or rejected record is added twice, and no alert goes back."""
    alerts = [_alert("a1", "c1", 6, 100), _alert("a2", "c1", 6, 100)]
    merges = [{"alert_id": "a2", "merged_into": "a1"}]
    rejected = [_rejected(7, "invalid_json", "/w==")]
    with postgres.connection(database_url) as conn, conn, conn.cursor() as cur:
        _commit(cur, 0, 0, alerts=alerts, merges=merges, rejected=rejected)
        assert _commit(cur, 0, 0, alerts=alerts, merges=merges, rejected=rejected, slice_=1) == (0, 0, None, None)
        cur.execute("SELECT alert_id, version, merged_into FROM alerts ORDER BY alert_id")
        assert cur.fetchall() == [("a1", 1, None), ("a2", 2, "a1")]
        cur.execute("SELECT alert_id, version FROM alert_outbox ORDER BY alert_id, version")
        assert cur.fetchall() == [("a1", 1), ("a2", 2)]  # a2 was merged in the same commit
        cur.execute("SELECT raw_payload FROM rejected_transactions")
        assert [bytes(r[0]) for r in cur.fetchall()] == [b"\xff"]  # base64 in the JSON, the raw bytes in the table
        _commit(cur, 1, 0, alerts=[_alert("a1", "c1", 7, 100)])  # a real change still counts
        assert _commit(cur, 1, 0, alerts=[_alert("a1", "c1", 6, 100)], slice_=1) == (0, 0, None, None)  # older
        cur.execute("SELECT txn_count, version FROM alerts WHERE alert_id = 'a1'")
        assert cur.fetchone() == (7, 2)
        cur.execute("SELECT payload FROM alert_outbox WHERE alert_id = 'a1' AND version = 2")
        payload = cur.fetchone()[0]
        assert (payload["txn_count"], payload["amount_total"], payload["status"]) == (7, 87.5, "open")
        assert json.dumps(payload)  # the message is plain JSON


def test_a_unit_without_a_slice_is_applied_every_time_without_a_ledger_row(database_url):
    """Real-time mode's units (migration 0011): a replayed batch may bring other rows under the same partition
    and position, so nothing is skipped by the ledger; the writes alone keep the alerts right."""
    with postgres.connection(database_url) as conn, conn, conn.cursor() as cur:
        assert _commit(cur, 0, 1, alerts=[_alert("a1", "c1", 6, 100)], slice_=None)[0] == 1
        assert _commit(cur, 0, 1, alerts=[_alert("a2", "c2", 6, 100)], slice_=None)[0] == 1  # same place, new rows
        assert _commit(cur, 0, 1, alerts=[_alert("a1", "c1", 7, 100)], slice_=None)[1] == 1
        assert _commit(cur, 0, 1, alerts=[_alert("a1", "c1", 6, 100)], slice_=None)[:2] == (0, 0)  # replayed, older
        cur.execute("SELECT alert_id, txn_count, version FROM alerts ORDER BY alert_id")
        assert cur.fetchall() == [("a1", 7, 2), ("a2", 6, 1)]
        cur.execute("SELECT count(*) FROM detector_commits")
        assert cur.fetchone() == (0,)
        assert _metrics(cur, 0)[4:6] == (3, 2)  # alerts written, new: the batch's counters add up the units


def test_progress_adds_input_rows_and_duration_to_a_batch_with_or_without_output(database_url):
    with postgres.connection(database_url) as conn:
        with conn, conn.cursor() as cur:
            _commit(cur, 0, 1, alerts=[_alert("a1", "c1", 6, 100)])
        detections.record_duration(conn, "run-1", 0, 412.0, {"addBatch": 300.0}, input_rows=5000)
        detections.record_duration(conn, "run-1", 1, 95.0, {"addBatch": 60.0}, input_rows=4000)  # no output
        with conn, conn.cursor() as cur:
            cur.execute("SELECT batch_id, input_rows, alerts_new, batch_duration_ms FROM pipeline_metrics"
                        " ORDER BY batch_id")
            assert cur.fetchall() == [(0, 5000, 1, 412.0), (1, 4000, 0, 95.0)]
