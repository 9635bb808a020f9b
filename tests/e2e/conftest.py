"""The cluster for the end-to-end tests: kind where Docker is, k3s (k8s/k3s) where it is not; the same tests.

Only two things differ between them, and both live here: how the cluster is created and how the images get
into it. FRAUD_E2E_CLUSTER picks one:
- `kind`: a new kind cluster (pytest-kind), images built with Docker and loaded with `kind load`. Needs Docker.
- `k3s`: `bash k8s/k3s/cluster.sh up` (a no-op when it runs already), images built with podman and imported
  with `cluster.sh images`. Needs root.
- unset: k3s when its kubeconfig exists (the cluster is up), else kind when Docker answers, else every test is
  skipped with both reasons.
A cluster the fixture created is removed afterwards unless E2E_KEEP_CLUSTER=1. E2E_IMAGE_TAG=TAG uses the images
already in the cluster at that tag (e.g. `dev` after `cluster.sh images`) instead of building them. `make e2e` runs
the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.charts.rendering import CHART, ROOT, tool

NAMESPACE = "fraud-detection"
RELEASE = "fraud"
TAG = "e2e"
IMAGES = {"generator": "fraud-detection-generator", "detector": "fraud-detection-detector"}
CLUSTER_ENV = "FRAUD_E2E_CLUSTER"
K3S_SCRIPT = ROOT / "k8s" / "k3s" / "cluster.sh"
K3S_KUBECONFIG = ROOT / ".local" / "k3s" / "kubeconfig"
KUBECTL = Path(sys.executable).parent / "kubectl"


def pytest_collection_modifyitems(items):
    for item in items:
        if "e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def docker_problem() -> str | None:
    """Why Docker cannot run kind here, or None."""
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                                text=True, timeout=30)
    except FileNotFoundError:
        return "no docker command on PATH"
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 30 s"
    if result.returncode != 0:
        return f"no Docker engine: `docker info` failed ({result.stderr.strip().splitlines()[-1][:200]})"
    return None


def k3s_problem() -> str | None:
    """Why k8s/k3s cannot make a cluster here, or None."""
    if os.geteuid() != 0:
        return "k8s/k3s/cluster.sh needs root (it starts containerd and changes the host's network)"
    missing = [name for name in ("apt-get", "go") if not shutil.which(name)]
    if missing and not (ROOT / ".cache" / "k3s" / "bin" / "k3s").exists():
        return f"k8s/k3s/cluster.sh builds k3s with Debian's packages and Go; missing: {', '.join(missing)}"
    return None


def chosen_cluster() -> tuple[str | None, str]:
    """(`kind` | `k3s` | None, why): FRAUD_E2E_CLUSTER, else whichever can run here."""
    wanted = os.environ.get(CLUSTER_ENV, "")
    if wanted not in ("", "kind", "k3s"):
        pytest.fail(f"{CLUSTER_ENV}={wanted!r}: use kind or k3s, or leave it unset", pytrace=False)
    if wanted == "kind" or (not wanted and not K3S_KUBECONFIG.exists()):
        problem = docker_problem()
        if problem is None:
            return "kind", ""
        if wanted:
            return None, f"kind needs Docker: {problem}"
        return None, (f"no cluster: kind needs Docker ({problem}); k3s is not up (run `bash k8s/k3s/cluster.sh up`, "
                      f"or set {CLUSTER_ENV}=k3s to let the tests start it)")
    problem = k3s_problem()
    return (None, problem) if problem else ("k3s", "")


class Cluster:
    """kubectl and helm against the e2e cluster's kubeconfig."""

    def __init__(self, kubeconfig: Path, kind: str) -> None:
        self.kubeconfig = kubeconfig
        self.kind = kind
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig),
                    "PATH": f"{KUBECTL.parent}{os.pathsep}{os.environ['PATH']}"}

    def run(self, *argv: str, timeout: float = 900, check: bool = True) -> str:
        result = subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return result.stdout

    def kubectl(self, *argv: str, namespace: str = NAMESPACE, **kw) -> str:
        return self.run(str(KUBECTL), "-n", namespace, *argv, **kw)

    def helm(self, *argv: str, **kw) -> str:
        return self.run(tool("helm"), *argv, **{"timeout": 900, **kw})

    def sql(self, query: str) -> str:
        """A query in the app database, through psql inside the primary CNPG pod."""
        return self.kubectl("exec", f"{RELEASE}-fraud-detection-pg-1", "-c", "postgres", "--",
                            "psql", "-d", "fraud", "-tAc", query, timeout=60).strip()


