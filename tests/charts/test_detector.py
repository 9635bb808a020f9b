"""The detector's SparkApplication: restart policy, checkpoint storage, the driver's RBAC, S3A in its image."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.charts.rendering import CHART, ROOT, VALUES_FILES, RenderError, one, render, render_named

SCHEMA = json.loads((CHART / "values.schema.json").read_text())["properties"]["detector"]["properties"]
# What the Spark driver does with the API in cluster mode: it creates, watches and deletes its executor pods
# (deletecollection when the session stops), and creates and patches its Service, ConfigMaps and on-demand PVCs.
DRIVER_VERBS = {"create", "get", "list", "watch", "delete", "deletecollection", "patch", "update"}
DRIVER_RESOURCES = {"pods", "services", "configmaps", "persistentvolumeclaims"}
# The AWS SDK v2 bundle each Hadoop release is built and tested with (hadoop-project's aws-java-sdk-v2.version).
AWS_SDK_OF_HADOOP = {"3.4.1": "2.24.6"}


@pytest.mark.parametrize("policy", SCHEMA["restartPolicy"]["properties"]["type"]["enum"])
def test_every_allowed_restart_policy_retries_as_named(policy):
    """OnFailure renders its retry counts (without them the operator never retries); Always retries at intervals."""
    rendered = one(render(sets={"detector.restartPolicy.type": policy}), "SparkApplication")["spec"]["restartPolicy"]
    assert rendered["type"] == policy
    if policy == "OnFailure":
        assert rendered["onFailureRetries"] >= 1 and rendered["onSubmissionFailureRetries"] >= 1, rendered
    if policy != "Never":
        assert rendered["onFailureRetryInterval"] >= 1 and rendered["onSubmissionFailureRetryInterval"] >= 1


def executor_affinity(access_mode: str) -> dict:
    app = one(render(sets={"detector.checkpoint.accessMode": access_mode}), "SparkApplication")["spec"]
    return app["executor"]["template"]["spec"].get("affinity", {})


def test_checkpoint_access_modes_let_driver_and_executors_mount_it():
    """ReadWriteOncePod is refused; ReadWriteOnce keeps executors on the driver's node; ReadWriteMany spreads them."""
    assert "ReadWriteOncePod" not in SCHEMA["checkpoint"]["properties"]["accessMode"]["enum"]
    with pytest.raises(RenderError, match="accessMode"):
        render(sets={"detector.checkpoint.accessMode": "ReadWriteOncePod"})
    terms = executor_affinity("ReadWriteOnce")["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    driver = one(render_named("default"), "SparkApplication")["spec"]["driver"]["labels"] | {"spark-role": "driver"}
    assert [t["topologyKey"] for t in terms] == ["kubernetes.io/hostname"]
    assert terms[0]["labelSelector"]["matchLabels"].items() <= driver.items()
    assert terms[0]["labelSelector"]["matchLabels"]["spark-role"] == "driver"
    assert executor_affinity("ReadWriteMany") == {}


@pytest.mark.parametrize("name", sorted(VALUES_FILES))
def test_driver_role_grants_what_spark_needs(name):
    """The detector's ServiceAccount may do every verb Spark's driver uses on pods, services, configmaps and PVCs."""
    docs = render_named(name)
    apps = [d for d in docs if d["kind"] == "SparkApplication"]
    if apps:
        account = apps[0]["spec"]["driver"]["serviceAccount"]
    else:  # runner: driverDeployment
        account = one(docs, "Deployment", "-detector-driver")["spec"]["template"]["spec"]["serviceAccountName"]
    binding = one(docs, "RoleBinding")
    assert {(s["kind"], s["name"]) for s in binding["subjects"]} == {("ServiceAccount", account)}
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == binding["roleRef"]["name"])
    granted = {(resource, verb) for rule in role["rules"] if "" in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert {(r, v) for r in DRIVER_RESOURCES for v in DRIVER_VERBS} - granted == set()


def spark_hadoop_version() -> str:
    """The Hadoop release of the Spark the detector runs (the pyspark pin ships the same hadoop-client jars)."""
    jars = Path(importlib.util.find_spec("pyspark").origin).parent / "jars"
    (client,) = jars.glob("hadoop-client-api-*.jar")
    return client.name.removeprefix("hadoop-client-api-").removesuffix(".jar")


def test_s3a_checkpoints_have_their_filesystem_in_the_detector_image():
    """A values file with an s3a:// checkpoint runs on an image with hadoop-aws and its SDK, matching Spark's Hadoop."""
    s3a = [name for name, files in VALUES_FILES.items() for path in files
           if yaml.safe_load(path.read_text()).get("detector", {}).get("checkpoint", {}).get("uri", "").startswith(
               "s3a://")]
    assert s3a == ["aws"]
    dockerfile = (ROOT / "images" / "detector" / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", dockerfile, re.M))
    hadoop = spark_hadoop_version()
    assert args.get("HADOOP_AWS_VERSION") == hadoop
    assert args.get("AWS_SDK_BUNDLE_VERSION") == AWS_SDK_OF_HADOOP[hadoop]
    assert "org.apache.hadoop:hadoop-aws:${HADOOP_AWS_VERSION}" in dockerfile
    assert "software.amazon.awssdk:bundle:${AWS_SDK_BUNDLE_VERSION}" in dockerfile


def test_executors_get_the_memory_overhead_for_rocksdb_on_either_runner():
    """detector.executor.memoryOverhead reaches the executors of the SparkApplication and of the driver
    Deployment alike: their pods' limit is heap plus overhead, and RocksDB lives in the overhead."""
    sets = {"detector.executor.memoryOverhead": "900m"}
    app = one(render(sets=sets), "SparkApplication")["spec"]["executor"]
    assert app["memoryOverhead"] == "900m"
    driver = one(render(values=VALUES_FILES["k3s"], sets=sets), "Deployment", "-detector-driver")
    assert "spark.executor.memoryOverhead=900m" in driver["spec"]["template"]["spec"]["containers"][0]["args"]


@pytest.mark.parametrize("name", sorted(VALUES_FILES))
def test_the_spark_pods_request_the_cpu_the_values_say_on_either_runner(name):
    """Spark requests a whole CPU per `cores` unless told otherwise: on a small node (a 2-core k3s, a laptop's
    kind) the executor then never schedules. Both runners pass requestCores to Spark (seen on k3s's operators)."""
    docs = render_named(name)
    detector = yaml.safe_load((CHART / "values.yaml").read_text())["detector"]
    for path in VALUES_FILES[name]:
        detector = {**detector, **{k: ({**detector[k], **v} if isinstance(v, dict) else v)
                                   for k, v in (yaml.safe_load(path.read_text()).get("detector") or {}).items()}}
    if detector["runner"] == "sparkApplication":
        spec = one(docs, "SparkApplication")["spec"]
        requested = (spec["driver"]["coreRequest"], spec["executor"]["coreRequest"])
    else:
        args = one(docs, "Deployment", "-detector-driver")["spec"]["template"]["spec"]["containers"][0]["args"]
        requested = (one(docs, "Deployment", "-detector-driver")["spec"]["template"]["spec"]["containers"][0]
                     ["resources"]["requests"]["cpu"],
                     next(a.split("=", 1)[1] for a in args if a.startswith("spark.kubernetes.executor.request.cores=")))
    assert requested == (str(detector["driver"]["requestCores"]), str(detector["executor"]["requestCores"]))
