"""Notification latency (``make bench-notify``): `make run` at 5,000 tx/s with a webhook receiver configured,
from each alert version's commit (its outbox row, written in the sink's transaction) to the receiver's receipt.

One run of `fraud-detection run` on an empty local folder, its own Kafka port and its own PostgreSQL, with
attacks every few event-time seconds so that a few minutes give a hundred or more alert versions. The receiver
is a local HTTP server (tests/integration/receivers.py) that notes when each request arrives; both clocks are
this machine's. Prints a Markdown table: versions received, duplicates, p50, p90, p99 and max.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg2

from fraud_detection.local_stack.kafka import free_port
from fraud_detection.local_stack.postgres import LocalPostgres
from tests.integration.receivers import Receiver

REPO = Path(__file__).resolve().parents[2]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(rate: float, duration_s: float, attack_interval: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp, LocalPostgres(Path(tmp) / "pg") as pg, \
            Receiver() as receiver:
        env = {**os.environ, "FRAUD_LOCAL__DIR": str(Path(tmp) / "local"), "FRAUD_LOCAL__KAFKA_PORT": str(free_port()),
               "FRAUD_LOCAL__CACHE_DIR": str(REPO / ".cache"), "FRAUD_DATABASE_URL": pg.url,
               "FRAUD_GENERATOR__RATE": str(rate), "FRAUD_GENERATOR__ATTACK_INTERVAL": str(attack_interval),
               "FRAUD_GENERATOR__POPULATION": str(max(2_000_000, int(rate * 2000))),  # sparse enough for the rate
               "FRAUD_NOTIFY__WEBHOOK_URL": receiver.url, "FRAUD_NOTIFY__WEBHOOK_SECRET": "bench-" + "s" * 26,
               "FRAUD_NOTIFY__RATE_LIMIT": "200"}
        log = Path(tmp) / "run.log"
        process = subprocess.Popen([sys.executable, "-m", "fraud_detection.cli", "run", "--duration", str(duration_s)],
                                   env=env, stderr=log.open("w"), start_new_session=True)
        try:
            process.wait(duration_s + 600)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                process.wait(120)
        with psycopg2.connect(pg.url) as conn, conn.cursor() as cur:
            cur.execute("SELECT alert_id, version, created_at FROM alert_outbox")
            committed = {(a, v): at for a, v, at in cur.fetchall()}
        conn.close()
        # Receipt on the monotonic clock, moved onto the wall clock the database's timestamps are on.
        offset = time.time() - time.monotonic()
        latencies, keys = [], []
        for request in receiver.snapshot():
            keys.append(request.key)
            at = committed.get(request.version)
            if at is not None:
                received = datetime.fromtimestamp(request.at + offset, timezone.utc)
                latencies.append((received - at).total_seconds())
        if not latencies:
            raise SystemExit(f"no alert reached the webhook (run exit code {process.returncode}):\n"
                             + log.read_text()[-3000:])
    return {"committed": len(committed), "received": len(set(keys)), "duplicates": len(keys) - len(set(keys)),
            "p50": percentile(latencies, 0.5), "p90": percentile(latencies, 0.9),
            "p99": percentile(latencies, 0.99), "max": max(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=5000.0, help="generator transactions per second")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of traffic")
    parser.add_argument("--attack-interval", type=float, default=2.0, help="mean event-time seconds between attacks")
    args = parser.parse_args()
    found = measure(args.rate, args.duration, args.attack_interval)
    print("| offered tx/s | versions committed | received | duplicates | p50 (s) | p90 (s) | p99 (s) | max (s) |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.rate:,.0f} | {found['committed']} | {found['received']} | {found['duplicates']} | "
          f"{found['p50']:.2f} | {found['p90']:.2f} | {found['p99']:.2f} | {found['max']:.2f} |")


if __name__ == "__main__":
    main()
