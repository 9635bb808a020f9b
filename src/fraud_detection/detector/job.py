"""The detector's streaming query: Kafka in, the parse and velocity steps, the PostgreSQL sink out.

One query: Kafka source -> parse_records -> watermark -> velocity operator -> the JVM sink (sink.py), whose
writes are idempotent by content, so a batch or task that Spark runs again after a crash adds nothing; the
checkpoint holds offsets and per-card state, and what the run's rule is (checkpoint.py).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pyspark
from py4j.protocol import Py4JError
from pyspark.errors import PySparkException, StreamingQueryException
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from fraud_detection.detector.checkpoint import (
    STATE_FORMAT,
    Rule,
    check_checkpoint_dir,
    claim_checkpoint,
    committed_input_rows,
    query_id,
)
from fraud_detection.detector.parse import parse_records
from fraud_detection.detector.session import spark_session
from fraud_detection.detector.sink import ProgressRecorder, drain_listeners, foreach_writer, listen
from fraud_detection.detector.velocity_state import apply_velocity, rule_name
from fraud_detection.kafka_clients import spark_source_options
from fraud_detection.settings import Settings, SettingsError
from fraud_detection.shutdown import StopFlag
from fraud_detection.storage import detections, postgres
from fraud_detection.storage.jdbc import jdbc_target

log = logging.getLogger(__name__)

# The first Spark whose real-time mode runs transformWithState (and so the detector).
REALTIME_SPARK = (4, 3)

# The Kafka source's consumer groups begin with this (Spark adds a unique rest); it never commits offsets there.
KAFKA_GROUP_PREFIX = "fraud-detection-detector-"

# What calls into a stopping or stopped JVM raise: py4j's errors, Spark's, or the refused socket itself.
_JVM_GONE = (Py4JError, PySparkException, ConnectionError)


def check_trigger(settings: Settings, spark_version: str = pyspark.__version__) -> None:
    """Fail before Spark starts when real-time mode is asked of a Spark that cannot run it."""
    if settings.detector.trigger == "realtime" and tuple(map(int, spark_version.split(".")[:2])) < REALTIME_SPARK:
        raise SettingsError(f"FRAUD_DETECTOR__TRIGGER=realtime needs Spark {'.'.join(map(str, REALTIME_SPARK))} or"
                            f" later, and this is PySpark {spark_version}: use the micro-batch trigger, or see"
                            " docs/real-time-mode.md")


def detector_stream(spark: SparkSession, settings: Settings, state_format: int = STATE_FORMAT):
    """The whole transformation, from the topic to the operator's output rows, with
    state kept in ``state_format`` (the checkpoint's, see checkpoint.claim_checkpoint)."""
    d = settings.detector
    reader = (
        spark.readStream.format("kafka")
        .options(**spark_source_options(settings.kafka))
        .option("subscribe", settings.kafka.topic)
        # A name an ACL can grant (the chart's detector KafkaUser) instead of Spark's spark-kafka-source-.
        .option("groupIdPrefix", KAFKA_GROUP_PREFIX)
        .option("startingOffsets", d.starting_offsets)
        .option("failOnDataLoss", str(d.fail_on_data_loss).lower())
        # Ride out a broker restart: offsets are fetched again every 2 s for up to kafka_retry_timeout.
        .option("fetchOffset.numRetries", str(max(1, d.kafka_retry_timeout // 2)))
        .option("fetchOffset.retryIntervalMs", "2000")
    )
    if d.max_offsets_per_trigger and d.trigger != "realtime":  # a real-time batch reads as records come
        reader = reader.option("maxOffsetsPerTrigger", d.max_offsets_per_trigger)
    parsed = parse_records(reader.load(), d.max_record_bytes, d.max_future)
    watermarked = parsed.withWatermark("event_time", f"{d.allowed_lateness} seconds")
    return apply_velocity(watermarked, settings.rule.threshold, settings.rule.window_ms, d.state_buckets, d.operator,
                          state_format, d.trigger == "realtime")


class Detector:
    """One running detector query with its progress listener."""

    def __init__(self, spark: SparkSession, query: StreamingQuery, recorder: ProgressRecorder, relay) -> None:
        self.spark, self.query, self._recorder, self._relay = spark, query, recorder, relay

    def stop(self) -> None:
        """Stop the query, let the last progress reach PostgreSQL, release connections."""
        # Stopping interrupts the batch in flight, which runs again from the checkpoint at the next start:
        # its interruption, logged by Spark's cleanup, is expected, not news.
        self.spark.sparkContext.setLogLevel("ERROR")
        if self.query.isActive:
            self.query.stop()
        drain_listeners(self.spark)
        self.spark._jsparkSession.streams().removeListener(self._relay)  # noqa: SLF001 (py4j)
        self._recorder.close()


def start(spark: SparkSession, settings: Settings, database_url: str, available_now: bool = False) -> Detector:
    d = settings.detector
    state_format = claim_checkpoint(spark, d.checkpoint_dir, d.operator,
                                    Rule(settings.rule.threshold, settings.rule.window_ms))
    _record_lost_progress(spark, d.checkpoint_dir, database_url)
    stream = detector_stream(spark, settings, state_format)
    writer = stream.writeStream.queryName("velocity-detector").outputMode("update").option(
        "checkpointLocation", d.checkpoint_dir)
    realtime = d.trigger == "realtime" and not available_now  # draining a topic stays micro-batch
    if available_now:
        writer = writer.trigger(availableNow=True)
    elif realtime:
        writer = writer.trigger(realTime=f"{d.realtime_checkpoint_interval} seconds")
    elif d.trigger_interval > 0:
        writer = writer.trigger(processingTime=f"{d.trigger_interval} seconds")
    # PySpark's foreach takes Python objects only: the JVM writer goes to the JVM side of the builder.
    jwriter = foreach_writer(spark, database_url, d.sink_retry_timeout, realtime)
    writer._jwrite = writer._jwrite.foreach(jwriter)  # noqa: SLF001
    recorder = ProgressRecorder(database_url)
    relay = listen(spark, recorder)
    query = writer.start()
    recorder.run_id = str(query.id)
    with postgres.connection(database_url) as conn:
        detections.record_run(conn, str(query.id), rule_name(spark), settings.rule.threshold, settings.rule.window_ms,
                              d.allowed_lateness * 1000, d.operator, "availablenow" if available_now else d.trigger)
    return Detector(spark, query, recorder, relay)


def _record_lost_progress(spark: SparkSession, checkpoint_dir: str, database_url: str) -> None:
    """Input rows of the batches a crash committed before their progress reached PostgreSQL."""
    run_id = query_id(spark, checkpoint_dir)
    if run_id is None:
        return
    with postgres.connection(database_url) as conn:
        filled = detections.record_missing_input_rows(conn, run_id, committed_input_rows(spark, checkpoint_dir))
    if filled:
        log.info("event=lost_progress_recorded run_id=%s batches=%s", run_id, ",".join(map(str, filled)))


def run_detector(settings: Settings, stop: StopFlag, available_now: bool = False) -> int:
    """Run until stopped (SIGTERM/SIGINT), or with ``available_now`` until the topic is drained."""
    database_url = settings.require_database_url()
    check_trigger(settings)
    jdbc_target(database_url)  # an URL the JDBC driver cannot take fails here, before Spark starts
    if "://" not in settings.detector.checkpoint_dir:
        check_checkpoint_dir(Path(settings.detector.checkpoint_dir))
    began = time.monotonic()
    spark = spark_session(settings)
    session_started = time.monotonic()
    detector = start(spark, settings, database_url, available_now)
    query, run_id = detector.query, str(detector.query.id)
    # Where start-up goes: the JVM and Spark's session, then the checkpoint, the plan and the query's thread.
    log.info("event=detector_started run_id=%s topic=%s threshold=%d window_s=%d lateness_s=%d operator=%s"
             " trigger=%s checkpoint=%s session_start_ms=%d query_start_ms=%d", run_id, settings.kafka.topic,
             settings.rule.threshold, settings.rule.window, settings.detector.allowed_lateness,
             settings.detector.operator, settings.detector.trigger, settings.detector.checkpoint_dir,
             (session_started - began) * 1000,
             (time.monotonic() - session_started) * 1000)
    if settings.detector.ready_file is not None:
        settings.detector.ready_file.touch()
    failure = None
    try:
        while not stop and query.isActive:
            query.awaitTermination(0.5)
    except _JVM_GONE as err:
        # After a stop signal, a call into a JVM that is going away is the expected end, not a failure
        # (the local JVM ignores SIGTERM, see session.py; a JVM under spark-submit does not).
        if not stop:
            failure = err
    finally:
        _shut_down(detector, spark, stop)
    if failure is not None:
        if not isinstance(failure, StreamingQueryException):
            raise failure
        log.error("event=detector_failed run_id=%s error=%s", run_id, str(failure).splitlines()[0])
        return 1
    log.info("event=detector_stopped run_id=%s reason=%s", run_id, "signal" if stop else "drained")
    return 0


def _shut_down(detector: Detector, spark: SparkSession, stop: StopFlag) -> None:
    """Stop the query and Spark; after a signal the JVM may already be gone (see run_detector)."""
    try:
        detector.stop()
        spark.stop()
    except _JVM_GONE:
        if not stop:
            raise
