"""Sends transactions to Kafka at a steady rate and records the ground truth in PostgreSQL.

Shared by ``generate`` (the traffic model) and ``replay`` (a CSV): both hand ``Publisher`` rows in
event-time order. The producer is idempotent with ``acks=all``; delivery failures are counted, and a
stop (SIGTERM, SIGINT, the end of the run) flushes what is buffered before the report is made.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, Producer

from fraud_detection.settings import KafkaSettings
from fraud_detection.transaction import encode

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 30.0


def producer_config(kafka: KafkaSettings) -> dict:
    return {
        **kafka.client_config(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.num.messages": 10_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "client.id": "fraud-detection-generator",
    }


@dataclass
class DeliveryReport:
    produced: int = 0
    delivered: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def undelivered(self) -> int:
        return self.produced - self.delivered - self.failed


class Publisher:
    """A Kafka producer for transaction rows keyed by card_id, with delivery accounting."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.topic = kafka.topic
        self.report = DeliveryReport()
        self._producer = Producer(producer_config(kafka), logger=log)

    def _on_delivery(self, err: KafkaError | None, _msg) -> None:
        if err is None:
            self.report.delivered += 1
        else:
            self.report.failed += 1
            name = err.name()
            self.report.errors[name] = self.report.errors.get(name, 0) + 1

    def send_rows(self, rows: Iterable[tuple]) -> int:
        """Encode and produce rows in the argument order of ``transaction.encode``."""
        produce, topic, callback = self._producer.produce, self.topic, self._on_delivery
        sent = 0
        for row in rows:
            value = encode(*row)
            while True:
                try:
                    produce(topic, value, row[1], on_delivery=callback)
                    break
                except BufferError:  # local queue full: let librdkafka drain it, then retry
                    self._producer.poll(0.05)
            sent += 1
        self.report.produced += sent
        self._producer.poll(0)
        return sent

    def poll(self) -> None:
        self._producer.poll(0)

    def close(self, timeout_s: float = FLUSH_TIMEOUT_S) -> DeliveryReport:
        """Flush; whatever is still queued afterwards is reported as undelivered."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            log.error("event=flush_incomplete undelivered=%d timeout_s=%s", remaining, timeout_s)
        return self.report


def check_topic(kafka: KafkaSettings, timeout_s: float = 15.0) -> int:
    """The topic's partition count; fails with a clear message when the broker or topic is missing."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(kafka.client_config())
    try:
        metadata = admin.list_topics(kafka.topic, timeout=timeout_s)
    except KafkaException as err:
        raise ConnectionError(
            f"Kafka at {kafka.bootstrap_servers} did not answer ({err}); start it (`make kafka`) "
            "or set FRAUD_KAFKA__BOOTSTRAP_SERVERS"
        ) from None
    topic = metadata.topics.get(kafka.topic)
    if topic is None or topic.error is not None:
        raise LookupError(f"topic {kafka.topic!r} does not exist on {kafka.bootstrap_servers}; create it first")
    return len(topic.partitions)


class Progress:
    """One status line: rewritten in place on a terminal, a log line every ``every_s`` otherwise."""

    def __init__(self, describe: Callable[[], str], every_s: float = 1.0, stream=None) -> None:
        self._describe = describe
        self._every_s = every_s
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._next = time.monotonic() + every_s

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self._every_s
            self.show()

    def show(self) -> None:
        if self._tty:
            self._stream.write("\r\033[K" + self._describe())
            self._stream.flush()
        else:
            log.info("event=progress %s", self._describe())

    def done(self) -> None:
        self.show()
        if self._tty:
            self._stream.write("\n")
