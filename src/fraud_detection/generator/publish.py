"""Sends transactions to Kafka, keyed by card, with delivery accounting.

Shared by ``generate`` (the traffic model) and ``replay`` (a CSV): both hand ``Publisher`` transactions in
event-time order. The producer is idempotent with ``acks=all``; delivery failures are counted, and a
stop (SIGTERM, SIGINT, the end of the run) flushes what is buffered before the report is made.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Producer

from fraud_detection.kafka_clients import producer_config
from fraud_detection.settings import KafkaSettings
from fraud_detection.transaction import Transaction, encode

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 30.0


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

    def send_rows(self, rows: Iterable[Transaction]) -> int:
        """Encode and produce transactions, keyed by card."""
        produce, topic, callback = self._producer.produce, self.topic, self._on_delivery
        sent = 0
        for row in rows:
            value = encode(*row)
            while True:
                try:
                    produce(topic, value, row.card_id, on_delivery=callback)
                    break
                except BufferError:  # local queue full: let librdkafka drain it, then retry
                    self._producer.poll(0.05)
            sent += 1
        self.report.produced += sent
        self._producer.poll(0)
        return sent

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until everything produced so far is delivered or failed."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            log.error("event=flush_incomplete undelivered=%d timeout_s=%s", remaining, timeout_s)

    def close(self, timeout_s: float = FLUSH_TIMEOUT_S) -> DeliveryReport:
        """Flush; whatever is still queued afterwards is reported as undelivered."""
        self.flush(timeout_s)
        return self.report
