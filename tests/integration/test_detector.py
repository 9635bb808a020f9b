"""The Spark detector on real Kafka and PostgreSQL: exact alerts, dead letters, metrics."""

from __future__ import annotations

import json
import random
import uuid

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from fraud_detection.detector.checkpoint import (
    LEGACY_STATE_FORMAT,
    STATE_FORMAT,
    STATE_FORMAT_MARKER,
    CheckpointMismatchError,
    Rule,
    claim_checkpoint,
)
from fraud_detection.detector.job import start
from fraud_detection.settings import load_settings
from fraud_detection.storage import postgres, schema
from fraud_detection.transaction import format_event_time
from tests.integration import detector_runs as runs
from tests.integration.conftest import CACHE_DIR


def detector_settings(tmp_path, **detector):
    """Settings from the test's FRAUD_* environment, with a fresh checkpoint."""
    return load_settings(local={"cache_dir": CACHE_DIR},
                         detector={"checkpoint_dir": str(tmp_path / "checkpoint"), **detector})


def differential_run(seed: int, cards: int, operator: str, spark, kafka, pg_server, tmp) -> None:
    """A random stream (boundary-straddling bursts, ties, redeliveries, out-of-order) through the detector in
    five micro-batches; its alerts, triggers and counts against the oracle."""
    rng = random.Random(seed)
    events = [e for c in range(cards)
              for e in runs.card_events(rng, f"card{seed}x{c}", runs.base_ms() + rng.randint(0, 3_600_000))]
    delivered = runs.arrival_order(rng, events, max_delay_ms=60_000, duplicate_share=0.05)
    run = uuid.uuid4().hex[:10]
    topic = f"diff-{run}"
    kafka.create_topic(topic, partitions=3)
    url = pg_server.create_database(f"diff_{run}")
    schema.migrate(url)
    settings = load_settings(kafka={"bootstrap_servers": kafka.bootstrap_servers, "topic": topic},
                             local={"cache_dir": CACHE_DIR},
                             detector={"checkpoint_dir": str(tmp / "checkpoint"), "operator": operator})
    # Deliver in chunks, one micro-batch each, as a live stream would: the watermark of each batch comes
    # from the ones before. (Pre-producing everything and capping batch size would skew partitions in time.)
    chunks = 5
    for i in range(chunks):
        chunk = delivered[i * len(delivered) // chunks:(i + 1) * len(delivered) // chunks]
        runs.produce_events(kafka.bootstrap_servers, topic, chunk)
        runs.drain(spark, settings, url)
    assert runs.live_alerts(url) == runs.oracle_alerts(events)
    with postgres.connection(url) as conn:  # the raising transaction lies inside its burst
        (outside,) = postgres.fetch_all(conn, "SELECT count(*) FROM alerts WHERE trigger_event_time IS NULL"
                                              " OR trigger_event_time NOT BETWEEN first_event_time AND last_event_time")
    assert outside == (0,)
    totals = runs.metrics_totals(url)
    assert totals["late_rows"] == 0, "delays stay within the allowed lateness"
    assert totals["input_rows"] == len(delivered)
    assert totals["duplicate_rows"] == len(delivered) - len(events)
    assert totals["batches"] == chunks
    with postgres.connection(url) as conn:  # where each batch's time went (migration 0008)
        phases = [p for (p,) in postgres.fetch_all(conn, "SELECT batch_phases_ms FROM pipeline_metrics")]
    assert len(phases) == chunks
    expected = {"addBatch", "walCommit", "commitOffsets", "stateCommit", "stateUpdates"}
    for p in phases:
        assert p.keys() >= expected and min(p.values()) >= 0, p


# Each example is a whole streaming run (seconds), so no shrinking: the seed in the report reproduces it.
RUNS = {"deadline": None, "phases": [Phase.explicit, Phase.reuse, Phase.generate],
        "suppress_health_check": [HealthCheck.function_scoped_fixture]}


@given(seed=st.integers(0, 2**32 - 1), cards=st.integers(20, 60))
@hypothesis_settings(max_examples=3, **RUNS)
def test_alerts_equal_the_oracle_on_out_of_order_streams_with_duplicates(
    seed, cards, spark, kafka, pg_server, tmp_path_factory
):
    """Random streams (boundary-straddling bursts, ties, redeliveries, out-of-order) give the oracle's alerts."""
    differential_run(seed, cards, "mapgroups", spark, kafka, pg_server, tmp_path_factory.mktemp("diff"))


@given(seed=st.integers(0, 2**32 - 1), cards=st.integers(20, 40))
@hypothesis_settings(max_examples=2, **RUNS)
def test_transformwithstate_alerts_equal_the_oracle_on_out_of_order_streams_with_duplicates(
    seed, cards, spark, kafka, pg_server, tmp_path_factory
):
    """The same differential run on the transformWithState operator (fewer examples: its JUnit property
    test covers more histories)."""
    differential_run(seed, cards, "transformwithstate", spark, kafka, pg_server, tmp_path_factory.mktemp("diff"))


def test_the_local_jvm_has_the_configured_heap_committed_from_the_start(spark):
    """FRAUD_DETECTOR__LOCAL_HEAP reaches the JVM that PySpark launches, as its maximum and initial heap."""
    heap = load_settings().detector.local_heap
    expected = int(heap[:-1]) << {"m": 20, "g": 30}[heap[-1]]
    runtime = spark._jvm.java.lang.Runtime.getRuntime()  # noqa: SLF001 (py4j gateway)
    assert runtime.maxMemory() == expected
    assert runtime.totalMemory() == expected, "committed at start, not grown on demand"


@pytest.mark.parametrize("committed", [False, True])
def test_a_first_batch_that_never_committed_leaves_nothing_that_blocks_a_restart(spark, tmp_path, committed):
    """kill -9 while the first batch commits leaves the commit log's temp file and that batch's state, over
    which Spark 4.3 refuses to start (seen in the real-time kill test). With no committed batch they are
    deleted at the next start; once a batch has committed, nothing is touched."""
    checkpoint = tmp_path / "checkpoint"
    leftovers = [checkpoint / "commits" / ".0.5f0c.tmp", checkpoint / "state" / "0" / "0" / "1.changelog",
                 checkpoint / "offsets" / "0", checkpoint / "sources" / "0" / "0"]
    if committed:
        leftovers.append(checkpoint / "commits" / "0")
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("v1")
    claim_checkpoint(spark, str(checkpoint), "mapgroups", Rule(5, 600_000))
    kept = {p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*") if p.is_file() and ".crc" not in p.name
            and not p.name.startswith("fraud-detection-")}
    everything = {p.relative_to(checkpoint).as_posix() for p in leftovers}
    assert kept == (everything if committed else {"offsets/0", "sources/0/0"})


def test_a_checkpoint_is_resumed_only_by_the_operator_that_wrote_it(spark, kafka, topic, database_url, stack_env,
                                                                     tmp_path):
    """mapgroups, then transformwithstate on the same checkpoint: refused at start, saying what to set."""
    runs.produce_events(kafka.bootstrap_servers, topic, [runs.Event("c", "t1", runs.base_ms(), 100)])
    runs.drain(spark, detector_settings(tmp_path, operator="mapgroups"), database_url)
    with pytest.raises(CheckpointMismatchError, match="FRAUD_DETECTOR__OPERATOR=mapgroups"):
        start(spark, detector_settings(tmp_path, operator="transformwithstate"), database_url, available_now=True)
    runs.drain(spark, detector_settings(tmp_path, operator="mapgroups"), database_url)  # its own still resumes
    assert runs.metrics_totals(database_url)["input_rows"] == 1


def test_input_rows_that_a_crash_kept_from_postgresql_come_from_the_offset_log_at_the_next_start(
        spark, kafka, topic, database_url, stack_env, tmp_path):
    """A batch's input rows arrive with Spark's progress, after its commit; a crash in between loses them.
    The next start counts them from the checkpoint's offset log: the first batch from the source's initial
    offsets, each later one from the batch before."""
    rng = random.Random(4)
    for chunk in range(3):
        events = [runs.Event(f"c{chunk}-{i}", f"t{chunk}-{i}", runs.base_ms() + rng.randint(0, 600_000), 100)
                  for i in range(50 + chunk)]
        runs.produce_events(kafka.bootstrap_servers, topic, events)
        runs.drain(spark, detector_settings(tmp_path), database_url)
    with postgres.connection(database_url) as conn:
        recorded = postgres.fetch_all(conn, "SELECT batch_id, input_rows FROM pipeline_metrics ORDER BY 1")
        assert [rows for _, rows in recorded] == [50, 51, 52]
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE pipeline_metrics SET input_rows = NULL")  # as if every progress event were lost
    runs.drain(spark, detector_settings(tmp_path), database_url)  # nothing new to read: no batch runs
    with postgres.connection(database_url) as conn:
        assert postgres.fetch_all(conn, "SELECT batch_id, input_rows FROM pipeline_metrics ORDER BY 1") == recorded


def test_a_checkpoint_is_resumed_only_under_the_rule_it_was_built_with(spark, kafka, topic, database_url, stack_env,
                                                                      tmp_path):
    """Another threshold or window on an existing checkpoint is refused at start, saying what to set; a new
    checkpoint under the new rule raises alerts of its own, and each alert names the run (and rule) behind it."""
    t0 = runs.base_ms()
    burst = [runs.Event("c", f"t{i}", t0 + i * 60_000, 100) for i in range(7)]
    runs.produce_events(kafka.bootstrap_servers, topic, burst)
    runs.drain(spark, detector_settings(tmp_path), database_url)
    for rule in ({"threshold": 6}, {"window": 900}):
        with pytest.raises(CheckpointMismatchError, match="FRAUD_RULE__THRESHOLD=5 and FRAUD_RULE__WINDOW=600"):
            start(spark, load_settings(rule=rule, local={"cache_dir": CACHE_DIR},
                                       detector={"checkpoint_dir": str(tmp_path / "checkpoint")}),
                  database_url, available_now=True)
    runs.drain(spark, load_settings(rule={"threshold": 6}, local={"cache_dir": CACHE_DIR},
                                    detector={"checkpoint_dir": str(tmp_path / "new-rule")}), database_url)
    with postgres.connection(database_url) as conn:
        alerts = postgres.fetch_all(conn, "SELECT r.threshold, r.window_ms, a.txn_count FROM alerts a"
                                          " JOIN detector_runs r USING (run_id) ORDER BY 1")
    assert alerts == [(5, 600_000, 7), (6, 600_000, 7)]


def test_a_checkpoint_from_before_state_formats_resumes_in_its_own(spark, kafka, topic, database_url, stack_env,
                                                                  tmp_path, operator):
    """A checkpoint without a state-format marker (written before there were two) keeps the bean format; its
    cards' windows carry over the restart; a new checkpoint records the compact format."""
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / STATE_FORMAT_MARKER).write_text(str(LEGACY_STATE_FORMAT))  # as the earlier release wrote it
    t0 = runs.base_ms()
    burst = [runs.Event("c", f"t{i}", t0 + i * 60_000, 100) for i in range(6)]
    runs.produce_events(kafka.bootstrap_servers, topic, burst[:3])
    runs.drain(spark, detector_settings(tmp_path, operator=operator), database_url)
    (checkpoint / STATE_FORMAT_MARKER).unlink()  # the earlier release wrote none
    runs.produce_events(kafka.bootstrap_servers, topic, burst[3:])
    runs.drain(spark, detector_settings(tmp_path, operator=operator), database_url)
    assert (checkpoint / STATE_FORMAT_MARKER).read_text() == str(LEGACY_STATE_FORMAT)
    assert runs.live_alerts(database_url) == runs.oracle_alerts(burst), "the first three came through the restart"

    fresh = tmp_path / "fresh"
    runs.drain(spark, detector_settings(fresh, operator=operator), database_url)
    assert (fresh / "checkpoint" / STATE_FORMAT_MARKER).read_text() == str(STATE_FORMAT)


