"""Faults on real components. Each run ends with the alerts an undisturbed run gives (the oracle over what
Kafka holds), every offset counted once, or with a clear error instead of a hang.

(`kill -9` of the detector mid-stream is in test_detector_recovery.py; the generator's SIGTERM flush in
test_generator.py.)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time

import pytest

from fraud_detection.ground_truth import Episode
from fraud_detection.local_stack.kafka import LocalKafka, free_port
from fraud_detection.local_stack.postgres import LocalPostgres
from fraud_detection.rules.velocity import Event
from fraud_detection.storage import postgres, schema
from fraud_detection.transaction import parse_event_time
from tests.integration import detector_runs as runs
from tests.integration.conftest import CACHE_DIR
from tests.integration.kafka_reading import read_topic


def detector_env(bootstrap: str, topic: str, database_url: str, tmp_path, **extra: str) -> dict[str, str]:
    return {**os.environ, "FRAUD_KAFKA__BOOTSTRAP_SERVERS": bootstrap, "FRAUD_KAFKA__TOPIC": topic,
            "FRAUD_DATABASE_URL": database_url, "FRAUD_DETECTOR__CHECKPOINT_DIR": str(tmp_path / "checkpoint"),
            "FRAUD_LOCAL__CACHE_DIR": str(CACHE_DIR), **extra}


def stop_detector(detector: subprocess.Popen, log_path) -> None:
    detector.send_signal(signal.SIGTERM)
    assert detector.wait(90) == 0, log_path.read_text()[-3000:]


@pytest.mark.timeout(180)
def test_ground_truth_waits_out_a_postgres_outage_and_is_written_once(pg_dir, caplog):
    """The generator's recorder keeps the episodes a stopped database cannot take, without raising (the generator
    goes on sending), and writes each exactly once when the database is back; what close cannot write is logged
    as lost, by count."""
    server = LocalPostgres(pg_dir).start()
    url = server.create_database("truth")
    schema.migrate(url)
    now = [0.0]
    recorder = postgres.GroundTruthRecorder(url, "outage-test", clock=lambda: now[0])
    episodes = [Episode(f"card-{i}", "attack", 1_000 * i, 1_000 * i + 500, 6) for i in range(4)]
    assert recorder.record(episodes[:1]) == 1
    server.stop()
    assert recorder.record(episodes[1:2]) == 0 and recorder.pending == 1
    assert "event=ground_truth_deferred" in caplog.text
    server = LocalPostgres(pg_dir).start()
    assert server.create_database("truth") == url, "the same server address after the restart"
    assert recorder.record(episodes[2:3]) == 0 and recorder.pending == 2, "no retry before RETRY_EVERY_S"
    now[0] += recorder.RETRY_EVERY_S
    assert recorder.record(episodes[:1]) == 3 and recorder.pending == 0  # the first again: written once
    with postgres.connection(url) as conn:
        rows = postgres.fetch_all(conn, "SELECT card_id FROM injected_attacks WHERE source = 'outage-test'")
    assert sorted(r[0] for r in rows) == ["card-0", "card-1", "card-2"]
    server.stop()
    recorder.record(episodes[3:])
    assert recorder.close(timeout_s=0) == 1
    assert "event=ground_truth_lost episodes=1 source=outage-test" in caplog.text


@pytest.mark.timeout(420)
def test_postgres_down_for_30_s_mid_stream_loses_and_doubles_nothing(kafka, topic, tmp_path, pg_dir):
    """The sink retries with backoff while PostgreSQL is stopped; afterwards alerts equal the oracle's."""
    server = LocalPostgres(pg_dir).start()
    url = server.create_database("outage")
    schema.migrate(url)
    rng = random.Random(30)
    events = [e for c in range(200) for e in runs.card_events(rng, f"o{c}", runs.base_ms() + rng.randint(0, 3_600_000))]
    chunks = runs.live_chunks(rng, events, max_delay_ms=60_000, duplicate_share=0.03)
    delivered = [e for chunk in chunks for e in chunk]
    thirds = [chunks[:len(chunks) // 3], chunks[len(chunks) // 3:2 * len(chunks) // 3], chunks[2 * len(chunks) // 3:]]
    counts = [sum(len(c) for c in part) for part in thirds]
    log_path = tmp_path / "detector.log"
    detector = runs.start_detector(detector_env(kafka.bootstrap_servers, topic, url, tmp_path), log_path)
    try:
        runs.wait_for(lambda: "event=detector_started" in log_path.read_text(), 180, "the detector to start")
        runs.feed(kafka.bootstrap_servers, topic, thirds[0])
        runs.wait_for(lambda: runs.metrics_totals(url)["input_rows"] >= counts[0], 120, "the first third")
        server.stop()
        stopped_at = time.monotonic()
        runs.feed(kafka.bootstrap_servers, topic, thirds[1])  # arrives while the database is down
        time.sleep(max(0.0, 30 - (time.monotonic() - stopped_at)))
        assert detector.poll() is None, "the detector waits for the database instead of failing"
        server = LocalPostgres(pg_dir).start()
        assert server.create_database("outage") == url, "the same server address after the restart"
        runs.feed(kafka.bootstrap_servers, topic, thirds[2])
        runs.wait_for(lambda: runs.metrics_totals(url)["input_rows"] >= len(delivered), 240, "every record")
        stop_detector(detector, log_path)
    finally:
        runs.kill_group(detector)
    log = log_path.read_text()
    assert "event=sink_retry" in log, "the outage was met with retries"
    assert runs.live_alerts(url) == runs.oracle_alerts(events)
    totals = runs.metrics_totals(url)
    assert (totals["input_rows"], totals["late_rows"]) == (len(delivered), 0)
    assert totals["duplicate_rows"] == len(delivered) - len(events)
    server.stop()


@pytest.mark.timeout(420)
def test_a_task_that_failed_after_committing_part_of_its_rows_runs_again_and_loses_and_doubles_nothing(
        kafka, topic, database_url, stack_env, tmp_path):
    """Spark runs a failed task again (a local master allowing a retry). The task's first attempt commits some
    units of its partition's rows, then PostgreSQL refuses one (a trigger, once); the second attempt sends the
    partition's rows again: alerts equal the oracle, every dead letter and duplicate is there once, and the
    counters count each record once."""
    rng = random.Random(41)
    events = [e for c in range(40) for e in runs.card_events(rng, f"r{c}", runs.base_ms() + rng.randint(0, 600_000))]
    redelivered = events[::7]
    # Malformed records of 600 kB: the sink's units hold about 4 MiB of JSON, so the rejected rows take
    # several units, and the failure comes after some of them committed.
    big = [(b"x", b"{" + bytes([65 + i]) * 600_000) for i in range(16)]
    coordinates = runs.produce(kafka.bootstrap_servers, topic, big)
    runs.produce_events(kafka.bootstrap_servers, topic, events + redelivered)
    failing_offset = coordinates[10]
    with postgres.connection(database_url) as conn, conn, conn.cursor() as cur:
        cur.execute("CREATE SEQUENCE injected_failures")  # not rolled back with the failed transaction
        cur.execute("CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                    " IF (NEW.kafka_partition, NEW.kafka_offset) = (%s, %s) AND nextval('injected_failures') = 1"
                    " THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$",
                    failing_offset)  # psycopg2 puts the two numbers into the function's text
        cur.execute("CREATE TRIGGER fail_once BEFORE INSERT ON rejected_transactions FOR EACH ROW"
                    " EXECUTE FUNCTION fail_once()")
    env = detector_env(kafka.bootstrap_servers, topic, database_url, tmp_path, FRAUD_DETECTOR__MASTER="local[2,2]")
    log_path = tmp_path / "detector.log"
    detector = runs.start_detector(env, log_path, "--until-drained")
    try:
        assert detector.wait(300) == 0, log_path.read_text()[-3000:]
    finally:
        runs.kill_group(detector)
    assert "injected failure" in log_path.read_text(), "the first attempt failed"
    with postgres.connection(database_url) as conn:
        (failures,) = postgres.fetch_all(conn, "SELECT last_value FROM injected_failures")[0]
        rejected = postgres.fetch_all(conn, "SELECT kafka_partition, kafka_offset, length(raw_payload)"
                                            " FROM rejected_transactions ORDER BY 1, 2")
    assert failures >= 2, "the trigger saw the record again, in the second attempt"
    assert rejected == sorted((p, o, 600_001) for p, o in coordinates)
    assert runs.live_alerts(database_url) == runs.oracle_alerts(events)
    totals = runs.metrics_totals(database_url)
    assert (totals["input_rows"], totals["rejected_rows"], totals["duplicate_rows"]) == (
        len(big) + len(events) + len(redelivered), len(big), len(redelivered))


def events_in(bootstrap: str, topic: str, expected: int) -> list[Event]:
    docs = [json.loads(value) for _, value, _ in read_topic(bootstrap, topic, expected=expected)]
    return [Event(d["card_id"], d["transaction_id"], parse_event_time(d["event_time"]), round(d["amount"] * 100))
            for d in docs]


@pytest.mark.timeout(420)
def test_kafka_broker_restart_mid_stream(pg_server, tmp_path):
    """The broker stops for ~8 s under a live generator and detector: the generator delivers everything,
    the detector rides it out, and the alerts equal the oracle over what the topic holds."""
    port = free_port()
    broker = LocalKafka(tmp_path / "kafka", CACHE_DIR, port=port, heap="512m").start()
    topic = "restart"
    broker.create_topic(topic, partitions=3)
    url = pg_server.create_database(f"restart_{port}")
    schema.migrate(url)
    # Event time runs 60x so attacks complete within the run; the lateness allowed is 15 s of wall time.
    env = detector_env(broker.bootstrap_servers, topic, url, tmp_path, FRAUD_DETECTOR__ALLOWED_LATENESS="900")
    log_path = tmp_path / "detector.log"
    detector = runs.start_detector(env, log_path)
    generator = None
    try:
        runs.wait_for(lambda: "event=detector_started" in log_path.read_text(), 180, "the detector to start")
        generator = subprocess.Popen(
            [*runs.CLI, "generate", "--count", "24000", "--rate", "2000", "--clock-speed", "60", "--seed", "11"],
            env={**env, "FRAUD_GENERATOR__ATTACK_INTERVAL": "30"}, stderr=subprocess.PIPE, text=True)
        runs.wait_for(lambda: runs.metrics_totals(url)["input_rows"] > 3000, 120, "the stream to flow")
        broker.stop()
        time.sleep(8)
        broker = LocalKafka(tmp_path / "kafka", CACHE_DIR, port=port, heap="512m").start()
        _, generator_log = generator.communicate(timeout=180)
        assert generator.returncode == 0, generator_log[-3000:]
        stop_line = next(line for line in generator_log.splitlines() if "event=generator_stop" in line)
        assert "failed=0" in stop_line and "undelivered=0" in stop_line, stop_line
        sent = int(stop_line.split("sent=")[1].split()[0])
        in_topic = events_in(broker.bootstrap_servers, topic, expected=sent)
        assert len(in_topic) >= sent  # a retried send may be stored twice; its id counts once
        runs.wait_for(lambda: runs.metrics_totals(url)["input_rows"] >= len(in_topic), 240, "every record")
        assert detector.poll() is None, log_path.read_text()[-3000:]
        stop_detector(detector, log_path)
    finally:
        if generator is not None and generator.poll() is None:
            generator.kill()
        runs.kill_group(detector)
        broker.stop()
    assert runs.live_alerts(url) == runs.oracle_alerts(in_topic)
    assert runs.metrics_totals(url)["input_rows"] == len(in_topic)
    with postgres.connection(url) as conn:
        (attacks, caught), = postgres.fetch_all(conn, "SELECT count(*), count(*) FILTER (WHERE EXISTS ("
                                                      "SELECT 1 FROM alerts a WHERE a.card_id = i.card_id)) "
                                                      "FROM injected_attacks i WHERE kind = 'attack'")
    assert attacks > 0 and caught == attacks


def test_unwritable_checkpoint_fails_at_once_with_a_clear_error(stack_env, tmp_path):
    """A checkpoint path that cannot be created exits 1 naming it and the setting, before Spark starts."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {**os.environ, **stack_env, "FRAUD_DETECTOR__CHECKPOINT_DIR": str(blocker / "checkpoint")}
    began = time.monotonic()
    result = subprocess.run([*runs.CLI, "detect"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"checkpoint directory {blocker / 'checkpoint'} is not writable" in result.stderr
    assert "FRAUD_DETECTOR__CHECKPOINT_DIR" in result.stderr
    assert time.monotonic() - began < 60


def _tmpfs_possible() -> str | None:
    if shutil.which("unshare") is None:
        return "no `unshare` command"
    # A mount namespace of our own, without a user namespace: in one, the embedded PostgreSQL's socket (owned
    # by a user the namespace does not map) refuses the detector, which must reach it to run a batch.
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount a private tmpfs as root: {probe.stderr.strip()[:200]}"


@pytest.mark.timeout(300)
def test_full_checkpoint_disk_fails_with_a_clear_error_not_a_hang(kafka, topic, stack_env, tmp_path):
    """The checkpoint on a 256 KiB tmpfs fills up: the detector exits 1 saying the device is full."""
    reason = _tmpfs_possible()
    if reason:
        pytest.skip(f"needs a private tmpfs for the full disk ({reason})")
    small = tmp_path / "small"
    small.mkdir()
    env = {**os.environ, **stack_env, "FRAUD_DETECTOR__CHECKPOINT_DIR": str(small / "checkpoint"),
           "FRAUD_LOCAL__CACHE_DIR": str(CACHE_DIR)}
    rng = random.Random(5)
    # Enough cards that the first batch's state outgrows the disk: RocksDB's changelog checkpointing writes
    # only the batch's changes.
    events = [e for c in range(2500)
              for e in runs.card_events(rng, f"d{c}", runs.base_ms() + rng.randint(0, 3_600_000))]
    runs.produce_events(kafka.bootstrap_servers, topic, events)
    script = f'mount -t tmpfs -o size=256k tmpfs "{small}" && exec "$0" -m fraud_detection.cli detect'
    began = time.monotonic()
    result = subprocess.run(["unshare", "--mount", "sh", "-c", script, runs.CLI[0]],
                            env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 1, result.stderr[-3000:]
    failure = [line for line in result.stderr.splitlines() if "event=detector_failed" in line or
               "event=failed" in line]
    assert failure and "No space left on device" in result.stderr, result.stderr[-3000:]
    assert time.monotonic() - began < 200
