"""Helpers for the detector's integration tests: random card streams, producing, draining, reading alerts."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

from confluent_kafka import Producer

from fraud_detection.detector.job import start
from fraud_detection.rules.velocity import Event, detect
from fraud_detection.storage import postgres
from fraud_detection.transaction import encode

MINUTE_MS = 60_000


def base_ms() -> int:
    """Where a test's event times start: two days before now, on the hour. Taken when a test runs, never at
    import; event times must not lead the Kafka timestamp (now) by more than a day."""
    return (int(time.time()) // 3600 - 48) * 3600 * 1000


def card_events(rng: random.Random, card_id: str, start_ms: int) -> list[Event]:
    """One card's history: quiet stretches and bursts, some straddling 10-minute boundaries, some ties."""
    events, t = [], start_ms
    for _ in range(rng.randint(1, 4)):
        bursty = rng.random() < 0.5
        for _ in range(rng.randint(1, 12)):
            t += rng.choice((0, rng.randint(1, 90_000))) if bursty else rng.randint(60_000, 400_000)
            events.append(Event(card_id, f"{card_id}-{len(events)}", t, rng.randint(1, 500_000)))
    return events


def deliveries(rng: random.Random, events: list[Event], max_delay_ms: int,
               duplicate_share: float) -> list[tuple[int, Event]]:
    """(delivery ms, event) in delivery order: each delayed by up to ``max_delay_ms``, some delivered twice."""
    delivered = [(e.event_time_ms + rng.randint(0, max_delay_ms), e) for e in events]
    delivered += [(e.event_time_ms + rng.randint(0, max_delay_ms), e) for e in events
                  if rng.random() < duplicate_share]
    return sorted(delivered, key=lambda d: d[0])


def arrival_order(rng: random.Random, events: list[Event], max_delay_ms: int, duplicate_share: float) -> list[Event]:
    """Events as delivered (see ``deliveries``)."""
    return [e for _, e in deliveries(rng, events, max_delay_ms, duplicate_share)]


def live_chunks(rng: random.Random, events: list[Event], max_delay_ms: int, duplicate_share: float,
                window_ms: int = 30_000) -> list[list[Event]]:
    """Deliveries cut into one chunk per ``window_ms`` of delivery time, for ``feed``. A micro-batch may see
    part of a chunk (some partitions): the rest is at most window + max delay older than anything seen, so
    it is on time when that sum is under the lateness. (Chunks of a fixed count span minutes where traffic
    is sparse, and then a batch cut inside one made records late, at random.)"""
    chunks: dict[int, list[Event]] = {}
    for delivered_ms, event in deliveries(rng, events, max_delay_ms, duplicate_share):
        chunks.setdefault(delivered_ms // window_ms, []).append(event)
    return list(chunks.values())


def payload(event: Event) -> bytes:
    return encode(event.transaction_id, event.card_id, event.amount_cents, "EUR", "m1", "5411", "DE", "pos",
                  event.event_time_ms)


def new_producer(bootstrap_servers: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True, "linger.ms": 5})


def produce(bootstrap_servers: str, topic: str, records: list[tuple[str | None, bytes]],
            using: Producer | None = None) -> list[tuple[int, int]]:
    """Send (key, value) records in order and flush; returns each one's (partition, offset)."""
    producer = using if using is not None else new_producer(bootstrap_servers)
    coordinates: list[tuple[int, int] | None] = [None] * len(records)

    def delivered(index):
        def report(err, msg):
            assert err is None, err
            coordinates[index] = (msg.partition(), msg.offset())
        return report

    for i, (key, value) in enumerate(records):
        producer.produce(topic, key=key, value=value, on_delivery=delivered(i))
        producer.poll(0)
    assert producer.flush(30) == 0
    return coordinates  # type: ignore[return-value]


def produce_events(bootstrap_servers: str, topic: str, events: list[Event], using: Producer | None = None) -> None:
    produce(bootstrap_servers, topic, [(e.card_id, payload(e)) for e in events], using)


