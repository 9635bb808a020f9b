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
BAD_ID = "bad_id"
NON_FINITE_AMOUNT = "non_finite_amount"
NON_POSITIVE_AMOUNT = "non_positive_amount"
BAD_AMOUNT = "bad_amount"
BAD_EVENT_TIME = "bad_event_time"
FUTURE_EVENT_TIME = "future_event_time"
UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
# The operator adds `late` for records at or behind the watermark.

EVENT_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSX"
_NUMERIC = {"amount": T.DoubleType(), "schema_version": T.LongType()}
# Spark's JSON reader turns any value into text for a string field, so only numbers are type-checked.
RECORD_SCHEMA = T.StructType(
    [T.StructField(name, _NUMERIC.get(name, T.StringType())) for name in FIELDS]
    + [T.StructField("_corrupt", T.StringType())]
)
RAW_MAP = T.MapType(T.StringType(), T.StringType())
MAX_ID_LENGTH = 128
# Ids become keys and PostgreSQL text: no control characters (NUL cannot be stored), no JSON containers.
_BAD_ID_PATTERN = r"\p{Cc}|^[\[{]"


def _fields_where(condition, names=FIELDS) -> Column:
    """The names of the record fields for which ``condition(name)`` holds, comma-separated."""
    return F.concat_ws(",", *[F.when(condition(name), F.lit(name)) for name in names])


def _verdict(reason: str, detail: Column) -> Column:
    return F.struct(F.lit(reason).alias("reason"), detail.cast("string").alias("detail"))


def parse_records(kafka: DataFrame, max_record_bytes: int, max_future_s: int) -> DataFrame:
    """Kafka source rows (key, value, topic, partition, offset, timestamp) to the operator's input: the
    columns of InputColumns.NAMES (velocity-operator) plus ``event_time``, the watermark's column."""
    text = F.col("value").cast("string")
    rows = kafka.select(
        F.col("key").alias("raw_key"), F.col("value").alias("raw_value"), "topic",
        F.col("partition").alias("kafka_partition"), F.col("offset").alias("kafka_offset"),
        F.unix_millis(F.col("timestamp")).alias("kafka_timestamp_ms"),
        F.from_json(text, RECORD_SCHEMA, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt"})
        .alias("record"),
    )
    rec = F.col("record")
    amount = rec["amount"]
    event_time = F.try_to_timestamp(rec["event_time"], F.lit(EVENT_TIME_FORMAT))
    # Only records that fail the typed parse are parsed again as a plain map, to say what is wrong.
    raw = F.from_json(F.col("raw_value").cast("string"), RAW_MAP)
    missing = _fields_where(lambda name: raw[name].isNull())
    badly_typed = _fields_where(lambda name: rec[name].isNull())

    is_oversized = F.length(F.col("raw_value")) > max_record_bytes
    is_complete = rec["_corrupt"].isNull() & F.greatest(*[rec[name].isNull() for name in FIELDS]).eqNullSafe(False)
    is_non_finite = F.isnan(amount) | (F.abs(amount) == float("inf"))
    cents = amount * 100
    has_sub_cent_or_huge = (F.abs(cents - F.round(cents)) > 1e-6) | (amount > MAX_AMOUNT)
    is_future = F.unix_millis(event_time) > F.col("kafka_timestamp_ms") + max_future_s * 1000
    bad_ids = _fields_where(lambda name: (F.length(rec[name]) == 0) | (F.length(rec[name]) > MAX_ID_LENGTH)
                            | rec[name].rlike(_BAD_ID_PATTERN), ("transaction_id", "card_id"))

    verdict = (
        F.when(is_oversized, _verdict(OVERSIZED, F.format_string(f"%d bytes > {max_record_bytes}",
                                                                F.length(F.col("raw_value")))))
        .when(~is_complete, F.when(raw.isNull(), _verdict(INVALID_JSON, F.lit("not a JSON object")))
              .when(missing != "", _verdict(MISSING_FIELD, missing))
              .otherwise(_verdict(BAD_TYPE, badly_typed)))
        .when(bad_ids != "", _verdict(BAD_ID, bad_ids))
        .when(is_non_finite, _verdict(NON_FINITE_AMOUNT, amount))
        .when(amount <= 0, _verdict(NON_POSITIVE_AMOUNT, amount))
        .when(has_sub_cent_or_huge, _verdict(BAD_AMOUNT, amount))
        .when(event_time.isNull(), _verdict(BAD_EVENT_TIME, rec["event_time"]))
        .when(is_future, _verdict(FUTURE_EVENT_TIME, rec["event_time"]))
        .when(rec["schema_version"] != SCHEMA_VERSION, _verdict(UNSUPPORTED_SCHEMA_VERSION, rec["schema_version"]))
    )
    checked = rows.select("*", verdict.alias("verdict"), event_time.alias("parsed_time"))
    is_valid = F.col("verdict").isNull()
    return checked.select(
        F.when(is_valid, rec["card_id"]).alias("card_id"),
        rec["transaction_id"].alias("transaction_id"),
        F.when(is_valid, F.col("parsed_time")).alias("event_time"),
        F.when(is_valid, F.unix_millis(F.col("parsed_time"))).alias("event_time_ms"),
        F.when(is_valid, F.round(amount * 100).cast("long")).alias("amount_cents"),
        "kafka_timestamp_ms", "topic", "kafka_partition", "kafka_offset", "raw_key", "raw_value",
        F.col("verdict.reason").alias("reason"),
        # Details quote input: printable, bounded, so the dead-letter row can always be stored.
        F.regexp_replace(F.substring(F.col("verdict.detail"), 1, 500), r"\p{Cc}", "?").alias("detail"),
    )