_DROP = object()


def _record(card: str, tid: str, time_ms: int, **changes) -> bytes:
    doc = json.loads(runs.payload(runs.Event(card, tid, time_ms, 1000)))
    doc.update(changes)
    for field in [k for k, v in changes.items() if v is _DROP]:
        del doc[field]
    return json.dumps(doc, allow_nan=True).encode()


def test_every_malformed_record_lands_in_the_dead_letter_table_and_the_query_keeps_going(
    spark, kafka, topic, database_url, stack_env, tmp_path, operator
):
    """Each bad-input class gets its reason code; valid records after them still raise the right alert."""
    t0 = runs.base_ms() + 3_600_000
    bad = {
        "not json": (b"not json", "invalid_json"),
        "array": (b"[1, 2]", "invalid_json"),
        "empty": (b"", "invalid_json"),
        "binary": (b"\xff\xfe{\x00", "invalid_json"),
        "no card": (_record("c", "b1", t0, card_id=_DROP), "missing_field"),
        "null amount": (_record("c", "b2", t0, amount=None), "missing_field"),
        "amount as text": (_record("c", "b3", t0, amount="12.50"), "bad_type"),
        "negative": (_record("c", "b4", t0, amount=-5), "non_positive_amount"),
        "zero": (_record("c", "b5", t0, amount=0), "non_positive_amount"),
        "nan": (_record("c", "b6", t0, amount=float("nan")), "non_finite_amount"),
        "infinite": (b'{"transaction_id":"b7","card_id":"c","amount":1e400,"currency":"EUR","merchant_id":"m",'
                     b'"merchant_category":"5411","country":"DE","channel":"pos","event_time":"'
                     + format_event_time(t0).encode() + b'","schema_version":1}', "non_finite_amount"),
        "sub-cent": (_record("c", "b8", t0, amount=1.234), "bad_amount"),
        "bad time": (_record("c", "b9", t0, event_time="yesterday"), "bad_event_time"),
        "future": (_record("c", "b10", t0, event_time=format_event_time(runs.base_ms() + 5 * 86_400_000)),
                   "future_event_time"),
        "version 2": (_record("c", "b11", t0, schema_version=2), "unsupported_schema_version"),
        "oversized": (_record("c", "b12", t0, merchant_id="m" * 5000), "oversized"),
    }
    valid = [runs.Event("victim", f"v{i}", t0 + i * 30_000, 1000) for i in range(6)]
    records = [(b"c", value) for value, _ in bad.values()] + [(e.card_id, runs.payload(e)) for e in valid]
    coordinates = runs.produce(kafka.bootstrap_servers, topic, records)
    runs.drain(spark, detector_settings(tmp_path, operator=operator), database_url)

    with postgres.connection(database_url) as conn:
        rejected = {(p, o): (reason, bytes(raw)) for p, o, reason, raw in postgres.fetch_all(
            conn, "SELECT kafka_partition, kafka_offset, reason, raw_payload FROM rejected_transactions")}
    expected = {coordinates[i]: (reason, value) for i, (value, reason) in enumerate(bad.values())}
    assert rejected == expected
    assert runs.live_alerts(database_url) == runs.oracle_alerts(valid), "a future time must not move the watermark"
    totals = runs.metrics_totals(database_url)
    assert totals["input_rows"] == len(records), "every consumed offset is accounted for"
    assert totals["rejected_rows"] == len(bad)

    # Second run from the same checkpoint: the watermark now trails the valid events by 2 minutes.
    late = runs.Event("victim", "late1", t0 - 3_600_000, 1000)
    redelivered = valid[-1]
    (late_at, _) = runs.produce(kafka.bootstrap_servers, topic, [(late.card_id, runs.payload(late)),
                                                                  (redelivered.card_id, runs.payload(redelivered))])
    runs.drain(spark, detector_settings(tmp_path, operator=operator), database_url)
    with postgres.connection(database_url) as conn:
        (reason,) = postgres.fetch_all(conn, "SELECT reason FROM rejected_transactions WHERE kafka_partition = %s"
                                             " AND kafka_offset = %s", late_at)[0]
    assert reason == "late"
    totals = runs.metrics_totals(database_url)
    assert (totals["input_rows"], totals["late_rows"], totals["duplicate_rows"]) == (len(records) + 2, 1, 1)
    assert runs.live_alerts(database_url) == runs.oracle_alerts(valid)
