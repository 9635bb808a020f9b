"""Reading a whole test topic back, for assertions."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, TopicPartition


def read_topic(bootstrap_servers: str, topic: str, expected: int | None = None, timeout_s: float = 60.0):
    """Every message on ``topic`` (key, value, partition); waits for ``expected`` messages if given."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers, "group.id": f"test-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        if expected is not None and sum(ends.values()) < expected:
            raise AssertionError(f"topic {topic} holds {sum(ends.values())} messages, expected {expected}")
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages, deadline = [], time.monotonic() + timeout_s
        while len(messages) < sum(ends.values()) and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=1):
                if msg.error() is None:
                    messages.append((msg.key(), msg.value(), msg.partition()))
        return messages
    finally:
        consumer.close()
