"""``fraud-detection relay``: the sink's outbox (alert_outbox) published to the alerts topic, in commit order.

A message goes out only after its alert committed (the sink writes both in one transaction) and is marked
published only after Kafka acknowledged it. A crash in between publishes the same (alert_id, version)
again: redelivery, never a new or changed message. The idempotent producer keeps each card's messages in
order on its partition. Only one relay publishes at a time (a PostgreSQL advisory lock): a second one, such
as a replacement pod started while the old one still runs, waits.
"""

from __future__ import annotations

import logging

from confluent_kafka import Producer

from fraud_detection.kafka_clients import check_topic, client_config
from fraud_detection.settings import Settings
from fraud_detection.shutdown import StopFlag
from fraud_detection.storage.postgres import LazyConnection

log = logging.getLogger(__name__)

BATCH = 1000
IDLE_WAIT_S = 0.1  # how long an empty outbox waits before looking again: the floor of the relay's latency
LOCK_RETRY_S = 2.0
_RELAY_LOCK_ID = 0x46524C59  # any constant; distinct from the migrations' lock


class RelayError(RuntimeError):
    """Kafka refused messages; they stay unpublished in the outbox and go out on the next try."""


def publish_pending(conn, producer: Producer, topic: str, limit: int = BATCH) -> int:
    """Publish up to ``limit`` unpublished messages in commit order, then mark them; returns how many."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT id, card_id, payload::text FROM alert_outbox WHERE published_at IS NULL"
                    " ORDER BY id LIMIT %s", (limit,))
        rows = cur.fetchall()
    if not rows:
        return 0
    failures: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            failures.append(err.str())

    for _, card_id, payload in rows:
        producer.produce(topic, payload.encode(), card_id, on_delivery=delivered)
    remaining = producer.flush(30)
    if failures or remaining:
        raise RelayError(f"Kafka did not take {len(failures) + remaining} alert message(s): "
                         f"{failures[0] if failures else 'flush timed out'}")
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE alert_outbox SET published_at = now() WHERE id = ANY(%s)", ([r[0] for r in rows],))
    return len(rows)


def take_relay_lock(conn) -> bool:
    """Try to become the one publishing relay; the lock lasts as long as ``conn``'s session."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", (_RELAY_LOCK_ID,))
        return bool(cur.fetchone()[0])


def run_relay(settings: Settings, stop: StopFlag) -> int:
    """Relay until stopped; a Kafka or PostgreSQL failure ends it with an error (the supervisor restarts it)."""
    topic = settings.kafka.alerts_topic
    check_topic(settings.kafka, topic)
    producer = Producer({**client_config(settings.kafka), "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5, "client.id": "fraud-detection-relay"}, logger=log)
    db = LazyConnection(settings.require_database_url())
    log.info("event=relay_started topic=%s", topic)
    published = 0
    try:
        # Two relays would interleave the outbox and break each card's order: the second waits its turn.
        waiting = False
        while not stop and not take_relay_lock(db.get()):
            if not waiting:
                log.warning("event=relay_waiting reason=another relay is publishing")
                waiting = True
            stop.wait(LOCK_RETRY_S)
        while not stop:
            sent = publish_pending(db.get(), producer, topic)
            published += sent
            if sent:
                log.debug("event=relay_published count=%d", sent)
            else:
                stop.wait(IDLE_WAIT_S)
    finally:
        db.close()
    log.info("event=relay_stopped published=%d", published)
    return 0
