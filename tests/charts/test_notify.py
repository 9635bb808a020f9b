"""The notifier's Deployment: its destinations from a Secret, its settings, and its NetworkPolicy."""

from __future__ import annotations

import pytest

from fraud_detection.settings import load_settings
from tests.charts.rendering import RenderError, env_values, one, render, selects

ENABLED = {"notify.enabled": "true", "notify.secretName": "hooks"}


def notifier(sets: dict[str, str] | None = None):
    docs = render(sets={**ENABLED, **(sets or {})})
    deployment = one(docs, "Deployment", "-notify")
    return docs, deployment, deployment["spec"]["template"]["spec"]["containers"][0]


def test_off_by_default_and_refused_without_a_destination_or_the_relay():
    """No notifier unless asked; asked without a destination, or without the relay that feeds it, helm says why."""
    assert not [d for d in render() if d["metadata"]["name"].endswith("-notify")]
    with pytest.raises(RenderError, match="needs a destination"):
        render(sets={"notify.enabled": "true"})
    with pytest.raises(RenderError, match="needs relay.enabled"):
        render(sets={**ENABLED, "relay.enabled": "false"})


def test_destinations_come_from_optional_secret_keys_and_the_settings_load(monkeypatch):
    """The webhook URL and signing secret come from the Secret (each key optional), never from values; with them
    (and SNS from values) the notifier's environment loads as valid settings."""
    _docs, deployment, container = notifier({"notify.sns.topicArn": "arn:aws:sns:eu-west-1:123456789012:fraud",
                                             "notify.rules": "{velocity}", "notify.minCount": "7"})
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
            if e["name"].startswith("FRAUD_NOTIFY__") and "valueFrom" in e}
    assert set(refs) == {"FRAUD_NOTIFY__SLACK_WEBHOOK_URL", "FRAUD_NOTIFY__WEBHOOK_URL", "FRAUD_NOTIFY__WEBHOOK_SECRET"}
    assert all(r["name"] == "hooks" and r["optional"] is True for r in refs.values())
    stand_ins = {"webhookUrl": "https://hooks.example/fraud", "webhookSecret": "s" * 32,
                 "slackWebhookUrl": "https://hooks.slack.example/T/B/x", "uri": "postgresql://u:p@db/fraud",
                     "password": "a-scram-password"}
    for name, value in env_values(container, lambda _secret, key: stand_ins[key]).items():
        monkeypatch.setenv(name, value)
    notify = load_settings().notify
    assert notify.webhook_url.get_secret_value() == "https://hooks.example/fraud"
    assert (notify.sns_topic_arn, notify.rules, notify.min_count) == ("arn:aws:sns:eu-west-1:123456789012:fraud",
                                                                      "velocity", 7)
    assert container["command"] == ["fraud-detection", "notify"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_its_network_policy_allows_dns_kafka_postgres_and_the_destinations_port_only():
    """Egress: DNS, the Strimzi brokers, the CNPG instances and destinationCidrs on destinationPorts; no ingress."""
    docs, deployment, _container = notifier({"notify.destinationCidrs": "{192.0.2.0/24}",
                                             "notify.destinationPorts": "{8443}"})
    policy = one(docs, "NetworkPolicy", "-notify")["spec"]
    assert selects(policy["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert policy["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in policy
    to = [(rule.get("to"), [p["port"] for p in rule["ports"]]) for rule in policy["egress"]]
    assert to[0] == (None, [53, 53])
    assert [next(iter(peer["to"][0]["podSelector"]["matchLabels"])) for peer in policy["egress"][1:3]] == [
        "strimzi.io/cluster", "cnpg.io/cluster"]
    assert to[3] == ([{"ipBlock": {"cidr": "192.0.2.0/24"}}], [8443])
