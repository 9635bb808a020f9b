"""The detector's Spark I/O: Kafka in, the parse and velocity steps, PostgreSQL out, once per batch.

One streaming query: Kafka source -> parse_records -> watermark -> velocity operator -> foreachBatch sink.
The sink commits each batch in one PostgreSQL transaction keyed by (query id, batch id), so a batch that
Spark re-runs after a crash changes nothing; the checkpoint holds offsets and per-card state.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from py4j.protocol import Py4JError
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

from fraud_detection.detector.parse import parse_records
from fraud_detection.detector.velocity_state import apply_velocity, build_operator, operator_jars
from fraud_detection.settings import KafkaSettings, Settings
from fraud_detection.shutdown import StopFlag
from fraud_detection.storage import detections, postgres

log = logging.getLogger(__name__)

STATE_STORES = {
    "hdfs": "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider",
    "rocksdb": "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
}


def launched_by_spark_submit() -> bool:
    """True in a driver that spark-submit started (Spark Operator, EMR): PySpark then joins that JVM."""
    return "PYSPARK_GATEWAY_PORT" in os.environ  # set by Spark's PythonRunner, read the same way by PySpark


def spark_session(settings: Settings, app_name: str = "fraud-detection-detector") -> SparkSession:
    d = settings.detector
    submitted = launched_by_spark_submit()
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(d.shuffle_partitions))
        .config("spark.sql.streaming.stateStore.providerClass", STATE_STORES[d.state_store])
        # Alerts are emitted as events arrive; batches without new data would only spin.
        .config("spark.sql.streaming.noDataMicroBatches.enabled", "false")
        # The admin-client offset reader (default since Spark 3.1) hung here for minutes in describeTopics
        # against a KRaft broker (kafka-clients 3.9 with broker 4.x); the consumer-based reader does not.
        .config("spark.sql.streaming.kafka.useDeprecatedOffsetFetching", "true")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if not submitted:
        # Local mode: our master and jars. Under spark-submit both come from the submission and the image,
        # whose /opt/spark/jars holds the operator and connector jars (images/detector/Dockerfile).
        folder = d.jars_dir if d.jars_dir is not None else build_operator(settings.local.cache_dir)
        builder = builder.master(d.master).config("spark.jars", ",".join(str(p) for p in operator_jars(folder)))
        if d.master.startswith("local"):  # no UI; services listen on loopback only, the driver's RPC included
            builder = (builder.config("spark.ui.enabled", "false")
                       .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1"))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def kafka_options(kafka: KafkaSettings) -> dict[str, str]:
    """Spark Kafka source options for the same brokers and security as the Python clients."""
    options = {"kafka.bootstrap.servers": kafka.bootstrap_servers, "kafka.security.protocol": kafka.security_protocol}
    if kafka.sasl_mechanism:
        options["kafka.sasl.mechanism"] = kafka.sasl_mechanism
    if kafka.sasl_username and kafka.sasl_password:
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if kafka.sasl_mechanism == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")
        user = kafka.sasl_username.replace('"', '\\"')
        secret = kafka.sasl_password.get_secret_value().replace('"', '\\"')
        options["kafka.sasl.jaas.config"] = f'{module} required username="{user}" password="{secret}";'
    return options


def detector_stream(spark: SparkSession, settings: Settings):
    """The whole transformation, from the topic to the operator's output rows (and its input counter)."""
    d = settings.detector
    reader = (
        spark.readStream.format("kafka")
        .options(**kafka_options(settings.kafka))
        .option("subscribe", settings.kafka.topic)
        .option("startingOffsets", d.starting_offsets)
        .option("failOnDataLoss", str(d.fail_on_data_loss).lower())
        # Ride out a broker restart: offsets are fetched again every 2 s for up to kafka_retry_timeout.
        .option("fetchOffset.numRetries", str(max(1, d.kafka_retry_timeout // 2)))
        .option("fetchOffset.retryIntervalMs", "2000")
    )
    if d.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", d.max_offsets_per_trigger)
    parsed = parse_records(reader.load(), d.max_record_bytes, d.max_future)
    watermarked = parsed.withWatermark("event_time", f"{d.allowed_lateness} seconds")
    return apply_velocity(watermarked, settings.rule.threshold, settings.rule.window_ms, d.state_buckets)


def batch_result(rows) -> detections.BatchResult:
    """The operator's rows of one batch, sorted into the sink's alerts, merges and rejected records."""
    result = detections.BatchResult()
    for r in rows:
        if r.kind == "alert":
            result.alerts.append(detections.AlertRow(
                r.alert_id, r.card_id, r.first_event_time_ms, r.last_event_time_ms, r.txn_count,
                r.amount_total_cents, r.trigger_transaction_id, r.trigger_kafka_timestamp_ms, r.trigger_event_time_ms))
        elif r.kind == "merged":
            result.merges[r.alert_id] = r.merged_into
        elif r.kind == "duplicate":
            result.duplicates += 1
        else:  # rejected by parsing, or late
            result.rejected.append(detections.RejectedRow(
                r.topic, r.kafka_partition, r.kafka_offset, r.reason, r.detail,
                None if r.raw_key is None else bytes(r.raw_key),
                None if r.raw_value is None else bytes(r.raw_value), r.kafka_timestamp_ms))
    return result


class PostgresSink:
    """foreachBatch: commit each micro-batch once (see storage.detections)."""

    def __init__(self, database_url: str, input_rows, retry_timeout_s: float) -> None:
        self._db = postgres.LazyConnection(database_url)
        self._retry_timeout_s = retry_timeout_s
        self._run_id: str | None = None
        self._started = threading.Event()
        self._input_rows = input_rows  # JVM accumulator, read around each batch

    def started(self, run_id: str) -> None:
        self._run_id = run_id
        self._started.set()

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        began = time.monotonic()
        counted_before = self._input_rows.value()
        rows = batch.collect()
        result = batch_result(rows)
        result.input_rows = self._input_rows.value() - counted_before
        self._started.wait()
        outcome = detections.write_batch_retrying(self._db, self._run_id, batch_id, result, self._retry_timeout_s)
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


class ProgressRecorder(StreamingQueryListener):
    """Adds Spark's batch duration to each batch's pipeline_metrics row (after the batch committed)."""

    def __init__(self, database_url: str) -> None:
        self._db = postgres.LazyConnection(database_url)
        self.run_id: str | None = None  # other queries in the same session are not ours

    def onQueryStarted(self, event) -> None:  # noqa: N802 (Spark's listener API)
        pass

    def onQueryProgress(self, event) -> None:  # noqa: N802
        progress = event.progress
        if str(progress.id) != self.run_id:
            return
        try:
            detections.record_duration(self._db.get(), str(progress.id), progress.batchId,
                                       float(progress.durationMs.get("triggerExecution", 0)))
        except Exception as err:  # noqa: BLE001 - a metrics write must not kill the listener thread; the batch is safe
            log.warning("event=progress_not_recorded batch_id=%d error=%s", progress.batchId, err)
            self._db.reset()

    def onQueryIdle(self, event) -> None:  # noqa: N802
        pass

    def onQueryTerminated(self, event) -> None:  # noqa: N802
        pass


class Detector:
    """One running detector query with its sink and progress listener."""

    def __init__(self, spark: SparkSession, query: StreamingQuery, sink: PostgresSink,
                 recorder: ProgressRecorder) -> None:
        self.spark, self.query, self._sink, self._recorder = spark, query, sink, recorder

    def stop(self) -> None:
        """Stop the query, let the last progress reach PostgreSQL, release connections."""
        if self.query.isActive:
            self.query.stop()
        _drain_listeners(self.spark)
        self.spark.streams.removeListener(self._recorder)
        self._sink.close()


def start(spark: SparkSession, settings: Settings, database_url: str, available_now: bool = False) -> Detector:
    stream, input_rows = detector_stream(spark, settings)
    sink = PostgresSink(database_url, input_rows, settings.detector.sink_retry_timeout)
    writer = (
        stream.writeStream.queryName("velocity-detector")
        .outputMode("update")
        .option("checkpointLocation", settings.detector.checkpoint_dir)
        .foreachBatch(sink)
    )
    if available_now:
        writer = writer.trigger(availableNow=True)
    elif settings.detector.trigger_interval > 0:
        writer = writer.trigger(processingTime=f"{settings.detector.trigger_interval} seconds")
    recorder = ProgressRecorder(database_url)
    spark.streams.addListener(recorder)
    query = writer.start()
    recorder.run_id = str(query.id)
    sink.started(str(query.id))
    return Detector(spark, query, sink, recorder)


def _drain_listeners(spark: SparkSession, timeout_ms: int = 10_000) -> None:
    """Let the last progress events reach ProgressRecorder before the Python side goes away."""
    try:
        spark._jsparkSession.sparkContext().listenerBus().waitUntilEmpty(timeout_ms)  # noqa: SLF001 (py4j)
    except Exception as err:  # noqa: BLE001 - only metrics are at stake; never block the shutdown
        log.warning("event=listener_drain_failed error=%s", err)


def check_checkpoint_dir(path: Path) -> None:
    """Fail at start, saying so, when a local checkpoint directory cannot be created or written."""
    probe = path / ".write-probe"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise OSError(f"checkpoint directory {path} is not writable ({err.strerror or err}): "
                      "fix its permissions or set FRAUD_DETECTOR__CHECKPOINT_DIR") from None


def run_detector(settings: Settings, stop: StopFlag, available_now: bool = False) -> int:
    """Run until stopped (SIGTERM/SIGINT), or with ``available_now`` until the topic is drained."""
    database_url = settings.require_database_url()
    if "://" not in settings.detector.checkpoint_dir:
        check_checkpoint_dir(Path(settings.detector.checkpoint_dir))
    spark = spark_session(settings)
    detector = start(spark, settings, database_url, available_now)
    query = detector.query
    log.info("event=detector_started run_id=%s topic=%s threshold=%d window_s=%d lateness_s=%d checkpoint=%s",
             query.id, settings.kafka.topic, settings.rule.threshold, settings.rule.window,
             settings.detector.allowed_lateness, settings.detector.checkpoint_dir)
    try:
        while query.isActive and not stop:
            try:
                query.awaitTermination(0.5)
            except Py4JError:
                if not stop:  # a signal interrupted the call; anything else is a real failure
                    raise
    except StreamingQueryException as err:
        log.error("event=detector_failed error=%s", str(err).splitlines()[0])
        return 1
    finally:
        detector.stop()
        spark.stop()
    log.info("event=detector_stopped run_id=%s", query.id)
    return 0
