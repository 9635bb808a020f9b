"""The detector without the Spark Operator (detector.runner driverDeployment), and the egress policies of
external Kafka and PostgreSQL: the k3s values use both."""

from __future__ import annotations

import kubernetes_validate

from fraud_detection.cli import build_parser
from tests.charts.rendering import KUBERNETES_VERSION, executor_template, one, pod_labels, render_named, selects

NAMESPACE = "fraud-detection"  # rendering.render's


def driver_parts():
    docs = render_named("k3s")
    deployment = one(docs, "Deployment", "-detector-driver")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    confs = dict(arg.split("=", 1) for arg in container["args"][container["args"].index("--name") + 2:]
                 if "=" in arg and arg.startswith("spark."))
    return docs, deployment, pod, container, confs


def test_the_driver_deployment_runs_spark_in_client_mode_through_the_images_entrypoint():
    """`driver` (the Spark image's entrypoint) with a k8s master, one replica, stopped before its replacement starts."""
    docs, deployment, _pod, container, confs = driver_parts()
    assert [d for d in docs if d["kind"] == "SparkApplication"] == []
    assert container["args"][:3] == ["driver", "--master", "k8s://https://kubernetes.default.svc:443"]
    assert "command" not in container  # the image's entrypoint reads `driver`
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert confs["spark.kubernetes.namespace"] == NAMESPACE
    assert confs["spark.kubernetes.executor.request.cores"] == "500m"


def test_the_cli_arguments_parse_as_detect_on_the_checkpoint_volume():
    """The application arguments are `detect --checkpoint-dir` under the PVC both driver and executors mount."""
    _docs, _deployment, pod, container, confs = driver_parts()
    main = container["args"].index("local:///opt/fraud-detection/main.py")
    args = build_parser().parse_args(container["args"][main + 1:])
    assert args.command == "detect"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]
              if "persistentVolumeClaim" in v}
    executor = "spark.kubernetes.executor.volumes.persistentVolumeClaim.checkpoints"
    assert args.checkpoint_dir.startswith(mounts["checkpoints"] + "/")
    assert confs[f"{executor}.mount.path"] == mounts["checkpoints"]
    assert confs[f"{executor}.options.claimName"] == claims["checkpoints"]


def test_executors_reach_the_driver_pod_by_its_headless_service():
    """spark.driver.host is a headless Service selecting the driver pod, publishing it before it is ready (executors
    register before the query runs), on the driver's fixed ports; executors are owned by the pod named by the
    downward API."""
    docs, _deployment, pod, container, confs = driver_parts()
    service = one(docs, "Service", "-detector-driver")
    assert confs["spark.driver.host"] == f"{service['metadata']['name']}.{NAMESPACE}.svc"
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert selects({"matchLabels": service["spec"]["selector"]}, pod["metadata"]["labels"])
    assert {p["port"] for p in service["spec"]["ports"]} == {
        int(confs["spark.driver.port"]), int(confs["spark.driver.blockManager.port"])}
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in container["env"]}
    assert confs["spark.kubernetes.driver.pod.name"] == "$(POD_NAME)" and env["POD_NAME"] == "metadata.name"
    assert env["SPARK_DRIVER_BIND_ADDRESS"] == "status.podIP"


def test_the_executor_pod_template_is_a_valid_pod_that_follows_the_driver():
    """The ConfigMap's template validates as a Pod, runs as the driver's uid (one checkpoint owner) and, with a
    ReadWriteOnce checkpoint, is kept on the driver pod's node."""
    docs, _deployment, pod, container, confs = driver_parts()
    config_map = one(docs, "ConfigMap", "-executor-template")
    template = executor_template(config_map)
    kubernetes_validate.validate({**template, "metadata": {**template["metadata"], "name": "x"}},
                                 KUBERNETES_VERSION, strict=True)
    folder = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "executor-template")
    assert confs["spark.kubernetes.executor.podTemplateFile"] == f"{folder}/executor.yaml"
    assert template["spec"]["securityContext"]["runAsUser"] == pod["spec"]["securityContext"]["runAsUser"] == 185
    (term,) = template["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert selects(term["labelSelector"], pod["metadata"]["labels"])


def policies(docs) -> dict[str, dict]:
    return {d["metadata"]["name"].removeprefix("fraud-fraud-detection-"): d["spec"]
            for d in docs if d["kind"] == "NetworkPolicy"}


def test_external_services_are_reachable_only_from_the_apps_pods():
    """With external Kafka and PostgreSQL, every pod of the namespace is held to DNS and the namespace's pods;
    the app's components (the executor template's included) may also reach the external addresses."""
    docs = render_named("k3s")
    found = policies(docs)
    assert found["egress"]["podSelector"] == {} and found["egress"]["policyTypes"] == ["Egress"]
    assert [rule.get("to") for rule in found["egress"]["egress"]] == [None, [{"podSelector": {}}]]
    assert {p["port"] for p in found["egress"]["egress"][0]["ports"]} == {53}
    external = found["external-services"]
    labels = pod_labels(docs)
    assert {c for c, pod in labels.items() if selects(external["podSelector"], pod)} == {
        "generator", "detector", "relay", "notify", "retention", "helm-test"}
    (rule,) = external["egress"]
    assert rule["to"] == [{"ipBlock": {"cidr": "10.42.0.1/32"}}]
    assert {p["port"] for p in rule["ports"]} == {9092, 5432}


def test_only_the_driver_may_call_the_api_server():
    """The API-server egress selects the driver pod, not its executors or anything else."""
    docs, _deployment, pod, _container, _confs = driver_parts()
    api = policies(docs)["detector-api"]
    assert selects(api["podSelector"], pod["metadata"]["labels"])
    executor = executor_template(one(docs, "ConfigMap", "-executor-template"))["metadata"]["labels"]
    assert not selects(api["podSelector"], {**executor, "spark-role": "executor"})
    assert {p["port"] for rule in api["egress"] for p in rule["ports"]} == {443, 6443}


def test_no_egress_policy_without_external_addresses():
    """The default values (Strimzi, CNPG) render no egress lock-down: their ingress policies guard them."""
    assert {"egress", "external-services", "detector-api"} & set(policies(render_named("default"))) == set()
