"""Retention of the pipeline's bookkeeping: per-batch metrics, the detector's ledger, published outbox rows."""

from __future__ import annotations

from datetime import timedelta

from fraud_detection.storage import postgres


def prune_history(database_url: str, keep: timedelta) -> dict[str, int]:
    """Delete the bookkeeping older than ``keep`` (migration 0010); rows deleted per table. One transaction."""
    if keep <= timedelta(0):
        raise ValueError(f"keep must be positive, not {keep}")
    with postgres.connection(database_url) as conn, conn, conn.cursor() as cur:
        cur.execute("SELECT history, deleted FROM prune_history(now() - %s)", (keep,))
        return dict(cur.fetchall())
