"""`fraud-detection notify` on the real broker and PostgreSQL, delivering to real local HTTP endpoints (and to
moto's SNS server): retries, Retry-After, timeouts, give-up, rate limit, a kill -9 mid-delivery."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import subprocess
import threading
import time
import uuid
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from fraud_detection.alerting.relay import publish_pending
from fraud_detection.local_stack.kafka import free_port
from fraud_detection.notifications.delivery_policy import Kind
from fraud_detection.notifications.destinations import post
from fraud_detection.notifications.notifier import GROUP_PREFIX, run_notify
from fraud_detection.settings import load_settings
from fraud_detection.shutdown import StopFlag
from fraud_detection.storage import postgres
from tests.integration import detector_runs as runs
from tests.integration import sink_units
from tests.integration.receivers import Answer, Receiver, Request

SECRET = "test-secret-0123456789abcdef"
MINUTE_MS = 60_000


def alert_body(alert_id: str, version: int, card: str, count: int = 6, rule: str = "velocity") -> bytes:
    """An alert message as alert.schema.json describes it."""
    return json.dumps({
        "alert_id": alert_id, "version": version, "rule": rule, "card_id": card, "status": "open",
        "merged_into": None, "txn_count": count, "amount_total": 100.0 * count,
        "first_event_time": "2025-11-24T16:00:00+00:00", "last_event_time": "2025-11-24T16:05:00+00:00",
        "trigger_transaction_id": f"t-{alert_id}", "trigger_event_time": "2025-11-24T16:04:00+00:00",
        "detected_at": "2025-11-24T16:05:01.5+00:00", "schema_version": 1,
    }).encode()


def alerts_topic(kafka, partitions: int = 2) -> str:
    name = f"alerts-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(name, partitions=partitions)
    return name


def publish(kafka, topic: str, bodies: list[bytes]) -> None:
    """Each body keyed by its card, as the relay does (a body that is not an alert: keyed "junk")."""
    def card(body: bytes) -> str:
        with contextlib.suppress(ValueError):
            return json.loads(body)["card_id"]
        return "junk"

    runs.produce(kafka.bootstrap_servers, topic, [(card(b), b) for b in bodies])


def notify_settings(kafka, topic: str, database_url: str, **notify):
    return load_settings(database_url=database_url,
                         kafka={"bootstrap_servers": kafka.bootstrap_servers, "alerts_topic": topic},
                         notify={"rate_limit": 1000, "timeout": 5, **notify})


@contextlib.contextmanager
def notifier(settings):
    """run_notify in a thread; stopped (as by SIGTERM) and joined at the end, its exit code checked."""
    stop, result = StopFlag(), {}
    thread = threading.Thread(target=lambda: result.update(code=run_notify(settings, stop)), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "the notifier stopped"
    assert result.get("code") == 0, "the notifier ended cleanly"


def deliveries(database_url: str) -> dict[tuple[str, str, int], tuple[str, int, str | None]]:
    """(destination, alert_id, version) -> (status, attempts, last_error)."""
    with postgres.connection(database_url) as conn:
        rows = postgres.fetch_all(conn, "SELECT destination, alert_id, version, status, attempts, last_error"
                                        " FROM notification_deliveries")
    return {(d, a, v): (s, n, e) for d, a, v, s, n, e in rows}


def settled(database_url: str, destination: str) -> dict[str, tuple[str, int, str | None]]:
    """alert_id:version -> (status, attempts, last_error) of the settled rows of one destination."""
    return {f"{a}:{v}": row for (d, a, v), row in deliveries(database_url).items()
            if d == destination and row[0] != "pending"}


def committed(kafka, destination: str, topic: str) -> int:
    """The offset a destination's consumer group committed on a one-partition topic (-1001: none yet)."""
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": GROUP_PREFIX + destination})
    try:
        return consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        consumer.close()


def assert_signed(request: Request) -> None:
    assert request.signed_with(SECRET.encode())


