"""`fraud-detection db prune` (R__history_retention.sql): old bookkeeping goes, records and what is needed stay."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fraud_detection.cli import main
from fraud_detection.storage import postgres, retention

OLD, RECENT = "40 days", "1 hour"  # ago, from the database's clock


def _fill(cur) -> None:
    for run, batch, at in [("run-a", 0, OLD), ("run-a", 1, OLD), ("run-a", 2, RECENT),
                           ("run-b", 0, OLD), ("run-b", 1, OLD)]:  # run-b stopped 40 days ago
        cur.execute("INSERT INTO pipeline_metrics (component, run_id, batch_id, recorded_at, input_rows)"
                    " VALUES ('detector', %s, %s, now() - %s::interval, 10)", (run, batch, at))
    for offset, at in [(1, OLD), (2, RECENT)]:
        cur.execute("INSERT INTO duplicate_transactions (topic, kafka_partition, kafka_offset, transaction_id,"
                    " card_id, recorded_at) VALUES ('t', 0, %s, 'tx', 'c1', now() - %s::interval)", (offset, at))
    for version, published in [(1, OLD), (2, RECENT), (3, None)]:
        cur.execute("INSERT INTO alert_outbox (alert_id, version, card_id, payload, created_at, published_at)"
                    " VALUES ('a1', %s, 'c1', '{}', now() - %s::interval, now() - %s::interval)",
                    (version, OLD, published))


def _left(conn) -> dict[str, list[tuple]]:
    return {
        "duplicate_transactions": postgres.fetch_all(conn, "SELECT kafka_offset FROM duplicate_transactions"),
        "pipeline_metrics": postgres.fetch_all(conn, "SELECT run_id, batch_id FROM pipeline_metrics ORDER BY 1, 2"),
        "alert_outbox": postgres.fetch_all(conn, "SELECT version FROM alert_outbox ORDER BY 1"),
    }


def test_prune_deletes_old_bookkeeping_but_not_unpublished_messages(database_url):
    with postgres.connection(database_url) as conn, conn, conn.cursor() as cur:
        _fill(cur)
    deleted = retention.prune_history(database_url, timedelta(days=30))
    assert deleted == {"pipeline_metrics": 4, "duplicate_transactions": 1, "alert_outbox": 1}
    with postgres.connection(database_url) as conn:
        assert _left(conn) == {
            "duplicate_transactions": [(2,)],
            "pipeline_metrics": [("run-a", 2)],
            "alert_outbox": [(2,), (3,)],  # 3 is not published yet
        }
    assert retention.prune_history(database_url, timedelta(days=30)) == dict.fromkeys(deleted, 0)


def test_a_long_retention_keeps_everything(database_url):
    with postgres.connection(database_url) as conn, conn, conn.cursor() as cur:
        _fill(cur)
    assert set(retention.prune_history(database_url, timedelta(days=60)).values()) == {0}


def test_db_prune_command(database_url, monkeypatch, caplog):
    monkeypatch.setenv("FRAUD_DATABASE_URL", database_url)
    with postgres.connection(database_url) as conn, conn, conn.cursor() as cur:
        _fill(cur)
    caplog.set_level("INFO", logger="fraud_detection")
    assert main(["db", "prune", "--keep-days", "30"]) == 0
    assert "pipeline_metrics=4 duplicate_transactions=1 alert_outbox=1" in caplog.text


def test_db_prune_on_an_old_schema_asks_for_the_migration(pg_server, monkeypatch, caplog):
    url = pg_server.create_database(f"unmigrated_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("FRAUD_DATABASE_URL", url)
    assert main(["db", "prune"]) == 1
    assert "run `fraud-detection db migrate` first" in caplog.text
