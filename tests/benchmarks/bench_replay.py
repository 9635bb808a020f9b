"""CSV replay speed (``make bench-replay``): a gzip CSV of N rows parsed and sent to the local broker.

Writes a synthetic labelled CSV (in a temporary folder), then times ``read_csv`` and the send at
``--speed max`` separately, and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import logging
import random
import tempfile
import time
from pathlib import Path

from fraud_detection.generator import replay
from fraud_detection.generator.publish import Publisher
from fraud_detection.local_stack.kafka import LocalKafka, free_port
from fraud_detection.settings import load_settings
from fraud_detection.shutdown import StopFlag

REPO = Path(__file__).resolve().parents[2]
MAPPING = "card=cc_num,time=unix_time,amount=amt,id=trans_num,label=is_fraud,merchant=merchant"


def write_csv(path: Path, rows: int) -> None:
    rnd = random.Random(1)
    with gzip.open(path, "wt", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["trans_num", "cc_num", "unix_time", "amt", "is_fraud", "merchant", "category"])
        for i in range(rows):
            writer.writerow([f"tx{i:08d}", rnd.randrange(10**15, 10**16), 1_700_000_000 + rnd.randrange(86_400 * 30),
                             f"{rnd.uniform(1, 500):.2f}", int(rnd.random() < 0.005), f"merchant_{rnd.randrange(700)}",
                             "grocery_pos"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labelled.csv.gz"
        write_csv(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        with LocalKafka(Path(tmp) / "kafka", REPO / ".cache", port=free_port()) as kafka:
            kafka.create_topic("replay-bench", 6)
            settings = load_settings(kafka={"bootstrap_servers": kafka.bootstrap_servers, "topic": "replay-bench"})
            began = time.perf_counter()
            parsed = replay.read_csv(path, replay.parse_mapping(MAPPING))
            parsed_s = time.perf_counter() - began
            publisher = Publisher(settings.kafka)
            sent = replay.send(publisher, parsed, speed=None, stop=StopFlag(), barrier_ms=120_000)
            delivery = publisher.close()
            total_s = time.perf_counter() - began
    print(f"\n| rows (gzip CSV, {size_mb:.1f} MB) | parse + sort s | total with send s | rows/s | delivered | bad rows |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.rows:,} | {parsed_s:.2f} | {total_s:.2f} | {sent / total_s:,.0f} | {delivery.delivered:,} "
          f"| {len(parsed.bad)} |")


if __name__ == "__main__":
    main()
