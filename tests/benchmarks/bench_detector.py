"""Detector throughput and recall against the naive tumbling-window query (``make bench-detector``).

Same data, same session, same broker: a seeded TrafficModel stream (attacks, decoys) is produced once,
then each query drains it with Trigger.AvailableNow at a fixed batch size. Throughput is rows over the
sum of Spark's trigger times (start-up excluded). Then a live run: the generator at a fixed offered rate
while the detector runs, reporting alert latency (Kafka timestamp of the triggering transaction to alert
row committed) and whether consumer lag grows.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from pyspark.sql import functions as F

from fraud_detection import kafka_clients
from fraud_detection.detector import job, session
from fraud_detection.detector.parse import parse_records
from fraud_detection.generator.publish import Publisher
from fraud_detection.generator.simulate import TrafficModel
from fraud_detection.ground_truth import ATTACK
from fraud_detection.local_stack.kafka import LocalKafka, free_port
from fraud_detection.local_stack.postgres import LocalPostgres
from fraud_detection.settings import load_settings
from fraud_detection.storage import postgres, reports, schema
from tests.benchmarks.bench_generator import _cpu

REPO = Path(__file__).resolve().parents[2]
log = logging.getLogger("bench")


def produce_dataset(kafka, topic: str, rows: int, cards: int, seed: int) -> list:
    """A seeded stream of about ``rows`` transactions; returns the attack episodes injected."""
    day_ms = 86_400_000
    midday_yesterday = int(time.time() * 1000) // day_ms * day_ms - day_ms // 2  # the same traffic at any hour
    model = TrafficModel(card_space="b", population=cards, seed=seed, start_ms=midday_yesterday,
                         rate_per_second=cards / 700, attack_interval_s=50, decoy_ratio=0.5, slice_ms=1000)
    settings = load_settings(kafka={"bootstrap_servers": kafka.bootstrap_servers, "topic": topic})
    publisher = Publisher(settings.kafka)
    sent, episodes = 0, []
    while sent < rows:
        batch = model.next_slice()
        sent += publisher.send_rows(batch.rows())
        episodes += batch.finished_episodes
    episodes += model.cut_open_episodes(model.cursor_ms)
    publisher.close()
    return [e for e in episodes if e.kind == ATTACK]


def kafka_source(spark, settings):
    """The topic from the start, at most max_offsets_per_trigger records per batch."""
    return (spark.readStream.format("kafka").options(**kafka_clients.spark_source_options(settings.kafka))
            .option("subscribe", settings.kafka.topic).option("startingOffsets", "earliest")
            .option("maxOffsetsPerTrigger", settings.detector.max_offsets_per_trigger).load())


def naive_query(spark, settings, full_parse: bool):
    """The seed's design: 10-minute tumbling windows per card, count > threshold.

    ``full_parse`` uses the detector's own parse step (same validation work); otherwise a bare
    ``from_json`` that drops what it cannot read, as the seed did.
    """
    kafka = kafka_source(spark, settings)
    if full_parse:
        parsed = parse_records(kafka, 4096, 86_400).where(F.col("reason").isNull())
    else:
        record = F.from_json(F.col("value").cast("string"), "card_id string, event_time string")
        parsed = kafka.select(record["card_id"].alias("card_id"),
                              F.to_timestamp(record["event_time"]).alias("event_time")).dropna()
    counts = (parsed.withWatermark("event_time", f"{settings.detector.allowed_lateness} seconds")
              .groupBy(F.window("event_time", "10 minutes"), F.col("card_id")).count()
              .where(F.col("count") > settings.rule.threshold))
    return counts.select("card_id", F.col("window.start").alias("start"), F.col("window.end").alias("end"))


# Spark's own defaults for what the detector tunes: each tuning flips a boolean.
SEED_ROCKSDB_DEFAULTS = {name: {"true": "false", "false": "true"}[value] for name, value in session.ROCKSDB_TUNING.items()}


def drain_naive(spark, settings, checkpoint: Path, full_parse: bool):
    found = {}

    def collect(batch, _batch_id):
        for r in batch.collect():
            found[(r.card_id, r.start)] = (r.start, r.end)

    # The seed ran on Spark's RocksDB defaults, and they suit its aggregation better at small batches than the
    # detector's (session.py): the baseline keeps them, so a ratio never gains from slowing it.
    tuned = {name: spark.conf.get(name) for name in SEED_ROCKSDB_DEFAULTS}
    for name, value in SEED_ROCKSDB_DEFAULTS.items():
        spark.conf.set(name, value)
    try:
        query = (naive_query(spark, settings, full_parse).writeStream.outputMode("update")
                 .trigger(availableNow=True).option("checkpointLocation", str(checkpoint)).foreachBatch(collect)
                 .start())
        query.awaitTermination()
    finally:
        for name, value in tuned.items():
            spark.conf.set(name, value)
    return query.recentProgress, found


def stage_queries(spark, settings) -> dict:
    """The detector's steps cut off one after another (each into Spark's no-op sink): the differences
    between neighbours say what each step costs per row."""
    kafka = kafka_source(spark, settings)
    d = settings.detector
    record = F.from_json(F.col("value").cast("string"), "card_id string, event_time string")
    return {
        "Kafka source only (key, value)": kafka.select("key", "value"),
        "+ bare from_json of 2 fields": kafka.select(record["card_id"], F.to_timestamp(record["event_time"])),
        "+ the detector's parse step": parse_records(kafka, d.max_record_bytes, d.max_future),
        "+ watermark, shuffle, operator (no sink)": job.detector_stream(spark, settings),
    }


def drain_stage(frame, checkpoint: Path):
    query = (frame.writeStream.format("noop").outputMode("update" if frame.isStreaming else "append")
             .trigger(availableNow=True).option("checkpointLocation", str(checkpoint)).start())
    query.awaitTermination()
    return query.recentProgress


def drain_exact(spark, settings, url):
    detector = job.start(spark, settings, url, available_now=True)
    detector.query.awaitTermination()
    progress = detector.query.recentProgress
    detector.stop()
    return progress


def throughput(progress) -> tuple[float, float, float, int]:
    batches = [p for p in progress if p.numInputRows > 0]
    seconds = [p.durationMs["triggerExecution"] / 1000 for p in batches]
    rows = sum(p.numInputRows for p in batches)
    p90 = sorted(seconds)[int(0.9 * (len(seconds) - 1))]
    return rows / sum(seconds), statistics.median(seconds), p90, rows


def naive_recall(attacks, found) -> int:
    by_card = {}
    for card, (start, end) in found.items():
        by_card.setdefault(card[0], []).append((start.timestamp() * 1000, end.timestamp() * 1000))
    return sum(1 for a in attacks if any(s <= a.last_event_time_ms and e > a.first_event_time_ms
                                         for s, e in by_card.get(a.card_id, [])))


def exact_recall(url: str, attacks) -> str:
    """Attacks overlapped by a live alert of their card, and alerts that match no attack."""
    with postgres.connection(url) as conn:
        alerts = postgres.fetch_all(conn, "SELECT card_id, (extract(epoch FROM first_event_time) * 1000)::bigint,"
                                          " (extract(epoch FROM last_event_time) * 1000)::bigint"
                                          " FROM alerts WHERE merged_into IS NULL")
        late = postgres.fetch_all(conn, "SELECT coalesce(sum(late_rows), 0) FROM pipeline_metrics")[0][0]
    by_card = {}
    for card, first, last in alerts:
        by_card.setdefault(card, []).append((first, last))
    caught = sum(1 for a in attacks if any(f <= a.last_event_time_ms and last >= a.first_event_time_ms
                                           for f, last in by_card.get(a.card_id, [])))
    return f"{caught}/{len(attacks)}, {len(alerts)} alerts, {late} late"


def phase_medians(url: str) -> dict[str, float]:
    """Median milliseconds per phase over the batches that read records (pipeline_metrics.batch_phases_ms)."""
    with postgres.connection(url) as conn:
        rows = [r[0] for r in postgres.fetch_all(
            conn, "SELECT batch_phases_ms || jsonb_build_object('total', batch_duration_ms) FROM pipeline_metrics"
                  " WHERE input_rows > 0 AND batch_phases_ms IS NOT NULL")]
    return {name: statistics.median(r.get(name, 0.0) for r in rows) for name in sorted({k for r in rows for k in r})}


def print_phases(runs: dict[str, dict[str, float]]) -> None:
    """One column per run: where a batch's time goes (median ms; state times are summed over partitions)."""
    if not runs:
        return
    names = sorted({k for phases in runs.values() for k in phases}, key=lambda k: (k != "total", k))
    print("\n| median ms per batch | " + " | ".join(runs) + " |")
    print("|---|" + "---|" * len(runs))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{phases.get(name, 0):,.0f}" for phases in runs.values()) + " |")


