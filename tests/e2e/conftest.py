"""The cluster for the end-to-end tests: kind where Docker is, k3s (k8s/k3s) where it is not; the same tests.

What differs between them lives here: how the cluster is created, how the images get into it, and where
Kafka and PostgreSQL come from. Two modes, FRAUD_E2E_MODE:
- `operators` (kind's only mode): the chart's default mode, over Strimzi, the Spark Operator and CloudNativePG
  (values-kind.yaml). On k3s the operators are built from their pinned tags and installed by
  `k8s/k3s/operators.sh install`; Grafana itself cannot be had there (values-k3s-operators.yaml).
- `external` (k3s's default): this machine's own broker and PostgreSQL on the node's bridge address as external
  services, the detector's driver as a Deployment, a webhook receiver for the notifier (values-k3s.yaml).
FRAUD_E2E_CLUSTER picks the cluster:
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

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from fraud_detection.local_stack.kafka import LocalKafka
from fraud_detection.local_stack.postgres import LocalPostgres
from fraud_detection.storage import postgres
from tests.charts.rendering import CHART, ROOT, tool
from tests.integration.receivers import Receiver

NAMESPACE = "fraud-detection"
RELEASE = "fraud"
TAG = "e2e"
IMAGES = {"generator": "fraud-detection-generator", "detector": "fraud-detection-detector"}
CLUSTER_ENV = "FRAUD_E2E_CLUSTER"
MODE_ENV = "FRAUD_E2E_MODE"
K3S_SCRIPT = ROOT / "k8s" / "k3s" / "cluster.sh"
K3S_KUBECONFIG = ROOT / ".local" / "k3s" / "kubeconfig"
KUBECTL = Path(sys.executable).parent / "kubectl"
K3S_DB_SECRET = "fraud-external-db"  # = postgres.external.secretName in values-k3s.yaml
K3S_NOTIFY_SECRET = "fraud-notify"  # = notify.secretName in values-k3s.yaml
WEBHOOK_SECRET = secrets.token_urlsafe(24)  # the notifier signs with it, the test verifies with it
# A TCP connect from inside a pod: prints "open", "refused" or "timeout"; the pods run the generator image's Python.
PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("open")
except ConnectionRefusedError:
    print("refused")
except OSError:
    print("timeout")
"""


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


def chosen_mode(kind: str) -> str:
    """`operators` or `external`: FRAUD_E2E_MODE, else kind's only mode or k3s's default."""
    wanted = os.environ.get(MODE_ENV, "")
    if wanted not in ("", "operators", "external"):
        pytest.fail(f"{MODE_ENV}={wanted!r}: use operators or external, or leave it unset", pytrace=False)
    if kind == "kind" and wanted == "external":
        pytest.fail(f"{MODE_ENV}=external runs on k3s only (the node's services on its bridge)", pytrace=False)
    return wanted or ("operators" if kind == "kind" else "external")


class Cluster:
    """kubectl and helm against the e2e cluster's kubeconfig."""

    def __init__(self, kubeconfig: Path, kind: str) -> None:
        self.kubeconfig = kubeconfig
        self.kind = kind
        self.mode = chosen_mode(kind)
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

    database_url: str | None = None  # the app database from this machine, when it runs here (k3s)

    def sql(self, query: str) -> str:
        """A query in the app database: psql inside the primary CNPG pod, or the node's PostgreSQL on k3s."""
        if self.database_url is None:
            primary = self.kubectl("get", "pods", "-l", f"cnpg.io/cluster={RELEASE}-fraud-detection-pg,"
                                   "cnpg.io/instanceRole=primary", "-o", "name", timeout=60).split()
            if len(primary) != 1:
                raise AssertionError(f"no single PostgreSQL primary pod: {primary}")
            return self.kubectl("exec", primary[0], "-c", "postgres", "--",
                                "psql", "-d", "fraud", "-tAc", query, timeout=60).strip()
        with postgres.connection(self.database_url) as conn:
            rows = postgres.fetch_all(conn, query)
        return "\n".join("|".join("" if v is None else str(v) for v in row) for row in rows)

    def install_operators(self) -> None:
        """The chart's prerequisites: from their registries on kind, built from their tags on k3s."""
        if self.kind == "kind":
            self.run("bash", "k8s/operators.sh", "--ingress", timeout=1800)
        else:
            self.run("bash", "k8s/k3s/operators.sh", "install", timeout=7200)

    def kubectl_apply(self, manifest: dict, namespace: str = NAMESPACE) -> None:
        """Apply a manifest given on standard input (a Secret's data never shows in a process list)."""
        result = subprocess.run([str(KUBECTL), "-n", namespace, "apply", "-f", "-"], input=json.dumps(manifest),
                                env=self.env, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise AssertionError(f"kubectl apply failed: {result.stderr[-2000:]}")


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


def image_values(images: dict[str, str]) -> list[str]:
    return ["--set", f"images.generator.tag={images['generator'].split(':')[-1]}",
            "--set", f"images.detector.tag={images['detector'].split(':')[-1]}"]


@dataclass
class NodeServices:
    """Kafka and PostgreSQL on the k3s node's bridge address: the chart's *external* services there."""

    kafka: LocalKafka
    postgres: LocalPostgres
    pod_database_url: str  # the password-protected TCP listener the pods use
    webhook: Receiver  # the notifier's destination

    def create_secrets(self, cluster: Cluster, namespace: str) -> None:
        cluster.run(str(KUBECTL), "create", "namespace", namespace, check=False)
        for name, data in ((K3S_DB_SECRET, {"uri": self.pod_database_url}),
                           (K3S_NOTIFY_SECRET, {"webhookUrl": self.webhook.url, "webhookSecret": WEBHOOK_SECRET})):
            cluster.kubectl_apply({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name},
                                   "stringData": data}, namespace=namespace)


