"""The detector as a process: kill -9 mid-stream, restart from the checkpoint, nothing lost or doubled."""

from __future__ import annotations

import os
import random
import signal
import threading

from tests.integration import detector_runs as runs
from tests.integration.conftest import CACHE_DIR


def test_killed_detector_resumes_from_its_checkpoint_with_no_lost_or_duplicate_alert(
    kafka, topic, database_url, stack_env, tmp_path, operator
):
    """SIGKILL of the whole process group mid-stream; after restart the alerts equal an uninterrupted run's."""
    rng = random.Random(20261128)
    events = [e for c in range(300) for e in runs.card_events(rng, f"k{c}", runs.base_ms() + rng.randint(0, 3_600_000))]
    delivered = runs.arrival_order(rng, events, max_delay_ms=60_000, duplicate_share=0.03)
    env = {**os.environ, **stack_env, "FRAUD_DETECTOR__CHECKPOINT_DIR": str(tmp_path / "checkpoint"),
           "FRAUD_LOCAL__CACHE_DIR": str(CACHE_DIR), "FRAUD_DETECTOR__OPERATOR": operator}
    log_path = tmp_path / "detector.log"

    # A live stream of small chunks (under a minute of event time each, so a chunk half-visible across
    # partitions stays within the lateness): the first half; a quarter more, of which the detector commits
    # some; the kill; the last quarter sent while the detector is down and after it restarted.
    chunks = [delivered[i:i + 25] for i in range(0, len(delivered), 25)]
    half, three_quarters = len(chunks) // 2, 3 * len(chunks) // 4

    first_done, second_done = threading.Event(), threading.Event()
    detector = runs.start_detector(env, log_path)
    try:
        runs.wait_for(lambda: "event=detector_started" in log_path.read_text(), 180, "the detector to start")
        threading.Thread(target=runs.feed, args=(kafka.bootstrap_servers, topic, chunks[:half], first_done),
                         daemon=True).start()
        runs.wait_for(lambda: first_done.is_set() and runs.batches(database_url) >= 2, 180, "two committed batches")
        before = runs.batches(database_url)
        runs.feed(kafka.bootstrap_servers, topic, chunks[half:three_quarters])
        runs.wait_for(lambda: runs.batches(database_url) > before, 120, "a batch of the third quarter")
        os.killpg(detector.pid, signal.SIGKILL)
        detector.wait(30)
        killed_after = runs.batches(database_url)
        threading.Thread(target=runs.feed, args=(kafka.bootstrap_servers, topic, chunks[three_quarters:],
                                                 second_done), daemon=True).start()
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



def test_sigterm_to_the_process_group_stops_the_detector_with_one_line(kafka, topic, stack_env, tmp_path):
    """Ctrl-C in a terminal or a supervisor signals the whole group, the JVM included: exit 0, no stack trace."""
    env = {**os.environ, **stack_env, "FRAUD_DETECTOR__CHECKPOINT_DIR": str(tmp_path / "checkpoint"),
           "FRAUD_LOCAL__CACHE_DIR": str(CACHE_DIR)}
    log_path = tmp_path / "detector.log"
    rng = random.Random(3)
    events = [e for c in range(20) for e in runs.card_events(rng, f"g{c}", runs.base_ms() + rng.randint(0, 600_000))]
    detector = runs.start_detector(env, log_path)
    try:
        runs.wait_for(lambda: "event=detector_started" in log_path.read_text(), 180, "the detector to start")
        runs.produce_events(kafka.bootstrap_servers, topic, events)
        runs.wait_for(lambda: runs.metrics_totals(stack_env["FRAUD_DATABASE_URL"])["input_rows"] >= len(events), 120,
                      "a committed batch")
        started = log_path.read_text()
        os.killpg(detector.pid, signal.SIGTERM)
        assert detector.wait(90) == 0, log_path.read_text()[-3000:]
    finally:
        runs.kill_group(detector)
    said = log_path.read_text()[len(started):]
    assert "Traceback" not in said and "Py4J" not in said and "Exception" not in said, said[-3000:]
    assert [line for line in said.splitlines() if line.strip()] == [
        line for line in said.splitlines() if "event=detector_stopped" in line], said[-3000:]