def jvm_env(jvm_options: str) -> tuple[str, dict[str, str]]:
    """A run's name suffix and environment for the detector JVM's ``jvm_options``; none leaves the JVM's own."""
    if not jvm_options:
        return "", {}
    return "-" + re.sub(r"[^a-z0-9]+", "", jvm_options.lower())[:24], {"JAVA_TOOL_OPTIONS": jvm_options}


def backlog_run(kafka, pg, tmp: Path, records: int, cap: int | None = None, partitions: int = 2,
                jvm_options: str = "") -> dict:
    """``fraud-detection detect --until-drained`` over a topic of ``records`` in ``partitions``: from the
    command's start to its last alert committed, with the start-up (to the query running) and the first batch
    apart. ``cap``: FRAUD_DETECTOR__MAX_OFFSETS_PER_TRIGGER (None: the default; 0: one batch).
    ``jvm_options``: the detector JVM's JAVA_TOOL_OPTIONS."""
    suffix, jvm = jvm_env(jvm_options)
    cap_name = "default" if cap is None else str(cap)
    topic = f"backlog-{records}-cap{cap_name}-{partitions}{suffix}"
    kafka.create_topic(topic, partitions)
    attacks = produce_dataset(kafka, topic, records, 50_000, seed=5)
    url = pg.create_database(f"backlog_{records}_cap{cap_name}_{partitions}{suffix.replace('-', '_')}")
    schema.migrate(url)
    ready = tmp / f"{topic}.ready"
    env = {**os.environ, "FRAUD_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "FRAUD_KAFKA__TOPIC": topic,
           "FRAUD_DATABASE_URL": url, "FRAUD_DETECTOR__CHECKPOINT_DIR": str(tmp / f"ckpt-{topic}"),
           "FRAUD_DETECTOR__READY_FILE": str(ready), "FRAUD_LOCAL__CACHE_DIR": str(REPO / ".cache"),
           **({} if cap is None else {"FRAUD_DETECTOR__MAX_OFFSETS_PER_TRIGGER": str(cap)}), **jvm}
    started = time.time()
    with open(tmp / f"{topic}.log", "w") as out:
        rc = subprocess.run([sys.executable, "-m", "fraud_detection.cli", "detect", "--until-drained"], env=env,
                            stdout=out, stderr=out).returncode
    exited = time.time()
    with postgres.connection(url) as conn:
        (last_alert,) = postgres.fetch_all(conn, "SELECT extract(epoch FROM max(updated_at)) FROM alerts")[0]
        batches = postgres.fetch_all(conn, "SELECT batch_duration_ms, input_rows FROM pipeline_metrics"
                                           " WHERE input_rows > 0 ORDER BY batch_id")
    started_line = re.search(r"session_start_ms=(\d+) query_start_ms=(\d+)", (tmp / f"{topic}.log").read_text())
    return {"records": records, "cap": cap_name, "partitions": partitions, "jvm_options": jvm_options, "rc": rc,
            "total_s": float(last_alert) - started, "startup_s": ready.stat().st_mtime - started,
            "session_s": int(started_line[1]) / 1000, "query_start_s": int(started_line[2]) / 1000,
            "first_batch_s": batches[0][0] / 1000, "batches": len(batches), "exit_s": exited - started, "caught": exact_recall(url, attacks),
            "phases": phase_medians(url)}


