"""The detector's Spark session: local mode here, or whatever spark-submit provided."""

from __future__ import annotations

import logging
import os
import signal
import threading

from pyspark.sql import SparkSession

from fraud_detection.detector.velocity_state import build_operator, operator_jars
from fraud_detection.settings import Settings

log = logging.getLogger(__name__)

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
