"""A newcomer's first minute (``make bench-first-alert``): `make run` with the defaults, from the moment
the live view shows to the first alert in PostgreSQL, over several fresh runs.

Each run starts `fraud-detection run` on its own empty local folder and Kafka port (the jars and the
operator stay cached, as after a first `make run`), notes when the view starts ("event=pipeline_running",
logged as the view first draws), polls the embedded database for the first alert, then stops the run
with Ctrl-C's signal. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg2

from fraud_detection.local_stack.kafka import free_port

REPO = Path(__file__).resolve().parents[2]


def one_run(timeout_s: float) -> tuple[float, float | None]:
    """(seconds from start to the view, seconds from the view to the first alert or None)."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp)
        env = {**os.environ, "FRAUD_LOCAL__DIR": str(local), "FRAUD_LOCAL__KAFKA_PORT": str(free_port()),
               "FRAUD_LOCAL__CACHE_DIR": str(REPO / ".cache")}
        env.pop("FRAUD_DATABASE_URL", None)
        began = time.monotonic()
        process = subprocess.Popen([sys.executable, "-m", "fraud_detection.cli", "run"], env=env,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        view_shown = threading.Event()
        shown_at: list[datetime] = []

        def watch() -> None:
            for line in process.stderr:
                if "event=pipeline_running" in line and not view_shown.is_set():
                    shown_at.append(datetime.now(timezone.utc))
                    view_shown.set()

        threading.Thread(target=watch, daemon=True).start()
        try:
            assert view_shown.wait(timeout_s), "the view never showed"
            startup_s = time.monotonic() - began
            url = (local / "database.url").read_text().strip()
            deadline = time.monotonic() + timeout_s
            first = None
            while first is None and time.monotonic() < deadline:
                with psycopg2.connect(url) as conn, conn.cursor() as cur:
                    cur.execute("SELECT min(detected_at) FROM alerts")
                    first = cur.fetchone()[0]
                time.sleep(0.2)
            return startup_s, None if first is None else (first - shown_at[0]).total_seconds()
        finally:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the view, then the alert")
    args = parser.parse_args()
    rows = [one_run(args.timeout) for _ in range(args.runs)]
    print("| run | start to view (s) | view to first alert (s) |")
    print("|---|---|---|")
    for i, (startup, first) in enumerate(rows, 1):
        print(f"| {i} | {startup:.1f} | {'none' if first is None else f'{first:.1f}'} |")


if __name__ == "__main__":
    main()
