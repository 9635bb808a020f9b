"""Offered-load benchmark (``make bench``): the live pipeline at 1k, 5k, 20k and 50k tx/s.

For each offered rate, on one machine with the broker, PostgreSQL, the detector and the generator: the
generator offers the rate for a fixed time while the detector runs (latest offsets, its own topic and
database). Measured: the rate the generator achieved, the rate the detector sustained while offered, the
consumer lag (its peak, and how long the detector took to drain after the generator stopped), alert latency
p50/p99 (raising transaction's Kafka timestamp to the alert's commit), the detector's peak memory (PSS of its
process tree: Python driver + JVM; see Sampler), and detection recall. Then the same topic is drained by the
naive tumbling-window query and by the exact detector in one batch each, for the throughput ratio and the
recall of each on identical data. Writes a Markdown table and a PNG plot of latency against load.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import psutil

from fraud_detection.detector import session
from fraud_detection.evaluation.quality import percentile
from fraud_detection.local_stack.kafka import LocalKafka, free_port
from fraud_detection.local_stack.postgres import LocalPostgres
from fraud_detection.settings import load_settings
from fraud_detection.storage import postgres, schema
from tests.benchmarks.bench_detector import _lag, drain_exact, drain_naive, exact_recall, naive_recall, throughput
from tests.benchmarks.bench_generator import _cpu

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "fraud_detection.cli"]
log = logging.getLogger("bench")


@dataclass
class LoadResult:
    offered: float
    achieved: float
    sustained: float
    peak_lag: int
    drain_s: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    peak_memory_mb: float
    alerts: int
    attacks: int
    exact_recall: str
    naive_recall: str
    exact_batch_rows_s: float
    naive_batch_rows_s: float


class Sampler(threading.Thread):
    """Every second: the detector tree's memory and the consumer lag, keeping the peaks and the memory series.

    Memory is the tree's PSS (proportional set size), not the sum of RSS: a helper process the JVM spawns
    shares the JVM's pages until it execs, and summing RSS counted them twice (a 5.8 GB "peak" for a 2.9 GB
    JVM); PSS splits shared pages between the processes that map them."""

    def __init__(self, pid: int, url: str, kafka, topic: str) -> None:
        super().__init__(daemon=True)
        self.pid, self.url, self.kafka, self.topic = pid, url, kafka, topic
        self.peak_memory = 0
        self.peak_lag = 0
        self.memory_series: list[tuple[float, int]] = []  # (seconds since the sampler started, bytes)
        self.stopped = threading.Event()

    def run(self) -> None:
        began = time.monotonic()
        while not self.stopped.wait(1.0):
            try:
                root = psutil.Process(self.pid)
                tree = [root, *root.children(recursive=True)]
                used = sum(p.memory_full_info().pss for p in tree)
                self.memory_series.append((time.monotonic() - began, used))
                self.peak_memory = max(self.peak_memory, used)
                self.peak_lag = max(self.peak_lag, _lag(self.url, self.kafka, self.topic))
            except (psutil.Error, OSError, RuntimeError):
                continue  # a sample lost to a process exiting or a busy broker; the next one counts


def processed(url: str) -> int:
    with postgres.connection(url) as conn:
        return int(postgres.fetch_all(conn, "SELECT coalesce(sum(input_rows), 0) FROM pipeline_metrics")[0][0])


def live(kafka, pg, tmp: Path, rate: float, seconds: float) -> tuple[dict, str, str, Sampler]:
    """One offered rate: returns the live measurements, the topic, the database and the memory samples."""
    topic, name = f"load-{int(rate)}", f"load_{int(rate)}"
    kafka.create_topic(topic, load_settings().kafka.partitions)  # as `make run` makes it (FRAUD_KAFKA__PARTITIONS)
    url = pg.create_database(name)
    schema.migrate(url)
    env = {**os.environ, "FRAUD_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "FRAUD_KAFKA__TOPIC": topic,
           "FRAUD_DATABASE_URL": url, "FRAUD_DETECTOR__CHECKPOINT_DIR": str(tmp / f"ckpt-{name}"),
           "FRAUD_DETECTOR__STARTING_OFFSETS": "latest", "FRAUD_LOCAL__CACHE_DIR": str(REPO / ".cache"),
           "FRAUD_GENERATOR__RATE": str(rate), "FRAUD_GENERATOR__CLOCK_SPEED": "20",
           "FRAUD_GENERATOR__POPULATION": "10000000", "FRAUD_GENERATOR__SEED": "3"}
    log_path = tmp / f"{name}.log"
    with open(log_path, "w") as out:
        detector = subprocess.Popen([*CLI, "detect"], env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + 180
        while "event=detector_started" not in log_path.read_text():
            if time.monotonic() > deadline or detector.poll() is not None:
                raise RuntimeError(f"the detector did not start; see {log_path}")
            time.sleep(0.5)
        time.sleep(5)
        sampler = Sampler(detector.pid, url, kafka, topic)
        sampler.start()
        before = processed(url)
        began = time.monotonic()
        generator = subprocess.run([*CLI, "generate", "--duration", str(seconds)], env=env,
                                   capture_output=True, text=True)
        offered_s = time.monotonic() - began
        sustained = (processed(url) - before) / offered_s
        stopped = time.monotonic()
        while _lag(url, kafka, topic) > 0 and time.monotonic() - stopped < 300:
            time.sleep(0.5)
        drain_s = time.monotonic() - stopped
        sampler.stopped.set()
        detector.terminate()
        detector.wait(90)
    out_text = generator.stderr
    if generator.returncode != 0:
        raise RuntimeError(f"the generator failed at {rate:,.0f} tx/s:\n{out_text[-3000:]}")
    stop_line = next((line for line in out_text.splitlines() if "event=generator_stop" in line), "")
    achieved = float(stop_line.split(" rate=")[1].split()[0]) if " rate=" in stop_line else float("nan")
    with postgres.connection(url) as conn:
        latencies = sorted(float(r[0]) for r in postgres.fetch_all(
            conn, "SELECT extract(epoch FROM detected_at - trigger_kafka_timestamp) * 1000 FROM alerts"
                  " WHERE merged_into IS NULL"))
    measured = {"offered": rate, "achieved": achieved, "sustained": sustained, "peak_lag": sampler.peak_lag,
                "drain_s": drain_s, "latency_p50_ms": percentile(latencies, 0.5),
                "latency_p99_ms": percentile(latencies, 0.99), "peak_memory_mb": sampler.peak_memory / 2**20,
                "alerts": len(latencies)}
    return measured, topic, url, sampler


def batch_comparison(kafka, pg, tmp: Path, topic: str, live_url: str) -> dict:
    """The naive tumbling query and the exact detector over the same topic, each in one drain."""
    with postgres.connection(live_url) as conn:
        attacks = [SimpleNamespace(card_id=c, first_event_time_ms=f, last_event_time_ms=la)
                   for c, f, la in postgres.fetch_all(
                       conn, "SELECT card_id, (extract(epoch FROM first_event_time) * 1000)::bigint,"
                             " (extract(epoch FROM last_event_time) * 1000)::bigint FROM injected_attacks"
                             " WHERE kind = 'attack'")]
    settings = load_settings(kafka={"bootstrap_servers": kafka.bootstrap_servers, "topic": topic},
                             local={"cache_dir": REPO / ".cache"},
                             detector={"checkpoint_dir": str(tmp / f"exact-{topic}"), "allowed_lateness": 3600})
    spark = session.spark_session(settings, "bench-load")
    spark.sparkContext.setLogLevel("ERROR")
    try:
        progress, found = drain_naive(spark, settings, tmp / f"naive-{topic}", full_parse=False)
        naive_rate = throughput(progress)[0]
        url = pg.create_database(f"exact_{topic.replace('-', '_')}")
        schema.migrate(url)
        exact_rate = throughput(drain_exact(spark, settings, url))[0]
    finally:
        spark.stop()
    return {"attacks": len(attacks), "exact_recall": exact_recall(live_url, attacks),
            "naive_recall": f"{naive_recall(attacks, found)}/{len(attacks)}, {len(found)} alerts",
            "exact_batch_rows_s": exact_rate, "naive_batch_rows_s": naive_rate}


def plot(results: list[LoadResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    offered = [r.offered for r in results]
    left.plot(offered, [(r.latency_p50_ms or 0) / 1000 for r in results], "o-", label="p50")
    left.plot(offered, [(r.latency_p99_ms or 0) / 1000 for r in results], "s-", label="p99")
    left.axhline(1.0, color="grey", linestyle=":", label="1 s target")
    left.set(xscale="log", xlabel="offered tx/s", ylabel="alert latency (s)", title="Latency against offered load")
    left.legend()
    right.plot(offered, offered, ":", color="grey", label="offered")
    right.plot(offered, [r.achieved for r in results], "o-", label="generator achieved")
    right.plot(offered, [r.sustained for r in results], "s-", label="detector sustained")
    right.set(xscale="log", yscale="log", xlabel="offered tx/s", ylabel="tx/s", title="Throughput")
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def table(results: list[LoadResult]) -> str:
    lines = ["| offered tx/s | achieved | detector sustained | peak lag (records) | drain after stop s | "
             "latency p50 ms | p99 ms | peak PSS MB | recall, exact (live) | recall, naive (same data) | "
             "batch rows/s exact / naive (ratio) |", "|" + "---|" * 11]
    for r in results:
        ratio = r.exact_batch_rows_s / r.naive_batch_rows_s if r.naive_batch_rows_s else float("nan")
        lines.append(
            f"| {r.offered:,.0f} | {r.achieved:,.0f} | {r.sustained:,.0f} | {r.peak_lag:,} | {r.drain_s:.1f} | "
            f"{r.latency_p50_ms or float('nan'):,.0f} | {r.latency_p99_ms or float('nan'):,.0f} | "
            f"{r.peak_memory_mb:,.0f} | {r.exact_recall} | {r.naive_recall} | "
            f"{r.exact_batch_rows_s:,.0f} / {r.naive_batch_rows_s:,.0f} ({ratio:.2f}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="1000,5000,20000,50000", help="offered tx/s, comma separated")
    parser.add_argument("--seconds", type=float, default=60, help="how long each rate is offered")
    parser.add_argument("--out", type=Path, default=REPO / ".local" / "bench", help="results JSON and plot")
    parser.add_argument("--plot", type=Path, help="also write the plot here (BENCHMARKS.md uses docs/)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("fraud_detection", "py4j", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with LocalKafka(tmp / "kafka", REPO / ".cache", port=free_port()) as kafka, LocalPostgres(tmp / "pg") as pg:
            for rate in (float(r) for r in args.rates.split(",")):
                measured, topic, url, _ = live(kafka, pg, tmp, rate, args.seconds)
                log.info("live %s", measured)
                compared = batch_comparison(kafka, pg, tmp, topic, url)
                log.info("batch %s", compared)
                results.append(LoadResult(**measured, **compared))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    plot(results, args.out / "latency-vs-load.png")
    if args.plot:
        plot(results, args.plot)
    print(f"\nmachine: {_cpu()}, {os.cpu_count()} cores; pyspark {version('pyspark')} local[2]; "
          f"{args.seconds:.0f} s per rate; broker, PostgreSQL, generator and detector on the same machine\n")
    print(table(results))


if __name__ == "__main__":
    main()
