"""``make run``: the whole pipeline on this machine, stopped cleanly by Ctrl-C.

Kafka and PostgreSQL run as children of this process; the pipeline's components run as their own
``fraud-detection`` processes, exactly as they run in containers, configured by the environment.
Ctrl-C (or SIGTERM) stops the components first, so producers flush, then Kafka and PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack

from fraud_detection.local_stack.kafka import LocalKafka
from fraud_detection.local_stack.postgres import LocalPostgres
from fraud_detection.settings import Settings
from fraud_detection.storage import postgres

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 40.0


def component_env(settings: Settings, bootstrap_servers: str, database_url: str) -> dict[str, str]:
    """The environment of a pipeline component: ours, pointed at the local services."""
    return {
        **os.environ,
        "FRAUD_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
        "FRAUD_DATABASE_URL": database_url,
        "FRAUD_GENERATOR__RATE": str(settings.generator.rate),
        "PYTHONUNBUFFERED": "1",
    }


def run_local(settings: Settings, duration_s: float | None = None) -> int:
    local = settings.local
    with ExitStack() as services:
        kafka = services.enter_context(
            LocalKafka(local.dir / "kafka", local.cache_dir, port=local.kafka_port)
        )
        if settings.database_url is not None:
            database_url = settings.database_url.get_secret_value()
        else:
            database_url = services.enter_context(LocalPostgres(local.dir / "postgres")).url
        postgres.migrate(database_url)
        kafka.create_topic(settings.kafka.topic, settings.kafka.partitions)
        env = component_env(settings, kafka.bootstrap_servers, database_url)
        components = {
            "generator": subprocess.Popen([sys.executable, "-m", "fraud_detection.cli", "generate"], env=env),
        }
        log.info("event=pipeline_running kafka=%s components=%s (Ctrl-C stops everything)",
                 kafka.bootstrap_servers, ",".join(components))
        return _supervise(components, duration_s)
    return 0


def _supervise(components: dict[str, subprocess.Popen], duration_s: float | None) -> int:
    """Wait until a component exits, the duration passes, or Ctrl-C/SIGTERM; then stop them all."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    failed = None
    try:
        while failed is None and (deadline is None or time.monotonic() < deadline):
            for name, process in components.items():
                if process.poll() is not None:
                    failed = name
                    log.error("event=component_exited component=%s code=%s", name, process.returncode)
                    break
            time.sleep(0.2)
    except KeyboardInterrupt:
        log.info("event=stopping reason=interrupt")
    finally:
        signal.signal(signal.SIGTERM, previous)
        codes = _stop_all(components)
    return 1 if failed is not None or any(code not in (0, -signal.SIGTERM) for code in codes.values()) else 0


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def _stop_all(components: dict[str, subprocess.Popen]) -> dict[str, int]:
    for process in components.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    codes = {}
    for name, process in components.items():
        try:
            codes[name] = process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.error("event=component_kill component=%s reason=no exit in %ss", name, STOP_TIMEOUT_S)
            process.kill()
            codes[name] = process.wait()
    return codes
