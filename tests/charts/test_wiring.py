"""The chart, the images, skaffold and the app agree: env names, service names, entry points, versions."""

from __future__ import annotations

import base64
import json
import os
import re
from importlib.metadata import version
from typing import get_args

import jsonpatch
import pytest
import yaml
from pydantic import BaseModel

from fraud_detection.cli import build_parser
from fraud_detection.local_stack.postgres import READER_ROLE
from fraud_detection.settings import (
    ENV_PREFIX,
    NESTED_DELIMITER,
    DetectorSettings,
    Operator,
    Settings,
    load_settings,
)
from tests.charts.rendering import (
    CHART,
    CRD_SCHEMAS,
    ROOT,
    VALUES_FILES,
    containers,
    dockerfile_copies,
    env_values,
    one,
    pod_labels,
    pod_specs,
    render,
    render_named,
    selects,
)

APP_IMAGES = ("fraud-detection-generator", "fraud-detection-detector")


def settings_env_names() -> set[str]:
    """Every environment variable the app's Settings reads."""
    names = set()
    for field, info in Settings.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= {f"{ENV_PREFIX}{field}{NESTED_DELIMITER}{sub}".upper() for sub in annotation.model_fields}
        else:
            names.add(f"{ENV_PREFIX}{field}".upper())
    return names


def app_containers(docs):
    return [c for c in containers(docs) if c.spec.get("image", "").split("/")[-1].split(":")[0] in APP_IMAGES
            or c.owner.startswith("SparkApplication/")]


def resolved_env(container) -> dict[str, str]:
    """The container's env with Secret references replaced by stand-ins of the right shape."""
    stand_ins = {"uri": "postgresql://user:pw@db:5432/fraud", "username": "user", "password": "pw",
                 "slackWebhookUrl": "https://hooks.slack.example/x", "webhookUrl": "https://hooks.example/fraud",
                 "webhookSecret": "a-signing-secret-of-32-characters"}
    return env_values(container.spec, lambda _name, key: stand_ins.get(key, "secret"))


@pytest.mark.parametrize("name", sorted(VALUES_FILES))
def test_chart_sets_only_env_vars_the_app_reads_and_they_load(name, monkeypatch):
    """Every FRAUD_* variable the chart sets is a real setting, and each container's set loads cleanly."""
    known = settings_env_names()
    checked = set()
    for container in app_containers(render_named(name)):
        env = resolved_env(container)
        unknown = {k for k in env if k.startswith(ENV_PREFIX)} - known
        assert unknown == set(), f"{container.owner} {container.name} sets {unknown}"
        if not env:
            continue  # the executors get no app settings; they run only Spark code
        for key in list(os.environ):
            if key.startswith(ENV_PREFIX):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        load_settings()  # raises SettingsError naming the variable if a value is invalid
        checked.add((container.owner.split("/")[0], container.name))
    driver = ("Deployment", "driver") if name == "k3s" else ("SparkApplication", "spark-kubernetes-driver")
    assert {("Deployment", "generator"), ("Deployment", "relay"), driver,
            ("Pod", "check"), ("Pod", "check-alerts-topic")} <= checked


def test_components_get_the_settings_they_need():
    """Generator, detector, migrations and helm tests get bootstrap servers, topic, rule and database URL; the
    relay gets bootstrap servers, the alerts topic and the database URL."""
    docs = render_named("default")
    by_name = {(c.owner.split("/")[0], c.name): c.env for c in app_containers(docs)}
    needs_db = [("Deployment", "generator"), ("Deployment", "migrate"), ("SparkApplication", "migrate"),
                ("SparkApplication", "spark-kubernetes-driver"), ("Pod", "check"), ("Deployment", "relay")]
    for key in needs_db:
        assert key in by_name, key
    for key in [("Deployment", "generator"), ("SparkApplication", "spark-kubernetes-driver")]:
        env = by_name[key]
        for required in ("FRAUD_KAFKA__BOOTSTRAP_SERVERS", "FRAUD_KAFKA__TOPIC", "FRAUD_DATABASE_URL",
                         "FRAUD_RULE__THRESHOLD", "FRAUD_RULE__WINDOW"):
            assert required in env, (key, required)
    for required in ("FRAUD_KAFKA__BOOTSTRAP_SERVERS", "FRAUD_KAFKA__ALERTS_TOPIC", "FRAUD_DATABASE_URL"):
        assert required in by_name[("Deployment", "relay")], required


