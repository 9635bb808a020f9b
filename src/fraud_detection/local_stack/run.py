"""``make run``: the whole pipeline on this machine, stopped cleanly by Ctrl-C (``make stack``: the same
without the generator, for replaying your own data).

Kafka and PostgreSQL run as children of this process; the pipeline's components (detector, generator)
run as their own ``fraud-detection`` processes, exactly as they run in containers, configured by the
environment. This process shows the live view. Ctrl-C (or SIGTERM) stops the components first, so
producers flush and the detector commits, then Kafka and PostgreSQL. Other ``fraud-detection`` commands
started meanwhile find the embedded PostgreSQL through ``.local/database.url`` (settings.py).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path

from fraud_detection.detector.velocity_state import build_operator
from fraud_detection.live_view import LiveView
from fraud_detection.local_stack.kafka import LocalKafka
from fraud_detection.local_stack.postgres import LocalPostgres
from fraud_detection.settings import Settings
from fraud_detection.storage import schema

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 40.0


def component_env(settings: Settings, bootstrap_servers: str, database_url: str) -> dict[str, str]:
    """The environment of a pipeline component: ours, pointed at the local services."""
    return {
        **os.environ,
        "FRAUD_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
        "FRAUD_DATABASE_URL": database_url,
        **_group_env("GENERATOR", settings.generator.model_dump()),
        **_group_env("RULE", settings.rule.model_dump()),
        "FRAUD_GENERATOR__HEARTBEAT_FILE": str(generator_status_file(settings)),
        "FRAUD_DETECTOR__READY_FILE": str(detector_ready_file(settings)),
        "FRAUD_DETECTOR__CHECKPOINT_DIR": str(settings.local.dir / "checkpoints" / "detector"),
        "FRAUD_LOCAL__CACHE_DIR": str(settings.local.cache_dir),
        "PYTHONUNBUFFERED": "1",
    }


def _group_env(group: str, values: dict) -> dict[str, str]:
    """Settings this process resolved (environment and flags) handed on to the components."""
    return {f"FRAUD_{group}__{key.upper()}": str(value) for key, value in values.items() if value is not None}


def _start(name: str, env: dict[str, str], log_dir: Path | None) -> subprocess.Popen:
    """A component process; its output goes to ``log_dir/<name>.log`` while the live view owns the screen."""
    command = [sys.executable, "-m", "fraud_detection.cli", name]
    # Its own session: Ctrl-C in the terminal reaches only this process, which then stops the components
    # in order with SIGTERM (a SIGINT straight into Spark's JVM would race the detector's own shutdown).
    if log_dir is None:
        return subprocess.Popen(command, env=env, start_new_session=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=out, start_new_session=True)


def detector_ready_file(settings: Settings) -> Path:
    return settings.local.dir / "detector.ready"


def generator_status_file(settings: Settings) -> Path:
    """The generator's heartbeat, whose status (attacks under way) the live view shows."""
    return settings.generator.heartbeat_file or settings.local.dir / "generator.heartbeat"


@contextmanager
def url_file(path: Path, url: str):
    """The URL in a file only its owner can read, for as long as the server runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_text(url)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def run_local(settings: Settings, duration_s: float | None = None, generator: bool = True) -> int:
    """Kafka, PostgreSQL and the detector, and with ``generator`` the simulated traffic, until stopped."""
    local = settings.local
    # Build the operator before anything shows: a fresh clone's Maven build is not the detector's start-up.
    build_operator(local.cache_dir)
    with ExitStack() as services:
        kafka = services.enter_context(
            LocalKafka(local.dir / "kafka", local.cache_dir, port=local.kafka_port)
        )
        if settings.database_url is not None:
            database_url = settings.database_url.get_secret_value()
            reader_url = settings.require_reader_url()
        else:
            server = services.enter_context(LocalPostgres(local.dir / "postgres"))
            database_url, reader_url = server.url, server.reader_url
            services.enter_context(url_file(local.database_url_file, database_url))
            services.enter_context(url_file(local.reader_url_file, reader_url))
        schema.migrate(database_url)
        for topic in (settings.kafka.topic, settings.kafka.alerts_topic):
            kafka.create_topic(topic, settings.kafka.partitions)
        env = component_env(settings, kafka.bootstrap_servers, database_url)
        status = generator_status_file(settings) if generator else None
        for stale in (status, detector_ready_file(settings)):
            if stale is not None:
                stale.unlink(missing_ok=True)  # left by an earlier run
        view = services.enter_context(closing(LiveView(reader_url, threshold=settings.rule.threshold,
                                                       generator_status=status, log_dir=local.dir / "logs")))
        log_dir = local.dir / "logs" if view.on_terminal else None
        # The detector first, and the traffic once its query runs: the view then shows a live pipeline.
        components = {"detect": _start("detect", env, log_dir), "relay": _start("relay", env, log_dir)}
        if settings.notify.has_destination:  # FRAUD_NOTIFY__*: deliver the alerts stream
            components["notify"] = _start("notify", env, log_dir)
        if not _wait_until_ready(components["detect"], detector_ready_file(settings)):
            exited = components["detect"].poll() is not None
            _stop_all(components)
            return 1 if exited else 0
        if generator:
            components["generate"] = _start("generate", env, log_dir)
        log.info("event=pipeline_running kafka=%s components=%s logs=%s (Ctrl-C stops everything)",
                 kafka.bootstrap_servers, ",".join(components), log_dir or "stderr")
        return _supervise(components, duration_s, view.refresh)
    return 0


def _wait_until_ready(detector: subprocess.Popen, ready: Path, timeout_s: float = 600) -> bool:
    """Wait for the detector's query to run (Spark's start-up); False if it exited or Ctrl-C came first."""
    log.info("event=detector_starting (Spark starts in about 15 s)")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    deadline = time.monotonic() + timeout_s
    try:
        while not ready.exists():
            if detector.poll() is not None:
                log.error("event=detector_exited code=%s (see its log)", detector.returncode)
                return False
            if time.monotonic() > deadline:
                raise RuntimeError(f"the detector did not start within {timeout_s:g} s: see its log")
            time.sleep(0.2)
    except KeyboardInterrupt:
        log.info("event=stopping reason=interrupt")
        return False
    finally:
        signal.signal(signal.SIGTERM, previous)
    return True


def _supervise(components: dict[str, subprocess.Popen], duration_s: float | None, tick=lambda: None) -> int:
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
            tick()
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
