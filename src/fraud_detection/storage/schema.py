"""The database schema: versioned migrations, applied once each, and repeatable ones, applied again whenever they
change (as Flyway's ``R__`` scripts), for functions and views, so that changing one is one diff.

Files in ``migrations/``: ``NNNN_description.sql`` (versioned, append-only) and ``R__description.sql``
(repeatable, applied after every versioned one, in name order). A versioned migration is checked against what
was applied by a checksum of its statements: its comments may be corrected, its SQL may not.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

from fraud_detection.storage.postgres import connection

log = logging.getLogger(__name__)

# Any constant works; it keeps concurrent `db migrate` runs (replicas, init containers) from racing.
_MIGRATION_LOCK_ID = 0x46524155
_REPEATABLE_PREFIX = "R__"
# A comment to the end of the line, outside quoted text: '...' strings, "..." names, $tag$...$tag$ bodies.
_SQL_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(\$[A-Za-z_]*\$).*?\1|(--[^\n]*)", re.S)


def statements_only(sql: str) -> str:
    """``sql`` without its ``--`` comments and trailing blanks: what a versioned migration's checksum covers."""
    text = _SQL_TOKEN.sub(lambda m: "" if m.group(2) else m.group(0), sql)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


@dataclass(frozen=True, slots=True)
class Migration:
    version: int | None  # None: repeatable
    name: str
    sql: str

    @property
    def repeatable(self) -> bool:
        return self.version is None

    @property
    def checksum(self) -> str:
        """Of the statements, for a versioned migration; of the whole text, for a repeatable one (any edit to
        a function's body, its comments included, applies it again)."""
        return _sha256(self.sql if self.repeatable else statements_only(self.sql))

    @property
    def legacy_checksum(self) -> str:
        """What schema_migrations recorded before comments were left out of the checksum."""
        return _sha256(self.sql)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """Every migration file: the versioned ones in version order, then the repeatable ones by name."""
    folder = resources.files(__package__).joinpath("migrations")
    versioned, repeatable = [], []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        stem = entry.name.removesuffix(".sql")
        if stem.startswith(_REPEATABLE_PREFIX):
            repeatable.append(Migration(None, stem.removeprefix(_REPEATABLE_PREFIX), entry.read_text()))
        else:
            number, _, rest = stem.partition("_")
            versioned.append(Migration(int(number), rest, entry.read_text()))
    versioned.sort(key=lambda m: m.version)
    repeatable.sort(key=lambda m: m.name)
    if len({m.version for m in versioned}) != len(versioned):
        raise RuntimeError("two migration files share a version number")
    return versioned + repeatable


_HISTORY_TABLES = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
    " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS schema_repeatables (name text PRIMARY KEY, checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())",
)


def migrate(url: str) -> list[Migration]:
    """Apply what the database lacks, each migration in its own transaction; returns those applied.

    An applied versioned migration whose statements changed since is an error: add a new migration instead.
    """
    applied_now = []
    with connection(url) as conn:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_ID,))
            for statement in _HISTORY_TABLES:
                cur.execute(statement)
            cur.execute("SELECT version, checksum FROM schema_migrations")
            versions = dict(cur.fetchall())
            cur.execute("SELECT name, checksum FROM schema_repeatables")
            repeatables = dict(cur.fetchall())
        try:
            for migration in available_migrations():
                if migration.repeatable:
                    if repeatables.get(migration.name) == migration.checksum:
                        continue
                elif migration.version in versions:
                    _check_unchanged(conn, migration, versions[migration.version])
                    continue
                with conn, conn.cursor() as cur:
                    cur.execute(migration.sql)
                    _record(cur, migration)
                applied_now.append(migration)
                log.info("event=migration_applied version=%s name=%s", migration.version or "R", migration.name)
        finally:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_ID,))
    return applied_now


def _check_unchanged(conn, migration: Migration, recorded: str) -> None:
    if recorded == migration.checksum:
        return
    if recorded == migration.legacy_checksum:  # recorded over the whole text: the same file, recorded anew
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE schema_migrations SET checksum = %s WHERE version = %s",
                        (migration.checksum, migration.version))
        return
    raise RuntimeError(f"migration {migration.version} ({migration.name}) changed after it was applied; "
                       "add a new migration instead of editing an applied one")


def _record(cur, migration: Migration) -> None:
    if migration.repeatable:
        cur.execute("INSERT INTO schema_repeatables (name, checksum) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE"
                    " SET checksum = EXCLUDED.checksum, applied_at = now()", (migration.name, migration.checksum))
    else:
        cur.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum))


def pending_migrations(url: str) -> list[Migration]:
    """What ``migrate`` would apply now (everything on an empty database)."""
    with connection(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL,"
                    " to_regclass('schema_repeatables') IS NOT NULL")
        has_versions, has_repeatables = cur.fetchone()
        versions: set[int] = set()
        repeatables: dict[str, str] = {}
        if has_versions:
            cur.execute("SELECT version FROM schema_migrations")
            versions = {row[0] for row in cur.fetchall()}
        if has_repeatables:
            cur.execute("SELECT name, checksum FROM schema_repeatables")
            repeatables = dict(cur.fetchall())
    return [m for m in available_migrations()
            if (repeatables.get(m.name) != m.checksum if m.repeatable else m.version not in versions)]
