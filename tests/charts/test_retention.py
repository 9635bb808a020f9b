"""The retention CronJob: `fraud-detection db prune` daily from the generator image, reaching only PostgreSQL."""

from __future__ import annotations

import pytest

from fraud_detection.cli import build_parser
from tests.charts.rendering import RenderError, one, pod_labels, render, render_named, selects


def test_retention_prunes_with_the_cli_from_the_generator_image_once_at_a_time():
    docs = render(sets={"retention.keepDays": "9", "retention.schedule": "5 4 * * *"})
    cron = one(docs, "CronJob", "-retention")["spec"]
    assert cron["schedule"] == "5 4 * * *" and cron["concurrencyPolicy"] == "Forbid"
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args([*container["command"][1:], *container["args"]])
    assert (args.command, args.db_command, args.keep_days) == ("db", "prune", 9)
    generator = one(docs, "Deployment", "-generator")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert {c["image"] for c in [*pod["initContainers"], container]} == {generator}
    assert [c["command"][1:] for c in pod["initContainers"]] == [["db", "migrate"]]  # prune_history exists
    assert "FRAUD_DATABASE_URL" in {e["name"] for e in container["env"]}


def test_retention_reaches_only_dns_and_postgres():
    docs = render_named("default")
    policy = one(docs, "NetworkPolicy", "-retention")["spec"]
    assert {c for c, labels in pod_labels(docs).items() if selects(policy["podSelector"], labels)} == {"retention"}
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"} and policy.get("ingress", []) == []
    dns, postgres = policy["egress"]
    assert "to" not in dns and {p["port"] for p in dns["ports"]} == {53}
    (peer,) = postgres["to"]
    assert peer["podSelector"]["matchLabels"] == {"cnpg.io/cluster": one(docs, "Cluster")["metadata"]["name"]}
    assert postgres["ports"] == [{"port": 5432, "protocol": "TCP"}]


def test_retention_can_be_left_out():
    docs = render(sets={"retention.enabled": "false"})
    assert [d["metadata"]["name"] for d in docs if d["metadata"]["name"].endswith("-retention")] == []


@pytest.mark.parametrize(("key", "value"), [("retention.keepDays", "0"), ("retention.schedule", "daily")])
def test_retention_values_are_checked(key, value):
    with pytest.raises(RenderError, match=key.split(".")[1]):
        render(sets={key: value})
