"""The detector's Spark session and checkpoint: local mode here, or whatever spark-submit provided."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

from pyspark.sql import SparkSession

from fraud_detection.detector.velocity_state import build_operator, operator_jars
from fraud_detection.settings import Operator, Settings

log = logging.getLogger(__name__)

# Written into the checkpoint folder: the operator whose state the checkpoint holds, and how it stores it.
OPERATOR_MARKER = "fraud-detection-operator"
STATE_FORMAT_MARKER = "fraud-detection-state-format"
# StateFormat in velocity-operator: 1 the bean of arrays (checkpoints from before format markers), 2 bytes.
STATE_FORMAT = 2
LEGACY_STATE_FORMAT = 1

# RocksDB (the default store): a commit writes the batch's changes, not new SST files (snapshots follow in
# the background), and a put no longer reads its key first to count rows. Checkpoints written either way
# resume either way. (Spark's defaults are the opposite: bench_detector runs its naive baseline on them.)
ROCKSDB_TUNING = {
    "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
    "spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows": "false",
}

# RocksDB's memory, shared by every state store instance of the JVM: one block cache and write-buffer budget
# that also holds the index and filter blocks, which otherwise grow with the number of SST files.
ROCKSDB_MEMORY = {
    "spark.sql.streaming.stateStore.rocksdb.boundedMemoryUsage": "true",
    "spark.sql.streaming.stateStore.rocksdb.maxMemoryUsageMB": "256",
}

# A streaming job runs jobs, stages and SQL executions for every micro-batch, forever. Spark's status store
# keeps the last 1,000 of each with their plans and metrics (UI or not), the heap's largest long-lived
# tenant; the last 100 are plenty for the UI and history of a job whose progress goes to PostgreSQL.
STATUS_RETENTION = {
    "spark.ui.retainedJobs": "100",
    "spark.ui.retainedStages": "100",
    "spark.sql.ui.retainedExecutions": "100",
}

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
    for name, value in {**ROCKSDB_TUNING, **ROCKSDB_MEMORY, **STATUS_RETENTION}.items():
        builder = builder.config(name, value)
    if not submitted:
        # Local mode: our master and jars. Under spark-submit both come from the submission and the image,
        # whose /opt/spark/jars holds the operator and connector jars (images/detector/Dockerfile).
        folder = d.jars_dir if d.jars_dir is not None else build_operator(settings.local.cache_dir)
        builder = builder.master(d.master).config("spark.jars", ",".join(str(p) for p in operator_jars(folder)))
        # One JVM holds driver and executors. Its heap is committed and touched at start (as in a container
        # sized for it), so the process's memory is flat from the first batch instead of growing with the
        # heap; what grows after that is native memory or a leak, which is what bench_soak watches.
        builder = (builder.config("spark.driver.memory", d.local_heap)
                   .config("spark.driver.extraJavaOptions", f"-Xms{d.local_heap} -XX:+AlwaysPreTouch"))
        if d.master.startswith("local"):  # no UI; services listen on loopback only, the driver's RPC included
            builder = (builder.config("spark.ui.enabled", "false")
                       .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1"))
    spark = _start_jvm_deaf_to_sigterm(builder) if not submitted else builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _start_jvm_deaf_to_sigterm(builder: SparkSession.Builder) -> SparkSession:
    """Start PySpark's JVM with SIGTERM ignored, as PySpark already ignores SIGINT for it: a signal to the
    whole process group (Ctrl-C in a terminal, many supervisors) then reaches only this process, which stops
    the query and Spark in order. The JVM still ends with us: it exits when our end of its pipe closes."""
    if threading.current_thread() is not threading.main_thread():
        return builder.getOrCreate()
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the JVM; HotSpot then leaves it
    try:
        return builder.getOrCreate()
    finally:
        signal.signal(signal.SIGTERM, previous)


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


class CheckpointOperatorError(RuntimeError):
    """The checkpoint holds the other operator's state; the message says what to do."""


def claim_checkpoint(spark: SparkSession, checkpoint_dir: str, operator: Operator) -> int:
    """Record which operator's state a checkpoint holds, and refuse to resume it with the other one; returns
    the checkpoint's state format (a new checkpoint gets STATE_FORMAT, an old one keeps its own).

    The two operators keep differently keyed state under different Spark operators, so neither can read the
    other's; Spark would fail at the first batch with a message about its state metadata. Also clears what
    a crash in the first batch left (_discard_an_uncommitted_start). Goes through Hadoop's FileSystem, as
    Spark does, so that an s3a:// checkpoint is checked too.
    """
    jvm = spark._jvm  # noqa: SLF001 (py4j gateway)
    root = jvm.org.apache.hadoop.fs.Path(checkpoint_dir)
    fs = root.getFileSystem(spark._jsc.hadoopConfiguration())  # noqa: SLF001 (py4j)

    def read(name: str) -> str | None:
        path = jvm.org.apache.hadoop.fs.Path(root, name)
        if not fs.exists(path):
            return None
        stream = fs.open(path)
        try:
            return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8").strip()
        finally:
            stream.close()

    def write(name: str, text: str) -> None:
        stream = fs.create(jvm.org.apache.hadoop.fs.Path(root, name), True)
        try:
            stream.write(text.encode())
        finally:
            stream.close()

    if _discard_an_uncommitted_start(jvm, fs, root):
        log.warning("event=checkpoint_uncommitted_start_discarded checkpoint=%s", checkpoint_dir)
    started = fs.exists(jvm.org.apache.hadoop.fs.Path(root, "offsets"))  # Spark ran a batch there
    holder = read(OPERATOR_MARKER) or ("mapgroups" if started else None)  # from before the marker existed
    if started and holder != operator:
        raise CheckpointOperatorError(
            f"checkpoint {checkpoint_dir} holds the state of operator {holder}, not {operator}: set"
            f" FRAUD_DETECTOR__OPERATOR={holder} to resume it, or give a new FRAUD_DETECTOR__CHECKPOINT_DIR"
            " (docs/real-time-mode.md, 'Changing operator')")
    if holder != operator:
        write(OPERATOR_MARKER, operator)
    recorded = read(STATE_FORMAT_MARKER)
    if recorded is not None:
        return int(recorded)
    state_format = LEGACY_STATE_FORMAT if started else STATE_FORMAT
    write(STATE_FORMAT_MARKER, str(state_format))
    return state_format


def _discard_an_uncommitted_start(jvm, fs, root) -> bool:
    """A checkpoint whose first batch never committed holds nothing to resume, but after a crash in that
    batch Spark 4.3 refuses to start over its leftovers (STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY: the
    commit log's temp file, the batch's uncommitted state) until they are deleted by hand. Deletes those two
    folders; the offset log (which Spark truncates itself) and the source's starting offsets stay."""
    commits = jvm.org.apache.hadoop.fs.Path(root, "commits")
    if not fs.exists(commits) or any(s.getPath().getName().isdigit() for s in fs.listStatus(commits)):
        return False
    for name in ("commits", "state"):
        fs.delete(jvm.org.apache.hadoop.fs.Path(root, name), True)
    return True
