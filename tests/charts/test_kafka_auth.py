"""The chart's Kafka: each client of the app logs in as its own SCRAM user and may do only what it does."""

from __future__ import annotations

from fraud_detection.detector.job import KAFKA_GROUP_PREFIX
from fraud_detection.notifications.notifier import GROUP_PREFIX as NOTIFY_GROUP_PREFIX
from tests.charts.rendering import containers, one, render

WITH_NOTIFY = {"notify.enabled": "true", "notify.secretName": "hooks"}
# Every container that talks to Kafka, as (kind of owner, container).
KAFKA_CLIENTS = {("Deployment", "generator"), ("Deployment", "relay"), ("Deployment", "notify"),
                 ("SparkApplication", "spark-kubernetes-driver"), ("Pod", "check"), ("Pod", "check-alerts-topic")}


def logins(docs) -> dict[tuple[str, str], str]:
    """(kind of owner, container) -> the KafkaUser it logs in as, checking the password is that user's."""
    found = {}
    for c in containers(docs):
        if "FRAUD_KAFKA__SASL_USERNAME" not in c.env:
            continue
        user = c.env["FRAUD_KAFKA__SASL_USERNAME"]["value"]
        assert c.env["FRAUD_KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": user, "key": "password"}
        assert c.env["FRAUD_KAFKA__SECURITY_PROTOCOL"]["value"] == "SASL_PLAINTEXT"
        assert c.env["FRAUD_KAFKA__SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
        found[(c.owner.split("/")[0], c.name)] = user
    return found


def grants(user: dict) -> set[tuple[str, str, str, str]]:
    """(resource type, name, pattern type, operation) for each operation a KafkaUser's ACLs allow."""
    return {(acl["resource"]["type"], acl["resource"]["name"], acl["resource"]["patternType"], operation)
            for acl in user["spec"]["authorization"]["acls"] for operation in acl["operations"]}


def test_each_kafka_client_logs_in_as_its_own_user():
    """The listener asks for SCRAM-SHA-512 and Kafka authorizes by ACL; every client container logs in as a
    KafkaUser of this Kafka cluster (its password from the Secret Strimzi makes for it), one user per component."""
    docs = render(sets=WITH_NOTIFY)
    kafka = one(docs, "Kafka")
    listener = kafka["spec"]["kafka"]["listeners"][0]
    assert listener["authentication"] == {"type": "scram-sha-512"}
    assert kafka["spec"]["kafka"]["authorization"] == {"type": "simple"}
    assert "userOperator" in kafka["spec"]["entityOperator"]
    users = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaUser"}
    for user in users.values():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
    found = logins(docs)
    assert set(found) == KAFKA_CLIENTS
    assert set(found.values()) == set(users)
    by_component = {key[1]: user for key, user in found.items()}
    assert by_component["check"] == by_component["check-alerts-topic"]  # the two helm-test checks
    assert len(set(found.values())) == len(KAFKA_CLIENTS) - 1


def test_each_user_may_do_only_what_its_component_does():
    """The generator writes transactions, the detector reads them in groups named by its own prefix, the relay
    writes alerts, the notifier reads them in its groups and the helm test only looks the topics up. The group
    prefixes are the ones the code uses, or the broker would refuse the consumers."""
    docs = render(sets=WITH_NOTIFY)
    transactions = one(docs, "KafkaTopic", "-transactions")["spec"]["topicName"]
    alerts = one(docs, "KafkaTopic", "-alerts")["spec"]["topicName"]
    users = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaUser"}
    allowed = {container: grants(users[user]) for (_, container), user in logins(docs).items()}

    def topic(name, *operations):
        return {("topic", name, "literal", op) for op in operations}

    def group(prefix):
        return {("group", prefix, "prefix", "Read")}

    assert allowed["generator"] == topic(transactions, "Write", "Describe")
    assert allowed["spark-kubernetes-driver"] == topic(transactions, "Read", "Describe") | group(KAFKA_GROUP_PREFIX)
    assert allowed["relay"] == topic(alerts, "Write", "Describe")
    assert allowed["notify"] == topic(alerts, "Read", "Describe") | group(NOTIFY_GROUP_PREFIX)
    assert allowed["check"] == topic(transactions, "Describe") | topic(alerts, "Describe")


def test_no_notify_user_without_the_notifier():
    users = {d["metadata"]["name"] for d in render() if d["kind"] == "KafkaUser"}
    assert len(users) == 4 and not any(name.endswith("-notify") for name in users)


def test_authentication_none_leaves_an_open_listener_and_no_users():
    """kafka.authentication=none: no KafkaUsers, no user operator, no ACLs and PLAINTEXT clients."""
    docs = render(sets={**WITH_NOTIFY, "kafka.authentication": "none"})
    kafka = one(docs, "Kafka")["spec"]
    assert "authentication" not in kafka["kafka"]["listeners"][0] and "authorization" not in kafka["kafka"]
    assert "userOperator" not in kafka["entityOperator"]
    assert not [d for d in docs if d["kind"] == "KafkaUser"]
    for c in containers(docs):
        assert not {"FRAUD_KAFKA__SASL_USERNAME", "FRAUD_KAFKA__SECURITY_PROTOCOL"} & set(c.env), c.name
