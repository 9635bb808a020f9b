"""PostgreSQL access: connections with retries, and the batched, parameterised writes of ground truth."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone

import psycopg2
import psycopg2.extensions
import stamina
from psycopg2.extras import execute_values

from fraud_detection.ground_truth import Episode

log = logging.getLogger(__name__)

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
    """Where a producer (the generator, a replay) records its episodes under ``source``, on one connection.

    A database outage stops neither the traffic nor the record: episodes the database cannot take wait in memory
    (at most ``max_pending``) and are written with the next ``record`` once it answers again (a retry rewrites
    nothing: ``record_ground_truth`` ignores an episode already there). Raising instead would stop the generator
    between sending an attack and recording it, and the attack's alert would meet no ground truth (seen on
    Kubernetes when the PostgreSQL pod was replaced mid-stream).
    """

    RETRY_EVERY_S = 2.0

    def __init__(self, url: str, source: str, max_pending: int = 1_000_000, clock=time.monotonic) -> None:
        self.source = source
        self.max_pending = max_pending
        self._url = url
        self._clock = clock
        self._conn: psycopg2.extensions.connection | None = connect(url)  # a wrong URL fails here, at the start
        self._pending: list[Episode] = []
        self._next_try = 0.0

    @property
    def pending(self) -> int:
        """Episodes not yet written."""
        return len(self._pending)

    def record(self, episodes: Iterable[Episode]) -> int:
        """Write these episodes and any still pending; how many were written now (0 while the database is away)."""
        self._pending.extend(episodes)
        if len(self._pending) > self.max_pending:
            raise GroundTruthBacklogError(f"{len(self._pending):,} ground-truth episodes wait for PostgreSQL, more "
                                          f"than {self.max_pending:,}: it has been unreachable for too long")
        if not self._pending or self._clock() < self._next_try:
            return 0
        return self._write_pending()

    def _write_pending(self) -> int:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg2.connect(self._url, connect_timeout=5, application_name="fraud-detection")
            written = record_ground_truth(self._conn, self.source, self._pending)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as err:
            self._drop_connection()
            self._next_try = self._clock() + self.RETRY_EVERY_S
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            log.warning("event=ground_truth_deferred pending=%d error=%s", len(self._pending), reason)
            return 0
        self._pending.clear()
        return written

    def close(self, timeout_s: float = 10.0) -> int:
        """Write what is pending, retrying for up to ``timeout_s``; returns how many episodes could not be written
        (logged as lost)."""
        deadline = self._clock() + timeout_s
        while self._pending:
            self._next_try = 0.0
            self._write_pending()
            if self._pending and self._clock() >= deadline:
                log.error("event=ground_truth_lost episodes=%d source=%s: PostgreSQL did not answer within %g s",
                          len(self._pending), self.source, timeout_s)
                break
            if self._pending:
                time.sleep(min(1.0, self.RETRY_EVERY_S))
        self._drop_connection()
        return len(self._pending)

    def _drop_connection(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None


class GroundTruthBacklogError(RuntimeError):
    """PostgreSQL stayed away while more ground-truth episodes piled up than a recorder keeps."""


def fetch_all(conn, query: str, params: Sequence = ()) -> list[tuple]:
    with conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()
