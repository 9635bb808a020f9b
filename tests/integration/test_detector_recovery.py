"""The detector as a process: kill -9 mid-stream, restart from the checkpoint, nothing lost or doubled."""

from __future__ import annotations

import os
import random
import re
import signal
import threading

from fraud_detection.storage import postgres
from tests.integration import detector_runs as runs
from tests.integration.conftest import CACHE_DIR


def test_killed_detector_resumes_from_its_checkpoint_with_no_lost_or_duplicate_alert(
    kafka, topic, database_url, stack_env, tmp_path, operator
):
    """SIGKILL of the whole process group mid-stream: a batch's partitions commit on their own, so the kill can
    leave a batch half-written; after the restart the alerts equal an uninterrupted run's, every offset is
    counted once (a progress event the kill lost is taken from the offset log) and no message is queued twice."""
    delivered, _, killed_after = _kill_and_resume(kafka, topic, database_url, stack_env, tmp_path, operator)
    assert killed_after < runs.batches(database_url), "the restarted detector committed more batches"
    totals = runs.metrics_totals(database_url)
    assert totals["batches_with_progress"] == totals["batches"], totals
    assert totals["input_rows"] == len(delivered), "each offset counted once, including the batch re-run"
    with postgres.connection(database_url) as conn:
        (doubled,) = postgres.fetch_all(conn, "SELECT count(*) FROM (SELECT alert_id, version FROM alert_outbox"
                                              " GROUP BY 1, 2 HAVING count(*) > 1) d")[0]
    assert doubled == 0


def _kill_and_resume(kafka, topic, database_url, stack_env, tmp_path, operator: str):
    """Feed a stream, SIGKILL the detector's process group mid-stream, restart it; check the alerts and counts
    and return (delivered, events, batches committed before the kill)."""
    rng = random.Random(20261128)
    events = [e for c in range(300) for e in runs.card_events(rng, f"k{c}", runs.base_ms() + rng.randint(0, 3_600_000))]
    # A live stream (30 s of delivery time per chunk, 60 s delays: within the 120 s lateness however a batch
    # cuts it): the first half; a quarter more, of which the detector commits some; the kill; the last
    # quarter sent while the detector is down and after it restarted.
    chunks = runs.live_chunks(rng, events, max_delay_ms=60_000, duplicate_share=0.03)
    delivered = [e for chunk in chunks for e in chunk]
    env = {**os.environ, **stack_env, "FRAUD_DETECTOR__CHECKPOINT_DIR": str(tmp_path / "checkpoint"),
           "FRAUD_LOCAL__CACHE_DIR": str(CACHE_DIR), "FRAUD_DETECTOR__OPERATOR": operator}
    log_path = tmp_path / "detector.log"
    expected_alerts = runs.oracle_alerts(events)

    def processed() -> bool:  # every record: its alerts and its duplicates are in
        return (runs.metrics_totals(database_url)["duplicate_rows"] >= len(delivered) - len(events)
                and runs.live_alerts(database_url) == expected_alerts)

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
        runs.wait_for(processed, 240, "every record to be processed",
                      explain=lambda: runs.progress_report(database_url, expected_alerts, log_path))
        detector.send_signal(signal.SIGTERM)  # to the Python driver, which stops the query and then Spark
        assert detector.wait(60) == 0, log_path.read_text()[-3000:]
    finally:
        runs.kill_group(detector)

    assert runs.live_alerts(database_url) == expected_alerts
    totals = runs.metrics_totals(database_url)
    assert totals["late_rows"] == 0
    assert totals["duplicate_rows"] == len(delivered) - len(events), "each duplicate counted once"
    assert "event=detector_started" in log_path.read_text()
    return delivered, events, killed_after


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
        runs.wait_for_counted(stack_env["FRAUD_DATABASE_URL"], len(events))
        started = log_path.read_text()
        assert re.search(r"event=detector_started .* session_start_ms=\d+ query_start_ms=\d+", started), started
        os.killpg(detector.pid, signal.SIGTERM)
        assert detector.wait(90) == 0, log_path.read_text()[-3000:]
    finally:
        runs.kill_group(detector)
    said = log_path.read_text()[len(started):]
    assert "Traceback" not in said and "Py4J" not in said and "Exception" not in said, said[-3000:]
    assert [line for line in said.splitlines() if line.strip()] == [
        line for line in said.splitlines() if "event=detector_stopped" in line], said[-3000:]
