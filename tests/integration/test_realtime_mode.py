"""The detector in Spark 4.3's real-time mode, as a process on the side Spark of `make spark-rt`: the oracle's
alerts from a live stream that spans several checkpoints, and after kill -9 mid-batch, where the batch runs
again and its rows reach PostgreSQL a second time (at least once) with nothing lost or doubled."""

from __future__ import annotations

import os
import random
import signal
import threading

import pytest

from fraud_detection.detector.velocity_state import realtime_jars
from fraud_detection.storage import postgres
from tests.integration import detector_runs as runs
from tests.integration.conftest import CACHE_DIR

SIDE_PYTHON = CACHE_DIR / "spark-4.3" / "venv" / "bin" / "python"

pytestmark = pytest.mark.skipif(not SIDE_PYTHON.exists(), reason="real-time mode needs Spark 4.3 beside the pinned"
                                " 4.0.4: `make spark-rt` installs it (`make test` does)")

TOPIC_PARTITIONS = 3  # the topic fixture's


def _stream(seed: int):
    rng = random.Random(seed)
    events = [e for c in range(200) for e in runs.card_events(rng, f"r{c}", runs.base_ms() + rng.randint(0, 3_600_000))]
    chunks = runs.live_chunks(rng, events, max_delay_ms=60_000, duplicate_share=0.03)
    return events, chunks, [e for chunk in chunks for e in chunk]


def _env(stack_env, tmp_path, lateness_s: int) -> dict[str, str]:
    """``lateness_s``: hours of event time are fed in seconds, and each real-time task reads its Kafka partition
    at its own pace while a batch end's watermark is the latest event time of all of them. A task lagging
    another by lateness / (event time per second fed) has records made late (docs/real-time-mode.md)."""
    return {**os.environ, **stack_env, "FRAUD_DETECTOR__CHECKPOINT_DIR": str(tmp_path / "checkpoint"),
            "FRAUD_LOCAL__CACHE_DIR": str(CACHE_DIR), "FRAUD_DETECTOR__TRIGGER": "realtime",
            "FRAUD_DETECTOR__OPERATOR": "transformwithstate",
            "FRAUD_KAFKA__PARTITIONS": str(TOPIC_PARTITIONS),
            "FRAUD_DETECTOR__MASTER": f"local[{TOPIC_PARTITIONS + 2}]",  # a slot per Kafka and state partition
            "FRAUD_DETECTOR__REALTIME_CHECKPOINT_INTERVAL": "5",  # the shortest Spark takes: many batch ends
            "FRAUD_DETECTOR__ALLOWED_LATENESS": str(lateness_s),
            "FRAUD_DETECTOR__JARS_DIR": str(realtime_jars(CACHE_DIR))}


def _start(env, log_path):
    detector = runs.start_detector(env, log_path, python=str(SIDE_PYTHON))
    runs.wait_for(lambda: "event=detector_started" in log_path.read_text(), 180, "the detector to start",
                  explain=lambda: log_path.read_text()[-3000:])
    return detector


def _finish(detector, log_path, database_url, expected, duplicates: int) -> None:
    """Wait until every record is processed (the oracle's alerts and every duplicate counted), then SIGTERM."""
    def processed():
        return (runs.metrics_totals(database_url)["duplicate_rows"] >= duplicates
                and runs.live_alerts(database_url) == expected)

    runs.wait_for(processed, 180, "every record to be processed",
                  explain=lambda: runs.progress_report(database_url, expected, log_path))
    detector.send_signal(signal.SIGTERM)
    assert detector.wait(90) == 0, log_path.read_text()[-3000:]


def test_realtime_mode_raises_the_oracles_alerts_from_a_live_stream_across_checkpoints(
    kafka, topic, database_url, stack_env, tmp_path
):
    """The stream is fed in three parts, each only after a batch end has counted every record before it: its
    cards' state crosses at least two checkpoints however slowly the machine runs the batches."""
    events, chunks, delivered = _stream(20261130)
    expected = runs.oracle_alerts(events)
    log_path = tmp_path / "detector.log"
    # Fed at ~360x event time's pace, 30 minutes allow a task 5 s of lag (120 s did not on a loaded machine),
    # and cards still expire within the stream.
    detector = _start(_env(stack_env, tmp_path, lateness_s=1800), log_path)
    try:
        fed = 0
        for part in (chunks[i * len(chunks) // 3:(i + 1) * len(chunks) // 3] for i in range(3)):
            if fed:
                runs.wait_for_counted(database_url, fed, explain=lambda: log_path.read_text()[-3000:])
            runs.feed(kafka.bootstrap_servers, topic, part, pause_s=20 / len(chunks))
            fed += sum(map(len, part))
        _finish(detector, log_path, database_url, expected, len(delivered) - len(events))
    finally:
        runs.kill_group(detector)
    assert runs.live_alerts(database_url) == expected
    totals = runs.metrics_totals(database_url)
    assert totals["late_rows"] == 0 and totals["rejected_rows"] == 0
    assert totals["duplicate_rows"] == len(delivered) - len(events), "nothing ran twice: each duplicate once"
    assert totals["input_rows"] <= len(delivered), "no batch read a record twice"
    assert "trigger=realtime" in log_path.read_text()


def test_realtime_mode_replays_a_killed_batch_with_no_lost_or_doubled_alert(
    kafka, topic, database_url, stack_env, tmp_path
):
    """kill -9 mid-batch: the rows the batch committed come again after the restart (no ledger in real-time
    mode), and the idempotent writes leave the oracle's alerts, each alert version published once."""
    events, chunks, delivered = _stream(20261201)
    expected = runs.oracle_alerts(events)
    # The restart reads a backlog of an hour of event time while the rest streams in, each partition at its own
    # pace: a lateness longer than the stream makes nothing late, which is not what this test is about.
    span_s = (max(e.event_time_ms for e in events) - min(e.event_time_ms for e in events)) // 1000
    env, log_path = _env(stack_env, tmp_path, lateness_s=span_s + 120), tmp_path / "detector.log"
    half = len(chunks) // 2
    detector = _start(env, log_path)
    try:
        runs.feed(kafka.bootstrap_servers, topic, chunks[:half])
        runs.wait_for(lambda: runs.live_alerts(database_url), 120, "alerts of the first half")
        os.killpg(detector.pid, signal.SIGKILL)
        detector.wait(30)
        fed = threading.Event()
        threading.Thread(target=runs.feed, args=(kafka.bootstrap_servers, topic, chunks[half:], fed),
                         daemon=True).start()
        detector = _start(env, log_path)
        runs.wait_for(fed.is_set, 120, "the feeder")
        _finish(detector, log_path, database_url, expected, len(delivered) - len(events))
    finally:
        runs.kill_group(detector)
    assert runs.live_alerts(database_url) == expected
    with postgres.connection(database_url) as conn:
        (doubled,) = postgres.fetch_all(conn, "SELECT count(*) FROM (SELECT alert_id, version FROM alert_outbox"
                                              " GROUP BY 1, 2 HAVING count(*) > 1) d")[0]
    assert doubled == 0
