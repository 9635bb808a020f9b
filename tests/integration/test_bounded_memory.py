"""The detector's memory does not grow with a batch: a backlog several times its heap, mostly large malformed
records kept whole as dead letters, drains in one batch through the sink's bounded units."""

from __future__ import annotations

import os
import time

import pytest

from fraud_detection.storage import postgres
from tests.integration import detector_runs as runs
from tests.integration.conftest import CACHE_DIR

HEAP_MB = 512  # Spark's local mode refuses less than 450 MiB
RECORD_BYTES = 512 * 1024  # under the broker's 1 MB message limit, far over FRAUD_DETECTOR__MAX_RECORD_BYTES
RECORDS = 3 * HEAP_MB * 2 + 200  # about three heaps of payload


@pytest.mark.timeout(900)
def test_a_backlog_three_times_the_heap_of_large_malformed_records_drains_without_running_out_of_memory(
        kafka, topic, database_url, tmp_path):
    """1.6 GB of 512 KB malformed records (and a burst among them) against a 512 MiB heap: `detect
    --until-drained` exits 0, every record is a dead letter with its whole payload, and the alert is raised."""
    burst = [runs.Event("victim", f"v{i}", runs.base_ms() + i * 1000, 100) for i in range(6)]
    producer = runs.new_producer(kafka.bootstrap_servers)
    began = time.monotonic()
    for start in range(0, RECORDS, 200):
        chunk = [(b"x", b"%06d" % i + b"{" * (RECORD_BYTES - 6)) for i in range(start, min(start + 200, RECORDS))]
        runs.produce(kafka.bootstrap_servers, topic, chunk, using=producer)
    runs.produce_events(kafka.bootstrap_servers, topic, burst, using=producer)
    produced_s = time.monotonic() - began
    env = {**os.environ, "FRAUD_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "FRAUD_KAFKA__TOPIC": topic,
           "FRAUD_DATABASE_URL": database_url, "FRAUD_LOCAL__CACHE_DIR": str(CACHE_DIR),
           "FRAUD_DETECTOR__CHECKPOINT_DIR": str(tmp_path / "checkpoint"),
           "FRAUD_DETECTOR__LOCAL_HEAP": f"{HEAP_MB}m"}
    log_path = tmp_path / "detector.log"
    detector = runs.start_detector(env, log_path, "--until-drained")
    try:
        assert detector.wait(780) == 0, log_path.read_text()[-3000:]
    finally:
        runs.kill_group(detector)
    log = log_path.read_text()
    assert "OutOfMemoryError" not in log
    with postgres.connection(database_url) as conn:
        (rejected, shortest, longest), = postgres.fetch_all(
            conn, "SELECT count(*), min(length(raw_payload)), max(length(raw_payload)) FROM rejected_transactions"
                  " WHERE reason = 'oversized'")
        (batches,) = postgres.fetch_all(conn, "SELECT count(*) FROM pipeline_metrics")[0]
    assert (rejected, shortest, longest) == (RECORDS, RECORD_BYTES, RECORD_BYTES)
    assert batches == 1, "the whole backlog in one batch: memory bounded by the sink, not by the batch size"
    assert runs.live_alerts(database_url) == runs.oracle_alerts(burst)
    print(f"produced in {produced_s:.0f} s; drained in {time.monotonic() - began - produced_s:.0f} s")
