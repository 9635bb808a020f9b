"""The schema's migrations on a real PostgreSQL: versioned ones once, repeatable ones whenever they change."""

import dataclasses

import pytest

from fraud_detection.storage import postgres, schema

TABLES = {"alerts", "rejected_transactions", "injected_attacks", "pipeline_metrics", "schema_migrations",
          "alert_status_history"}


def test_migrate_is_idempotent(database_url):
    """A second migrate applies nothing and the tables are all there."""
    assert schema.migrate(database_url) == []
    with postgres.connection(database_url) as conn:
        tables = {r[0] for r in postgres.fetch_all(conn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        versions = postgres.fetch_all(conn, "SELECT version FROM schema_migrations ORDER BY version")
    assert tables >= TABLES
    assert [v for (v,) in versions] == [m.version for m in schema.available_migrations() if not m.repeatable]


def test_time_indexes_exist(database_url):
    """Dashboard time-range queries have indexes on every table's time column."""
    with postgres.connection(database_url) as conn:
        rows = postgres.fetch_all(conn, "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'")
        indexes = {r[0] for r in rows}
    for column in ("alerts USING btree (detected_at)", "injected_attacks USING btree (first_event_time)",
                   "rejected_transactions USING btree (rejected_at)", "pipeline_metrics USING btree (recorded_at)",
                   "alerts USING btree (acknowledged_at)"):
        assert any(column in index for index in indexes), column


def _edited(name: str, edit, repeatable: bool = False) -> list[schema.Migration]:
    return [dataclasses.replace(m, sql=edit(m.sql)) if (m.name, m.repeatable) == (name, repeatable) else m
            for m in schema.available_migrations()]


def test_an_edited_statement_is_refused_but_a_corrected_comment_is_not(database_url, monkeypatch):
    """Changing an applied migration's SQL is an error that says to add a new one; its comments may change."""
    commented = _edited("initial", lambda sql: sql.replace("-- Alerts,", "-- The alerts,") + "\n-- a note\n")
    monkeypatch.setattr(schema, "available_migrations", lambda: commented)
    assert schema.migrate(database_url) == []
    edited = _edited("initial", lambda sql: sql + "\nCREATE TABLE extra (id int);")
    monkeypatch.setattr(schema, "available_migrations", lambda: edited)
    with pytest.raises(RuntimeError, match="add a new migration"):
        schema.migrate(database_url)


def test_a_checksum_recorded_over_the_whole_text_is_recorded_anew(database_url):
    """Databases migrated before comments left the checksum keep working, and are brought up to date."""
    first = next(m for m in schema.available_migrations() if m.version == 1)
    with postgres.connection(database_url) as conn, conn, conn.cursor() as cur:
        cur.execute("UPDATE schema_migrations SET checksum = %s WHERE version = 1", (first.legacy_checksum,))
    assert schema.migrate(database_url) == []
    with postgres.connection(database_url) as conn:
        assert postgres.fetch_all(conn, "SELECT checksum FROM schema_migrations WHERE version = 1") == [
            (first.checksum,)]


def test_a_repeatable_migration_is_applied_again_when_it_changes_and_only_then(database_url, monkeypatch):
    """A function lives in one R__ file: editing it re-applies it on the next migrate."""
    assert schema.pending_migrations(database_url) == []
    edited = _edited("history_retention", lambda sql: sql.replace("RETURN NEXT;\nEND", "RETURN NEXT;\n    -- x\nEND"),
                     repeatable=True)
    monkeypatch.setattr(schema, "available_migrations", lambda: edited)
    assert [m.name for m in schema.pending_migrations(database_url)] == ["history_retention"]
    assert [m.name for m in schema.migrate(database_url)] == ["history_retention"]
    assert schema.migrate(database_url) == []
    with postgres.connection(database_url) as conn:
        (body,) = postgres.fetch_all(conn, "SELECT prosrc FROM pg_proc WHERE proname = 'prune_history'")[0]
    assert "-- x" in body


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
    assert schema.pending_migrations(url) == schema.available_migrations()
    assert main(["check", "--postgres"]) == 1
    schema.migrate(url)
    assert schema.pending_migrations(url) == []
    assert main(["check", "--postgres"]) == 0


def test_check_kafka_finds_the_topic_or_fails(stack_env, monkeypatch):
    """`check --kafka` passes for an existing topic and fails for a missing one."""
    from fraud_detection.cli import main

    assert main(["check", "--kafka"]) == 0
    monkeypatch.setenv("FRAUD_KAFKA__TOPIC", "no-such-topic")
    assert main(["check", "--kafka"]) == 1