def test_a_stuck_slack_does_not_delay_the_webhook_and_every_version_reaches_both(kafka, database_url):
    """Alerts from the outbox through the relay: the webhook receives every version, signed, in each card's
    order, while Slack's first request hangs; released, Slack's 503 is retried and every version arrives."""
    topic = alerts_topic(kafka)
    t0 = 1_764_000_000_000
    def alert(alert_id, card, count, start=t0):
        last = start + count * MINUTE_MS
        return sink_units.alert(alert_id, card, start, last, count, 1000 * count, f"tx-{alert_id}-{count}",
                                last + 50, last)
    batches = [sink_units.Unit(alerts=[alert("a1", "c1", 6), alert("a2", "c2", 6)]),
               sink_units.Unit(alerts=[alert("a1", "c1", 7), alert("a3", "c1", 6, t0 + 20 * MINUTE_MS)]),
               sink_units.Unit(merges={"a3": "a1"})]
    with postgres.connection(database_url) as conn:
        for batch_id, batch in enumerate(batches):
            sink_units.apply(conn, "run-1", batch_id, batch, datetime.now(timezone.utc))
        assert publish_pending(conn, Producer({"bootstrap.servers": kafka.bootstrap_servers}), topic) == 5
    versions = {"a1:1", "a1:2", "a2:1", "a3:1", "a3:2"}
    gate, answered = threading.Event(), itertools.count()

    def slack_script(_request, _earlier):
        return Answer(503, hold=gate) if next(answered) == 0 else Answer(200)

    with Receiver() as hook, Receiver(slack_script) as slack:
        # A 30 s timeout: Slack's held request must still be open when the webhook is done.
        settings = notify_settings(kafka, topic, database_url, webhook_url=hook.url, webhook_secret=SECRET,
                                   slack_webhook_url=slack.url, grafana_url="http://grafana.test:3000", timeout=30)
        with notifier(settings):
            runs.wait_for(lambda: set(hook.idempotency_keys()) == versions, 60, "the webhook to get every version")
            runs.wait_for(lambda: set(settled(database_url, "webhook")) == versions, 30, "the webhook's rows")
            assert len(slack.snapshot()) == 1, "Slack is stuck on its first request, and held only itself up"
            gate.set()
            runs.wait_for(lambda: set(settled(database_url, "slack")) == versions, 60, "Slack to catch up")
    received = hook.snapshot()
    assert len(received) == 5, "each version once"
    for request in received:
        assert_signed(request)
        message = json.loads(request.body)
        assert request.key == f"{message['alert_id']}:{message['version']}"
    c1 = [r.key for r in received if json.loads(r.body)["card_id"] == "c1"]
    assert c1 == ["a1:1", "a1:2", "a3:1", "a3:2"], "a card's versions in order"
    slack_keys = slack.idempotency_keys()
    assert len(slack_keys) == 6 and slack_keys[0] == slack_keys[1], "the 503 retried with the same key"
    status, attempts, error = settled(database_url, "slack")[slack_keys[0]]
    assert (status, attempts) == ("delivered", 2) and error.startswith("HTTP 503")
    texts = [json.loads(r.body)["text"] for r in slack.snapshot()]
    assert any("`c1`" in t and "7 transactions" in t and "var-card=c1" in t for t in texts)
    assert all(row[:2] == ("delivered", 1) for row in settled(database_url, "webhook").values())


def test_retry_after_timeouts_give_up_and_permanent_errors_each_settle_and_never_stop_the_stream(
        kafka, database_url):
    """429 waits its Retry-After (seconds or HTTP date); a timeout and a 5xx are retried; an endless 5xx is
    given up with a dead-letter row, a 400 at once; the alerts after them are still delivered."""
    topic = alerts_topic(kafka, partitions=1)

    def script(request: Request, earlier: list[Request]) -> Answer:
        card = json.loads(request.body)["card_id"]
        if card == "r429" and not earlier:
            return Answer(429, {"Retry-After": "2"})
        if card == "rdate" and not earlier:
            soon = datetime.fromtimestamp(time.time() + 3, tz=timezone.utc)
            return Answer(503, {"Retry-After": format_datetime(soon, usegmt=True)})
        if card == "slow" and not earlier:
            return Answer(200, delay_s=4)  # past the notifier's 1 s timeout
        if card == "down":
            return Answer(500)
        if card == "bad":
            return Answer(400)
        return Answer(200)

    cards = ["r429", "rdate", "slow", "down", "bad", "fine"]
    with Receiver(script) as hook:
        settings = notify_settings(kafka, topic, database_url, webhook_url=hook.url, webhook_secret=SECRET,
                                   timeout=1, give_up_after=4)
        publish(kafka, topic, [alert_body(f"x-{card}", 1, card) for card in cards])
        with notifier(settings):
            runs.wait_for(lambda: len(settled(database_url, "webhook")) == len(cards), 90, "every alert settled")
    rows = settled(database_url, "webhook")
    by_card = {card: [r for r in hook.snapshot() if r.key == f"x-{card}:1"] for card in cards}
    assert rows["x-r429:1"][:2] == ("delivered", 2)
    assert by_card["r429"][1].at - by_card["r429"][0].at >= 2.0, "waited the Retry-After seconds"
    assert rows["x-rdate:1"][:2] == ("delivered", 2)
    assert by_card["rdate"][1].at - by_card["rdate"][0].at >= 1.0, "waited until the Retry-After date"
    assert rows["x-slow:1"][0] == "delivered" and rows["x-slow:1"][1] >= 2
    assert "timed out" in rows["x-slow:1"][2].lower()
    status, attempts, error = rows["x-down:1"]
    assert status == "failed" and attempts >= 2 and error.startswith("HTTP 500")
    assert rows["x-bad:1"] == ("failed", 1, "HTTP 400: ok")
    assert rows["x-fine:1"][:2] == ("delivered", 1)
    for requests in by_card.values():
        assert len({r.body for r in requests}) == 1, "every attempt sends the same body"


