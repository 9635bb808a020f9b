"""End to end: the chart on the real operators detects attacks, scales, and serves Grafana (kind, for now)."""

from __future__ import annotations

import base64
import json
import time
import urllib.request

from tests.e2e.conftest import NAMESPACE, RELEASE, wait_until

GRAFANA_URL = "http://127.0.0.1:8080"  # kind-cluster.yaml maps the ingress controller's port 80 here
GRAFANA_HOST = "grafana.localtest.me"


def wait_for(what: str, probe, timeout: float):
    """Pipeline conditions change slowly: look every 10 s."""
    return wait_until(what, probe, timeout, every=10)


def processed_rate(cluster, seconds: int = 60) -> float:
    """Transactions per second the detector read over the last `seconds`, from its batch metrics."""
    since = f"now() - interval '{int(seconds)} seconds'"  # psql -c takes no parameters; an int is safe
    total = cluster.sql("SELECT coalesce(sum(input_rows), 0) FROM pipeline_metrics "  # noqa: S608
                        f"WHERE component = 'detector' AND recorded_at > {since}")
    return int(total) / seconds


def test_alerts_land_in_postgres(cluster):
    """Generator -> Strimzi Kafka -> Spark Operator detector -> CNPG: live alerts appear."""
    wait_for("alerts", lambda: int(cluster.sql("SELECT count(*) FROM alerts WHERE merged_into IS NULL")),
             timeout=900)
    detected = cluster.sql("SELECT count(*) FROM injected_attacks a WHERE a.kind = 'attack' AND EXISTS "
                           "(SELECT 1 FROM alerts l WHERE l.card_id = a.card_id)")
    assert int(detected) >= 1


def test_helm_tests_pass(cluster):
    """`helm test` checks PostgreSQL's schema and the Kafka topic from inside the cluster."""
    cluster.helm("test", RELEASE, "-n", NAMESPACE, "--timeout", "5m")


def test_scaling_the_generator_raises_the_processed_rate(cluster):
    """Three generator replicas feed the detector about three times the load of one."""
    wait_for("a steady processed rate", lambda: processed_rate(cluster) > 100, timeout=600)
    before = processed_rate(cluster)
    cluster.kubectl("scale", f"deploy/{RELEASE}-fraud-detection-generator", "--replicas=3")
    cluster.kubectl("rollout", "status", f"deploy/{RELEASE}-fraud-detection-generator", "--timeout=5m")
    time.sleep(90)
    after = wait_for("a higher processed rate", lambda: (rate := processed_rate(cluster)) > 2 * before and rate,
                     timeout=300)
    assert after > 2 * before


def test_grafana_answers_through_the_ingress(cluster):
    """Grafana is healthy behind the ingress, the admin password works and the PostgreSQL datasource is OK."""
    secret = json.loads(cluster.kubectl("get", "secret", f"{RELEASE}-fraud-detection-grafana-admin", "-o", "json"))
    user, password = (base64.b64decode(secret["data"][k]).decode() for k in
                      ("GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD"))
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def get(path: str, authorised: bool = True) -> dict:
        request = urllib.request.Request(GRAFANA_URL + path, headers={"Host": GRAFANA_HOST})  # noqa: S310 - fixed http URL
        if authorised:
            request.add_header("Authorization", auth)
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    health = wait_for("Grafana through the ingress", lambda: _try(lambda: get("/api/health", False)), timeout=600)
    assert health["database"] == "ok"
    datasource = wait_for("the datasource", lambda: _try(lambda: get("/api/datasources/uid/fraud-postgres/health")),
                          timeout=300)
    assert datasource["status"] == "OK"
    dashboards = get("/api/search?type=dash-db")
    assert any(d["uid"] == "fraud-detection" for d in dashboards)


def _try(call):
    try:
        return call()
    except OSError:
        return None