def feed(bootstrap_servers: str, topic: str, chunks: list[list[Event]], done=None, pause_s: float = 0.05) -> None:
    """A live stream: one chunk at a time with a pause between; sets ``done`` (a threading.Event) at the end."""
    producer = new_producer(bootstrap_servers)
    for chunk in chunks:
        produce_events(bootstrap_servers, topic, chunk, using=producer)
        time.sleep(pause_s)
    if done is not None:
        done.set()


def drain(spark, settings, database_url: str) -> None:
    """Run the detector until it has processed everything in the topic, then stop it."""
    detector = start(spark, settings, database_url, available_now=True)
    try:
        detector.query.awaitTermination(300)
        assert not detector.query.isActive, "the detector did not drain the topic in 300 s"
    finally:
        detector.stop()


def live_alerts(database_url: str) -> list[tuple]:
    """Alerts not merged away, as (card, first ms, last ms, count, amount cents), sorted."""
    with postgres.connection(database_url) as conn:
        rows = postgres.fetch_all(
            conn,
            "SELECT card_id, (extract(epoch FROM first_event_time) * 1000)::bigint,"
            " (extract(epoch FROM last_event_time) * 1000)::bigint, txn_count, (amount_total * 100)::bigint"
            " FROM alerts WHERE merged_into IS NULL ORDER BY 1, 2",
        )
    return [tuple(r) for r in rows]


def oracle_alerts(events: list[Event]) -> list[tuple]:
    return sorted((a.card_id, a.first_event_time_ms, a.last_event_time_ms, a.txn_count, a.amount_total_cents)
                  for a in detect(events))


def metrics_totals(database_url: str) -> dict[str, int]:
    with postgres.connection(database_url) as conn:
        (row,) = postgres.fetch_all(
            conn,
            "SELECT coalesce(sum(input_rows), 0), coalesce(sum(rejected_rows), 0), coalesce(sum(late_rows), 0),"
            " coalesce(sum(duplicate_rows), 0), count(*), count(input_rows) FROM pipeline_metrics",
        )
    names = ("input_rows", "rejected_rows", "late_rows", "duplicate_rows", "batches", "batches_with_progress")
    return dict(zip(names, (int(v) for v in row), strict=True))


CLI = [sys.executable, "-m", "fraud_detection.cli"]


def batches(database_url: str) -> int:
    with postgres.connection(database_url) as conn:
        return postgres.fetch_all(conn, "SELECT count(*) FROM pipeline_metrics")[0][0]


def wait_for(condition, timeout_s: float, what: str, explain=None) -> None:
    """Poll ``condition``; on time-out, fail with ``explain()`` (what was seen) in the message, if given."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            seen = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}{seen}")
        time.sleep(0.5)


def wait_for_counted(database_url: str, records: int, explain=None) -> None:
    """Until the batches committed so far have counted ``records`` input rows (a batch end after them)."""
    wait_for(lambda: metrics_totals(database_url)["input_rows"] >= records, 120,
             f"a batch end after the first {records} records", explain=explain)


def progress_report(database_url: str, expected_alerts: list[tuple], log_path) -> str:
    """What a stalled run shows: the metric totals, the alerts missing and extra, the detector log's end."""
    live = live_alerts(database_url)
    missing = [a for a in expected_alerts if a not in live]
    extra = [a for a in live if a not in expected_alerts]
    return (f"totals {metrics_totals(database_url)}\nmissing alerts {missing[:5]} ({len(missing)})\n"
            f"extra alerts {extra[:5]} ({len(extra)})\ndetector log:\n{log_path.read_text()[-4000:]}")


def start_detector(env: dict[str, str], log_path, *args: str, python: str = sys.executable) -> subprocess.Popen:
    """`fraud-detection detect` (run by ``python``) in its own process group, appending to ``log_path``."""
    with open(log_path, "a") as log:
        return subprocess.Popen([python, *CLI[1:], "detect", *args], env=env, stdout=log, stderr=log,
                                start_new_session=True)


def kill_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 9)
        process.wait(30)