def test_the_rate_limit_spaces_requests_to_a_destination(kafka, database_url):
    """At 5 requests per second (bursts of 5), 15 alerts take at least 2 s to go out."""
    topic = alerts_topic(kafka)
    with Receiver() as hook:
        settings = notify_settings(kafka, topic, database_url, webhook_url=hook.url, webhook_secret=SECRET,
                                   rate_limit=5.0)
        publish(kafka, topic, [alert_body(f"rl-{i}", 1, f"card-{i}") for i in range(15)])
        with notifier(settings):
            runs.wait_for(lambda: len(settled(database_url, "webhook")) == 15, 60, "15 deliveries")
    times = sorted(r.at for r in hook.snapshot())
    assert len(times) == 15
    assert times[-1] - times[0] >= 2.0 - 0.05, "(15 - 5 burst) / 5 per second"


def test_a_post_is_classified_without_naming_its_url():
    """A refused connection is retryable, a redirect permanent (never followed as a GET); no URL in the detail."""
    with Receiver(lambda *_: Answer(302, {"Location": "http://127.0.0.1:9/elsewhere"})) as moved:
        outcome = post(moved.url, b"{}", {}, 5, time.time)
    assert (outcome.kind, outcome.detail) == (Kind.PERMANENT, "HTTP 302: ok")
    closed = f"http://127.0.0.1:{free_port()}/hook"
    outcome = post(closed, b"{}", {}, 5, time.time)
    assert outcome.kind is Kind.RETRYABLE and "refused" in outcome.detail and "127.0.0.1" not in outcome.detail


def test_routing_sends_each_destination_only_its_rules_and_counts(kafka, database_url):
    """Slack only gets velocity alerts of 10+ transactions; the webhook gets everything."""
    topic = alerts_topic(kafka, partitions=1)
    with Receiver() as hook, Receiver() as slack:
        settings = notify_settings(kafka, topic, database_url, webhook_url=hook.url, webhook_secret=SECRET,
                                   slack_webhook_url=slack.url, rules="velocity", slack_min_count=10)
        publish(kafka, topic, [alert_body("s1", 1, "k1", count=6), alert_body("s1", 2, "k1", count=12),
                               alert_body("g1", 1, "k2", count=20, rule="geo"), alert_body("s2", 1, "k3", count=6)])
        with notifier(settings):
            for destination in ("webhook", "slack"):
                runs.wait_for(lambda d=destination: committed(kafka, d, topic) == 4, 60, f"{destination} to settle 4")
    assert sorted(hook.idempotency_keys()) == ["s1:1", "s1:2", "s2:1"]
    assert slack.idempotency_keys() == ["s1:2"]


def test_redelivered_copies_of_acknowledged_or_older_versions_are_not_sent_again(kafka, database_url, caplog):
    """The relay republishes after a crash: a copy of a delivered version, and a copy of a failed version
    that comes back after a newer one was delivered, are skipped; junk is logged with its offset."""
    caplog.set_level(logging.INFO, logger="fraud_detection")
    topic = alerts_topic(kafka, partitions=1)
    def refuse_v1(request: Request, _earlier) -> Answer:
        return Answer(400 if request.key == "d1:1" else 200)

    with Receiver(refuse_v1) as hook:
        settings = notify_settings(kafka, topic, database_url, webhook_url=hook.url, webhook_secret=SECRET)
        publish(kafka, topic, [alert_body("d1", 1, "kd"), alert_body("d1", 2, "kd"), alert_body("d1", 2, "kd"),
                               alert_body("d1", 1, "kd"), b"{not an alert", alert_body("d1", 3, "kd")])
        with notifier(settings):
            runs.wait_for(lambda: committed(kafka, "webhook", topic) == 6, 60, "six messages settled")
    assert hook.idempotency_keys() == ["d1:1", "d1:2", "d1:3"]
    assert "detail=\"duplicate\"" in caplog.text and "detail=\"superseded\"" in caplog.text
    assert "event=notify_rejected destination=webhook" in caplog.text and "offset=4 reason=invalid_json" in caplog.text


