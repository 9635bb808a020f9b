"""The chart lints, renders with every values file, and every rendered object passes strict schema checks."""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from tests.charts.rendering import (
    CHART,
    CRD_SCHEMAS,
    VALUES_FILES,
    RenderError,
    helm,
    one,
    render,
    render_named,
    schema_for,
    validate,
)

EXPECTED_KINDS = {
    "default": {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Cluster", "SparkApplication", "Deployment",
                "Grafana", "GrafanaDatasource", "GrafanaDashboard", "NetworkPolicy", "Secret", "ServiceAccount", "Role",
                "RoleBinding", "PersistentVolumeClaim", "Pod", "CronJob"},
    # MSK and RDS instead of Strimzi and CNPG; S3 checkpoints instead of a PVC.
    "aws": {"SparkApplication", "Deployment", "Grafana", "GrafanaDatasource", "GrafanaDashboard", "Secret",
            "ServiceAccount", "Role", "RoleBinding", "Pod", "CronJob"},
    # No operators: the node's Kafka and PostgreSQL as external services, the detector's driver as a Deployment.
    "k3s": {"Deployment", "Service", "ConfigMap", "NetworkPolicy", "ServiceAccount", "Role", "RoleBinding",
            "PersistentVolumeClaim", "Pod", "CronJob"},
}
EXPECTED_KINDS["kind"] = EXPECTED_KINDS["default"]
EXPECTED_KINDS["k3s-operators"] = EXPECTED_KINDS["default"] - {"Grafana", "GrafanaDatasource", "GrafanaDashboard"}
# The oldest Kubernetes each pinned operator supports (Strimzi: only 1.30 and newer since 0.51, so in 1.2 too).
OPERATOR_MIN_KUBERNETES = {"strimzi-kafka-operator 1.2": "1.30.0"}


@pytest.mark.parametrize("name", sorted(VALUES_FILES))
def test_helm_lint_passes(name):
    """helm lint (with values.schema.json) accepts the chart with each values file."""
    args = ["lint", str(CHART), "--strict"]
    for path in VALUES_FILES[name]:
        args += ["--values", str(path)]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(VALUES_FILES))
def test_renders_the_expected_objects(name):
    """Each values file renders the components it promises, and nothing else."""
    assert {d["kind"] for d in render_named(name)} == EXPECTED_KINDS[name]


@pytest.mark.parametrize("name", sorted(VALUES_FILES))
def test_every_rendered_object_is_valid(name):
    """Built-in kinds pass Kubernetes' schema and custom resources their operator's, unknown fields failing."""
    for doc in render_named(name):
        try:
            validate(doc)
        except Exception as err:  # noqa: BLE001 - re-raised with the object's name
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} ({name} values): {str(err)[:600]}")


def deprecated_fields(doc, schema: dict, path: str = "") -> list[str]:
    """Paths of the fields set in `doc` whose schema description calls them deprecated."""
    found = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            field = schema.get("properties", {}).get(key, {})
            if re.search(r"\bDeprecated\b", field.get("description", "")):
                found.append(f"{path}.{key}")
            found += deprecated_fields(value, field, f"{path}.{key}")
    elif isinstance(doc, list):
        for index, item in enumerate(doc):
            found += deprecated_fields(item, schema.get("items", {}), f"{path}[{index}]")
    return found


@pytest.mark.parametrize("name", sorted(VALUES_FILES))
def test_no_custom_resource_sets_a_deprecated_field(name):
    """No rendered custom resource sets a field its operator's CRD describes as deprecated."""
    custom = [doc for doc in render_named(name) if schema_for(doc)]
    assert len(custom) >= (0 if name == "k3s" else 4)  # k3s: no operators, no custom resources
    used = {f"{doc['kind']}{field}" for doc in custom
            for field in deprecated_fields(doc, json.loads(schema_for(doc).read_text()))}
    assert used == set()


def test_chart_refuses_kubernetes_older_than_its_operators_support():
    """helm refuses a cluster older than the newest minimum among the operators, and accepts that minimum."""
    oldest = max(OPERATOR_MIN_KUBERNETES.values(), key=lambda v: tuple(map(int, v.split("."))))
    major, minor, _ = oldest.split(".")
    older = helm("template", "fraud", str(CHART), "--kube-version", f"{major}.{int(minor) - 1}.0")
    assert older.returncode != 0 and "kubeVersion" in older.stderr
    assert helm("template", "fraud", str(CHART), "--kube-version", oldest).returncode == 0


def test_validation_rejects_each_deliberate_mistake():
    """Every custom resource with one planted mistake (removed API, unknown field, bad enum...) fails."""
    docs = [d for d in yaml.safe_load_all((CRD_SCHEMAS / "invalid-fraud-pipeline-crs.yaml").read_text()) if d]
    assert len(docs) >= 8
    passed = [doc["metadata"]["name"] for doc in docs if _is_valid(doc)]
    assert passed == []


def _is_valid(doc: dict) -> bool:
    try:
        validate(doc)
    except Exception:  # noqa: BLE001 - any validation error counts as rejected
        return False
    return True


@pytest.mark.parametrize(("kind", "path"), [
    ("SparkApplication", ("spec", "driver")),
    ("Deployment", ("spec", "template", "spec", "containers", 0)),
    ("Cluster", ("spec",)),
    ("KafkaTopic", ("spec",)),
])
def test_validation_rejects_a_typo_in_a_rendered_object(kind, path):
    """An unknown field planted in a rendered object fails, built-in or custom."""
    doc = copy.deepcopy(next(d for d in render_named("default") if d["kind"] == kind))
    target = doc
    for key in path:
        target = target[key]
    target["replicaz"] = 1
    with pytest.raises(Exception, match="replicaz"):
        validate(doc)


