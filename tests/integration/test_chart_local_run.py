"""Chart-driven local run: the rendered generator and detector, started as local processes, raise alerts.

The chart is rendered with tests/charts/local-values.yaml; each process gets exactly the command, arguments
and environment of its rendered container (Secret references resolved from a local stand-in Secret). The
detector runs under spark-submit as the Spark Operator would start it, with the image's paths mapped to the
repository through the Dockerfile's COPY lines and its baked-in jars passed with --jars.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from fraud_detection.detector.velocity_state import build_operator, operator_jars
from fraud_detection.storage import postgres, reports, schema
from tests.charts.rendering import ROOT, dockerfile_copies, env_values, one, render
from tests.integration.conftest import CACHE_DIR

LOCAL_VALUES = ROOT / "tests" / "charts" / "local-values.yaml"
VENV_BIN = Path(sys.executable).parent


def container_env(container: dict, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    return env_values(container, lambda name, key: secrets[name][key])


def process_env(app_env: dict[str, str]) -> dict[str, str]:
    """What a container has besides the chart's env: a PATH with the app, a home, Java."""
    base = {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/tmp"),
            "PYSPARK_PYTHON": sys.executable}
    if "JAVA_HOME" in os.environ:
        base["JAVA_HOME"] = os.environ["JAVA_HOME"]
    return {**base, **app_env}


def run_init_containers(pod: dict, secrets) -> None:
    for init in pod.get("initContainers", []):
        env = process_env(container_env(init, secrets))
        result = subprocess.run([*init["command"], *init.get("args", [])], env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, f"init container {init['name']}: {result.stderr[-2000:]}"


def spark_submit_command(app: dict) -> list[str]:
    """The SparkApplication as a local spark-submit: image paths mapped to the repository, jars from the build."""
    copies = dockerfile_copies(ROOT / "images" / "detector" / "Dockerfile")
    main_file = ROOT / copies[app["mainApplicationFile"].removeprefix("local://")]
    jars = operator_jars(build_operator(CACHE_DIR))  # the image bakes these into /opt/spark/jars
    conf = [arg for key, value in app.get("sparkConf", {}).items() for arg in ("--conf", f"{key}={value}")]
    return [str(VENV_BIN / "spark-submit"), "--master", "local[2]", "--jars", ",".join(map(str, jars)), *conf,
            str(main_file), *app.get("arguments", [])]


def stop(process: subprocess.Popen, timeout: float = 60) -> int:
    """SIGTERM to the container's main process, as Kubernetes sends it; then nothing of it may remain."""
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout)
        deadline = time.monotonic() + 15
        while _group_alive(process.pid):
            assert time.monotonic() < deadline, "a child process outlived its container's main process"
            time.sleep(0.2)
        return code
    finally:
        if _group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_rendered_generator_and_detector_raise_alerts(kafka, topic, pg_server, tmp_path):
    """The chart's own commands and env, run locally, migrate the database and detect injected attacks."""
    database_url = pg_server.create_database(f"chart_{topic.replace('-', '_')}")  # empty: init containers migrate
    secrets = {"local-db": {"uri": database_url}}
    docs = render([LOCAL_VALUES], sets={"kafka.external.bootstrapServers": kafka.bootstrap_servers,
                                        "kafka.topic.name": topic,
                                        "detector.checkpoint.uri": f"file://{tmp_path}/checkpoint"})
    generator_pod = one(docs, "Deployment", "generator")["spec"]["template"]["spec"]
    app = one(docs, "SparkApplication")["spec"]
    driver_pod = app["driver"]["template"]["spec"]

    run_init_containers(generator_pod, secrets)
    run_init_containers(driver_pod, secrets)
    assert schema.pending_migrations(database_url) == []

    logs = tmp_path / "logs"
    logs.mkdir()
    driver_env = process_env(container_env(driver_pod["containers"][0], secrets))
    detector = subprocess.Popen(spark_submit_command(app), env=driver_env, cwd=tmp_path, start_new_session=True,
                                stdout=(logs / "detector.out").open("w"), stderr=subprocess.STDOUT)
    generator_container = generator_pod["containers"][0]
    generator = subprocess.Popen([*generator_container["command"], *generator_container["args"]],
                                 env=process_env(container_env(generator_container, secrets)), cwd=tmp_path,
                                 start_new_session=True, stdout=(logs / "generator.out").open("w"),
                                 stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        totals = None
        while time.monotonic() < deadline:
            assert detector.poll() is None, (logs / "detector.out").read_text()[-3000:]
            assert generator.poll() is None, (logs / "generator.out").read_text()[-3000:]
            with postgres.connection(database_url) as conn:
                totals = reports.totals(conn)
            if totals.attacks_detected >= 2:
                break
            time.sleep(2)
        detector_log = (logs / "detector.out").read_text()[-3000:]
        assert totals is not None and totals.attacks_detected >= 2, (totals, detector_log)
        assert totals.decoys_alerted == 0
    finally:
        generator_rc = stop(generator)
        detector_rc = stop(detector)
    assert generator_rc == 0, (logs / "generator.out").read_text()[-3000:]  # every record delivered
    # spark-submit's JVM ends through its shutdown hooks: 143 (128 + SIGTERM) is its normal stop; the
    # checkpoint and the per-batch transactions make any stop safe to resume from.
    assert detector_rc in (0, 143), (logs / "detector.out").read_text()[-3000:]


def test_the_alerts_query_in_notes_runs_on_the_schema(database_url):
    """The query NOTES.txt prints for watching alerts is valid SQL on the migrated schema."""
    notes = (ROOT / "charts" / "fraud-detection" / "templates" / "NOTES.txt").read_text()
    queries = set(re.findall(r'"(SELECT [^"]+)"', notes))
    assert queries, "NOTES.txt shows no query"
    with postgres.connection(database_url) as conn:
        for query in queries:
            postgres.fetch_all(conn, query)
