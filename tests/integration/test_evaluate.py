"""`fraud-detection evaluate` on a replayed labelled CSV, after the real detector has processed it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from confluent_kafka import Producer

from tests.integration.conftest import CACHE_DIR

CLI = [sys.executable, "-m", "fraud_detection.cli"]
START = 1_700_000_000


def write_labelled_csv(path) -> None:
    """Two labelled attacks the rule can see, two it cannot (3 swipes; 7 over an hour), a legitimate burst,
    background."""
    rows = []
    rows += [(f"f1-{i}", "f1", START + 30 * i, 1) for i in range(7)]       # 6th swipe at +150 s
    rows += [(f"f2-{i}", "f2", START + 20 * i + 900, 1) for i in range(8)]  # 6th swipe at +100 s
    rows += [(f"f3-{i}", "f3", START + 60 * i, 1) for i in range(3)]        # too few for the velocity rule
    rows += [(f"f4-{i}", "f4", START + 600 * i, 1) for i in range(7)]       # one per 10 minutes: too spread
    rows += [(f"l9-{i}", "l9", START + 40 * i, 0) for i in range(7)]        # a legitimate burst: a false alert
    rows += [(f"bg-{i}", f"bg{i % 40}", START + 13 * i, 0) for i in range(120)]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["transaction_id", "card_id", "event_time", "amount", "is_fraud"])
        writer.writerows((tid, card, t, "25.00", label) for tid, card, t, label in rows)


def run(argv, env, timeout=300):
    result = subprocess.run([*CLI, *argv], env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.timeout(400)
def test_evaluate_a_replayed_labelled_data_set(stack_env, tmp_path):
    """Labels become ground truth; after detection, evaluate reports recall 2/4, precision 2/3, the delays,
    the missed episodes with their reasons (one card's malformed record counted through the read-only role)
    and the false alert, as a table, JSON and an HTML page."""
    data = tmp_path / "labelled.csv"
    write_labelled_csv(data)
    env = {**os.environ, **stack_env, "FRAUD_LOCAL__CACHE_DIR": str(CACHE_DIR)}
    run(["replay", str(data), "--map", "label=is_fraud"], env)
    producer = Producer({"bootstrap.servers": stack_env["FRAUD_KAFKA__BOOTSTRAP_SERVERS"]})
    producer.produce(stack_env["FRAUD_KAFKA__TOPIC"], key=b"f3", value=b"{not json")
    assert producer.flush(30) == 0
    run(["detect", "--until-drained", "--checkpoint-dir", str(tmp_path / "checkpoint")], env)

    summary = json.loads(run(["evaluate", "--source", "replay:labelled.csv", "--format", "json"], env).stdout)
    assert (summary["attacks"], summary["detected"], summary["alerts"], summary["false_alerts"]) == (4, 2, 3, 1)
    assert summary["recall"] == pytest.approx(2 / 4) and summary["precision"] == pytest.approx(2 / 3)
    missed = {m["card_id"]: (m["reason"], m["rejected_records"]) for m in summary["missed_attacks"]}
    assert missed == {"f3": ("too_few_transactions", 1), "f4": ("spread_wider_than_window", 0)}
    assert [f["card_id"] for f in summary["false_alerts_list"]] == ["l9"]
    assert summary["event_time_delay_s"]["count"] == 2
    assert summary["event_time_delay_s"]["p50"] == pytest.approx(125.0)  # (150 + 100) / 2
    assert summary["processing_delay_s"]["count"] == 2

    page = tmp_path / "report.html"
    table = run(["evaluate", "--source", "replay:", "--html", str(page)], env).stdout
    assert "recall 50.0 %" in table and "precision 66.7 %" in table
    assert page.read_text().count("<svg") == 3

    window = run(["evaluate", "--since", str(START + 800), "--format", "json"], env).stdout
    assert json.loads(window)["attacks"] == 1, "only f2 starts after the --since time"
