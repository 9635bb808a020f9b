"""Hostile input through the real detector: every class rejected with its reason or handled, the query
keeps going, every offset accounted for. And the parser under fuzzing."""

from __future__ import annotations

import json
import math
import unicodedata

from confluent_kafka import Producer
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pyspark.sql import types as T

from fraud_detection.detector import parse
from fraud_detection.rules.velocity import Event
from fraud_detection.storage import postgres
from fraud_detection.transaction import MAX_AMOUNT
from tests.integration import detector_runs as runs
from tests.integration.bad_inputs import ACCEPTED, corpus, record
from tests.integration.test_detector import detector_settings


def has_control(text: str) -> bool:
    """Control characters (Unicode category Cc, NUL among them), which ids and details must not carry."""
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def produce_raw(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]):
    """Like runs.produce, with room for the 1 MB record."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "message.max.bytes": 2_000_000})
    return runs.produce(bootstrap, topic, records, using=producer)


def test_every_hostile_class_is_rejected_with_its_reason_or_handled(spark, kafka, topic, database_url, stack_env,
                                                                   tmp_path, operator):
    """27 classes after a warm-up: reasons as listed, oddities accepted, the victim still alerted, the SQL-looking
    card stored verbatim, every offset counted once."""
    t0 = runs.base_ms() + 7_200_000
    warmup = [Event("warm", f"w{i}", t0 - 600_000 + i * 1000, 100) for i in range(3)]
    runs.produce_events(kafka.bootstrap_servers, topic, warmup)
    runs.drain(spark, detector_settings(tmp_path, operator=operator), database_url)

    cases = corpus(t0)
    assert len({c.expected for c in cases if c.expected != ACCEPTED}) >= 12 and len(cases) >= 15
    victim = [Event("victim", f"v{i}", t0 + i * 20_000, 1000) for i in range(6)]
    sql_card = [json.loads(c.value)["card_id"] for c in cases if c.name == "SQL-looking card id"][0]
    sql_burst = [record(sql_card, f"s{i}", t0 + i * 10_000) for i in range(1, 6)]  # with the corpus one: 6
    duplicate = runs.payload(victim[0])
    records = ([(c.key, c.value) for c in cases] + [(e.card_id.encode(), runs.payload(e)) for e in victim]
               + [(b"s", v) for v in sql_burst] + [(b"victim", duplicate)])
    coordinates = produce_raw(kafka.bootstrap_servers, topic, records)
    runs.drain(spark, detector_settings(tmp_path, operator=operator), database_url)

    with postgres.connection(database_url) as conn:
        rejected = dict(((p, o), reason) for p, o, reason in postgres.fetch_all(
            conn, "SELECT kafka_partition, kafka_offset, reason FROM rejected_transactions"))
        details = [d for (d,) in postgres.fetch_all(conn, "SELECT detail FROM rejected_transactions")]
        cards = {c for (c,) in postgres.fetch_all(conn, "SELECT card_id FROM alerts WHERE merged_into IS NULL")}
    outcome = {c.name: rejected.get(coordinates[i], ACCEPTED) for i, c in enumerate(cases)}
    assert outcome == {c.name: c.expected for c in cases}
    assert not any(d is not None and has_control(d) for d in details), "details are stored without controls"
    assert cards == {"victim", sql_card}, "the query kept going; the SQL-looking id is just a card"
    totals = runs.metrics_totals(database_url)
    assert totals["input_rows"] == len(warmup) + len(records), "every offset counted once"
    rejected_count = sum(1 for c in cases if c.expected != ACCEPTED)
    assert (totals["rejected_rows"] + totals["late_rows"], totals["duplicate_rows"]) == (rejected_count, 1)


KAFKA_ROWS = T.StructType([
    T.StructField("key", T.BinaryType()), T.StructField("value", T.BinaryType()),
    T.StructField("topic", T.StringType()), T.StructField("partition", T.IntegerType()),
    T.StructField("offset", T.LongType()), T.StructField("timestamp", T.TimestampType()),
])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)
FIELDS = ["transaction_id", "card_id", "amount", "currency", "merchant_id", "merchant_category", "country",
          "channel", "event_time", "schema_version"]


@st.composite
def payloads(draw) -> bytes | None:
    """Random bytes, random JSON, or a valid record with one field dropped or replaced by anything."""
    kind = draw(st.sampled_from(["bytes", "json", "mutated", "valid"]))
    if kind == "bytes":
        return draw(st.none() | st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(JSON_VALUES), allow_nan=True).encode()
    base = json.loads(record(draw(st.text(min_size=1, max_size=12)), draw(st.uuids()).hex, runs.base_ms(),
                             amount=draw(st.integers(1, 10**8)) / 100))
    if kind == "mutated":
        name = draw(st.sampled_from(FIELDS))
        if draw(st.booleans()):
            del base[name]
        else:
            base[name] = draw(JSON_VALUES)
    return json.dumps(base, allow_nan=True).encode()


@given(batch=st.lists(payloads(), min_size=50, max_size=150))
# Bounded: 12 batches of up to 150 records, one Spark job each; no shrinking (each run takes a second or two).
@hypothesis_settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_parser_fuzz_every_record_is_valid_or_rejected_with_a_known_reason(spark, batch):
    """For any input: one output row per record, with either a sane transaction or a known reason code."""
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    rows = [(b"k", value, "fuzz", 0, i, now) for i, value in enumerate(batch)]
    parsed = parse.parse_records(spark.createDataFrame(rows, KAFKA_ROWS), 4096, 86_400).collect()
    reasons = set(parse.reason_codes(spark))
    assert sorted(r.kafka_offset for r in parsed) == list(range(len(batch)))
    for r in parsed:
        if r.reason is None:
            assert r.card_id and r.transaction_id and r.event_time is not None
            assert 0 < r.amount_cents <= MAX_AMOUNT * 100 and not math.isnan(r.amount_cents)
            assert not has_control(r.card_id) and not r.card_id.startswith(("{", "["))
            r.card_id.encode("utf-8")  # storable as PostgreSQL text: no lone surrogate survives the JVM
        else:
            assert r.reason in reasons, r.reason
            assert r.card_id is None and r.event_time is None
            assert r.detail is None or not has_control(r.detail)
