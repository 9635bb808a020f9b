import pytest

from fraud_detection.storage import postgres

TABLES = {"alerts", "rejected_transactions", "injected_attacks", "pipeline_metrics", "schema_migrations",
          "alert_status_history"}


def test_migrate_is_idempotent(database_url):
    """A second migrate applies nothing and the tables are all there."""
    assert postgres.migrate(database_url) == []
    with postgres.connection(database_url) as conn:
        tables = {r[0] for r in postgres.fetch_all(conn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        versions = postgres.fetch_all(conn, "SELECT version FROM schema_migrations ORDER BY version")
    assert tables >= TABLES
    assert [v for (v,) in versions] == [m.version for m in postgres.available_migrations()]


def test_time_indexes_exist(database_url):
    """Dashboard time-range queries have indexes on every table's time column."""
    with postgres.connection(database_url) as conn:
        rows = postgres.fetch_all(conn, "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'")
        indexes = {r[0] for r in rows}
    for column in ("alerts USING btree (detected_at)", "injected_attacks USING btree (first_event_time)",
                   "rejected_transactions USING btree (rejected_at)", "pipeline_metrics USING btree (recorded_at)",
                   "alerts USING btree (acknowledged_at)"):
        assert any(column in index for index in indexes), column


def test_edited_migration_is_refused(database_url, monkeypatch):
    """Changing an applied migration is an error that says to add a new one."""
    original = postgres.available_migrations()
    edited = [postgres.Migration(m.version, m.name, m.sql + "\n-- edited") for m in original]
    monkeypatch.setattr(postgres, "available_migrations", lambda: edited)
    with pytest.raises(RuntimeError, match="add a new migration"):
        postgres.migrate(database_url)


def test_ground_truth_insert_is_idempotent(database_url):
    """Recording the same episodes twice leaves one row each."""
    from fraud_detection.ground_truth import Episode

    episodes = [Episode("c-1", "attack", 1_000, 60_000, 7), Episode("c-2", "decoy_slow", 0, 700_000, 6)]
    with postgres.connection(database_url) as conn:
        postgres.record_ground_truth(conn, "test", episodes)
        postgres.record_ground_truth(conn, "test", episodes)
        assert postgres.fetch_all(conn, "SELECT count(*) FROM injected_attacks")[0][0] == 2


def test_pending_migrations_and_check_postgres(pg_server, monkeypatch):
    """An empty database has every migration pending and fails `check --postgres`; once migrated it passes."""
    import uuid

    from fraud_detection.cli import main

    url = pg_server.create_database(f"test_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("FRAUD_DATABASE_URL", url)
    assert postgres.pending_migrations(url) == postgres.available_migrations()
    assert main(["check", "--postgres"]) == 1
    postgres.migrate(url)
    assert postgres.pending_migrations(url) == []
    assert main(["check", "--postgres"]) == 0


def test_check_kafka_finds_the_topic_or_fails(stack_env, monkeypatch):
    """`check --kafka` passes for an existing topic and fails for a missing one."""
    from fraud_detection.cli import main

    assert main(["check", "--kafka"]) == 0
    monkeypatch.setenv("FRAUD_KAFKA__TOPIC", "no-such-topic")
    assert main(["check", "--kafka"]) == 1
