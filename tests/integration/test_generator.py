import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal

import jsonschema

from fraud_detection.generator.generate import generate
from fraud_detection.heartbeat import read_status
from fraud_detection.settings import load_settings
from fraud_detection.storage import postgres
from fraud_detection.transaction import SCHEMA, parse_event_time
from tests.integration.kafka_reading import read_topic

START = 1_764_338_400_000


def test_produce_n_consume_n_all_valid(kafka, topic, settings):
    """Every transaction sent arrives once, keyed by card, valid against the schema, over all partitions."""
    fast = load_settings(generator={"rate": 20_000, "clock_speed": 60, "seed": 3, "population": 1_000_000})
    fast = fast.model_copy(update={"kafka": settings.kafka, "database_url": settings.database_url})
    summary = generate(fast, count=30_000, start_ms=START)
    assert summary.sent >= 30_000 and summary.delivery.delivered == summary.sent
    messages = read_topic(kafka.bootstrap_servers, topic, expected=summary.sent)
    assert len(messages) == summary.sent
    validator = jsonschema.Draft202012Validator(json.loads(json.dumps(SCHEMA), parse_float=Decimal))
    ids = set()
    for key, value, _ in messages:
        doc = json.loads(value, parse_float=Decimal)
        validator.validate(doc)
        assert key.decode() == doc["card_id"]
        ids.add(doc["transaction_id"])
    assert len(ids) == summary.sent
    assert {p for _, _, p in messages} == {0, 1, 2}


def test_ground_truth_rows_are_written(kafka, topic, settings, database_url):
    """Each injected attack and decoy gets an injected_attacks row matching the traffic on the topic."""
    fast = load_settings(generator={"rate": 5_000, "clock_speed": 600, "seed": 5, "population": 1_000_000,
                                    "attack_interval": 10})
    fast = fast.model_copy(update={"kafka": settings.kafka, "database_url": settings.database_url})
    summary = generate(fast, count=60_000, start_ms=START)
    with postgres.connection(database_url) as conn:
        rows = postgres.fetch_all(conn, "SELECT card_id, kind, first_event_time, last_event_time, txn_count "
                                        "FROM injected_attacks WHERE source = %s", (f"generator:{summary.card_space}",))
    assert Counter(kind for _, kind, *_ in rows) == Counter(summary.episodes)
    assert summary.episodes.get("attack", 0) >= 5
    swipes: dict[str, list] = {}
    for _, value, _ in read_topic(kafka.bootstrap_servers, topic):
        doc = json.loads(value)
        swipes.setdefault(doc["card_id"], []).append(parse_event_time(doc["event_time"]))
    window = 600_000
    for card, kind, first, last, count in rows:
        first_ms, last_ms = (int(t.timestamp() * 1000) for t in (first, last))
        # Exactly the recorded swipes, and no other swipe of the card within a window either side.
        assert sorted(t for t in swipes[card] if first_ms <= t <= last_ms) == sorted(
            t for t in swipes[card] if first_ms - window < t < last_ms + window), (card, kind)
        assert sum(first_ms <= t <= last_ms for t in swipes[card]) == count, (card, kind)


def test_sigterm_flushes_and_exits_0(kafka, topic, stack_env, tmp_path):
    """SIGTERM makes the generator deliver what it buffered, report it and exit 0."""
    status = tmp_path / "heartbeat"
    env = {**os.environ, **stack_env, "FRAUD_GENERATOR__RATE": "20000", "FRAUD_GENERATOR__POPULATION": "5000000",
           "FRAUD_GENERATOR__CLOCK_SPEED": "10", "FRAUD_GENERATOR__HEARTBEAT_FILE": str(status)}
    process = subprocess.Popen([sys.executable, "-m", "fraud_detection.cli", "generate"], env=env,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while (read_status(status) or {"sent": 0})["sent"] <= 10_000:  # mid-stream, however slow the start
        assert time.monotonic() < deadline and process.poll() is None, "the generator sent nothing in 120 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    [stop_line] = [line for line in err.splitlines() if "event=generator_stop" in line]
    fields = dict(part.split("=", 1) for part in stop_line.split() if "=" in part and "{" not in part)
    assert int(fields["sent"]) > 10_000 and fields["failed"] == "0" and fields["undelivered"] == "0"
    assert len(read_topic(kafka.bootstrap_servers, topic, expected=int(fields["sent"]))) == int(fields["sent"])
