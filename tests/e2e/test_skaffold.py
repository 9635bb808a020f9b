"""skaffold for real, in the chart's default mode: `skaffold run` builds both images, runs the operators hook and
deploys the chart; `skaffold dev` then rebuilds and redeploys when a source file changes, and the new generator
pod runs the new code. On k3s the `k3s` profile builds with podman and pushes to the cluster's local registry;
on kind the default profile loads into the node.

skaffold works in a copy of the repository's tracked files (its own git history, for the image tags), so the
edit never touches the checkout; the copy shares .cache and .local (builds, the cluster's state). Afterwards the
release gets the suite's own images back. The edit-to-running time is appended to .local/e2e/skaffold.txt.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.charts.rendering import ROOT, tool
from tests.e2e.conftest import NAMESPACE, RELEASE, install, wait_until

EDITED = Path("src/fraud_detection/generator/__init__.py")
GENERATOR = "app.kubernetes.io/component=generator"
TIMINGS = ROOT / ".local" / "e2e" / "skaffold.txt"


def repository_copy(into: Path) -> Path:
    """The tracked files as they are now, committed in a fresh repository, with .cache and .local shared."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, into / name)
    for shared in (".cache", ".local"):
        (into / shared).symlink_to(ROOT / shared)
    git = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@localhost"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "snapshot"]):
        subprocess.run([*git, *argv], cwd=into, check=True, capture_output=True)
    return into


def skaffold_command(cluster) -> list[str]:
    if cluster.kind == "k3s":  # built from its tag by k8s/k3s/operators.sh (`make k3s-dev` runs the same)
        return [str(ROOT / ".cache" / "k3s" / "bin" / "skaffold"), "-p", "k3s", "--default-repo", "localhost:5000"]
    return [tool("skaffold")]


def generator_pods(cluster) -> dict[str, str]:
    """Ready generator pods: uid -> name."""
    out = cluster.kubectl("get", "pods", "-l", GENERATOR, "-o", "jsonpath={range .items[?(@.status.containerStatuses"
                          "[0].ready==true)]}{.metadata.uid}={.metadata.name} {end}")
    return dict(item.split("=", 1) for item in out.split())


def marker_in(cluster, pod: str) -> str:
    return cluster.kubectl("exec", pod, "-c", "generator", "--", "python", "-c",
                           "import fraud_detection.generator as g; print(getattr(g, 'SKAFFOLD_E2E_MARKER', ''))",
                           timeout=60).strip()


def test_skaffold_run_then_dev_redeploys_an_edit(cluster, images, services):
    if cluster.mode != "operators":
        pytest.skip("skaffold deploys the chart's default mode: run the suite with FRAUD_E2E_MODE=operators")
    work = Path(tempfile.mkdtemp(prefix="fraud-skaffold-", dir="/var/tmp"))
    env = {**cluster.env, "SKAFFOLD_CONFIG": str(work / "skaffold-config.yaml")}
    flags = ["--interactive=false", "--update-check=false", "--port-forward=off"]
    dev = None
    try:
        repo = repository_copy(work / "repo")
        command = skaffold_command(cluster)
        run = subprocess.run([*command, "run", *flags], cwd=repo, env=env, capture_output=True, text=True,
                             timeout=3600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        image = cluster.kubectl("get", f"deploy/{RELEASE}-fraud-detection-generator", "-o",
                                "jsonpath={.spec.template.spec.containers[0].image}")
        assert "fraud-detection-generator" in image and "@sha256:" in image, image  # skaffold's build, by digest
        wait_until("the generator pods of skaffold's image", lambda: generator_pods(cluster), timeout=300, every=5)

        log_path = work / "dev.log"
        with log_path.open("w") as log:
            dev = subprocess.Popen([*command, "dev", *flags, "--cleanup=false"], cwd=repo, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        wait_until("skaffold dev to watch", lambda: "Watching for changes" in log_path.read_text()
                   or dev.poll() is not None, timeout=1800, every=5)
        assert dev.poll() is None, log_path.read_text()[-3000:]
        before = generator_pods(cluster)
        marker = uuid.uuid4().hex
        edited_at = time.monotonic()
        with (repo / EDITED).open("a") as source:
            source.write(f'\nSKAFFOLD_E2E_MARKER = "{marker}"  # written by tests/e2e/test_skaffold.py\n')

        def new_pods() -> dict[str, str]:
            if dev.poll() is not None:
                pytest.fail(f"skaffold dev exited: {log_path.read_text()[-3000:]}")
            return {uid: name for uid, name in generator_pods(cluster).items() if uid not in before}

        new = wait_until("a new generator pod after the edit", new_pods, timeout=1800, every=5)
        running = time.monotonic() - edited_at
        for pod in new.values():
            assert marker_in(cluster, pod) == marker, pod
        TIMINGS.parent.mkdir(parents=True, exist_ok=True)
        with TIMINGS.open("a") as timings:
            timings.write(f"{datetime.now(UTC):%Y-%m-%d %H:%M} {cluster.kind}: skaffold dev, source edit to the "
                          f"new generator pod ready: {running:.0f} s\n")
    finally:
        if dev is not None and dev.poll() is None:
            os.killpg(dev.pid, signal.SIGINT)
            try:
                dev.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(dev.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
        install(cluster, images, services)  # the suite's own images again, for whatever test comes next
        cluster.kubectl("rollout", "status", f"deploy/{RELEASE}-fraud-detection-generator", "--timeout=5m",
                        namespace=NAMESPACE)