def k3s_addresses() -> tuple[str, int, int, int]:
    """(host, Kafka, PostgreSQL and webhook ports) from values-k3s.yaml, the one place that names them."""
    values = yaml.safe_load((CHART / "values-k3s.yaml").read_text())
    host, kafka_port = values["kafka"]["external"]["bootstrapServers"].rsplit(":", 1)
    return host, int(kafka_port), int(values["postgres"]["external"]["port"]), values["notify"]["destinationPorts"][0]


def check_bridge(host: str) -> None:
    """k3s's pod bridge (cni0) holds ``host``: pods reach it; nothing outside this machine does."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "cni0"], capture_output=True, text=True).stdout
    if f" {host}/" not in out:
        pytest.fail(f"cni0 does not hold {host} (values-k3s.yaml): is k3s up? ({out.strip() or 'no cni0'})",
                    pytrace=False)


@contextmanager
def node_services(work: Path) -> Iterator[NodeServices]:
    host, kafka_port, pg_port, webhook_port = k3s_addresses()
    check_bridge(host)
    with LocalKafka(work / "kafka", ROOT / ".cache", port=kafka_port, host=host, heap="512m") as kafka, \
            LocalPostgres(work / "postgres") as postgres, Receiver(host=host, port=webhook_port) as webhook:
        for topic, partitions in (("transactions", 4), ("alerts", 2)):  # values-k3s.yaml's partitions
            kafka.create_topic(topic, partitions)
        url = postgres.serve_tcp(host, pg_port, "fraud_app", secrets.token_urlsafe(24))
        yield NodeServices(kafka, postgres, url, webhook)


@pytest.fixture(scope="session")
def services(e2e_cluster) -> Iterator[NodeServices | None]:
    """External mode: Kafka and PostgreSQL on the k3s node; None in operator mode (the operators run them)."""
    if e2e_cluster.cluster.mode == "operators":
        yield None
        return
    # pgserver opens its data folder's parents to its own user: kept outside pytest's temp root, which other
    # pytest sessions close again.
    work = Path(tempfile.mkdtemp(prefix="fraud-e2e-", dir="/var/tmp"))
    try:
        with node_services(work) as found:
            yield found
    finally:
        shutil.rmtree(work, ignore_errors=True)


def install(c: Cluster, images: dict[str, str], services: NodeServices | None, release: str = RELEASE,
            namespace: str = NAMESPACE, extra: tuple[str, ...] = ()) -> None:
    """The chart with the e2e images: over the operators, or over the node's services (external mode)."""
    if services is None:
        values = ["-f", str(CHART / "values-kind.yaml")]
        if c.kind == "k3s":
            values += ["-f", str(CHART / "values-k3s-operators.yaml")]
    else:
        services.create_secrets(c, namespace)
        values = ["-f", str(CHART / "values-k3s.yaml")]
    chosen = [arg for value in os.environ.get("FRAUD_E2E_SET", "").split() for arg in ("--set", value)]
    c.helm("upgrade", "--install", release, str(CHART), "-n", namespace, "--create-namespace", *values,
           *image_values(images), *chosen, *extra, "--wait", "--timeout", "15m", timeout=1200)


@pytest.fixture(scope="session")
def cluster(e2e_cluster, images, services):
    """The chart running the whole pipeline, with the e2e images: what the pipeline tests run against."""
    c = e2e_cluster.cluster
    if c.kind == "k3s":
        # Kafka and PostgreSQL are new on every run: so is the namespace, or a kept checkpoint PVC would hold
        # another broker's offsets. (The operators' RoleBindings in it go too: their install makes them again.)
        c.run(str(KUBECTL), "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait", "--timeout=5m")
    if services is None:
        c.install_operators()
    else:
        c.database_url = services.postgres.url
    install(c, images, services)
    yield c
    c.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", timeout=600, check=False)
    if services is not None:  # the Secrets the tests made for the chart
        c.kubectl("delete", "secret", K3S_DB_SECRET, K3S_NOTIFY_SECRET, "--ignore-not-found", check=False)


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
