"""The detector's pure pieces: the sink's keys across Java and SQL, jar lookup, settings, the live view text."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import datetime, timezone
from importlib import resources

import pytest

from fraud_detection.detector.job import check_trigger
from fraud_detection.detector.velocity_state import (
    OPERATOR_PROJECT,
    OperatorBuildError,
    _sources_digest,
    operator_jars,
    snake_case,
)
from fraud_detection.kafka_clients import spark_source_options
from fraud_detection.live_view import render, summary_line
from fraud_detection.settings import SettingsError, load_settings
from fraud_detection.storage.reports import Deliveries, Health, RecentAlert, Totals

OPERATOR_SOURCES = OPERATOR_PROJECT / "src/main/java/io/github/frauddetection/velocity"


def _commit_unit_fields() -> dict[str, list[str]]:
    """CommitUnit's lists of the JSON keys it sends for each kind of row (velocity-operator's sink)."""
    source = (OPERATOR_SOURCES.parent / "sink" / "CommitUnit.java").read_text()
    return {name: re.findall(r'"(\w+)"', listed)
            for name, listed in re.findall(r"(\w+_FIELDS) = List\.of\(([^)]*)\)", source)}


def _recordset_columns() -> dict[str, list[str]]:
    """The keys detector_apply reads of each JSON array parameter (jsonb_to_recordset(p_x) AS x (columns))."""
    sql = resources.files("fraud_detection.storage").joinpath("migrations/R__detector_sink.sql").read_text()
    return {param: re.findall(r"(\w+) \w+(?:,|$)", " ".join(columns.split()))
            for param, columns in re.findall(r"jsonb_to_recordset\((p_\w+)\) AS \w+ \(([^)]*)\)", sql)}


def test_the_sink_sends_exactly_the_keys_its_sql_function_reads():
    """CommitUnit's JSON keys are the columns detector_apply takes from each array (a key missing on one side
    would arrive as NULL), and the tests' seeding rows (sink_units) are the same."""
    from tests.integration import sink_units

    sent = _commit_unit_fields()
    read = _recordset_columns()
    for java_list, param, row in [("ALERT_FIELDS", "p_alerts", sink_units.AlertRow),
                                  ("MERGE_FIELDS", "p_merges", None),
                                  ("REJECTED_FIELDS", "p_rejected", sink_units.RejectedRow),
                                  ("DUPLICATE_FIELDS", "p_duplicates", sink_units.DuplicateRow)]:
        assert sent[java_list] == read[param], java_list
        if row is not None:
            assert [f.name for f in fields(row)] == read[param], row


def test_the_operators_java_bean_names_map_to_the_sinks_fields():
    """Every key the sink reads of a row is the snake_case form of a getter of the operator's DetectorOutput."""
    bean = (OPERATOR_SOURCES / "DetectorOutput.java").read_text()
    getters = {snake_case(name[0].lower() + name[1:]) for name in re.findall(r"public \S+ get(\w+)\(\)", bean)}
    wanted = {"kind", *(key for keys in _commit_unit_fields().values() for key in keys)}
    assert wanted <= getters, wanted - getters


def test_missing_operator_jar_says_how_to_build_it(tmp_path):
    """An empty jars folder is an error that names `make operator`."""
    with pytest.raises(OperatorBuildError, match="make operator"):
        operator_jars(tmp_path)


def test_operator_build_folder_changes_with_its_sources(tmp_path):
    """The cache folder is named after a hash of pom.xml and the Java sources."""
    (tmp_path / "src/main/java").mkdir(parents=True)
    (tmp_path / "pom.xml").write_text("<project/>")
    source = tmp_path / "src/main/java/A.java"
    source.write_text("class A {}")
    before = _sources_digest(tmp_path)
    source.write_text("class A { int x; }")
    assert _sources_digest(tmp_path) != before


def test_detector_and_rule_settings_are_validated(monkeypatch):
    """Bad detector values fail fast naming the variable."""
    monkeypatch.setenv("FRAUD_DETECTOR__STARTING_OFFSETS", "yesterday")
    with pytest.raises(SettingsError, match="FRAUD_DETECTOR__STARTING_OFFSETS"):
        load_settings()
    monkeypatch.delenv("FRAUD_DETECTOR__STARTING_OFFSETS")
    monkeypatch.setenv("FRAUD_RULE__THRESHOLD", "0")
    with pytest.raises(SettingsError, match="FRAUD_RULE__THRESHOLD"):
        load_settings()