def test_kafka_bootstrap_is_the_strimzi_service_of_our_cluster():
    """Clients connect to <kafka>-kafka-bootstrap:9092, the plain listener of the Kafka resource."""
    docs = render_named("default")
    kafka = one(docs, "Kafka")
    listener = next(item for item in kafka["spec"]["kafka"]["listeners"] if item["port"] == 9092)
    assert listener["tls"] is False and listener["type"] == "internal"
    expected = f"{kafka['metadata']['name']}-kafka-bootstrap:9092"
    for container in app_containers(docs):
        if "FRAUD_KAFKA__BOOTSTRAP_SERVERS" in container.env:
            assert container.env["FRAUD_KAFKA__BOOTSTRAP_SERVERS"]["value"] == expected
    topic, alerts = one(docs, "KafkaTopic", "-transactions"), one(docs, "KafkaTopic", "-alerts")
    for doc in (topic, alerts, one(docs, "KafkaNodePool")):
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    clients = [c for c in app_containers(docs) if c.name != "check-alerts-topic"]  # see the helm test below
    assert {c.env["FRAUD_KAFKA__TOPIC"]["value"] for c in clients if "FRAUD_KAFKA__TOPIC" in c.env} == {
        topic["spec"]["topicName"]}
    assert {c.env["FRAUD_KAFKA__ALERTS_TOPIC"]["value"] for c in app_containers(docs)
            if "FRAUD_KAFKA__ALERTS_TOPIC" in c.env} == {alerts["spec"]["topicName"]}


def test_kafka_helm_test_checks_both_topics():
    """The Kafka helm test runs `check --kafka` (which checks FRAUD_KAFKA__TOPIC) once per KafkaTopic the chart
    makes: the transactions topic and the alerts topic."""
    docs = render_named("default")
    pod = one(docs, "Pod", "-test-kafka")["spec"]
    checked = set()
    for container in pod["containers"]:
        assert build_parser().parse_args(container["command"][1:]).kafka is True
        checked.add(next(e["value"] for e in container["env"] if e["name"] == "FRAUD_KAFKA__TOPIC"))
    assert checked == {d["spec"]["topicName"] for d in docs if d["kind"] == "KafkaTopic"}
    assert len(checked) == 2


def test_a_stopped_postgres_instance_waits_seconds_not_minutes_for_idle_clients():
    """CNPG's smart shutdown refuses new connections while idle ones stay (CNPG's default: 180 s, which stalled
    the detector's sink on k3s): the chart's default is 10 s, and the value reaches the Cluster."""
    assert one(render_named("default"), "Cluster")["spec"]["smartShutdownTimeout"] == 10
    cluster = one(render(sets={"postgres.smartShutdownTimeout": "45"}), "Cluster")
    assert cluster["spec"]["smartShutdownTimeout"] == 45


