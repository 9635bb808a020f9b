"""The dashboard (charts/fraud-detection/dashboards/*.json) against the real schema, on seeded data.

Data goes in through the pipeline's own writers (the detector's sink, the ground-truth recorder); each
panel's SQL is expanded as Grafana would and run on PostgreSQL; its result must have the shape its panel
type needs and the columns its field overrides name. The quality panels must agree with `evaluate`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from fraud_detection.evaluation import quality
from fraud_detection.ground_truth import Episode
from fraud_detection.local_stack.postgres import READER_ROLE
from fraud_detection.storage import detections, postgres, reports, schema
from fraud_detection.triage import store
from fraud_detection.triage.status import Status
from tests.charts.rendering import CHART
from tests.integration import sink_units
from tests.integration.grafana_sql import expand

DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
MINUTE_MS = 60_000
WINDOW_S = 600  # the rule window of the seeded run started last


@dataclass(frozen=True)
class Seeded:
    """A seeded database and the moment its data was stamped from (taken when seeding, not at import); the
    dashboards read it as the read-only role, as Grafana's datasource does."""

    url: str
    reader_url: str
    now: datetime

    @property
    def range(self) -> tuple[datetime, datetime]:
        """The dashboard's time range: the 30 minutes up to the seeding, as a user would look at it."""
        return self.now - timedelta(minutes=30), self.now + timedelta(minutes=1)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def seed(url: str, now: datetime) -> None:
    """Three attacks (two caught), a decoy that was alerted, a false alert, rejects, late records, metrics;
    triage: a2 resolved 20 s after it was raised, a3 acknowledged after 5 s then resolved, a1 and a4 open."""
    t0 = now - timedelta(minutes=20)
    def episode(card, kind, first_min, last_min, count):
        return Episode(card, kind, ms(t0) + first_min * MINUTE_MS, ms(t0) + last_min * MINUTE_MS, count)
    episodes = [episode("g-1", "attack", 0, 5, 8), episode("g-2", "attack", 1, 4, 7), episode("g-3", "attack", 2, 3, 6),
                episode("g-4", "decoy_below_threshold", 0, 9, 5)]
    def alert(alert_id, card, first_min, last_min, count, trigger_min):
        first = ms(t0) + first_min * MINUTE_MS
        return sink_units.alert(alert_id, card, first, ms(t0) + last_min * MINUTE_MS, count, 100 * count,
                                f"tx-{alert_id}", ms(now - timedelta(seconds=40)), ms(t0) + trigger_min * MINUTE_MS)
    duplicates = [sink_units.DuplicateRow("t", 0, offset, f"tx-{offset}", "g-1", ms(now)) for offset in (3, 4)]
    batches = [  # (the sink's unit, the input rows that Spark's progress brings)
        (sink_units.Unit(alerts=[alert("a1", "g-1", 0, 5, 8, 3), alert("a2", "g-2", 1, 4, 7, 2)]), 900),
        (sink_units.Unit(alerts=[alert("a3", "g-4", 0, 9, 6, 9), alert("a4", "x-9", 16, 19, 6, 19)],
                         rejected=[sink_units.RejectedRow("t", 0, 1, "invalid_json", "x", None, b"{", ms(now)),
                                   sink_units.RejectedRow("t", 0, 2, "late", "behind", None, b"{}", ms(now))],
                         duplicates=duplicates), 1100),
    ]
    with postgres.connection(url) as conn:
        detections.record_run(conn, "run-0", "velocity", 5, 900_000, 120_000, "mapgroups", "microbatch")
        detections.record_run(conn, "run-1", "velocity", 5, WINDOW_S * 1000, 120_000, "mapgroups", "microbatch")
        postgres.record_ground_truth(conn, "generator:seed", episodes)
        for batch_id, (unit, input_rows) in enumerate(batches):
            sink_units.apply(conn, "run-1", batch_id, unit, now - timedelta(seconds=30 - 10 * batch_id))
            detections.record_progress(conn, "run-1", batch_id, input_rows, 750.0 + batch_id, {"addBatch": 700.0})
        for alert_id, to, seconds_ago in (("a2", Status.RESOLVED, 10), ("a3", Status.ACKNOWLEDGED, 15),
                                          ("a3", Status.RESOLVED, 5)):
            store.change_status(conn, alert_id, to, "ann", at=now - timedelta(seconds=seconds_ago))


