"""The detector's output: each micro-batch's operator rows committed to PostgreSQL once, and Spark's
batch durations recorded beside them. Two sinks call the same SQL (migration 0009's detector_commit, with
its exactly-once ledger): PostgresSink, a foreachBatch in Python, and the JVM's PostgresForeachWriter."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import fields

from pyspark.sql import DataFrame, SparkSession

from fraud_detection.storage import detections, postgres
from fraud_detection.storage.jdbc import jdbc_target

log = logging.getLogger(__name__)

_ALERT_FIELDS = tuple(f.name for f in fields(detections.AlertRow))
_REJECTED_FIELDS = tuple(f.name for f in fields(detections.RejectedRow))
OPERATOR_FIELDS = ("kind", "merged_into", *_ALERT_FIELDS, *_REJECTED_FIELDS)  # what the sink reads of a row


def batch_result(rows) -> detections.BatchResult:
    """The operator's rows of one batch, sorted into the sink's alerts, merges and rejected records."""
    result = detections.BatchResult()
    for r in rows:
        if r.kind == "alert":
            result.alerts.append(detections.AlertRow(**{name: getattr(r, name) for name in _ALERT_FIELDS}))
        elif r.kind == "merged":
            result.merges[r.alert_id] = r.merged_into
        elif r.kind == "duplicate":
            result.duplicates += 1
        else:  # rejected by parsing, or late; Spark hands binary columns over as bytearray
            values = {name: getattr(r, name) for name in _REJECTED_FIELDS}
            result.rejected.append(detections.RejectedRow(**{
                name: bytes(value) if isinstance(value, bytearray) else value for name, value in values.items()}))
    return result


class PostgresSink:
    """foreachBatch: commit each micro-batch once (see storage.detections)."""

    def __init__(self, database_url: str, input_rows, retry_timeout_s: float) -> None:
        self._db = postgres.LazyConnection(database_url)
        self._retry_timeout_s = retry_timeout_s
        self._run_id: str | None = None
        self._started = threading.Event()
        self._input_rows = input_rows  # JVM accumulator, read around each batch
        self.timings: dict[int, dict[str, float]] = {}  # batch id -> the sink's phases, for ProgressRecorder

    def started(self, run_id: str) -> None:
        self._run_id = run_id
        self._started.set()

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        began = time.monotonic()
        counted_before = self._input_rows.value()
        rows = batch.collect()  # runs the batch's Spark job
        collected = time.monotonic()
        result = batch_result(rows)
        result.input_rows = self._input_rows.value() - counted_before
        self._started.wait()
        writing = time.monotonic()
        outcome = detections.write_batch_retrying(self._db, self._run_id, batch_id, result, self._retry_timeout_s)
        written = time.monotonic()
        self.timings[batch_id] = {"sinkJob": (collected - began) * 1000, "sinkWrite": (written - writing) * 1000}
        if outcome is None:
            log.info("event=batch_skipped batch_id=%d reason=already_committed", batch_id)
            return
        log.info(
            "event=batch batch_id=%d alerts_new=%d alerts_updated=%d merged=%d rejected=%d duplicates=%d "
            "latency_max_ms=%s seconds=%.2f", batch_id, outcome.alerts_new, outcome.alerts_updated,
            len(result.merges), len(result.rejected), result.duplicates,
            "-" if outcome.latency_max_ms is None else f"{outcome.latency_max_ms:.0f}", time.monotonic() - began,
        )

    def close(self) -> None:
        self._db.close()


# The JVM sink commits a partition's rows in slices of at most this many: memory stays bounded in a backlog.
FOREACH_SLICE_ROWS = 10_000


def foreach_writer(spark: SparkSession, database_url: str, retry_timeout_s: float, realtime: bool = False):
    """The JVM sink (velocity-operator's sink.PostgresForeachWriter) for ``database_url``; in real-time mode
    it commits each row as it comes, at least once."""
    url, properties = jdbc_target(database_url)
    jvm = spark._jvm  # noqa: SLF001 (py4j)
    jproperties = jvm.java.util.Properties()
    for name, value in properties.items():
        jproperties.setProperty(name, value)
    target = jvm.io.github.frauddetection.sink.PostgresTarget(url, jproperties, int(retry_timeout_s * 1000))
    writer = jvm.io.github.frauddetection.sink.PostgresForeachWriter
    return writer.realTime(target) if realtime else writer(target, FOREACH_SLICE_ROWS)


def batch_phases(progress: dict, sink_ms: dict[str, float]) -> dict[str, float]:
    """Where a batch's time went (migration 0008): Spark's phases but the total, the state operators' task
    times summed over partitions, and the sink's job and write. ``progress`` is Spark's progress JSON."""
    phases = {name: float(ms) for name, ms in progress["durationMs"].items() if name != "triggerExecution"}
    operators = progress.get("stateOperators", [])
    for phase, key in (("stateCommit", "commitTimeMs"), ("stateUpdates", "allUpdatesTimeMs"),
                       ("stateRemovals", "allRemovalsTimeMs")):
        phases[phase] = float(sum(op.get(key, 0) for op in operators))
    return {**phases, **sink_ms}


class ProgressRecorder:
    """Adds Spark's batch duration and its phases to each batch's pipeline_metrics row (after the batch
    committed), and its input row count when the sink is the JVM's, which commits partitions, not batches.
    Spark calls it through ProgressRelay (velocity-operator) with the progress as JSON."""

    def __init__(self, database_url: str, sink: PostgresSink | None) -> None:
        self._db = postgres.LazyConnection(database_url)
        self._sink = sink
        self.run_id: str | None = None  # other queries in the same session are not ours

    def progress(self, text: str) -> None:
        progress = json.loads(text)
        if progress["id"] != self.run_id:
            return
        batch_id = int(progress["batchId"])
        sink_ms = self._sink.timings.pop(batch_id, {}) if self._sink is not None else {}
        input_rows = None if self._sink is not None else int(progress["numInputRows"])
        try:
            detections.record_duration(self._db.get(), self.run_id, batch_id,
                                       float(progress["durationMs"].get("triggerExecution", 0)),
                                       batch_phases(progress, sink_ms), input_rows)
        except Exception as err:  # noqa: BLE001 - a metrics write must not kill the listener thread; the batch is safe
            log.warning("event=progress_not_recorded batch_id=%d error=%s", batch_id, err)
            self._db.reset()

    def close(self) -> None:
        self._db.close()

    class Java:  # py4j: the Java interface this object implements
        implements = ["io.github.frauddetection.velocity.ProgressRelay$Receiver"]


def listen(spark: SparkSession, recorder: ProgressRecorder):
    """Register ``recorder`` for Spark's progress events; returns the JVM listener, to remove it later."""
    from pyspark.java_gateway import ensure_callback_server_started

    ensure_callback_server_started(spark.sparkContext._gateway)  # noqa: SLF001 (py4j calls back into Python)
    relay = spark._jvm.io.github.frauddetection.velocity.ProgressRelay(recorder)  # noqa: SLF001 (py4j)
    spark._jsparkSession.streams().addListener(relay)  # noqa: SLF001 (py4j)
    return relay


def drain_listeners(spark: SparkSession, timeout_ms: int = 10_000) -> None:
    """Let the last progress events reach ProgressRecorder before the Python side goes away."""
    try:
        spark._jsparkSession.sparkContext().listenerBus().waitUntilEmpty(timeout_ms)  # noqa: SLF001 (py4j)
    except Exception as err:  # noqa: BLE001 - only metrics are at stake; never block the shutdown
        log.warning("event=listener_drain_failed error=%s", err)
