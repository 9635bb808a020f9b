"""Names: every name the chart or an operator derives from a release fits its limit, and releases don't collide."""

from __future__ import annotations

import json

import pytest

from tests.charts.rendering import CHART, render

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
CNPG_SERIAL = 9999  # CNPG numbers each new instance one higher than the last, so serials outgrow `instances`
SPARK_EXEC_ID = 2147483647  # Spark reserves room for any Int executor id in executor pod names
DNS_LABEL, CERT_CN, CNPG_CLUSTER, DNS_SUBDOMAIN = 63, 64, 50, 253

# The names each operator derives from a custom resource's name ({} below), with the limit each must keep.
# 63: Services and hostnames are DNS labels, and these names are also label values; 64: the longest certificate
# common name OpenSSL issues (Strimzi signs its entity operator's certificate for `<kafka>-entity-topic-operator`);
# 50: CloudNativePG's admission check on cluster names. Left out, because their makers shorten them to fit: pods a
# Deployment or Job names (`<owner>-<hash>-<5>`; the API server cuts a generated name's base to 58 characters) and
# the Spark driver's Service (`<app>-<16 hex>-driver-svc`; Spark falls back to `spark-<16 hex>-driver-svc`).
DERIVED = {
    "Kafka": [("{}", DNS_LABEL), ("{}-kafka", DNS_LABEL), ("{}-kafka-bootstrap", DNS_LABEL),
              ("{}-kafka-brokers", DNS_LABEL), ("{}-entity-operator", DNS_LABEL),
              ("{}-entity-topic-operator", CERT_CN)],
    "Cluster": [("{}", CNPG_CLUSTER), ("{}-rw", DNS_LABEL), ("{}-ro", DNS_LABEL), ("{}-r", DNS_LABEL),
                ("{}-app", DNS_SUBDOMAIN), ("{}-superuser", DNS_SUBDOMAIN),
                (f"{{}}-{CNPG_SERIAL}", DNS_LABEL), (f"{{}}-{CNPG_SERIAL}-initdb", DNS_LABEL)],
    "SparkApplication": [("{}", DNS_LABEL), ("{}-driver", DNS_LABEL), ("{}-ui-svc", DNS_LABEL),
                         (f"{{}}-{'f' * 16}-exec-{SPARK_EXEC_ID}", DNS_SUBDOMAIN)],
    "Grafana": [("{}", DNS_LABEL), ("{}-deployment", DNS_LABEL), ("{}-service", DNS_LABEL)],
    "Pod": [("{}", DNS_LABEL)],
    "Service": [("{}", DNS_LABEL)],
}


def largest(component: str, key: str) -> int | None:
    """The schema's cap on a count (None when it has none, which makes every name budget unbounded)."""
    return SCHEMA["properties"][component]["properties"][key].get("maximum")


KAFKA_MAX = largest("kafka", "replicas")


def derived_names(docs) -> list[tuple[str, int]]:
    """(name, limit) for every object the chart renders and every object an operator makes from one."""
    names = []
    for doc in docs:
        name = doc["metadata"]["name"]
        names.append((name, DNS_SUBDOMAIN))
        names += [(pattern.format(name), limit) for pattern, limit in DERIVED.get(doc["kind"], [])]
        if doc["kind"] == "KafkaNodePool":  # Strimzi's broker pods: <kafka>-<pool>-<node id>
            kafka = doc["metadata"]["labels"]["strimzi.io/cluster"]
            names += [(name, DNS_LABEL), (f"{kafka}-{name}", DNS_LABEL), (f"{kafka}-{name}-{KAFKA_MAX}", DNS_LABEL)]
        for labels in (doc["metadata"].get("labels", {}), doc.get("spec", {}).get("template", {}).get(
                "metadata", {}).get("labels", {})):
            names += [(str(value), DNS_LABEL) for value in labels.values()]
    return names


@pytest.mark.parametrize("runner", ["sparkApplication", "driverDeployment"])
@pytest.mark.parametrize("release", ["payments-fraud-stage", "r" * 53], ids=["20-characters", "helm-maximum-53"])
def test_every_derived_name_fits_its_limit(release, runner):
    """For a 20-character and a 53-character release at the largest replica counts, no name outgrows its limit."""
    caps = {"kafka.replicas": KAFKA_MAX, "postgres.instances": largest("postgres", "instances")}
    assert None not in caps.values(), f"values.schema.json must cap {caps}"
    sets = {key: str(cap) for key, cap in caps.items()} | {"detector.runner": runner}
    names = derived_names(render(sets=sets, release=release))
    assert len(names) > 40
    too_long = [f"{name} ({len(name)} > {limit})" for name, limit in names if len(name) > limit]
    assert too_long == []


def test_two_releases_in_one_namespace_share_no_object():
    """Two releases side by side render no two objects of the same kind and name."""
    first = {(d["kind"], d["metadata"]["name"]) for d in render(release="fraud")}
    second = {(d["kind"], d["metadata"]["name"]) for d in render(release="fraud2")}
    assert first & second == set()