@pytest.fixture(scope="module")
def seeded(pg_server) -> Seeded:
    name = f"dashboard_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    schema.migrate(url)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    seed(url, now)
    return Seeded(url, pg_server.uri(name, READER_ROLE), now)


def panels(dashboard: dict) -> list[dict]:
    found = []
    for panel in dashboard["panels"]:
        found += panel.get("panels", []) if panel["type"] == "row" else [panel]
    return found


def variables(dashboard: dict, reader_url: str | None = None) -> dict[str, str]:
    """Each variable's value as Grafana sets it: a query variable's first value from the database (queries
    may use the variables before them), any other's current value."""
    values: dict[str, str] = {}
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query" and reader_url is not None:
            values[v["name"]] = str(result_of(reader_url, expand(v["query"], *_ANY_RANGE, values))[1][0][0])
        else:
            values[v["name"]] = v["current"].get("value", "")
    return values


_ANY_RANGE = (datetime(2000, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_valid_and_every_panel_has_a_query(path):
    """Valid JSON with a stable uid; every panel queries the fraud-postgres datasource with raw SQL."""
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"]
    assert len(panels(dashboard)) >= 12
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels(dashboard):
        assert panel["datasource"]["uid"] == "fraud-postgres", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["rawSql"].strip(), panel["title"]
    assert {"rule", "window", "bucket"} <= set(variables(dashboard))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_no_variable_restates_configuration_and_the_window_is_the_rules_newest_run(path, seeded):
    """A variable is read from the database, typed in or a bucket size: none holds a copy of a setting
    (a changed rule would make its panels lie). The window is the rule's as the detector last recorded it."""
    dashboard = json.loads(path.read_text())
    assert {v["type"] for v in dashboard["templating"]["list"]} <= {"query", "textbox", "interval"}
    assert variables(dashboard, seeded.reader_url)["window"] == str(WINDOW_S)


def result_of(url: str, sql: str) -> tuple[list[str], list[tuple]]:
    with postgres.connection(url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return [c.name for c in cur.description], cur.fetchall()


def numeric(value) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool)) or (
        type(value).__name__ == "Decimal")


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_query_runs_and_returns_what_its_panel_needs(path, seeded):
    """Each panel's SQL, macros and variables expanded, runs on the schema and fits its visualisation."""
    dashboard = json.loads(path.read_text())
    for panel in panels(dashboard):
        for target in panel["targets"]:
            sql = expand(target["rawSql"], *seeded.range, variables(dashboard, seeded.reader_url))
            columns, rows = result_of(seeded.reader_url, sql)
            where = f"{panel['title']!r}: {sql}"
            assert rows, f"no rows on the seeded data for {where}"
            if panel["type"] == "timeseries":
                assert columns[0] == "time" and len(columns) >= 2, where
                assert all(numeric(v) for row in rows for v in row[1:]), where
            elif panel["type"] == "stat":
                assert len(rows) == 1 and all(numeric(v) for v in rows[0]), where
            elif panel["type"] == "barchart":
                assert isinstance(rows[0][0], str) and all(numeric(v) for v in rows[0][1:]), where
            for override in panel["fieldConfig"]["overrides"]:
                assert override["matcher"]["options"] in columns, f"override names a missing column in {where}"


def test_quality_panels_agree_with_evaluate(seeded):
    """Recall, precision, false alerts and decoys alerted: the dashboard and `evaluate` give the same numbers."""
    dashboard = json.loads(DASHBOARDS[0].read_text())
    stats = {}
    for panel in panels(dashboard):
        if panel["type"] == "stat":
            sql = expand(panel["targets"][0]["rawSql"], *seeded.range, variables(dashboard, seeded.reader_url))
            stats[panel["title"]] = result_of(seeded.reader_url, sql)[1][0][0]
    with postgres.connection(seeded.reader_url) as conn:
        truth, alerts = reports.evaluation_rows(conn, *seeded.range)
    ev = quality.evaluate([quality.Truth(**t) for t in truth], [quality.AlertRecord(**a) for a in alerts], 5, 600_000)
    assert (ev.attacks, ev.detected, len(ev.false_alerts), ev.decoys_alerted) == (3, 2, 2, 1)
    assert stats["Attacks injected"] == ev.attacks
    assert stats["Attacks detected"] == ev.detected
    assert float(stats["Recall"]) == pytest.approx(100 * ev.recall)
    assert float(stats["Precision"]) == pytest.approx(100 * ev.precision)
    assert stats["Alerts with no injected attack"] == len(ev.false_alerts)
    assert stats["Decoys alerted"] == ev.decoys_alerted


def panel_rows(title: str, start: datetime, end: datetime, url: str) -> list[tuple]:
    dashboard = json.loads(DASHBOARDS[0].read_text())
    (panel,) = [p for p in panels(dashboard) if p["title"] == title]
    return result_of(url, expand(panel["targets"][0]["rawSql"], start, end, variables(dashboard, url)))[1]


def test_open_alerts_are_the_backlog_whatever_the_time_range(seeded):
    """Open alerts: a1 and a4 (a2 and a3 were resolved), oldest first, also when the range shows none of them."""
    for start, end in (seeded.range, (seeded.now - timedelta(days=2), seeded.now - timedelta(days=1))):
        assert panel_rows("Open alerts", start, end, seeded.reader_url) == [(2,)]
        rows = panel_rows("Open alerts (oldest first)", start, end, seeded.reader_url)
        assert [(alert_id, card) for alert_id, _, card, *_ in rows] == [("a1", "g-1"), ("a4", "x-9")]
        assert [raised for _, raised, *_ in rows] == [seeded.now - timedelta(seconds=30),
                                                       seeded.now - timedelta(seconds=20)]


def test_time_to_acknowledge_over_the_alerts_taken_in_the_range(seeded):
    """From commit to taken: a2 resolved straight from open after 20 s, a3 acknowledged after 5 s (its later
    resolution does not count); a range ending before a2 was taken holds a3 alone."""
    assert panel_rows("Time to acknowledge", *seeded.range, seeded.reader_url) == [
        (pytest.approx(12.5), pytest.approx(5 + 0.9 * 15))]
    before_a2 = seeded.now - timedelta(seconds=12)
    assert panel_rows("Time to acknowledge", seeded.range[0], before_a2, seeded.reader_url) == [
        (pytest.approx(5.0), pytest.approx(5.0))]


def test_live_view_health_matches_the_seeded_metrics(seeded):
    """make run's headline: processed rate from the batch metrics, latency percentiles from the alerts."""
    with postgres.connection(seeded.reader_url) as conn:
        health = reports.health(conn, rate_s=120, at=seeded.now)
    assert health.rate_per_s == pytest.approx((900 + 1100) / 120)
    assert health.latency_p50_s == pytest.approx(15.0)  # alerts stored 10 s and 20 s after their trigger
    assert health.latency_p99_s == pytest.approx(20.0)


def test_a_query_naming_a_missing_column_fails(seeded):
    """The check above can fail: a panel query with a misspelt column is an error on the real schema."""
    import psycopg2

    with pytest.raises(psycopg2.errors.UndefinedColumn):
        result_of(seeded.reader_url, expand("SELECT $__timeGroupAlias(detected_at, '1m'), count(*) FROM alerts "
                                            "WHERE $__timeFilter(detectd_at) GROUP BY 1", *seeded.range, {}))
