"""Retention of the pipeline's bookkeeping: per-batch metrics, counted duplicates, published outbox rows."""

from __future__ import annotations

from datetime import timedelta

from fraud_detection.storage import postgres


def prune_history(database_url: str, keep: timedelta) -> dict[str, int]:
    """Delete the bookkeeping older than ``keep`` (R__history_retention.sql); rows deleted per table, in one
    transaction."""
    if keep <= timedelta(0):
        raise ValueError(f"keep must be positive, not {keep}")
    with postgres.connection(database_url) as conn, conn, conn.cursor() as cur:
        cur.execute("SELECT history, deleted FROM prune_history(now() - %s)", (keep,))
        return dict(cur.fetchall())
