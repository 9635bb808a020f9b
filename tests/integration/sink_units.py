"""The detector's output as the sink's SQL takes it (R__detector_sink.sql's detector_apply), for tests that seed
PostgreSQL the way the JVM sink (CommitUnit, PostgresTarget) does: the same JSON arrays, the same function."""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from datetime import datetime

from psycopg2.extras import Json


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert_id: str
    rule: str
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


@dataclass(frozen=True, slots=True)
class DuplicateRow:
    topic: str
    kafka_partition: int
    kafka_offset: int
    transaction_id: str
    card_id: str
    kafka_timestamp_ms: int | None


@dataclass(slots=True)
class Unit:
    """One unit of a partition's rows; ``merges`` maps a merged-away alert id to the surviving one."""

    alerts: list[AlertRow] = field(default_factory=list)
    merges: dict[str, str] = field(default_factory=dict)
    rejected: list[RejectedRow] = field(default_factory=list)
    duplicates: list[DuplicateRow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Applied:
    """What detector_apply changed."""

    alerts_new: int
    alerts_updated: int
    alerts_merged: int
    rejected_rows: int
    late_rows: int
    duplicate_rows: int
    latency_max_ms: float | None
    latency_mean_ms: float | None


def alert(alert_id: str, card_id: str, first_ms: int, last_ms: int, count: int, amount_cents: int,
          trigger_id: str, trigger_kafka_ms: int, trigger_event_ms: int) -> AlertRow:
    return AlertRow(alert_id, "velocity", card_id, first_ms, last_ms, count, amount_cents, trigger_id,
                    trigger_kafka_ms, trigger_event_ms)


def apply(conn, run_id: str, batch_id: int, unit: Unit, now: datetime) -> Applied:
    """Commit ``unit`` as the JVM sink does: one call of detector_apply, in its own transaction."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT * FROM detector_apply(%s, %s, %s, %s, %s, %s, %s)",
            (run_id, batch_id, now, Json([asdict(a) for a in unit.alerts]),
             Json([{"alert_id": merged, "merged_into": into} for merged, into in unit.merges.items()]),
             Json([{**asdict(r), "raw_key": _base64(r.raw_key), "raw_value": _base64(r.raw_value)}
                   for r in unit.rejected]),
             Json([asdict(d) for d in unit.duplicates])),
        )
        return Applied(*cur.fetchone())


def _base64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")