def test_a_notifier_killed_mid_delivery_resumes_and_resends_only_the_unacknowledged_version(
        kafka, database_url, tmp_path):
    """kill -9 while the webhook holds a request: after a restart that version goes again with the same key
    and body, the ones acknowledged before are not resent, and every version is delivered."""
    topic = alerts_topic(kafka, partitions=1)
    bodies = [alert_body(f"k-{i}", v, "kc") for i in range(3) for v in (1, 2)]
    keys = [f"k-{i}:{v}" for i in range(3) for v in (1, 2)]
    gate = threading.Event()

    def script(request: Request, earlier: list[Request]) -> Answer:
        return Answer(200, hold=gate) if request.key == keys[2] and not earlier else Answer(200)

    with Receiver(script) as hook:
        env = {**os.environ, "FRAUD_DATABASE_URL": database_url,
               "FRAUD_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "FRAUD_KAFKA__ALERTS_TOPIC": topic,
               "FRAUD_NOTIFY__WEBHOOK_URL": hook.url, "FRAUD_NOTIFY__WEBHOOK_SECRET": SECRET,
               "FRAUD_NOTIFY__RATE_LIMIT": "1000"}
        publish(kafka, topic, bodies)
        log_path = tmp_path / "notify.log"
        first = start(env, log_path)
        try:
            runs.wait_for(lambda: keys[2] in hook.idempotency_keys(), 60, "the third version to be in flight")
            os.kill(first.pid, signal.SIGKILL)
            first.wait(30)
        finally:
            stop(first)
        gate.set()  # the answer goes nowhere: the process is gone
        assert set(settled(database_url, "webhook")) == set(keys[:2])
        second = start(env, log_path)
        try:
            runs.wait_for(lambda: set(settled(database_url, "webhook")) == set(keys), 90, "every version settled")
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0, log_path.read_text()[-3000:]
        finally:
            stop(second)
    received = hook.snapshot()
    assert sorted(r.key for r in received) == sorted([*keys, keys[2]]), "only the in-flight version twice"
    again = [r for r in received if r.key == keys[2]]
    assert again[0].body == again[1].body
    for request in received:
        assert_signed(request)
    assert all(row[0] == "delivered" for row in settled(database_url, "webhook").values())
    assert "event=notify_delivered destination=webhook" in log_path.read_text()
    assert SECRET not in log_path.read_text() and hook.url not in log_path.read_text()


def start(env: dict[str, str], log_path) -> subprocess.Popen:
    with open(log_path, "a") as log:
        return subprocess.Popen([*runs.CLI, "notify"], env=env, stdout=log, stderr=log)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(30)


@pytest.fixture
def moto_sns(monkeypatch):
    """moto's server on loopback as an SNS (and SQS, to read back what was published) stand-in."""
    pytest.importorskip("moto", reason="the SNS tests need moto[server] (the test extra)")
    from moto.server import ThreadedMotoServer

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/nonexistent",
                        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_sns_publishes_each_version_with_attributes_and_dead_letters_a_missing_topic(kafka, database_url, moto_sns):
    """Through boto3 to moto's SNS: a FIFO topic's subscriber queue gets each version's JSON once (grouped by
    card, deduplicated on alert_id:version); a topic that does not exist is a permanent failure."""
    import boto3

    sns = boto3.client("sns", endpoint_url=moto_sns, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=moto_sns, region_name="us-east-1")
    arn = sns.create_topic(Name="fraud-alerts.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts-copy.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    topic = alerts_topic(kafka, partitions=1)
    bodies = [alert_body("n1", 1, "sc"), alert_body("n1", 2, "sc", count=7), alert_body("n2", 1, "sd")]
    publish(kafka, topic, bodies)
    settings = notify_settings(kafka, topic, database_url, sns_topic_arn=arn, sns_endpoint_url=moto_sns)
    with notifier(settings):
        runs.wait_for(lambda: len(settled(database_url, "sns")) == 3, 60, "three SNS deliveries")
    assert {row[:2] for row in settled(database_url, "sns").values()} == {("delivered", 1)}
    received = []
    deadline = time.monotonic() + 30
    while len(received) < 3 and time.monotonic() < deadline:
        reply = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        received += reply.get("Messages", [])
    assert sorted(m["Body"].encode() for m in received) == sorted(bodies)
    attributes = {m["MessageAttributes"]["idempotency_key"]["StringValue"]: m["MessageAttributes"] for m in received}
    assert set(attributes) == {"n1:1", "n1:2", "n2:1"}
    assert attributes["n1:2"]["card_id"]["StringValue"] == "sc"
    assert attributes["n1:2"]["txn_count"] == {"DataType": "Number", "StringValue": "7"}

    missing = arn.replace("fraud-alerts.fifo", "no-such-topic")
    topic2 = alerts_topic(kafka, partitions=1)
    publish(kafka, topic2, [alert_body("n3", 1, "se")])
    with notifier(notify_settings(kafka, topic2, database_url, sns_topic_arn=missing, sns_endpoint_url=moto_sns)):
        runs.wait_for(lambda: "n3:1" in settled(database_url, "sns"), 60, "the missing topic's dead letter")
    status, attempts, error = settled(database_url, "sns")["n3:1"]
    assert (status, attempts) == ("failed", 1) and "NotFound" in error