def test_sasl_credentials_reach_spark_as_a_jaas_line_with_quotes_and_backslashes_escaped():
    """Spark's Kafka source gets the same SASL settings as the Python clients; JAAS reads \\ and \\" as escapes."""
    settings = load_settings(kafka={"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                                    "sasl_username": "u", "sasl_password": 'p"w\\'})
    options = spark_source_options(settings.kafka)
    assert options["kafka.security.protocol"] == "SASL_SSL"
    assert options["kafka.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p\\"w\\\\";')


def test_a_sasl_password_with_a_leading_space_is_refused_saying_why():
    with pytest.raises(SettingsError, match="FRAUD_KAFKA__SASL_PASSWORD: .*begins with whitespace, which librdkafka"):
        load_settings(kafka={"sasl_password": " secret"})


def test_live_view_shows_totals_and_newest_alerts():
    """The screen lists each recent alert with its window and latency, and the detection totals."""
    t = datetime(2026, 11, 28, 14, 7, tzinfo=timezone.utc)
    totals = Totals(attacks=4, attacks_detected=3, decoys=2, decoys_alerted=0, alerts=3, rejected=1)
    health = Health(rate_per_s=1950.4, latency_p50_s=0.85, latency_p99_s=1.2)
    screen = render([RecentAlert("card-1", 7, t, t.replace(minute=9), 412.0)], totals, health)
    assert "card-1" in screen and "14:07:00 - 14:09:00" in screen and "0.41 s" in screen
    assert "detected      3" in screen
    assert "processed    1,950 tx/s" in screen and "p50  0.85s" in screen and "recall 75.0 %" in screen
    assert summary_line(totals, health) == ("event=live rate=1950 latency_p50_s=0.85s latency_p99_s=1.20s "
                                            "recall=75.0% attacks=4 detected=3 decoys=2 decoys_alerted=0 "
                                            "alerts=3 rejected=1")
    idle = summary_line(Totals(0, 0, 0, 0, 0, 0), Health(0.0, None, None))
    assert "latency_p50_s=- " in idle and "recall=n/a" in idle


def test_live_view_shows_what_notify_delivered_when_it_runs():
    """With `notify` running, each alert lists the destinations that acknowledged it, and a line sums them up."""
    t = datetime(2026, 11, 28, 14, 7, tzinfo=timezone.utc)
    totals = Totals(attacks=2, attacks_detected=2, decoys=0, decoys_alerted=0, alerts=2, rejected=0)
    health = Health(rate_per_s=100.0, latency_p50_s=0.5, latency_p99_s=0.9)
    alerts = [RecentAlert("card-1", 6, t, t, 400.0, "webhook"), RecentAlert("card-2", 6, t, t, 500.0, "")]
    sent = [Deliveries("webhook", delivered=5, pending=1, failed=0, latency_p50_s=0.21, latency_p99_s=0.4)]
    screen = render(alerts, totals, health, deliveries=sent).splitlines()
    assert "notifications: webhook 5 delivered, 1 pending, 0 failed (p50 0.21s, p99 0.40s)" in screen
    assert screen[screen.index(next(line for line in screen if line.startswith("card "))) + 1].endswith("  webhook")
    assert any(line.startswith("card-2") and line.endswith("  -") for line in screen)
    assert "sent to" not in render(alerts, totals, health)
    assert summary_line(totals, health, sent).endswith(" webhook_delivered=5 webhook_failed=0")


def test_realtime_mode_is_refused_before_spark_starts_on_a_spark_without_it():
    realtime = load_settings(detector={"trigger": "realtime", "operator": "transformwithstate", "master": "local[4]"})
    with pytest.raises(SettingsError, match="needs Spark 4.3 or later, and this is PySpark 4.0.4"):
        check_trigger(realtime, "4.0.4")
    check_trigger(realtime, "4.3.0")
    check_trigger(realtime, "5.0.0-preview1")
    check_trigger(load_settings(), "4.0.4")  # micro-batch runs on any
