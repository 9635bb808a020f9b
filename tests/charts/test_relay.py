"""The alerts relay: one replica replaced by Recreate, the CLI's `relay`, and a NetworkPolicy to Kafka, PostgreSQL
and DNS only."""

from __future__ import annotations

import pytest

from fraud_detection.cli import build_parser
from tests.charts.rendering import VALUES_FILES, RenderError, one, pod_labels, render, render_named, selects

# The labels Strimzi puts on broker pods (and selects them by in the bootstrap Service): KafkaCluster's broker
# selector in strimzi-kafka-operator. Our KafkaNodePool has the broker role.
STRIMZI_BROKER_LABELS = {"strimzi.io/kind": "Kafka", "strimzi.io/broker-role": "true"}
EXTERNAL = {
    "kafka": {"kafka.enabled": "false", "kafka.external.bootstrapServers": "broker.example:9096"},
    "postgres": {"postgres.enabled": "false", "postgres.external.secretName": "db",
                 "postgres.external.readerSecretName": "db-reader", "postgres.external.host": "db.example"},
}


def relay_policy(docs) -> dict:
    return one(docs, "NetworkPolicy", "-relay")["spec"]


@pytest.mark.parametrize("name", sorted(VALUES_FILES))
def test_relay_runs_one_replica_replaced_by_recreate(name):
    """Exactly one relay pod at any time: replicas 1 and Recreate (a rolling update would run two writers)."""
    spec = one(render_named(name), "Deployment", "-relay")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert selects(spec["selector"], spec["template"]["metadata"]["labels"])
    assert spec["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "relay"


def test_relay_replicas_cannot_be_set():
    """values.schema.json refuses relay.replicas, so no values file can scale the single writer."""
    with pytest.raises(RenderError, match="replicas"):
        render(sets={"relay.replicas": "2"})


def test_relay_runs_the_cli_relay_in_the_generator_image():
    """The container runs `fraud-detection relay` from the generator image (the package without PySpark)."""
    docs = render_named("default")
    relay = one(docs, "Deployment", "-relay")["spec"]["template"]["spec"]
    generator = one(docs, "Deployment", "-generator")["spec"]["template"]["spec"]
    (container,) = relay["containers"]
    assert container["command"][0] == "fraud-detection"
    assert build_parser().parse_args([*container["command"][1:], *container.get("args", [])]).command == "relay"
    assert {c["image"] for c in [*relay["initContainers"], container]} == {generator["containers"][0]["image"]}
    assert [c["command"][1:] for c in relay["initContainers"]] == [["db", "migrate"]]  # the outbox table exists


def test_relay_can_be_left_out():
    """relay.enabled false renders no relay Deployment or policy."""
    docs = render(sets={"relay.enabled": "false"})
    assert [d["metadata"]["name"] for d in docs if d["metadata"]["name"].endswith("-relay")] == []


def test_relay_policy_selects_the_relay_pods_only():
    """The relay's NetworkPolicy applies to the relay's pods and to no other component's."""
    docs = render_named("default")
    selector = relay_policy(docs)["podSelector"]
    assert {c for c, labels in pod_labels(docs).items() if selects(selector, labels)} == {"relay"}


def test_relay_egress_only_to_kafka_postgres_and_dns():
    """Nothing may connect to the relay; it may reach DNS on 53, our Kafka brokers on the listener port the
    clients use, and our PostgreSQL instances on 5432, nothing else."""
    docs = render_named("default")
    policy = relay_policy(docs)
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"} and policy.get("ingress", []) == []
    dns, kafka, postgres = policy["egress"]
    assert "to" not in dns and {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}

    cluster = one(docs, "Kafka")
    broker = STRIMZI_BROKER_LABELS | {"strimzi.io/cluster": cluster["metadata"]["name"]}
    (peer,) = kafka["to"]
    assert selects(peer["podSelector"], broker) and "namespaceSelector" not in peer
    listener_port = cluster["spec"]["kafka"]["listeners"][0]["port"]
    env = one(docs, "Deployment", "-relay")["spec"]["template"]["spec"]["containers"][0]["env"]
    bootstrap = next(e["value"] for e in env if e["name"] == "FRAUD_KAFKA__BOOTSTRAP_SERVERS")
    assert kafka["ports"] == [{"port": listener_port, "protocol": "TCP"}]
    assert bootstrap.endswith(f":{listener_port}")

    (peer,) = postgres["to"]
    assert peer["podSelector"] == {"matchLabels": {"cnpg.io/cluster": one(docs, "Cluster")["metadata"]["name"]}}
    assert postgres["ports"] == [{"port": 5432, "protocol": "TCP"}]


@pytest.mark.parametrize("external", [["kafka"], ["postgres"], ["kafka", "postgres"]], ids="+".join)
def test_no_relay_egress_policy_with_an_external_service(external):
    """With an external Kafka or PostgreSQL (no pod to select) no relay policy cuts the relay off from it; the
    relay itself still runs."""
    sets = {key: value for service in external for key, value in EXTERNAL[service].items()}
    docs = render(sets=sets)
    assert [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-relay")] == []
    one(docs, "Deployment", "-relay")
