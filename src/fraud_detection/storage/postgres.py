"""PostgreSQL access: versioned migrations and the batched, parameterised writes of each component."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources

import psycopg2
import psycopg2.extensions
import stamina
from psycopg2.extras import execute_values

from fraud_detection.ground_truth import Episode

log = logging.getLogger(__name__)

# Any constant works; it keeps concurrent `db migrate` runs (replicas, hook jobs) from racing.
_MIGRATION_LOCK_ID = 0x46524155


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """The SQL files in ``migrations/``, named ``NNNN_description.sql``, in version order."""
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    if len({m.version for m in found}) != len(found):
        raise RuntimeError("two migration files share a version number")
    return found


@stamina.retry(on=psycopg2.OperationalError, attempts=10, timeout=60)
def connect(url: str) -> psycopg2.extensions.connection:
    """A connection, retried with backoff while the server is starting or briefly unreachable."""
    return psycopg2.connect(url, connect_timeout=5, application_name="fraud-detection")


@contextmanager
def connection(url: str):
    conn = connect(url)
    try:
        yield conn
    finally:
        conn.close()


class LazyConnection:
    """One connection, opened on first use and again after it was closed or dropped (see ``reset``)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn = None

    def get(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._url)
        return self._conn

    def reset(self) -> None:
        """Forget a connection that failed, so the next ``get`` opens a fresh one."""
        self.close()
        self._conn = None

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()


def migrate(url: str) -> list[Migration]:
    """Apply the migrations not yet recorded, each in its own transaction; returns those applied.

    A recorded migration whose file has changed since is an error: migrations are append-only.
    """
    applied_now = []
    with connection(url) as conn:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_ID,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT version, checksum FROM schema_migrations")
            recorded = dict(cur.fetchall())
        try:
            for migration in available_migrations():
                if migration.version in recorded:
                    if recorded[migration.version] != migration.checksum:
                        raise RuntimeError(
                            f"migration {migration.version} ({migration.name}) changed after it was applied; "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                with conn, conn.cursor() as cur:
                    cur.execute(migration.sql)
                    cur.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration)
                log.info("event=migration_applied version=%d name=%s", migration.version, migration.name)
        finally:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_ID,))
    return applied_now


def pending_migrations(url: str) -> list[Migration]:
    """The migrations the database has not recorded yet (all of them on an empty database)."""
    with connection(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        recorded: set[int] = set()
        if cur.fetchone()[0]:
            cur.execute("SELECT version FROM schema_migrations")
            recorded = {row[0] for row in cur.fetchall()}
    return [m for m in available_migrations() if m.version not in recorded]


def utc(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)


def record_ground_truth(conn, source: str, episodes: Iterable[Episode]) -> int:
    """Insert ground-truth episodes into ``injected_attacks``; recording the same episode again is a no-op."""
    rows = [
        (source, e.card_id, e.kind, utc(e.first_event_time_ms), utc(e.last_event_time_ms), e.txn_count)
        for e in episodes
    ]
    if not rows:
        return 0
    with conn, conn.cursor() as cur:
        execute_values(
            cur,
            "INSERT INTO injected_attacks (source, card_id, kind, first_event_time, last_event_time, txn_count)"
            " VALUES %s ON CONFLICT DO NOTHING",
            rows,
        )
    return len(rows)


class GroundTruthRecorder:
    """Where a producer (the generator, a replay) records its episodes under ``source``; one connection."""

    def __init__(self, url: str, source: str) -> None:
        self.source = source
        self._conn = connect(url)

    def record(self, episodes: Iterable[Episode]) -> int:
        return record_ground_truth(self._conn, self.source, episodes)

    def close(self) -> None:
        self._conn.close()


def fetch_all(conn, query: str, params: Sequence = ()) -> list[tuple]:
    with conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()
