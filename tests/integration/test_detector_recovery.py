"""The detector as a process: kill -9 mid-stream, restart from the checkpoint, nothing lost or doubled."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

from tests.integration import detector_runs as runs
from tests.integration.conftest import CACHE_DIR


def test_killed_detector_resumes_from_its_checkpoint_with_no_lost_or_duplicate_alert(
    kafka, topic, database_url, stack_env, tmp_path
):
    """SIGKILL of the whole process group mid-stream; after restart the alerts equal an uninterrupted run's."""
    rng = random.Random(20261128)
    events = [e for c in range(300) for e in runs.card_events(rng, f"k{c}", runs.BASE_MS + rng.randint(0, 3_600_000))]
    delivered = runs.arrival_order(rng, events, max_delay_ms=60_000, duplicate_share=0.03)
    env = {**os.environ, **stack_env, "FRAUD_DETECTOR__CHECKPOINT_DIR": str(tmp_path / "checkpoint"),
           "FRAUD_LOCAL__CACHE_DIR": str(CACHE_DIR)}
    log_path = tmp_path / "detector.log"

    # A live stream of small chunks (under a minute of event time each, so a chunk half-visible across
    # partitions stays within the lateness): the first half, then the second half during which the
    # detector is killed and restarted.
    chunks = [delivered[i:i + 25] for i in range(0, len(delivered), 25)]
    half = len(chunks) // 2

    first_done, second_done = threading.Event(), threading.Event()
    detector = runs.start_detector(env, log_path)
    try:
        runs.wait_for(lambda: "event=detector_started" in log_path.read_text(), 180, "the detector to start")
        threading.Thread(target=runs.feed, args=(kafka.bootstrap_servers, topic, chunks[:half], first_done),
                         daemon=True).start()
        runs.wait_for(lambda: first_done.is_set() and runs.batches(database_url) >= 2, 180, "two committed batches")
        threading.Thread(target=runs.feed, args=(kafka.bootstrap_servers, topic, chunks[half:], second_done),
                         daemon=True).start()
        time.sleep(1.5)
        assert not second_done.is_set(), "the kill must come mid-stream"
        os.killpg(detector.pid, signal.SIGKILL)
        detector.wait(30)
        killed_after = runs.batches(database_url)
        detector = runs.start_detector(env, log_path)
        runs.wait_for(second_done.is_set, 120, "the feeder")
        runs.wait_for(lambda: runs.metrics_totals(database_url)["input_rows"] >= len(delivered), 240,
                  "every record to be processed")
        detector.send_signal(signal.SIGTERM)  # to the Python driver, which stops the query and then Spark
        assert detector.wait(60) == 0, log_path.read_text()[-3000:]
    finally:
        runs.kill_group(detector)

    assert killed_after < runs.batches(database_url), "the restarted detector committed more batches"
    assert runs.live_alerts(database_url) == runs.oracle_alerts(events)
    totals = runs.metrics_totals(database_url)
    assert totals["input_rows"] == len(delivered), "each offset counted once, including the batch re-run"
    assert totals["late_rows"] == 0
    assert totals["duplicate_rows"] == len(delivered) - len(events)
    assert "event=detector_started" in log_path.read_text()