@dataclass
class E2ECluster:
    """A running cluster and the one way images reach it."""

    cluster: Cluster
    load_images: Callable[[str], None]  # tag -> IMAGES built at that tag and usable by pods (pull policy Never)


def kind_cluster(tmp_path_factory) -> Iterator[E2ECluster]:
    from pytest_kind import KindCluster

    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    kind = KindCluster("fraud-detection", kubeconfig, kind_path=Path(tool("kind")), kubectl_path=KUBECTL)
    kind.create(ROOT / "k8s" / "kind-cluster.yaml")
    cluster = Cluster(kubeconfig, "kind")

    def load_images(tag: str) -> None:
        for role, image in IMAGES.items():
            cluster.run("docker", "build", "-f", f"images/{role}/Dockerfile", "-t", f"{image}:{tag}", ".",
                        timeout=1800)
            kind.load_docker_image(f"{image}:{tag}")

    try:
        yield E2ECluster(cluster, load_images)
    finally:
        if not os.environ.get("E2E_KEEP_CLUSTER"):
            kind.delete()


def k3s_cluster() -> Iterator[E2ECluster]:
    started_here = not K3S_KUBECONFIG.exists()
    script = ["bash", str(K3S_SCRIPT)]
    subprocess.run([*script, "up"], check=True, timeout=3600, cwd=ROOT)
    cluster = Cluster(K3S_KUBECONFIG, "k3s")

    def load_images(tag: str) -> None:
        cluster.run(*script, "images", tag, timeout=3600)

    try:
        yield E2ECluster(cluster, load_images)
    finally:
        if started_here and not os.environ.get("E2E_KEEP_CLUSTER"):
            subprocess.run([*script, "down"], check=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="session")
def e2e_cluster(tmp_path_factory) -> Iterator[E2ECluster]:
    """The chosen cluster, created when needed; removed afterwards if this fixture created it."""
    kind, why = chosen_cluster()
    if kind is None:
        pytest.skip(why)
    yield from (kind_cluster(tmp_path_factory) if kind == "kind" else k3s_cluster())


@pytest.fixture(scope="session")
def images(e2e_cluster) -> dict[str, str]:
    """Both images built from images/*/Dockerfile at TAG and loaded into the cluster: role -> image reference."""
    tag = os.environ.get("E2E_IMAGE_TAG") or TAG
    if tag == TAG:
        e2e_cluster.load_images(TAG)
    return {role: f"{image}:{tag}" for role, image in IMAGES.items()}


@pytest.fixture(scope="session")
def cluster(e2e_cluster, images):
    """The chart on the operators, with the e2e images: what the pipeline tests run against."""
    c = e2e_cluster.cluster
    if c.kind == "k3s":
        pytest.skip("the pipeline tests need the Strimzi, Spark and CloudNativePG operators and the Grafana Operator, "
                    "whose images and charts cannot be fetched on the k3s cluster here (no image registry); they run "
                    "on kind, and on k3s once the chart can use an external Kafka and PostgreSQL")
    c.run("bash", "k8s/operators.sh", "--ingress", timeout=1800)
    c.helm("upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(CHART / "values-kind.yaml"),
           "--set", f"images.generator.tag={images['generator'].split(':')[-1]}",
           "--set", f"images.detector.tag={images['detector'].split(':')[-1]}",
           "--wait", "--timeout", "15m", timeout=1200)
    return c


def wait_until(what: str, probe, timeout: float, every: float = 1):
    """``probe()``'s first truthy value, looking every ``every`` seconds; fails naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
