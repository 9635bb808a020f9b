"""The alerts stream: the sink's outbox, relayed to Kafka, on the real broker and PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timezone
from importlib import resources

import jsonschema
from confluent_kafka import Producer

from fraud_detection.alerting.relay import publish_pending, run_relay, take_relay_lock
from fraud_detection.settings import load_settings
from fraud_detection.shutdown import StopFlag
from fraud_detection.storage import postgres
from tests.integration import detector_runs as runs
from tests.integration import sink_units
from tests.integration.kafka_reading import read_topic

SCHEMA = json.loads(resources.files("fraud_detection").joinpath("alert.schema.json").read_text())
MINUTE_MS = 60_000


def _alert(alert_id: str, card: str, count: int, t0: int) -> sink_units.AlertRow:
    last = t0 + count * MINUTE_MS
    return sink_units.alert(alert_id, card, t0, last, count, 1000 * count, f"tx-{alert_id}-{count}", last + 50, last)


def _messages(kafka, topic: str, expected: int) -> list[tuple[str, dict, int]]:
    return [(key.decode(), json.loads(value), partition)
            for key, value, partition in read_topic(kafka.bootstrap_servers, topic, expected=expected)]


def test_each_committed_alert_version_is_published_once_keyed_by_card_in_version_order(kafka, database_url):
    """Raised, grown and merged alerts each become one message (alert_id, version) that matches the schema;
    a batch the detector re-runs publishes nothing new; a card's messages keep their order."""
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=3)
    t0 = 1_764_000_000_000
    batches = [
        sink_units.Unit(alerts=[_alert("a1", "c1", 6, t0), _alert("a2", "c2", 6, t0)]),
        sink_units.Unit(alerts=[_alert("a1", "c1", 7, t0), _alert("a3", "c1", 6, t0 + 20 * MINUTE_MS)]),
        sink_units.Unit(merges={"a3": "a1"}),
    ]
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True})
    with postgres.connection(database_url) as conn:
        for batch_id, batch in enumerate(batches):
            sink_units.apply(conn, "run-1", batch_id, batch, datetime.now(timezone.utc))
        again = sink_units.apply(conn, "run-1", 1, batches[1], datetime.now(timezone.utc))  # a task run again
        assert (again.alerts_new, again.alerts_updated) == (0, 0)
        assert publish_pending(conn, producer, topic) == 5
        assert publish_pending(conn, producer, topic) == 0
    messages = _messages(kafka, topic, expected=5)
    assert sorted((m["alert_id"], m["version"]) for _, m, _ in messages) == [
        ("a1", 1), ("a1", 2), ("a2", 1), ("a3", 1), ("a3", 2)]
    for key, message, _ in messages:
        jsonschema.validate(message, SCHEMA, format_checker=jsonschema.FormatChecker())
        assert key == message["card_id"]
    c1 = [(m["alert_id"], m["version"], m["status"]) for _, m, _ in messages if m["card_id"] == "c1"]
    assert c1 == [("a1", 1, "open"), ("a1", 2, "open"), ("a3", 1, "open"), ("a3", 2, "merged")]
    assert {m["txn_count"] for _, m, _ in messages if (m["alert_id"], m["version"]) == ("a1", 2)} == {7}
    assert len({partition for key, _, partition in messages if key == "c1"}) == 1


def test_a_crash_before_marking_republishes_the_same_message_and_nothing_else(kafka, database_url):
    """Kafka took the message but the relay died before marking it: the next run sends the same (id, version)
    with the same body, which consumers deduplicate; nothing unpublished is skipped."""
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=1)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True})
    with postgres.connection(database_url) as conn:
        sink_units.apply(conn, "run-1", 0, sink_units.Unit(alerts=[_alert("b1", "c9", 6, 0)]),
                         datetime.now(timezone.utc))
        assert publish_pending(conn, producer, topic) == 1
        with conn, conn.cursor() as cur:  # the crash: published, never marked
            cur.execute("UPDATE alert_outbox SET published_at = NULL")
        sink_units.apply(conn, "run-1", 1, sink_units.Unit(alerts=[_alert("b1", "c9", 8, 0)]),
                         datetime.now(timezone.utc))
        assert publish_pending(conn, producer, topic) == 2
    messages = [m for _, m, _ in _messages(kafka, topic, expected=3)]
    assert [(m["alert_id"], m["version"]) for m in messages] == [("b1", 1), ("b1", 1), ("b1", 2)]
    assert messages[0] == messages[1]


def test_a_second_relay_waits_while_another_publishes(kafka, database_url, caplog):
    """Only one relay publishes (a replacement pod may start before the old one ends): the other waits, then
    takes over when the first one's session ends."""
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, partitions=1)
    settings = load_settings(database_url=database_url,
                             kafka={"bootstrap_servers": kafka.bootstrap_servers, "alerts_topic": topic})
    with postgres.connection(database_url) as conn:
        sink_units.apply(conn, "run-1", 0, sink_units.Unit(alerts=[_alert("w1", "c5", 6, 0)]),
                         datetime.now(timezone.utc))
    stop = StopFlag()
    second = threading.Thread(target=run_relay, args=(settings, stop), daemon=True)
    try:
        with postgres.connection(database_url) as first:  # the relay already publishing
            assert take_relay_lock(first)
            second.start()
            runs.wait_for(lambda: "event=relay_waiting" in caplog.text, 30, "the second relay to wait")
            assert _unpublished(database_url) == 1
        runs.wait_for(lambda: _unpublished(database_url) == 0, 30, "the second relay to take over")
    finally:
        stop.set()
        second.join(30)
    assert [json.loads(value)["alert_id"] for _, value, _ in read_topic(kafka.bootstrap_servers, topic)] == ["w1"]


def _unpublished(database_url: str) -> int:
    with postgres.connection(database_url) as conn:
        return postgres.fetch_all(conn, "SELECT count(*) FROM alert_outbox WHERE published_at IS NULL")[0][0]
