"""The detector's bookkeeping in PostgreSQL beside what its sink writes (R__detector_sink.sql): the run and its
rule, and each batch's input rows, duration and phases from Spark's progress."""

from __future__ import annotations

from psycopg2.extras import Json

COMPONENT = "detector"


def record_run(conn, run_id: str, rule: str, threshold: int, window_ms: int, allowed_lateness_ms: int,
               operator: str, trigger: str) -> None:
    """The streaming run (a checkpoint's query id) and the rule it runs (migration 0012); a restart of the same
    checkpoint, which keeps its rule (detector/session.py), updates when it last started."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO detector_runs (run_id, rule, threshold, window_ms, allowed_lateness_ms, operator, trigger)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO UPDATE SET last_started_at = now(),"
            " allowed_lateness_ms = EXCLUDED.allowed_lateness_ms, trigger = EXCLUDED.trigger",
            (run_id, rule, threshold, window_ms, allowed_lateness_ms, operator, trigger),
        )


def record_progress(conn, run_id: str, batch_id: int, input_rows: int, duration_ms: float,
                    phases_ms: dict[str, float]) -> None:
    """A committed batch's input rows, Spark's duration and where it went (migration 0008), from its progress
    event; a batch without output has no row yet."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO pipeline_metrics AS m (component, run_id, batch_id, input_rows, batch_duration_ms,"
            " batch_phases_ms) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (component, run_id, batch_id) DO UPDATE"
            " SET input_rows = EXCLUDED.input_rows, batch_duration_ms = EXCLUDED.batch_duration_ms,"
            " batch_phases_ms = EXCLUDED.batch_phases_ms",
            (COMPONENT, run_id, batch_id, input_rows, duration_ms, Json(phases_ms)),
        )


def record_missing_input_rows(conn, run_id: str, input_rows: dict[int, int]) -> list[int]:
    """Input rows of committed batches whose progress event was lost (a crash between the batch's commit and
    the event), from the checkpoint's offset log. Progress events are recorded in batch order, so what a crash
    loses is the batches after the last one recorded; those get theirs. Returns the batches filled."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT max(batch_id) FROM pipeline_metrics WHERE component = %s AND run_id = %s"
                    " AND input_rows IS NOT NULL", (COMPONENT, run_id))
        (last_recorded,) = cur.fetchone()
        lost = {b: n for b, n in input_rows.items() if last_recorded is None or b > last_recorded}
        if not lost:
            return []
        cur.execute(
            "INSERT INTO pipeline_metrics AS m (component, run_id, batch_id, input_rows)"
            " SELECT %s, %s, batch_id, rows FROM unnest(%s::bigint[], %s::bigint[]) AS b (batch_id, rows)"
            " ON CONFLICT (component, run_id, batch_id) DO UPDATE SET input_rows = EXCLUDED.input_rows"
            " WHERE m.input_rows IS NULL RETURNING batch_id",
            (COMPONENT, run_id, list(lost), list(lost.values())),
        )
        return sorted(row[0] for row in cur.fetchall())
