"""Kafka records to the detector's input rows: every record stays, valid or with a reason code.

A valid row has ``card_id`` set and ``reason`` null. A rejected row has a null ``card_id`` and
``event_time`` (so a bad time can never move the watermark), a reason code and a detail; the operator
passes it through to ``rejected_transactions`` with its raw bytes and Kafka coordinates.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from fraud_detection.transaction import FIELDS, MAX_AMOUNT, SCHEMA_VERSION

# Reason codes, in the order they are checked: the first that applies is recorded.
OVERSIZED = "oversized"
INVALID_JSON = "invalid_json"
MISSING_FIELD = "missing_field"
BAD_TYPE = "bad_type"
NON_FINITE_AMOUNT = "non_finite_amount"
NON_POSITIVE_AMOUNT = "non_positive_amount"
BAD_AMOUNT = "bad_amount"
BAD_EVENT_TIME = "bad_event_time"
FUTURE_EVENT_TIME = "future_event_time"
UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
# Set by the operator, not here.
LATE = "late"

EVENT_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSX"
_NUMERIC = {"amount": T.DoubleType(), "schema_version": T.LongType()}
# Spark's JSON reader turns any value into text for a string field, so only numbers are type-checked.
RECORD_SCHEMA = T.StructType(
    [T.StructField(name, _NUMERIC.get(name, T.StringType())) for name in FIELDS]
    + [T.StructField("_corrupt", T.StringType())]
)
RAW_MAP = T.MapType(T.StringType(), T.StringType())

# What the operator reads (see VelocityOperator.INPUT_COLUMNS), plus the watermark's column.
OUTPUT_COLUMNS = (
    "card_id", "transaction_id", "event_time", "event_time_ms", "amount_cents", "kafka_timestamp_ms",
    "topic", "kafka_partition", "kafka_offset", "raw_key", "raw_value", "reason", "detail",
)


def _fields_where(condition) -> Column:
    """The names of the record fields for which ``condition(name)`` holds, comma-separated."""
    return F.concat_ws(",", *[F.when(condition(name), F.lit(name)) for name in FIELDS])


def parse_records(kafka: DataFrame, max_record_bytes: int, max_future_s: int) -> DataFrame:
    """Kafka source rows (key, value, topic, partition, offset, timestamp) to the operator's input."""
    text = F.col("value").cast("string")
    raw = F.from_json(text, RAW_MAP)
    record = F.from_json(text, RECORD_SCHEMA, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt"})
    rows = kafka.select(
        F.col("key").alias("raw_key"), F.col("value").alias("raw_value"), "topic",
        F.col("partition").alias("kafka_partition"), F.col("offset").alias("kafka_offset"),
        F.unix_millis(F.col("timestamp")).alias("kafka_timestamp_ms"),
        raw.alias("raw"), record.alias("record"),
    )
    raw_col, rec = F.col("raw"), F.col("record")
    amount = rec["amount"]
    event_time = F.try_to_timestamp(rec["event_time"], F.lit(EVENT_TIME_FORMAT))

    is_oversized = F.length(F.col("raw_value")) > max_record_bytes
    is_not_json_object = raw_col.isNull()
    missing = _fields_where(lambda name: raw_col[name].isNull())
    has_missing = missing != ""
    badly_typed = _fields_where(lambda name: rec[name].isNull())
    has_bad_type = rec["_corrupt"].isNotNull() | (badly_typed != "")
    is_non_finite = F.isnan(amount) | (F.abs(amount) == float("inf"))
    cents = amount * 100
    has_sub_cent_or_huge = (F.abs(cents - F.round(cents)) > 1e-6) | (amount > MAX_AMOUNT)
    is_future = F.unix_millis(event_time) > F.col("kafka_timestamp_ms") + max_future_s * 1000

    reason = (
        F.when(is_oversized, F.lit(OVERSIZED))
        .when(is_not_json_object, F.lit(INVALID_JSON))
        .when(has_missing, F.lit(MISSING_FIELD))
        .when(has_bad_type, F.lit(BAD_TYPE))
        .when(is_non_finite, F.lit(NON_FINITE_AMOUNT))
        .when(amount <= 0, F.lit(NON_POSITIVE_AMOUNT))
        .when(has_sub_cent_or_huge, F.lit(BAD_AMOUNT))
        .when(event_time.isNull(), F.lit(BAD_EVENT_TIME))
        .when(is_future, F.lit(FUTURE_EVENT_TIME))
        .when(rec["schema_version"] != SCHEMA_VERSION, F.lit(UNSUPPORTED_SCHEMA_VERSION))
    )
    detail = (
        F.when(is_oversized, F.format_string(f"%d bytes > {max_record_bytes}", F.length(F.col("raw_value"))))
        .when(is_not_json_object, F.lit("not a JSON object"))
        .when(has_missing, missing)
        .when(has_bad_type, badly_typed)
        .when(is_non_finite | (amount <= 0) | has_sub_cent_or_huge, amount.cast("string"))
        .when(event_time.isNull(), rec["event_time"])
        .when(is_future, rec["event_time"])
        .when(rec["schema_version"] != SCHEMA_VERSION, rec["schema_version"].cast("string"))
    )
    checked = rows.select("*", reason.alias("reason"), detail.alias("detail"), event_time.alias("parsed_time"))
    is_valid = F.col("reason").isNull()
    return checked.select(
        F.when(is_valid, rec["card_id"]).alias("card_id"),
        rec["transaction_id"].alias("transaction_id"),
        F.when(is_valid, F.col("parsed_time")).alias("event_time"),
        F.when(is_valid, F.unix_millis(F.col("parsed_time"))).alias("event_time_ms"),
        F.when(is_valid, F.round(amount * 100).cast("long")).alias("amount_cents"),
        "kafka_timestamp_ms", "topic", "kafka_partition", "kafka_offset", "raw_key", "raw_value",
        "reason", F.substring(F.col("detail"), 1, 500).alias("detail"),
    )