def live_run(kafka, url, tmp: Path, rate: float, seconds: float, operator: str = "mapgroups",
             store: str = "rocksdb", partitions: int = 6, trigger: str = "microbatch",
             extra_env: dict[str, str] | None = None, tag: str = "") -> dict:
    """Generator at ``rate`` tx/s for ``seconds`` into a topic of ``partitions``, with the detector
    (``operator``, ``store``, ``trigger``; more settings in ``extra_env``) running; latency and lag."""
    name = f"live-{int(rate)}-{operator}-{store}-{partitions}-{trigger}{tag}"
    topic = name
    kafka.create_topic(topic, partitions)
    with postgres.connection(url) as conn, conn, conn.cursor() as cur:
        cur.execute("TRUNCATE alerts, alert_outbox, alert_status_history, pipeline_metrics, rejected_transactions,"
                    " injected_attacks")
    env = {**os.environ, "FRAUD_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "FRAUD_KAFKA__TOPIC": topic,
           "FRAUD_DATABASE_URL": url, "FRAUD_DETECTOR__CHECKPOINT_DIR": str(tmp / f"ckpt-{name}"),
           "FRAUD_DETECTOR__OPERATOR": operator, "FRAUD_DETECTOR__STATE_STORE": store,
           "FRAUD_DETECTOR__STARTING_OFFSETS": "latest", "FRAUD_LOCAL__CACHE_DIR": str(REPO / ".cache"),
           "FRAUD_GENERATOR__RATE": str(rate), "FRAUD_GENERATOR__CLOCK_SPEED": "20",
           "FRAUD_GENERATOR__POPULATION": "5000000", "FRAUD_GENERATOR__SEED": "3",
           "FRAUD_DETECTOR__TRIGGER": trigger, **(extra_env or {})}
    cli = [sys.executable, "-m", "fraud_detection.cli"]
    with open(tmp / f"{name}.log", "w") as out:
        detector = subprocess.Popen([*cli, "detect"], env=env, stdout=out, stderr=out)
        _wait(lambda: "event=detector_started" in (tmp / f"{name}.log").read_text(), 120)
        time.sleep(5)
        generator = subprocess.run([*cli, "generate", "--duration", str(seconds)], env=env, stdout=out, stderr=out)
        lags = []
        if trigger == "realtime":  # input rows are counted only at batch ends: no lag to poll in between
            time.sleep(5)  # for the last alerts, tens of ms each when the detector keeps up
        else:
            for _ in range(30):  # the lag after the generator stops tells whether the detector kept up
                lags.append(_lag(url, kafka, topic))
                if lags[-1] == 0:
                    break
                time.sleep(1)
        detector.terminate()
        detector.wait(60)
    with postgres.connection(url) as conn:
        latencies = sorted(r[0] for r in postgres.fetch_all(
            conn, "SELECT extract(epoch FROM detected_at - trigger_kafka_timestamp) * 1000 FROM alerts"))
        totals = reports.totals(conn)
        batch_rows = [r[0] for r in postgres.fetch_all(conn, "SELECT input_rows FROM pipeline_metrics WHERE input_rows > 0")]
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")  # noqa: E731
    return {"rate": rate, "operator": operator, "store": store, "partitions": partitions,
            "trigger": trigger,
            "generator_rc": generator.returncode, "alerts": len(latencies), "p50": pick(0.5),
            "p99": pick(0.99), "max": latencies[-1] if latencies else float("nan"), "lag_after_stop": lags,
            "attacks": totals.attacks, "detected": totals.attacks_detected, "decoys_alerted": totals.decoys_alerted,
            "mean_batch_rows": statistics.mean(batch_rows) if batch_rows else 0, "phases": phase_medians(url)}


