import pytest

from fraud_detection.storage import postgres

TABLES = {"alerts", "rejected_transactions", "injected_attacks", "pipeline_metrics", "schema_migrations"}


def test_migrate_is_idempotent(database_url):
    """A second migrate applies nothing and the tables are all there."""
    assert postgres.migrate(database_url) == []
    with postgres.connection(database_url) as conn:
        tables = {r[0] for r in postgres.fetch_all(conn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        versions = postgres.fetch_all(conn, "SELECT version FROM schema_migrations ORDER BY version")
    assert TABLES <= tables
    assert [v for (v,) in versions] == [m.version for m in postgres.available_migrations()]


def test_time_indexes_exist(database_url):
    """Dashboard time-range queries have indexes on every table's time column."""
    with postgres.connection(database_url) as conn:
        indexes = {r[0] for r in postgres.fetch_all(conn, "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'")}
    for column in ("alerts USING btree (detected_at)", "injected_attacks USING btree (first_event_time)",
                   "rejected_transactions USING btree (rejected_at)", "pipeline_metrics USING btree (recorded_at)"):
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
    from fraud_detection.generator.simulate import Episode

    episodes = [Episode("c-1", "attack", 1_000, 60_000, 7), Episode("c-2", "decoy_slow", 0, 700_000, 6)]
    with postgres.connection(database_url) as conn:
        postgres.record_ground_truth(conn, "test", episodes)
        postgres.record_ground_truth(conn, "test", episodes)
        assert postgres.fetch_all(conn, "SELECT count(*) FROM injected_attacks")[0][0] == 2
