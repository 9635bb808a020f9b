"""Generator throughput into the local Kafka broker (``make bench-generator``).

Starts the project's own single-node broker, then runs one generator process at each offered rate
for a fixed time and prints a Markdown table: offered, achieved, delivered, failed. Event time runs on
the simulated clock so the card population stays realistic at every rate.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
from importlib.metadata import version
from pathlib import Path

from fraud_detection.generator.generate import generate
from fraud_detection.local_stack.kafka import LocalKafka, free_port
from fraud_detection.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="20000,50000,80000,500000",
                        help="offered rates in tx/s, comma separated (500000 = as fast as it goes)")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp), REPO / ".cache", port=free_port()) as kafka:
        for rate in (float(r) for r in args.rates.split(",")):
            topic = f"bench-{int(rate)}"
            kafka.create_topic(topic, 6)
            settings = load_settings(
                kafka={"bootstrap_servers": kafka.bootstrap_servers, "topic": topic},
                # A faster simulated clock at higher rates keeps each card at a realistic swipe rate.
                generator={"rate": rate, "clock_speed": max(60.0, rate / 2000), "population": 5_000_000, "seed": 1},
            )
            summary = generate(settings, duration_s=args.seconds, record_truth=False)
            rows.append((rate, summary))
    print(f"\nmachine: {_cpu()}, {os.cpu_count()} cores; python {platform.python_version()}, "
          f"confluent-kafka {version('confluent-kafka')}, numpy {version('numpy')}; {args.seconds:g} s per rate\n")
    print("| offered tx/s | achieved tx/s | sent | delivered | failed |")
    print("|---|---|---|---|---|")
    for rate, s in rows:
        offered = f"{rate:,.0f} (unthrottled)" if rate >= 500_000 else f"{rate:,.0f}"
        print(f"| {offered} | {s.rate:,.0f} | {s.sent:,} | {s.delivery.delivered:,} | {s.delivery.failed:,} |")


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


if __name__ == "__main__":
    main()
