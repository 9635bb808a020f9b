"""The detector's output: the JVM sink that commits each partition's rows to PostgreSQL (velocity-operator's
sink.PostgresForeachWriter, calling R__detector_sink.sql's detector_apply), and Spark's progress recorded
beside each batch's counters: its input rows, duration and phases."""

from __future__ import annotations

import json
import logging

from pyspark.sql import SparkSession

from fraud_detection.storage import detections, postgres
from fraud_detection.storage.jdbc import jdbc_target

log = logging.getLogger(__name__)

# A unit of the JVM sink holds at most this many rows and about this many characters of JSON (rejected
# records carry their raw bytes as base64): a backlog batch and large malformed records stream through
# in bounded memory, and a unit stays one quick PostgreSQL transaction.
UNIT_ROWS = 10_000
UNIT_CHARS = 4 << 20


def foreach_writer(spark: SparkSession, database_url: str, retry_timeout_s: float, realtime: bool = False):
    """The JVM sink (velocity-operator's sink.PostgresForeachWriter) for ``database_url``; in real-time mode
    it commits each row as it comes."""
    url, properties = jdbc_target(database_url)
    jvm = spark._jvm  # noqa: SLF001 (py4j)
    jproperties = jvm.java.util.Properties()
    for name, value in properties.items():
        jproperties.setProperty(name, value)
    target = jvm.io.github.frauddetection.sink.PostgresTarget(url, jproperties, int(retry_timeout_s * 1000))
    writer = jvm.io.github.frauddetection.sink.PostgresForeachWriter
    return writer.realTime(target) if realtime else writer(target, UNIT_ROWS, UNIT_CHARS)


def batch_phases(progress: dict) -> dict[str, float]:
    """Where a batch's time went (migration 0008): Spark's phases but the total, and the state operators' task
    times summed over partitions. ``progress`` is Spark's progress JSON."""
    phases = {name: float(ms) for name, ms in progress["durationMs"].items() if name != "triggerExecution"}
    operators = progress.get("stateOperators", [])
    for phase, key in (("stateCommit", "commitTimeMs"), ("stateUpdates", "allUpdatesTimeMs"),
                       ("stateRemovals", "allRemovalsTimeMs")):
        phases[phase] = float(sum(op.get(key, 0) for op in operators))
    return phases


class ProgressRecorder:
    """Adds Spark's input row count, duration and phases to each batch's pipeline_metrics row, after the batch
    committed (the sink commits partitions, not batches, so it cannot count the batch's input). Spark calls it
    through ProgressRelay (velocity-operator) with the progress as JSON. Progress that PostgreSQL could not take
    (an outage) waits and goes with the next event; what a crash loses is taken from the checkpoint's offset
    log at the next start (checkpoint.py)."""

    MAX_PENDING = 10_000  # a day of back-to-back batches; older ones are left to the offset log

    def __init__(self, database_url: str) -> None:
        self._db = postgres.LazyConnection(database_url)
        self._pending: list[tuple[int, int, float, dict[str, float]]] = []  # oldest first
        self.run_id: str | None = None  # other queries in the same session are not ours

    def progress(self, text: str) -> None:
        progress = json.loads(text)
        if progress["id"] != self.run_id:
            return
        self._pending.append((int(progress["batchId"]), int(progress["numInputRows"]),
                              float(progress["durationMs"].get("triggerExecution", 0)), batch_phases(progress)))
        del self._pending[:-self.MAX_PENDING]
        self._flush()

    def _flush(self) -> None:
        while self._pending:
            batch_id, input_rows, duration_ms, phases = self._pending[0]
            try:
                detections.record_progress(self._db.get(), self.run_id, batch_id, input_rows, duration_ms, phases)
            except Exception as err:  # noqa: BLE001 - a metrics write must not kill the listener thread; the batch is safe
                log.warning("event=progress_not_recorded batch_id=%d pending=%d error=%s", batch_id,
                            len(self._pending), str(err).strip().splitlines()[0] if str(err).strip() else err)
                self._db.reset()
                return
            self._pending.pop(0)

    def close(self) -> None:
        self._flush()
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
