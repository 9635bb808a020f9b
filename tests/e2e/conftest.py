"""The kind cluster for the end-to-end tests: created, given the operators, the images and the chart.

Needs a Docker engine; without one every e2e test is skipped with the reason. `make e2e` runs them;
E2E_KEEP_CLUSTER=1 keeps the cluster afterwards for a look around.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.charts.rendering import CHART, ROOT, tool

NAMESPACE = "fraud-detection"
RELEASE = "fraud"
TAG = "e2e"
IMAGES = {"generator": "fraud-detection-generator", "detector": "fraud-detection-detector"}


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


class Cluster:
    """kubectl and helm against the e2e cluster's kubeconfig."""

    def __init__(self, kubeconfig: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HELM": tool("helm"),
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def run(self, *argv: str, timeout: float = 900, check: bool = True) -> str:
        result = subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return result.stdout

    def kubectl(self, *argv: str, **kw) -> str:
        return self.run(str(Path(sys.executable).parent / "kubectl"), "-n", NAMESPACE, *argv, **kw)

    def helm(self, *argv: str, **kw) -> str:
        return self.run(tool("helm"), *argv, **kw)

    def sql(self, query: str) -> str:
        """A query in the app database, through psql inside the primary CNPG pod."""
        return self.kubectl("exec", f"{RELEASE}-fraud-detection-pg-1", "-c", "postgres", "--",
                            "psql", "-d", "fraud", "-tAc", query, timeout=60).strip()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    problem = docker_problem()
    if problem:
        pytest.skip(f"kind needs Docker: {problem}")
    from pytest_kind import KindCluster

    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    kind = KindCluster("fraud-detection", kubeconfig, kind_path=Path(tool("kind")),
                       kubectl_path=Path(sys.executable).parent / "kubectl")
    kind.create(ROOT / "k8s" / "kind-cluster.yaml")
    c = Cluster(kubeconfig)
    try:
        c.run("bash", "k8s/operators.sh", "--ingress", timeout=1800)
        for role, image in IMAGES.items():
            c.run("docker", "build", "-f", f"images/{role}/Dockerfile", "-t", f"{image}:{TAG}", ".", timeout=1800)
            kind.load_docker_image(f"{image}:{TAG}")
        c.helm("upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(CHART / "values-kind.yaml"),
               "--set", f"images.generator.tag={TAG}", "--set", f"images.detector.tag={TAG}",
               "--wait", "--timeout", "15m", timeout=1200)
        yield c
    finally:
        if not os.environ.get("E2E_KEEP_CLUSTER"):
            kind.delete()
