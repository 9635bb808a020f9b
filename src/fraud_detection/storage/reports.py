"""Read-only queries over what the pipeline stored: the terminal's live view and detection quality.

An injected attack counts as detected when a live (not merged) alert of the same card overlaps its
event-time span; a decoy that gets such an alert is a false alert (views of migration 0004).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from psycopg2 import Binary
from psycopg2.extras import RealDictCursor


@dataclass(frozen=True, slots=True)
class RecentAlert:
    card_id: str
    txn_count: int
    first_event_time: datetime
    last_event_time: datetime
    latency_ms: float | None
    delivered_to: str = ""  # destinations that acknowledged the alert's current version (`notify`)


@dataclass(frozen=True, slots=True)
class Totals:
    attacks: int
    attacks_detected: int
    decoys: int
    decoys_alerted: int
    alerts: int
    rejected: int

    @property
    def recall(self) -> float | None:
        return self.attacks_detected / self.attacks if self.attacks else None


@dataclass(frozen=True, slots=True)
class Health:
    """The pipeline right now: processed rate over the last ``rate_s``, alert latency over the last 5 minutes."""

    rate_per_s: float
    latency_p50_s: float | None
    latency_p99_s: float | None


def totals(conn) -> Totals:
    """Ground truth and alerts over all time (the ``episode_outcomes`` view defines "detected")."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FILTER (WHERE is_attack),"
            " count(*) FILTER (WHERE is_attack AND cardinality(alerted_by) > 0),"
            " count(*) FILTER (WHERE NOT is_attack),"
            " count(*) FILTER (WHERE NOT is_attack AND cardinality(alerted_by) > 0),"
            " (SELECT count(*) FROM alerts WHERE merged_into IS NULL),"
            " (SELECT count(*) FROM rejected_transactions)"
            " FROM episode_outcomes"
        )
        return Totals(*cur.fetchone())


def health(conn, rate_s: int = 30, at: datetime | None = None) -> Health:
    """The dashboard's throughput and latency panels, reduced to the moment ``at`` (default: the database's
    now): the rate over the ``rate_s`` before it, latency percentiles over the 5 minutes before it."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "WITH moment AS (SELECT coalesce(%s::timestamptz, now()) AS at)"
            " SELECT (SELECT coalesce(sum(input_rows), 0) FROM pipeline_metrics, moment WHERE component = 'detector'"
            "  AND recorded_at > at - make_interval(secs => %s) AND recorded_at <= at) / %s::float,"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM detected_at - trigger_kafka_timestamp)),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM detected_at - trigger_kafka_timestamp))"
            " FROM alerts, moment WHERE merged_into IS NULL"
            " AND detected_at > at - interval '5 minutes' AND detected_at <= at",
            (at, rate_s, rate_s),
        )
        return Health(*cur.fetchone())


@dataclass(frozen=True, slots=True)
class DetectorProgress:
    batches: int
    input_rows: int


def detector_progress(conn) -> DetectorProgress:
    """Batches the detector committed and the transactions they took in, over all runs."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), coalesce(sum(input_rows), 0) FROM pipeline_metrics WHERE component = 'detector'")
        return DetectorProgress(*(int(v) for v in cur.fetchone()))


def newest_alerts(conn, limit: int = 8) -> list[RecentAlert]:
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT card_id, txn_count, first_event_time, last_event_time,"
            " extract(epoch FROM detected_at - trigger_kafka_timestamp) * 1000,"
            " coalesce((SELECT string_agg(d.destination, ',' ORDER BY d.destination) FROM notification_deliveries d"
            "  WHERE d.alert_id = a.alert_id AND d.version = a.version AND d.status = 'delivered'), '')"
            " FROM alerts a WHERE merged_into IS NULL ORDER BY detected_at DESC, alert_id LIMIT %s",
            (limit,),
        )
        return [RecentAlert(*row) for row in cur.fetchall()]


@dataclass(frozen=True, slots=True)
class Deliveries:
    """One destination's alert versions by outcome, and receipt latency (alert commit to acknowledgement)."""

    destination: str
    delivered: int
    pending: int
    failed: int
    latency_p50_s: float | None
    latency_p99_s: float | None


def deliveries(conn) -> list[Deliveries]:
    """Per destination of `notify`; latency over the last 5 minutes of deliveries."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT d.destination, count(*) FILTER (WHERE d.status = 'delivered'),"
            " count(*) FILTER (WHERE d.status = 'pending'), count(*) FILTER (WHERE d.status = 'failed'),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.delivered_at - o.created_at))"
            "  FILTER (WHERE d.delivered_at > now() - interval '5 minutes'),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d.delivered_at - o.created_at))"
            "  FILTER (WHERE d.delivered_at > now() - interval '5 minutes')"
            " FROM notification_deliveries d"
            " LEFT JOIN alert_outbox o ON o.alert_id = d.alert_id AND o.version = d.version"
            " GROUP BY d.destination ORDER BY d.destination"
        )
        return [Deliveries(*row) for row in cur.fetchall()]


def evaluation_rows(conn, since: datetime | None = None, until: datetime | None = None,
                    source: str | None = None) -> tuple[list[dict], list[dict]]:
    """Ground truth starting in [since, until) (event time; ``source`` prefix, e.g. ``replay:``) and the live
    alerts whose event-time span overlaps that range, as rows keyed by column name (the field names of
    ``evaluation.quality``'s Truth and AlertRecord)."""
    low = since or datetime(1970, 1, 1, tzinfo=timezone.utc)
    high = until or datetime(9999, 1, 1, tzinfo=timezone.utc)
    with conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(
            "SELECT source, card_id, kind, first_event_time, last_event_time, txn_count FROM injected_attacks"
            " WHERE first_event_time >= %s AND first_event_time < %s AND source LIKE %s"
            " ORDER BY first_event_time, card_id",
            (low, high, _like_prefix(source)),
        )
        truth = cur.fetchall()
        cur.execute(
            "SELECT alert_id, card_id, first_event_time, last_event_time, txn_count, trigger_event_time,"
            " trigger_kafka_timestamp, detected_at FROM alerts"
            " WHERE merged_into IS NULL AND last_event_time >= %s AND first_event_time < %s"
            " ORDER BY detected_at, alert_id",
            (low, high),
        )
        alerts = cur.fetchall()
    return truth, alerts


def rejected_by_card(conn, card_ids: list[str]) -> dict[str, int]:
    """How many records of each card the detector rejected (any reason, late included), found by Kafka key."""
    if not card_ids:
        return {}
    keys = {card_id.encode(): card_id for card_id in card_ids}
    with conn, conn.cursor() as cur:
        cur.execute("SELECT raw_key, count(*) FROM rejected_transactions WHERE raw_key = ANY(%s) GROUP BY raw_key",
                    ([Binary(key) for key in keys],))
        return {keys[bytes(raw_key)]: count for raw_key, count in cur.fetchall()}


def _like_prefix(prefix: str | None) -> str:
    escaped = (prefix or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