def test_database_secret_is_the_cnpg_app_secret_and_grafana_reads_as_the_read_only_role():
    """The app's database URL comes from <cluster>-app's uri key. Grafana logs in as the managed role
    fraud_reader (the role the migrations grant SELECT to, R__reader_role.sql) from its basic-auth Secret, on
    the -rw Service, checking the server against the cluster's CA."""
    docs = render_named("default")
    cluster = one(docs, "Cluster")
    name = cluster["metadata"]["name"]
    refs = {json.dumps(c.env["FRAUD_DATABASE_URL"]["valueFrom"]["secretKeyRef"], sort_keys=True)
            for c in app_containers(docs) if "FRAUD_DATABASE_URL" in c.env}
    assert refs == {json.dumps({"key": "uri", "name": f"{name}-app"}, sort_keys=True)}
    (role,) = cluster["spec"]["managed"]["roles"]
    migration = (ROOT / "src/fraud_detection/storage/migrations/R__reader_role.sql").read_text()
    assert role["name"] == READER_ROLE and f"TO {READER_ROLE};" in migration and role["login"] is True
    secret = one(docs, "Secret", "-pg-reader")
    assert secret["type"] == "kubernetes.io/basic-auth" and role["passwordSecret"]["name"] == secret["metadata"]["name"]
    assert base64.b64decode(secret["data"]["username"]).decode() == READER_ROLE
    datasource = one(docs, "GrafanaDatasource")["spec"]
    assert datasource["datasource"]["url"] == f"{name}-rw:5432"
    read = {(v["targetPath"], v["valueFrom"]["secretKeyRef"]["name"], v["valueFrom"]["secretKeyRef"]["key"])
            for v in datasource["valuesFrom"]}
    assert read == {("user", secret["metadata"]["name"], "username"),
                    ("secureJsonData.password", secret["metadata"]["name"], "password"),
                    ("secureJsonData.tlsCACert", f"{name}-ca", "ca.crt")}
    for path, _, key in read:  # each value lands where the operator finds ${key}
        node = datasource["datasource"]
        for part in path.split("."):
            node = node[part]
        assert node == f"${{{key}}}", path
    assert datasource["datasource"]["jsonData"]["sslmode"] == "verify-full"
    assert cluster["spec"]["bootstrap"]["initdb"]["database"] == datasource["datasource"]["jsonData"]["database"]


def test_dashboards_query_the_datasource_by_its_uid():
    """The datasource sets spec.uid (not the deprecated datasource.uid) to the uid every dashboard panel queries."""
    datasource = one(render_named("default"), "GrafanaDatasource")["spec"]
    assert "uid" not in datasource["datasource"]
    panels = [panel for path in (CHART / "dashboards").glob("*.json")
              for panel in json.loads(path.read_text())["panels"] if "datasource" in panel]
    assert len(panels) >= 4
    assert {panel["datasource"]["uid"] for panel in panels} == {datasource["uid"]}


def test_spark_application_runs_the_detector_cli():
    """mainApplicationFile is the CLI entry the image copies in; its arguments parse as `detect` with its flags."""
    app = one(render_named("default"), "SparkApplication")["spec"]
    assert app["type"] == "Python" and app["mode"] == "cluster"
    image_path = app["mainApplicationFile"].removeprefix("local://")
    source = dockerfile_copies(ROOT / "images" / "detector" / "Dockerfile")[image_path]
    assert source == "src/fraud_detection/__main__.py"
    assert "sys.exit(main())" in (ROOT / source).read_text()
    args = build_parser().parse_args(app.get("arguments", []))
    assert args.command == "detect"
    assert args.checkpoint_dir == "/checkpoints/detector"
    mount = app["sparkConf"]["spark.kubernetes.driver.volumes.persistentVolumeClaim.checkpoints.mount.path"]
    assert args.checkpoint_dir.startswith(mount + "/")


def test_spark_versions_agree():
    """Chart sparkVersion = pyspark pin = the operator's spark.version = the detector image's Spark."""
    spark = one(render_named("default"), "SparkApplication")["spec"]["sparkVersion"]
    pom = (ROOT / "src" / "velocity-operator" / "pom.xml").read_text()
    dockerfile = (ROOT / "images" / "detector" / "Dockerfile").read_text()
    assert spark == version("pyspark")
    assert re.search(r"<spark.version>([^<]+)</spark.version>", pom).group(1) == spark
    assert re.search(r"ARG SPARK_IMAGE=apache/spark:([0-9.]+)-", dockerfile).group(1) == spark


def test_detector_choices_and_defaults_agree():
    """The chart's detector.operator is the settings' choices; it and the batch cap default as the app does."""
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["detector"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())["detector"]
    assert schema["properties"]["operator"]["enum"] == list(get_args(Operator))
    for key, field in (("operator", "operator"), ("maxOffsetsPerTrigger", "max_offsets_per_trigger")):
        assert values[key] == DetectorSettings.model_fields[field].default, key