@pytest.mark.parametrize(("sets", "message"), [
    ({"rule.threshold": "0"}, "threshold"),
    ({"generator.ratePerReplica": "-5"}, "ratePerReplica"),
    ({"detector.sparkVersion": "3.5.1"}, "sparkVersion"),
    ({"generator.replicaz": "3"}, "replicaz"),
    ({"kafka.enabled": "false"}, "kafka.external.bootstrapServers is required"),
    ({"postgres.enabled": "false"}, "postgres.external.secretName is required"),
    ({"postgres.enabled": "false", "postgres.external.secretName": "db"},
     "postgres.external.readerSecretName is required for Grafana"),
    ({"kafka.alertsTopic.name": "transactions"}, "kafka.alertsTopic.name must differ from kafka.topic.name"),
    ({"kafka.alertsTopic.partitions": "0"}, "partitions"),
])
def test_bad_values_fail_with_a_message_naming_them(sets, message):
    """A wrong or missing value stops the install with a message that names it."""
    with pytest.raises(RenderError, match=message):
        render(sets=sets)


def topic_values(name: str) -> dict[str, dict]:
    """Topic name -> its values (values.yaml under the values file), for each topic key of `kafka`."""
    base = yaml.safe_load((CHART / "values.yaml").read_text())["kafka"]
    overrides = [yaml.safe_load(path.read_text()).get("kafka", {}) for path in VALUES_FILES[name]]
    topics = {}
    for key in ("topic", "alertsTopic"):
        merged = base[key]
        for override in overrides:
            merged = {**merged, **override.get(key, {})}
        topics[merged["name"]] = merged
    return topics


@pytest.mark.parametrize("name", ["default", "kind"])
def test_each_topic_renders_from_its_values_and_validates(name):
    """The transactions and alerts topics are KafkaTopics with their values' partitions, replicas and retention,
    valid against Strimzi's schema."""
    topics = {d["spec"]["topicName"]: d for d in render_named(name) if d["kind"] == "KafkaTopic"}
    values = topic_values(name)
    assert set(topics) == set(values) and len(topics) == 2
    for topic, doc in topics.items():
        validate(doc)
        spec = doc["spec"]
        assert (spec["partitions"], spec["replicas"], spec["config"]["retention.ms"]) == (
            values[topic]["partitions"], values[topic]["replicas"], values[topic]["retentionMs"])


@pytest.mark.parametrize("name", ["default", "kind"])
def test_every_topic_fits_the_kafka_cluster(name):
    """No topic asks for more replicas than there are brokers, or for fewer than min.insync.replicas (which would
    refuse the idempotent producers' acks=all writes)."""
    docs = render_named(name)
    pool = one(docs, "KafkaNodePool")["spec"]
    min_isr = one(docs, "Kafka")["spec"]["kafka"]["config"]["min.insync.replicas"]
    for topic in (d for d in docs if d["kind"] == "KafkaTopic"):
        assert min_isr <= topic["spec"]["replicas"] <= pool["replicas"], topic["metadata"]["name"]


def test_no_password_or_secret_in_values():
    """values.yaml holds no credential, only names of Secrets and of keys in them."""
    for line in (CHART / "values.yaml").read_text().lower().splitlines():
        key = line.split("#")[0].partition(":")[0].strip()
        reference = key.endswith(("key", "secret", "secrets", "secretname"))  # names a Secret or a key in one
        if re.search(r"password|passwd|token|apikey|secret", key) and not reference:
            pytest.fail(f"credential-like key in values.yaml: {line.strip()}")


def test_grafana_admin_password_is_generated_not_default():
    """The generated admin Secret holds a long random password, a new one per fresh install."""
    def password():
        secret = next(d for d in render() if d["kind"] == "Secret" and d["metadata"]["name"].endswith("grafana-admin"))
        return secret["data"]["GF_SECURITY_ADMIN_PASSWORD"]

    first, second = password(), password()
    assert first != second
    assert len(first) >= 40  # base64 of 32 characters


# Maps whose entries are Kubernetes or broker settings passed through as they are.
FREE_FORM = {"requests", "limits", "resources", "config", "parameters", "annotations", "sparkConf"}


def test_every_value_has_a_comment():
    """Each key of values.yaml has a comment above it or on its line, except entries of pass-through maps."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    parents: list[tuple[int, str]] = []  # (indent, key) of the enclosing keys
    missing = []
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z0-9_.-]+):", line)
        if not match:
            continue
        indent, key = len(match.group(1)), match.group(2)
        parents = [(n, k) for n, k in parents if n < indent]
        commented = "#" in line or (i > 0 and lines[i - 1].strip().startswith("#"))
        if not commented and not (parents and parents[-1][1] in FREE_FORM):
            missing.append(".".join([*(k for _, k in parents), key]))
        parents.append((indent, key))
    assert missing == []


@pytest.mark.parametrize("name", sorted(VALUES_FILES))
def test_uninstall_keeps_only_the_checkpoint(name):
    """`helm uninstall` keeps the detector's checkpoint PVC (losing it re-reads the topic) and nothing else: a
    generated password kept after the database it opens went with the release is only a credential left
    behind (seen on k3s: the reader role's Secret outlived the release)."""
    docs = render_named(name)
    kept = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
            if d["metadata"].get("annotations", {}).get("helm.sh/resource-policy") == "keep"]
    checkpoint = [f"PersistentVolumeClaim/{d['metadata']['name']}" for d in docs
                  if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"].endswith("-detector-checkpoints")]
    assert kept == checkpoint and len(checkpoint) == (0 if name == "aws" else 1)  # aws: checkpoints on S3
