"""Kafka records to the detector's input rows: every record stays, valid or with a reason code.

The checks run in the JVM (RecordParser in src/velocity-operator, one streaming pass over each record's
bytes), so the detector's hot path has no Python and nothing Spark's Real-time Mode forbids. A valid row
has ``card_id`` set and ``reason`` null. A rejected row has a null ``card_id`` and ``event_time`` (so a bad
time can never move the watermark), a reason code and a printable detail; the operator passes it through to
``rejected_transactions`` with its raw bytes and Kafka coordinates, and adds ``late`` for records at or
behind the watermark.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fraud_detection.transaction import FIELDS, MAX_AMOUNT, MAX_ID_LENGTH, SCHEMA_VERSION


def parse_records(kafka: DataFrame, max_record_bytes: int, max_future_s: int) -> DataFrame:
    """Kafka source rows (key, value, topic, partition, offset, timestamp) to the operator's input: the
    columns of InputColumns.NAMES (velocity-operator) plus ``event_time``, the watermark's column."""
    from pyspark.sql.classic.dataframe import DataFrame as ClassicDataFrame

    session = kafka.sparkSession
    velocity = session._jvm.io.github.frauddetection.velocity  # noqa: SLF001 (py4j gateway)
    parser = velocity.RecordParser(list(FIELDS), SCHEMA_VERSION, float(MAX_AMOUNT), MAX_ID_LENGTH,
                                   max_record_bytes, max_future_s * 1000)
    parsed = ClassicDataFrame(velocity.ParseStep.apply(kafka._jdf, parser), session)  # noqa: SLF001 (py4j)
    return parsed.withColumn("event_time", F.timestamp_millis("event_time_ms"))


def reason_codes(spark: SparkSession) -> list[str]:
    """Every reason code the parser gives, in the order it checks them."""
    return list(spark._jvm.io.github.frauddetection.velocity.RecordParser.REASONS)  # noqa: SLF001 (py4j)
