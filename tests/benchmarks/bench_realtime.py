"""Real-time mode against micro-batch, side by side on Spark 4.3 (``make bench-realtime``).

The same live run as bench_detector's (generator at a fixed rate into a 2-partition topic, the detector
running, latency from the raising transaction's Kafka timestamp to its alert committed), once per trigger,
with the transformWithState operator, which real-time mode needs. Both runs use one Spark
4.3 runtime (a side virtual environment; the project itself pins 4.0.4) and the same task slots. The
halves' p99 split the run's alerts by detection time (bench_detector.halves).

The Kafka connector is 4.2.0 (velocity_state.REALTIME_CONNECTOR: 4.3.0 is not served here yet).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import pyspark

from fraud_detection.detector.job import REALTIME_SPARK
from fraud_detection.detector.velocity_state import REALTIME_CONNECTOR, realtime_jars
from fraud_detection.local_stack.kafka import LocalKafka, free_port
from fraud_detection.local_stack.postgres import LocalPostgres
from fraud_detection.storage import postgres, schema
from tests.benchmarks.bench_detector import halves, live_run
from tests.benchmarks.bench_generator import _cpu

REPO = Path(__file__).resolve().parents[2]
log = logging.getLogger("bench")

PARTITIONS = 2
SHUFFLE_PARTITIONS = 2


def checkpoints(url: str) -> int:
    """Batches that ended during the run: real-time mode checkpoints once per batch."""
    with postgres.connection(url) as conn:
        return int(postgres.fetch_all(conn, "SELECT count(*) FROM pipeline_metrics WHERE component = 'detector'")[0][0])


def realtime_env(lateness: int) -> dict[str, str]:
    """The detector's settings for these runs: the side Spark's jars and a task slot per Kafka and state
    partition (real-time mode runs both stages at once; micro-batch gets the same)."""
    return {"FRAUD_DETECTOR__JARS_DIR": str(realtime_jars(REPO / ".cache")),
            "FRAUD_DETECTOR__MASTER": f"local[{PARTITIONS + SHUFFLE_PARTITIONS}]",
            "FRAUD_DETECTOR__SHUFFLE_PARTITIONS": str(SHUFFLE_PARTITIONS), "FRAUD_KAFKA__PARTITIONS": str(PARTITIONS),
            "FRAUD_DETECTOR__ALLOWED_LATENESS": str(lateness)}


def require_realtime_spark() -> None:
    if tuple(map(int, pyspark.__version__.split(".")[:2])) < REALTIME_SPARK:
        sys.exit(f"PySpark {pyspark.__version__} has no real-time mode for transformWithState: run it with"
                 " .cache/spark-4.3/venv/bin/python (`make spark-rt`)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--checkpoint-intervals", default="0,30,300",
                        help="one run per value: 0 micro-batch, else real-time mode checkpointing every so many s")
    parser.add_argument("--lateness", type=int, default=120,
                        help="allowed lateness (s of event time); a day keeps eviction timers from firing in a run")
    args = parser.parse_args()
    require_realtime_spark()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("fraud_detection", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    env = realtime_env(args.lateness)
    intervals = [int(s) for s in args.checkpoint_intervals.split(",") if s]
    runs = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with LocalKafka(tmp / "kafka", REPO / ".cache", port=free_port()) as kafka, LocalPostgres(tmp / "pg") as pg:
            url = pg.create_database("bench_realtime")
            schema.migrate(url)
            for interval in intervals:
                trigger = "realtime" if interval else "microbatch"
                run = live_run(kafka, url, tmp, args.rate, args.seconds, "transformwithstate", "rocksdb",
                               PARTITIONS, trigger, {**env, "FRAUD_DETECTOR__REALTIME_CHECKPOINT_INTERVAL": str(interval or 300)},
                               tag=f"-{interval}")
                run["interval"] = interval
                run["p99_first_half"], run["p99_second_half"] = halves(url)
                run["checkpoints"] = checkpoints(url)
                log.info("%s", run)
                runs.append(run)
    print(f"\nmachine: {_cpu()}, {os.cpu_count()} cores; pyspark {pyspark.__version__} {env['FRAUD_DETECTOR__MASTER']}, connector"
          f" {REALTIME_CONNECTOR[0].rsplit(':', 1)[1]}; {args.rate:,.0f} tx/s for {args.seconds:.0f} s, {PARTITIONS} partitions,"
          f" lateness {args.lateness} s")
    print("| trigger | checkpoints | alerts | attacks caught | p50 ms | p99 ms | max ms | p99 1st half | p99 2nd half |"
          " lag after stop |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        trigger = f"real-time, checkpoint every {r['interval']} s" if r["interval"] else "micro-batch"
        lag = r["lag_after_stop"][-1] if r["lag_after_stop"] else "n/a"  # none polled in real-time mode
        print(f"| {trigger} | {r['checkpoints']} | {r['alerts']} | {r['detected']}/{r['attacks']} | {r['p50']:,.0f} | {r['p99']:,.0f} |"
              f" {r['max']:,.0f} | {r['p99_first_half']:,.0f} | {r['p99_second_half']:,.0f} | {lag} |")


if __name__ == "__main__":
    main()