def halves(url: str) -> tuple[float, float]:
    """p99 latency (ms) of the alerts of the run's first and second half, by detection time: the first holds
    the start (the JIT's warm-up)."""
    with postgres.connection(url) as conn:
        rows = postgres.fetch_all(conn, "SELECT detected_at, extract(epoch FROM detected_at - trigger_kafka_timestamp)"
                                        " * 1000 FROM alerts ORDER BY detected_at")
    if len(rows) < 2:
        return float("nan"), float("nan")
    middle = rows[0][0] + (rows[-1][0] - rows[0][0]) / 2
    first = sorted(ms for at, ms in rows if at <= middle)
    second = sorted(ms for at, ms in rows if at > middle)
    return tuple(float(h[min(len(h) - 1, int(0.99 * len(h)))]) if h else float("nan") for h in (first, second))


def _lag(url, kafka, topic) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": "bench-lag"})
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    end = sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions)
    consumer.close()
    with postgres.connection(url) as conn:
        done = postgres.fetch_all(conn, "SELECT coalesce(sum(input_rows), 0) FROM pipeline_metrics")[0][0]
    return int(end - done)


def _wait(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the detector did not start")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--cards", type=int, default=50_000)
    parser.add_argument("--batch-sizes", default="33000,500000")
    parser.add_argument("--state-stores", default="hdfs,rocksdb", help="state stores to measure the detector with")
    parser.add_argument("--operators", default="mapgroups",
                        help="stateful operators to measure, e.g. mapgroups,transformwithstate (rocksdb state only)")
    parser.add_argument("--backlog-caps", default="default",
                        help="batch caps of the backlog runs (FRAUD_DETECTOR__MAX_OFFSETS_PER_TRIGGER), e.g. "
                             "default,0 (0: the whole backlog in one batch)")
    parser.add_argument("--lateness", type=int, default=3600,
                        help="watermark delay (s) of the backlog runs: capped batches over a pre-produced topic "
                             "let partitions drift apart in event time, which a live stream does not")
    parser.add_argument("--stages", action="store_true",
                        help="also time the detector's steps cut off one after another (where a batch's time goes)")
    parser.add_argument("--backlog", type=int, default=540_000,
                        help="records of the drain-a-backlog run (the detect command, start to last alert); 0: none")
    parser.add_argument("--backlog-partitions", default=str(load_settings().kafka.partitions),
                        help="topic partitions of the backlog runs, e.g. 6,2 (default: as `make run` makes the topic)")
    parser.add_argument("--live-rates", default="5000,20000", help="comma separated; empty for none")
    parser.add_argument("--live-seconds", type=float, default=60)
    parser.add_argument("--live-state-stores", default="rocksdb", help="state stores of the live runs")
    parser.add_argument("--jvm-options", default="",
                        help="';'-separated JAVA_TOOL_OPTIONS of the detector in backlog and live runs, side by side,"
                             " e.g. ';-XX:TieredStopAtLevel=1' (the JVM's defaults, then C1 only)")
    parser.add_argument("--live-partitions", default=str(load_settings().kafka.partitions),
                        help="topic partitions of the live runs, e.g. 6,2 (default: as `make run` makes the topic)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("fraud_detection", "py4j", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    results, live, phases = [], [], {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with LocalKafka(tmp / "kafka", REPO / ".cache", port=free_port()) as kafka, LocalPostgres(tmp / "pg") as pg:
            kafka.create_topic("bench", 6)
            attacks = produce_dataset(kafka, "bench", args.rows, args.cards, seed=11)
            log.info("produced %d rows, %d attacks", args.rows, len(attacks))
            base = load_settings(kafka={"bootstrap_servers": kafka.bootstrap_servers, "topic": "bench"},
                                 local={"cache_dir": REPO / ".cache"})
            spark = session.spark_session(base, "bench-detector")
            spark.sparkContext.setLogLevel("ERROR")
            # Untimed: the JVM's first query compiles Spark's code paths; the first measured query would pay it.
            drain_stage(kafka_source(spark, base.model_copy(update={"detector": base.detector.model_copy(
                update={"max_offsets_per_trigger": 100_000})})).select("key", "value"), tmp / "warm-up")
            for size in (int(s) for s in args.batch_sizes.split(",")):
                settings = load_settings(kafka=base.kafka.model_dump(), local={"cache_dir": REPO / ".cache"},
                                         detector={"max_offsets_per_trigger": size, "allowed_lateness": args.lateness,
                                                   "checkpoint_dir": str(tmp / f"exact-{size}")})
                for full_parse in (False, True):
                    progress, found = drain_naive(spark, settings, tmp / f"naive-{size}-{full_parse}", full_parse)
                    name = "naive tumbling, " + ("detector's parse step" if full_parse else "bare from_json")
                    results.append((name, size, *throughput(progress),
                                    f"{naive_recall(attacks, found)}/{len(attacks)}, {len(found)} alerts"))
                    log.info("%s", results[-1])
                if args.stages:
                    for i, (name, frame) in enumerate(stage_queries(spark, settings).items()):
                        progress = drain_stage(frame, tmp / f"stage-{size}-{i}")
                        results.append((name, size, *throughput(progress), "-"))
                        log.info("%s", results[-1])
                for operator, store in itertools.product(args.operators.split(","), args.state_stores.split(",")):
                    if operator == "transformwithstate" and store != "rocksdb":
                        continue  # RocksDB only (settings refuse the pair)
                    url = pg.create_database(f"bench_{size}_{operator}_{store}")
                    schema.migrate(url)
                    spark.conf.set("spark.sql.streaming.stateStore.providerClass", session.STATE_STORES[store])
                    exact = settings.model_copy(update={"detector": settings.detector.model_copy(
                        update={"checkpoint_dir": str(tmp / f"exact-{size}-{operator}-{store}"),
                                "operator": operator})})
                    progress = drain_exact(spark, exact, url)
                    results.append((f"exact ({operator} operator, {store} state)", size,
                                    *throughput(progress), exact_recall(url, attacks)))
                    phases[f"{operator}, {store}, {size:,} rows"] = phase_medians(url)
                    log.info("%s", results[-1])
            spark.stop()
            jvm_variants = args.jvm_options.split(";")
            caps = [None if c == "default" else int(c) for c in args.backlog_caps.split(",")]
            backlogs = [backlog_run(kafka, pg, tmp, args.backlog, cap, int(partitions), jvm_options)
                        for cap, partitions, jvm_options in itertools.product(
                            caps, args.backlog_partitions.split(","), jvm_variants)
                        if args.backlog]
            for b in backlogs:
                log.info("%s", b)
                name = (f"mapgroups, cap {b['cap']}, backlog of {args.backlog:,}, {b['partitions']} partitions"
                        + (f", {b['jvm_options']}" if b["jvm_options"] else ""))
                phases[name] = b["phases"]
            url = pg.create_database("bench_live")
            schema.migrate(url)
            for rate, operator, store, partitions, jvm_options in itertools.product(
                    (float(r) for r in args.live_rates.split(",") if r), args.operators.split(","),
                    args.live_state_stores.split(","),
                    (int(p) for p in args.live_partitions.split(",")), jvm_variants):
                if operator == "transformwithstate" and store != "rocksdb":
                    continue
                suffix, jvm = jvm_env(jvm_options)
                live.append(live_run(kafka, url, tmp, rate, args.live_seconds, operator, store, partitions,
                                     extra_env=jvm, tag=suffix))
                live[-1]["jvm_options"] = jvm_options
                live[-1]["p99_first_half"], live[-1]["p99_second_half"] = halves(url)
                phases[f"{operator}, {store}, {partitions} partitions, live {rate:,.0f} tx/s"
                       + (f", {jvm_options}" if jvm_options else "")] = live[-1]["phases"]
                log.info("%s", live[-1])
    print(f"\nmachine: {_cpu()}, {os.cpu_count()} cores; pyspark {version('pyspark')} local[2], "
          f"{args.rows:,} rows, {args.cards:,} cards, {len(attacks)} attacks\n")
    print("| query | rows per batch | rows/s | median batch s | p90 batch s | rows | attacks caught |")
    print("|---|---|---|---|---|---|---|")
    for name, size, rate, median, p90, rows, caught in results:
        print(f"| {name} | {size:,} | {rate:,.0f} | {median:.2f} | {p90:.2f} | {rows:,} | {caught} |")
    print("\n| operator | state | topic partitions | JVM options | offered tx/s | alerts | latency p50 ms | p99 ms"
          " | max ms | p99 1st half | p99 2nd half | lag after stop (records, per s) | mean batch rows | attacks detected"
          " | decoys alerted |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in live:
        print(f"| {r['operator']} | {r['store']} | {r['partitions']} | {r['jvm_options'] or '-'}"
              f" | {r['rate']:,.0f}"
              f" | {r['alerts']} | {r['p50']:.0f} | {r['p99']:.0f} | {r['max']:.0f} | {r['p99_first_half']:.0f}"
              f" | {r['p99_second_half']:.0f} | "
              f"{r['lag_after_stop'][:5]} | {r['mean_batch_rows']:,.0f} | {r['detected']}/{r['attacks']} | {r['decoys_alerted']} |")
    for backlog in backlogs:
        print(f"\nbacklog of {backlog['records']:,} records in {backlog['partitions']} partitions, batch cap"
              f" {backlog['cap']}, JVM options '{backlog['jvm_options']}', `detect --until-drained`"
              f" (rc {backlog['rc']}): last alert"
              f" committed {backlog['total_s']:.1f} s after the command started; start-up to the query running"
              f" {backlog['startup_s']:.1f} s (Spark session {backlog['session_s']:.1f} s, query start"
              f" {backlog['query_start_s']:.1f} s); first batch {backlog['first_batch_s']:.1f} s ({backlog['batches']}"
              f" batch(es)); process exit {backlog['exit_s']:.1f} s; attacks {backlog['caught']}")
    print_phases(phases)


if __name__ == "__main__":
    main()
