"""PostgreSQL access: connections with retries, and the batched, parameterised writes of ground truth."""

from __future__ import annotations

import logging
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
