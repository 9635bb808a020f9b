"""The cluster itself, with the project's images: node, DNS, storage, non-root images, NetworkPolicy enforcement.

Runs on kind and on k3s (k8s/k3s) alike, in a namespace of its own. Everything it sends stays on the node: pod
to pod over the node's bridge, and the pods have no route beyond it on k3s.
"""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client, config

from tests.e2e.conftest import PROBE, wait_until

SERVER_PORT = 8080
ALLOWED_LABEL = {"fraud-e2e/client": "allowed"}
RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
              "seccompProfile": {"type": "RuntimeDefault"}}


class Namespace:
    """A namespace of this test module: objects in it, pods run to completion, commands in running pods."""

    def __init__(self, e2e_cluster, name: str) -> None:
        self.cluster = e2e_cluster.cluster
        self.name = name
        api = config.new_client_from_config(config_file=str(self.cluster.kubeconfig))
        self.core = client.CoreV1Api(api)
        self.net = client.NetworkingV1Api(api)

    def pod(self, name: str, image: str, command: list[str], labels: dict | None = None, volume: str | None = None,
            restart: str = "Never") -> None:
        container = {"name": "main", "image": image, "imagePullPolicy": "Never", "command": command,
                     "securityContext": RESTRICTED,
                     "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "512Mi"}}}
        spec = {"containers": [container], "restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                "automountServiceAccountToken": False}
        if volume:
            container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
            spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": volume}}]
        self.core.create_namespaced_pod(self.name, {"apiVersion": "v1", "kind": "Pod", "spec": spec, "metadata": {
            "name": name, "labels": {"app.kubernetes.io/part-of": "fraud-e2e", **(labels or {})}}})

    def finished(self, name: str, timeout: float = 180) -> tuple[str, str]:
        """(phase, log) of a pod that ran to completion."""
        phase = wait_until(f"pod {name} to finish", lambda: (
            p := self.core.read_namespaced_pod(name, self.name).status.phase) in ("Succeeded", "Failed") and p,
            timeout)
        return phase, self.core.read_namespaced_pod_log(name, self.name)

    def running(self, name: str, timeout: float = 120) -> client.V1Pod:
        def ready():
            pod = self.core.read_namespaced_pod(name, self.name)
            if pod.status.phase in ("Failed", "Succeeded"):
                raise AssertionError(f"pod {name} stopped: {pod.status}")
            conditions = {c.type: c.status for c in pod.status.conditions or []}
            return pod if conditions.get("Ready") == "True" else None
        return wait_until(f"pod {name} to be ready", ready, timeout)

    def exec(self, pod: str, *command: str) -> str:
        return self.cluster.kubectl("exec", pod, "--", *command, namespace=self.name, timeout=60).strip()

    def probe(self, pod: str, host: str, port: int = SERVER_PORT) -> str:
        return self.exec(pod, "python", "-c", PROBE, host, str(port))


@pytest.fixture(scope="module")
def ns(e2e_cluster, images) -> Namespace:
    """A fresh namespace, deleted (and its pods and volumes with it) after the module."""
    namespace = Namespace(e2e_cluster, f"fraud-e2e-{uuid.uuid4().hex[:6]}")
    namespace.core.create_namespace({"metadata": {"name": namespace.name}})
    yield namespace
    namespace.core.delete_namespace(namespace.name)
    wait_until(f"namespace {namespace.name} to go", lambda: namespace.name not in {
        n.metadata.name for n in namespace.core.list_namespace().items}, timeout=120, every=2)


@pytest.fixture(scope="module")
def server(ns, images) -> client.V1Pod:
    """An HTTP server pod (the generator image's Python) behind a ClusterIP Service named `web`."""
    ns.pod("web", images["generator"], ["python", "-m", "http.server", str(SERVER_PORT)],
           labels={"app": "web"}, restart="Always")
    ns.core.create_namespaced_service(ns.name, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": SERVER_PORT, "targetPort": SERVER_PORT}]}})
    return ns.running("web")


@pytest.fixture(scope="module")
def clients(ns, images) -> tuple[str, str]:
    """Two idle pods to probe from: (with the label the policy allows, without it)."""
    for name, labels in (("allowed", ALLOWED_LABEL), ("other", {})):
        ns.pod(name, images["generator"], ["sleep", "3600"], labels=labels, restart="Always")
    for name in ("allowed", "other"):
        ns.running(name)
    return "allowed", "other"


def test_the_node_is_ready(ns):
    """The cluster's node reports Ready and its kubelet the Kubernetes version the API server serves."""
    (node,) = ns.core.list_node().items
    conditions = {c.type: c.status for c in node.status.conditions}
    assert conditions["Ready"] == "True"
    server_version = client.VersionApi(ns.core.api_client).get_code().git_version
    assert node.status.node_info.kubelet_version.split("+")[0] == server_version.split("+")[0]


def test_both_images_run_as_non_root(ns, images):
    """Under runAsNonRoot, the generator runs `fraud-detection --version`, the detector spark-submit and the job."""
    ns.pod("generator-version", images["generator"], ["sh", "-c", "id -u; fraud-detection --version"])
    phase, log = ns.finished("generator-version")
    assert phase == "Succeeded", log
    uid, version = log.split("\n", 1)
    assert uid == "10001" and version.startswith("fraud-detection ")
    # PySpark comes from /opt/spark/python as in the Apache Spark image (lib/*.zip), found the way spark-submit does.
    check = ("id -u; /opt/spark/bin/spark-submit --version 2>&1 | grep -o 'version [0-9.]*' | head -1; "
             "PYTHONPATH=$(ls /opt/spark/python/lib/*.zip | tr '\\n' :) python3 -c "
             "'import fraud_detection.detector.job, pyspark; print(\"pyspark\", pyspark.__version__)'")
    ns.pod("detector-version", images["detector"], ["sh", "-c", check])
    phase, log = ns.finished("detector-version", timeout=240)
    assert phase == "Succeeded", log
    lines = log.splitlines()
    spark = next(line.split()[1] for line in lines if line.startswith("version "))
    assert lines[0] == "185" and spark.startswith("4.") and f"pyspark {spark}" in lines, log


def test_a_local_path_volume_binds_and_keeps_data(ns, images):
    """A PVC of the default StorageClass binds when a pod uses it; a second pod reads what the first wrote."""
    ns.core.create_namespaced_persistent_volume_claim(ns.name, {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}})
    ns.pod("writer", images["generator"], ["sh", "-c", "echo kept > /data/file"], volume="data")
    assert ns.finished("writer")[0] == "Succeeded"
    assert ns.core.read_namespaced_persistent_volume_claim("data", ns.name).status.phase == "Bound"
    ns.pod("reader", images["generator"], ["cat", "/data/file"], volume="data")
    assert ns.finished("reader") == ("Succeeded", "kept\n")


def test_coredns_resolves_a_service_that_answers(ns, server, clients):
    """The Service name resolves through CoreDNS to its ClusterIP, and the server answers through it."""
    allowed, _ = clients
    cluster_ip = ns.core.read_namespaced_service("web", ns.name).spec.cluster_ip
    resolved = ns.exec(allowed, "python", "-c",
                       f"import socket; print(socket.gethostbyname('web.{ns.name}.svc.cluster.local'))")
    assert resolved == cluster_ip
    assert wait_until("the Service to answer", lambda: ns.probe(allowed, "web") == "open", timeout=30)


def test_a_network_policy_denying_ingress_is_enforced(ns, server, clients):
    """A policy admitting only labelled pods stops the unlabelled client (which got through before), not the other."""
    allowed, other = clients
    server_ip = server.status.pod_ip
    assert ns.probe(other, server_ip) == "open", "the unlabelled client must reach the server before the policy"
    ns.net.create_namespaced_network_policy(ns.name, {"metadata": {"name": "web-ingress"}, "spec": {
        "podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": ALLOWED_LABEL}}],
                     "ports": [{"port": SERVER_PORT, "protocol": "TCP"}]}]}})
    assert wait_until("the policy to block the unlabelled client",
                    lambda: (r := ns.probe(other, server_ip)) != "open" and r, timeout=60, every=2) in (
        "timeout", "refused")
    assert ns.probe(allowed, server_ip) == "open"
    assert ns.probe(allowed, "web") == "open"
    assert ns.probe(other, server_ip) != "open"
