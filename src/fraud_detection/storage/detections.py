"""The detector's writes: one PostgreSQL transaction per micro-batch, exactly once.

The SQL is migration 0009's ``detector_commit``, which the JVM ForeachWriter calls as well: it records the
batch in a ledger in the same transaction as its alerts and rejected records, so a batch that Spark replays
after a crash writes nothing (``detected_at`` of its alerts stays the first commit's). The batch's input row
count commits with it. Alerts are upserts by their deterministic id.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import psycopg2
import stamina
from psycopg2.extras import Json

from fraud_detection.storage.postgres import LazyConnection

log = logging.getLogger(__name__)

COMPONENT = "detector"


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert_id: str
    card_id: str
    first_event_time_ms: int
    last_event_time_ms: int
    txn_count: int
    amount_total_cents: int
    trigger_transaction_id: str
    trigger_kafka_timestamp_ms: int
    trigger_event_time_ms: int


@dataclass(frozen=True, slots=True)
class RejectedRow:
    topic: str
    kafka_partition: int
    kafka_offset: int
    reason: str
    detail: str | None
    raw_key: bytes | None
    raw_value: bytes | None
    kafka_timestamp_ms: int | None


@dataclass(slots=True)
class BatchResult:
    """What one micro-batch produced; ``merges`` maps a merged-away alert id to the surviving one."""

    alerts: list[AlertRow] = field(default_factory=list)
    merges: dict[str, str] = field(default_factory=dict)
    rejected: list[RejectedRow] = field(default_factory=list)
    duplicates: int = 0
    input_rows: int = 0


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    alerts_new: int
    alerts_updated: int
    latency_max_ms: float | None
    latency_mean_ms: float | None


# detector_commit's partition id for a whole batch (migration 0009).
WHOLE_BATCH = -1


def write_batch(conn, run_id: str, batch_id: int, result: BatchResult, now: datetime) -> BatchOutcome | None:
    """Commit the batch once; ``None`` when this run already committed it (a replay after a crash)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT * FROM detector_commit(%s, %s, %s, 0, %s, %s, %s, %s, %s, %s)",
            (run_id, batch_id, WHOLE_BATCH, now, result.input_rows, result.duplicates,
             Json([asdict(a) for a in result.alerts]),
             Json([{"alert_id": merged, "merged_into": into} for merged, into in result.merges.items()]),
             Json([_rejected_json(r) for r in result.rejected])),
        )
        row = cur.fetchone()
    return None if row is None else BatchOutcome(*row)


def _rejected_json(r: RejectedRow) -> dict:
    return {**asdict(r), "raw_key": _base64(r.raw_key), "raw_value": _base64(r.raw_value)}


def _base64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def write_batch_retrying(db: LazyConnection, run_id: str, batch_id: int, result: BatchResult,
                         timeout_s: float) -> BatchOutcome | None:
    """``write_batch``, retried with backoff for up to ``timeout_s`` while PostgreSQL is unreachable. A retry
    is safe: a failed transaction left nothing, and one that did commit is recognised by its ledger row."""
    for attempt in stamina.retry_context(on=(psycopg2.OperationalError, psycopg2.InterfaceError), attempts=None,
                                         timeout=timeout_s, wait_initial=0.5, wait_max=10):
        with attempt:
            try:
                return write_batch(db.get(), run_id, batch_id, result, datetime.now(timezone.utc))
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as err:
                db.reset()
                first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
                log.warning("event=sink_retry batch_id=%d attempt=%d error=%s", batch_id, attempt.num, first_line)
                raise
    raise AssertionError("unreachable: stamina re-raises when the retries run out")


def record_duration(conn, run_id: str, batch_id: int, duration_ms: float, phases_ms: dict[str, float],
                    input_rows: int | None = None) -> None:
    """Spark's duration of a committed batch and where it went (migration 0008), from its progress event (lost
    if the process dies first). ``input_rows`` comes from there too when the sink could not count them (the
    JVM sink commits partitions, not batches); a batch without output has no row yet."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO pipeline_metrics AS m (component, run_id, batch_id, input_rows, batch_duration_ms,"
            " batch_phases_ms) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (component, run_id, batch_id) DO UPDATE"
            " SET batch_duration_ms = EXCLUDED.batch_duration_ms, batch_phases_ms = EXCLUDED.batch_phases_ms,"
            " input_rows = coalesce(EXCLUDED.input_rows, m.input_rows)",
            (COMPONENT, run_id, batch_id, input_rows, duration_ms, Json(phases_ms)),
        )
