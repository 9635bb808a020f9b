"""Memory over a long run (``make bench-soak``): the live pipeline at 5,000 tx/s for 30 minutes.

The detector's process tree (Python driver + JVM) is sampled every second while the generator offers a
steady rate; its memory (PSS, see bench_load.Sampler) is reported per five minutes, with the growth from
the end of the warm-up (minute 5, when the JVM heap and RocksDB caches have reached their working size)
to the last five minutes. Alert latency and the drain after the stop show the run stayed healthy
throughout.

``--trigger realtime`` soaks Spark's real-time mode instead (run with the side Spark of ``make spark-rt``,
settings as in bench_realtime). It counts input rows at batch ends only, so there its sustained rate and
drain are known to a batch (30 s by default).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
from importlib.metadata import version
from pathlib import Path

from fraud_detection.local_stack.kafka import LocalKafka, free_port
from fraud_detection.local_stack.postgres import LocalPostgres
from fraud_detection.settings import load_settings
from tests.benchmarks.bench_generator import _cpu
from tests.benchmarks.bench_load import REPO, live
from tests.benchmarks.bench_realtime import realtime_env, require_realtime_spark

log = logging.getLogger("bench")
WARM_UP_S = 300


def memory_by_period(series: list[tuple[float, int]], period_s: float) -> list[tuple[int, float]]:
    """Median memory (MB) per period: (period's end in minutes, MB)."""
    periods: dict[int, list[int]] = {}
    for t, used in series:
        periods.setdefault(int(t // period_s), []).append(used)
    return [(int((k + 1) * period_s / 60), statistics.median(v) / 2**20) for k, v in sorted(periods.items())]


def growth(series: list[tuple[float, int]], warm_up_s: float, tail_s: float) -> float:
    """Memory growth (fraction) from the period just after the warm-up to the last ``tail_s`` seconds."""
    end = series[-1][0]
    after_warm_up = [used for t, used in series if warm_up_s <= t < warm_up_s + tail_s]
    tail = [used for t, used in series if t >= end - tail_s]
    return statistics.median(tail) / statistics.median(after_warm_up) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--trigger", choices=("microbatch", "realtime"), default="microbatch")
    args = parser.parse_args()
    if args.minutes * 60 < 2 * WARM_UP_S:
        parser.error(f"--minutes must be at least {2 * WARM_UP_S // 60}: the growth is measured after a"
                     f" {WARM_UP_S // 60}-minute warm-up")
    if args.trigger == "realtime":
        require_realtime_spark()
        os.environ.update({**realtime_env(lateness=120), "FRAUD_DETECTOR__TRIGGER": "realtime",
                           "FRAUD_DETECTOR__OPERATOR": "transformwithstate"})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("fraud_detection", "py4j", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with LocalKafka(tmp / "kafka", REPO / ".cache", port=free_port()) as kafka, LocalPostgres(tmp / "pg") as pg:
            measured, _, _, sampler = live(kafka, pg, tmp, args.rate, args.minutes * 60)
    series = sampler.memory_series
    settings = load_settings().detector
    print(f"\nmachine: {_cpu()}, {os.cpu_count()} cores; pyspark {version('pyspark')} {settings.master},"
          f" {settings.trigger}, {settings.operator}; {args.rate:,.0f} tx/s offered for {args.minutes:.0f} min; broker, PostgreSQL, generator and detector on the same machine\n")
    periods = memory_by_period(series, 300)
    print("| minute | " + " | ".join(str(m) for m, _ in periods) + " |")
    print("|---|" + "---|" * len(periods))
    print("| detector PSS MB (median) | " + " | ".join(f"{mb:,.0f}" for _, mb in periods) + " |")
    print(f"\nmemory growth after the {WARM_UP_S // 60}-minute warm-up: {growth(series, WARM_UP_S, 300):+.1%};"
          f" peak {sampler.peak_memory / 2**20:,.0f} MB; achieved {measured['achieved']:,.0f} tx/s, sustained"
          f" {measured['sustained']:,.0f}; alerts {measured['alerts']}, latency p50 {measured['latency_p50_ms'] or float('nan'):,.0f} ms"
          f" p99 {measured['latency_p99_ms'] or float('nan'):,.0f} ms; peak lag {measured['peak_lag']:,};"
          f" drained {measured['drain_s']:.1f} s after the stop")


if __name__ == "__main__":
    main()
