"""The detector's writes: one PostgreSQL transaction per micro-batch, exactly once.

The batch's ``pipeline_metrics`` row is the ledger: it is inserted first, in the same transaction as the
alerts and rejected records, so a batch that Spark replays after a crash finds it and writes nothing
(``detected_at`` of its alerts stays the first commit's). The batch's input row count commits with it.
Alerts are upserts by their deterministic id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

import psycopg2
import stamina
from psycopg2.extras import Json, execute_values

from fraud_detection.storage.postgres import LazyConnection, utc

log = logging.getLogger(__name__)

COMPONENT = "detector"
RULE = "velocity"


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


def write_batch(conn, run_id: str, batch_id: int, result: BatchResult, now: datetime) -> BatchOutcome | None:
    """Commit the batch once; ``None`` when this run already committed it (a replay after a crash)."""
    late = sum(1 for r in result.rejected if r.reason == "late")
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO pipeline_metrics (component, run_id, batch_id, recorded_at, input_rows, rejected_rows,"
            " late_rows, duplicate_rows, alerts_merged) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING RETURNING batch_id",
            (COMPONENT, run_id, batch_id, now, result.input_rows, len(result.rejected) - late, late,
             result.duplicates, len(result.merges)),
        )
        if cur.fetchone() is None:
            return None
        upserted = _upsert_alerts(cur, result.alerts, now)
        if result.merges:
            execute_values(
                cur,
                "UPDATE alerts SET merged_into = v.into_id, updated_at = v.at, version = version + 1"
                " FROM (VALUES %s) AS v (alert_id, into_id, at) WHERE alerts.alert_id = v.alert_id",
                [(merged, into, now) for merged, into in result.merges.items()],
            )
        _to_outbox(cur, [a.alert_id for a in result.alerts] + list(result.merges))
        if result.rejected:
            execute_values(
                cur,
                "INSERT INTO rejected_transactions (topic, kafka_partition, kafka_offset, reason, detail, raw_key,"
                " raw_payload, kafka_timestamp, rejected_at) VALUES %s ON CONFLICT DO NOTHING",
                [(r.topic, r.kafka_partition, r.kafka_offset, r.reason, r.detail, r.raw_key, r.raw_value,
                  None if r.kafka_timestamp_ms is None else utc(r.kafka_timestamp_ms), now)
                 for r in result.rejected],
            )
        latencies = [(now - utc(ts)).total_seconds() * 1000 for inserted, ts in upserted if inserted]
        outcome = BatchOutcome(
            alerts_new=len(latencies),
            alerts_updated=len(upserted) - len(latencies),
            latency_max_ms=max(latencies) if latencies else None,
            latency_mean_ms=sum(latencies) / len(latencies) if latencies else None,
        )
        cur.execute(
            "UPDATE pipeline_metrics SET alerts_written = %s, alert_latency_max_ms = %s, alert_latency_mean_ms = %s"
            " WHERE component = %s AND run_id = %s AND batch_id = %s",
            (len(upserted), outcome.latency_max_ms, outcome.latency_mean_ms, COMPONENT, run_id, batch_id),
        )
    return outcome


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


def _upsert_alerts(cur, alerts: list[AlertRow], now: datetime) -> list[tuple[bool, int]]:
    """Insert new alerts, update grown ones (keeping detected_at); (inserted?, trigger Kafka ms) each.

    The update names the columns it changes: a grown alert keeps its triage status (migration 0007)."""
    if not alerts:
        return []
    rows = execute_values(
        cur,
        "INSERT INTO alerts (alert_id, rule, card_id, first_event_time, last_event_time, txn_count, amount_total,"
        " trigger_transaction_id, trigger_kafka_timestamp, trigger_event_time, detected_at, updated_at) VALUES %s"
        " ON CONFLICT (alert_id) DO UPDATE SET first_event_time = EXCLUDED.first_event_time,"
        " last_event_time = EXCLUDED.last_event_time, txn_count = EXCLUDED.txn_count,"
        " amount_total = EXCLUDED.amount_total, updated_at = EXCLUDED.updated_at, version = alerts.version + 1"
        " RETURNING alert_id, (xmax = 0)",
        [(a.alert_id, RULE, a.card_id, utc(a.first_event_time_ms), utc(a.last_event_time_ms), a.txn_count,
          Decimal(a.amount_total_cents) / 100, a.trigger_transaction_id, utc(a.trigger_kafka_timestamp_ms),
          utc(a.trigger_event_time_ms), now, now)
         for a in alerts],
        fetch=True,
    )
    inserted = dict(rows)
    return [(inserted[a.alert_id], a.trigger_kafka_timestamp_ms) for a in alerts]


# The alerts topic's message (alert.schema.json), built from the committed row so it says what was stored.
_MESSAGE = (
    "jsonb_build_object('alert_id', alert_id, 'version', version, 'rule', rule, 'card_id', card_id,"
    " 'status', CASE WHEN merged_into IS NULL THEN 'open' ELSE 'merged' END, 'merged_into', merged_into,"
    " 'txn_count', txn_count, 'amount_total', amount_total,"
    " 'first_event_time', to_json(first_event_time), 'last_event_time', to_json(last_event_time),"
    " 'trigger_transaction_id', trigger_transaction_id, 'trigger_event_time', to_json(trigger_event_time),"
    " 'detected_at', to_json(detected_at), 'schema_version', 1)"
)


def _to_outbox(cur, alert_ids: list[str]) -> None:
    """Queue the message of each alert this batch raised, grew or merged, in the batch's transaction."""
    if alert_ids:
        cur.execute(
            "INSERT INTO alert_outbox (alert_id, version, card_id, payload)"  # noqa: S608 (constant SQL)
            f" SELECT alert_id, version, card_id, {_MESSAGE} FROM alerts WHERE alert_id = ANY(%s)"
            " ORDER BY card_id, alert_id ON CONFLICT (alert_id, version) DO NOTHING",
            (alert_ids,),
        )


def record_duration(conn, run_id: str, batch_id: int, duration_ms: float, phases_ms: dict[str, float]) -> None:
    """Spark's duration of a committed batch and where it went (migration 0008), from its progress event (lost
    if the process dies first)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE pipeline_metrics SET batch_duration_ms = %s, batch_phases_ms = %s"
            " WHERE component = %s AND run_id = %s AND batch_id = %s",
            (duration_ms, Json(phases_ms), COMPONENT, run_id, batch_id),
        )