def test_commands_in_the_chart_parse_with_the_cli():
    """Every `fraud-detection ...` command of a container or probe is valid for the CLI."""
    commands = []
    for container in app_containers(render_named("default")):
        spec = container.spec
        if spec.get("command", [None])[0] == "fraud-detection":
            commands.append([*spec["command"][1:], *spec.get("args", [])])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in spec:
                command = spec[probe]["exec"]["command"]
                assert command[0] == "fraud-detection"
                commands.append(command[1:])
    assert len(commands) >= 6
    for argv in commands:
        build_parser().parse_args(argv)  # exits (SystemExit) on an unknown flag


def copied_sources(dockerfile) -> list[str]:
    """The repository paths a Dockerfile's COPY lines take from the build context."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            sources += line.split()[1:-1]
    return sources


def test_images_match_skaffold():
    """skaffold builds exactly the images the chart runs, from Dockerfiles that exist, and sets their tags."""
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a["docker"]["dockerfile"] for a in config["build"]["artifacts"]}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(artifacts) == {values["images"][role]["repository"] for role in ("generator", "detector")}
    for dockerfile in artifacts.values():
        assert (ROOT / dockerfile).is_file()
    release = config["deploy"]["helm"]["releases"][0]
    assert (ROOT / release["chartPath"]) == CHART
    for path in release["valuesFiles"]:
        assert (ROOT / path).is_file()
    for key, template in release["setValueTemplates"].items():
        role, field = key.removeprefix("images.").split(".")
        assert field in values["images"][role]
        image = values["images"][role]["repository"].replace("-", "_")
        kind = "REPO" if field == "repository" else "TAG"
        assert template == f"{{{{.IMAGE_{kind}_{image}}}}}"
    hook = config["deploy"]["helm"]["hooks"]["before"][0]["host"]["command"]
    assert (ROOT / hook[1]).is_file()
    for profile in config["profiles"]:
        patched = jsonpatch.apply_patch(config, profile["patches"])  # fails on a path that does not exist
        assert (ROOT / patched["deploy"]["helm"]["hooks"]["before"][0]["host"]["command"][1]).is_file()
        for path in patched["deploy"]["helm"]["releases"][0]["valuesFiles"]:
            assert (ROOT / path).is_file(), (profile["name"], path)
        if patched["build"]["local"]["push"]:  # else a rebuild under the same tag would not be pulled again
            for key, template in patched["deploy"]["helm"]["releases"][0]["setValueTemplates"].items():
                image = values["images"][key.split(".")[1]]["repository"].replace("-", "_")
                if key.endswith(".tag"):
                    assert template == f"{{{{.IMAGE_TAG_{image}}}}}@{{{{.IMAGE_DIGEST_{image}}}}}", profile["name"]
        for artifact in patched["build"]["artifacts"]:
            if "docker" in artifact:
                assert artifact["docker"]["dockerfile"] == artifacts[artifact["image"]], profile["name"]
                continue
            # A custom builder (k3s: podman) watches its Dockerfile and everything that Dockerfile copies.
            dockerfile = artifacts[artifact["image"]]
            watched = artifact["custom"]["dependencies"]["paths"]
            for source in [dockerfile, *copied_sources(ROOT / dockerfile)]:
                assert any(source == w or source.startswith(w + "/") for w in watched), (profile["name"], source)


@pytest.mark.parametrize(("sets", "optional"), [
    ({}, {"generator", "relay", "retention"}),
    ({"generator.recordGroundTruth": "false"}, {"relay", "retention"}),
    ({"relay.enabled": "false"}, {"generator", "retention"}),
    ({"retention.enabled": "false"}, {"generator", "relay"}),
    ({"notify.enabled": "true", "notify.secretName": "hooks"}, {"generator", "relay", "notify", "retention"}),
])
def test_postgres_reachable_only_from_its_clients(sets, optional):
    """The PostgreSQL policy selects the CNPG pods and admits the detector, Grafana, helm tests, the relay and
    the retention job while they are deployed and the generator only while it records ground truth."""
    docs = render(sets=sets)
    policy = one(docs, "NetworkPolicy", "-pg-clients")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"cnpg.io/cluster": one(docs, "Cluster")["metadata"]["name"]}
    client_rule = next(r for r in policy["ingress"] if r["ports"] == [{"port": 5432, "protocol": "TCP"}])
    admitted = {c for c, labels in pod_labels(docs).items() if selects(client_rule["from"][0]["podSelector"], labels)}
    assert admitted == {"detector", "grafana", "helm-test"} | optional


def test_kafka_listener_admits_only_its_clients():
    """Strimzi's listener peers match the generator's, detector's and relay's pods (and helm tests), nothing else."""
    docs = render(sets={"notify.enabled": "true", "notify.secretName": "hooks"})
    peers = one(docs, "Kafka")["spec"]["kafka"]["listeners"][0]["networkPolicyPeers"]
    labels = pod_labels(docs)
    admitted = {c for c, found in labels.items() if any(selects(p["podSelector"], found) for p in peers)}
    assert admitted == {"generator", "detector", "relay", "notify", "helm-test"}


def test_operator_pins_match_the_schemas_we_validate_against():
    """k8s/operators.sh installs the operator releases whose CRD schemas the chart is checked with."""
    script = (ROOT / "k8s" / "versions.sh").read_text()
    pins = dict(re.findall(r"^([A-Z_]+_VERSION)=(\S+)", script, re.M))
    refs = {e["upstream_repo"].split("/")[-1]: e["upstream_ref"] for e in
            json.loads((CRD_SCHEMAS / "sources.json").read_text())}
    assert pins["STRIMZI_VERSION"] == refs["strimzi-kafka-operator"]
    assert "v" + pins["SPARK_OPERATOR_VERSION"] == refs["spark-operator"]
    assert "v" + pins["GRAFANA_OPERATOR_VERSION"] == refs["grafana-operator"]  # OCI chart tags have no v
    assert pins["CNPG_CHART_VERSION"] == "0.29.0" and "v" + pins["CNPG_VERSION"] == refs["cloudnative-pg"]


@pytest.mark.parametrize("name", sorted(VALUES_FILES))
def test_pods_run_as_non_root(name):
    """Every pod the chart defines runs as a non-root user with privilege escalation off; the app's Deployments'
    containers (generator, relay, notify) also have a read-only root filesystem and no capabilities. (Spark's pods, the
    driver Deployment's included, write their work folders in the image, as Spark's own image expects.)"""
    docs = render_named(name)
    for doc in docs:
        for pod in pod_specs(doc):
            assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                assert container["securityContext"]["allowPrivilegeEscalation"] is False, container["name"]
    deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["template"]["spec"]
                   for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) - {"detector", "notify"} == {"generator", "relay"}
    deployments.pop("detector", None)
    for component, pod in deployments.items():
        assert pod["securityContext"]["runAsUser"] > 0, component
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, (component, container["name"])
            assert context["capabilities"]["drop"] == ["ALL"], (component, container["name"])


@pytest.mark.parametrize("name", sorted(VALUES_FILES))
def test_a_single_kafka_node_keeps_its_topics_when_its_pod_is_replaced(name):
    """One node on ephemeral storage loses every topic and the detector's place in them when its pod goes (a
    rolling update, a deleted pod: seen on k3s's Strimzi, which warns of it). One node needs a volume."""
    docs = render_named(name)
    pools = [d for d in docs if d["kind"] == "KafkaNodePool"]
    for pool in pools:
        if pool["spec"]["replicas"] == 1:
            assert pool["spec"]["storage"]["type"] != "ephemeral", name


def test_topics_carry_no_finalizer_that_could_outlive_their_operator():
    """`helm uninstall` deletes the KafkaTopics and the entity operator together; a finalizer left by a topic
    operator already gone kept the topics, and so the namespace, forever (seen on k3s)."""
    kafka = one(render_named("default"), "Kafka")["spec"]["entityOperator"]
    env = {e["name"]: e["value"] for e in kafka["template"]["topicOperatorContainer"]["env"]}
    assert env["STRIMZI_USE_FINALIZERS"] == "false"
