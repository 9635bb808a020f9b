"""End to end: the chart runs the whole pipeline on a real cluster and detects exactly the injected attacks.

In operator mode (kind; k3s with FRAUD_E2E_MODE=operators) the chart runs on the operators (Strimzi, Spark Operator,
CloudNativePG, and on kind the Grafana Operator); in external mode (k3s) on the node's own Kafka and PostgreSQL as
external services, with the detector's driver as a Deployment. The tests set the generator's replicas they need, so
they pass in any order. The fault tests append how long the pipeline stalled to .local/e2e/recovery.txt.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from datetime import UTC, datetime

import pytest

from tests.charts.rendering import ROOT
from tests.e2e.conftest import NAMESPACE, PROBE, RELEASE, WEBHOOK_SECRET, install, wait_until

GRAFANA_URL = "http://127.0.0.1:8080"  # kind-cluster.yaml maps the ingress controller's port 80 here
GRAFANA_HOST = "grafana.localtest.me"
GENERATOR = f"deploy/{RELEASE}-fraud-detection-generator"
DRIVER_SELECTOR = "app.kubernetes.io/component=detector,spark-role=driver"
KAFKA_SELECTOR = f"strimzi.io/cluster={RELEASE}-fraud-detection-kafka,strimzi.io/broker-role=true"
PG_PRIMARY_SELECTOR = f"cnpg.io/cluster={RELEASE}-fraud-detection-pg,cnpg.io/instanceRole=primary"
RECOVERY_LOG = ROOT / ".local" / "e2e" / "recovery.txt"


def wait_for(what: str, probe, timeout: float):
    """Pipeline conditions change slowly: look every 5 s."""
    return wait_until(what, probe, timeout, every=5)


def processed_rate(cluster, seconds: int = 60) -> float:
    """Transactions per second the detector read over the last `seconds`, from its batch metrics."""
    since = f"now() - interval '{int(seconds)} seconds'"  # psql -c takes no parameters; an int is safe
    total = cluster.sql("SELECT coalesce(sum(input_rows), 0) FROM pipeline_metrics "  # noqa: S608
                        f"WHERE component = 'detector' AND recorded_at > {since}")
    return int(total) / seconds


def scale_generator(cluster, replicas: int) -> None:
    cluster.kubectl("scale", GENERATOR, f"--replicas={replicas}")
    cluster.kubectl("rollout", "status", GENERATOR, "--timeout=5m")
    if replicas == 0:  # stopped: each pod flushed its records and wrote its ground truth (SIGTERM)
        wait_for("the generator pods to go", lambda: not cluster.kubectl(
            "get", "pods", "-l", "app.kubernetes.io/component=generator", "-o", "name"), timeout=120)


def outcomes(cluster) -> dict[str, int]:
    """Ground truth against alerts: the views of migration 0004 (the dashboard's and `evaluate`'s definitions)."""
    row = cluster.sql("""
        SELECT count(*) FILTER (WHERE is_attack),
               count(*) FILTER (WHERE is_attack AND cardinality(alerted_by) = 0),
               count(*) FILTER (WHERE NOT is_attack AND cardinality(alerted_by) > 0),
               (SELECT count(*) FROM alert_outcomes WHERE NOT matches_attack),
               (SELECT count(*) FROM injected_attacks i WHERE i.kind = 'attack' AND (
                    SELECT count(*) FROM alerts a WHERE a.card_id = i.card_id AND a.merged_into IS NULL
                      AND a.first_event_time <= i.last_event_time AND a.last_event_time >= i.first_event_time) > 1)
        FROM episode_outcomes""")
    keys = ("attacks", "missed", "decoys_alerted", "false_alerts", "attacks_alerted_twice")
    return dict(zip(keys, map(int, row.split("|")), strict=True))


def assert_alerts_equal_ground_truth(cluster) -> dict[str, int]:
    """Stop the generator, let the detector catch up, then: every attack alerted once, nothing else alerted."""
    scale_generator(cluster, 0)
    found = wait_for("every injected attack to be alerted",
                     lambda: (o := outcomes(cluster))["missed"] == 0 and o["attacks"] > 0 and o, timeout=300)
    assert found == {**found, "decoys_alerted": 0, "false_alerts": 0, "attacks_alerted_twice": 0}
    return found


def attacks_so_far(cluster) -> int:
    return int(cluster.sql("SELECT count(*) FROM injected_attacks WHERE kind = 'attack'"))


def test_alerts_equal_the_generators_ground_truth(cluster):
    """Generator -> Kafka -> Spark on Kubernetes -> PostgreSQL: every injected attack alerted, no decoy."""
    before = attacks_so_far(cluster)
    scale_generator(cluster, 1)
    wait_for("live alerts", lambda: int(cluster.sql("SELECT count(*) FROM alerts WHERE merged_into IS NULL")),
             timeout=900)
    wait_for("two more attacks in the ground truth", lambda: attacks_so_far(cluster) >= before + 2, timeout=600)
    assert_alerts_equal_ground_truth(cluster)
    scale_generator(cluster, 1)


def test_helm_tests_pass(cluster):
    """`helm test` checks PostgreSQL's schema and both Kafka topics from inside the cluster."""
    cluster.helm("test", RELEASE, "-n", NAMESPACE, "--timeout", "5m")


def test_the_retention_job_prunes_from_inside_the_cluster(cluster):
    """A Job made from the retention CronJob runs `db prune` to completion past the NetworkPolicies: it deletes
    the bookkeeping older than its keepDays and keeps the recent batches."""
    cluster.sql("INSERT INTO pipeline_metrics (component, run_id, batch_id, recorded_at, input_rows)"
                " VALUES ('e2e-retention', 'old', 0, now() - interval '400 days', 0) RETURNING batch_id")
    wait_for("committed batches", lambda: int(cluster.sql(
        "SELECT count(*) FROM pipeline_metrics WHERE component = 'detector'")), timeout=600)
    job = f"{RELEASE}-prune-now"
    cluster.kubectl("delete", "job", job, "--ignore-not-found")
    cluster.kubectl("create", "job", job, f"--from=cronjob/{RELEASE}-fraud-detection-retention")
    try:
        cluster.kubectl("wait", f"job/{job}", "--for=condition=complete", "--timeout=300s", timeout=330)
    except AssertionError:
        raise AssertionError(cluster.kubectl("logs", f"job/{job}", "--all-containers", check=False)) from None
    assert cluster.sql("SELECT count(*) FROM pipeline_metrics WHERE component = 'e2e-retention'") == "0"
    assert int(cluster.sql("SELECT count(*) FROM pipeline_metrics WHERE component = 'detector'")) > 0
    cluster.kubectl("delete", "job", job)


def test_scaling_the_generator_raises_the_processed_rate(cluster):
    """Three generator replicas feed the detector about three times the load of one."""
    scale_generator(cluster, 1)
    wait_for("a steady processed rate", lambda: processed_rate(cluster) > 100, timeout=600)
    time.sleep(60)  # a full measuring window at one replica
    before = processed_rate(cluster)
    scale_generator(cluster, 3)
    time.sleep(70)  # a full measuring window at three replicas
    after = wait_for("a higher processed rate", lambda: (rate := processed_rate(cluster)) > 2.4 * before and rate,
                     timeout=300)
    assert 2.4 * before < after < 3.6 * before
    scale_generator(cluster, 1)


def answers(cluster, query: str) -> str | None:
    """A query's answer, or None while the database cannot be reached (its pod is being replaced)."""
    try:
        return cluster.sql(query)
    except AssertionError:
        return None


def pod_uids(cluster, selector: str) -> set[str]:
    """The uids of the ready pods the selector picks (a replacement may keep the name it replaces)."""
    return set(cluster.kubectl("get", "pods", "-l", selector, "-o", "jsonpath={range .items[?(@.status."
                               "containerStatuses[0].ready==true)]}{.metadata.uid} {end}").split())


def survives_deleting(cluster, what: str, selector: str) -> None:
    """Delete the pods `selector` picks mid-stream; their replacements come up, the detector commits batches
    again, and alerts still equal the ground truth. Appends the stall (deletion to the first batch committed
    after it) to RECOVERY_LOG."""
    scale_generator(cluster, 1)
    alerts = int(cluster.sql("SELECT count(*) FROM alerts"))
    wait_for("a new alert mid-stream", lambda: int(cluster.sql("SELECT count(*) FROM alerts")) > alerts, timeout=600)
    old = pod_uids(cluster, selector)
    assert old, f"no ready pod matches {selector}"
    deleted_at = cluster.sql("SELECT now()")
    started = time.monotonic()
    cluster.kubectl("delete", "pods", "-l", selector, "--wait=false")
    wait_for(f"a new {what} pod, ready", lambda: (pods := pod_uids(cluster, selector)) and not pods & old,
             timeout=600)
    # The queries below are built with deleted_at, which comes from now(), not from input.
    wait_for("a batch committed after the deletion", lambda: answers(cluster, (
        "SELECT count(*) FROM pipeline_metrics WHERE component = 'detector' "  # noqa: S608
        f"AND input_rows > 0 AND recorded_at > '{deleted_at}'")) not in (None, "0"), timeout=900)
    stalled = time.monotonic() - started
    wait_for(f"an alert after the {what} came back", lambda: answers(cluster, (
        f"SELECT count(*) FROM alerts WHERE detected_at > '{deleted_at}'")) not in (None, "0"),  # noqa: S608
        timeout=900)
    assert_alerts_equal_ground_truth(cluster)
    RECOVERY_LOG.parent.mkdir(parents=True, exist_ok=True)
    with RECOVERY_LOG.open("a") as log:
        log.write(f"{datetime.now(UTC):%Y-%m-%d %H:%M} {cluster.kind}/{cluster.mode}: {what} pod deleted, "
                  f"first batch after it committed in {stalled:.0f} s\n")
    scale_generator(cluster, 1)


def test_deleting_the_driver_pod_loses_and_duplicates_no_alert(cluster):
    """The driver's replacement (the Spark Operator's resubmission, or the driver Deployment's new pod) resumes from
    the checkpoint: alerts still equal the ground truth."""
    survives_deleting(cluster, "detector driver", DRIVER_SELECTOR)


def test_deleting_the_kafka_broker_pod_loses_and_duplicates_no_alert(cluster):
    """Strimzi replaces the broker on its volume; the generator and the detector reconnect and catch up."""
    if cluster.mode != "operators":
        pytest.skip("the broker is the node's own in external mode; tests/integration/test_faults.py restarts it")
    survives_deleting(cluster, "Kafka broker", KAFKA_SELECTOR)


def test_deleting_the_postgres_primary_pod_loses_and_duplicates_no_alert(cluster):
    """CloudNativePG brings the primary back; the detector's sink retries its batch until it commits."""
    if cluster.mode != "operators":
        pytest.skip("PostgreSQL is the node's own in external mode; tests/integration/test_faults.py stops it")
    survives_deleting(cluster, "PostgreSQL primary", PG_PRIMARY_SELECTOR)


def test_helm_upgrade_rolls_the_generator(cluster):
    """Changing a generator value in `helm upgrade` replaces every generator pod with one that has the value."""
    scale_generator(cluster, 1)
    rate = json.loads(cluster.helm("get", "values", RELEASE, "-n", NAMESPACE, "--all", "-o", "json"))[
        "generator"]["ratePerReplica"]
    new_rate = 150 if rate != 150 else 200
    old_pods = set(cluster.kubectl("get", "pods", "-l", "app.kubernetes.io/component=generator", "-o", "name").split())
    # --reset-then-reuse-values: this release's values on the chart's current defaults (plain --reuse-values would
    # drop values a newer chart added).
    cluster.helm("upgrade", RELEASE, "charts/fraud-detection", "-n", NAMESPACE, "--reset-then-reuse-values",
                 "--set", f"generator.ratePerReplica={new_rate}", "--wait", "--timeout", "10m")
    cluster.kubectl("rollout", "status", GENERATOR, "--timeout=5m")
    pods = wait_for("only new generator pods", lambda: (names := set(cluster.kubectl(
        "get", "pods", "-l", "app.kubernetes.io/component=generator", "-o", "name").split())) and not names & old_pods
        and names, timeout=300)
    for pod in pods:
        rate_env = "jsonpath={.spec.containers[0].env[?(@.name=='FRAUD_GENERATOR__RATE')].value}"
        assert cluster.kubectl("get", pod, "-o", rate_env) == str(new_rate)


def test_helm_uninstall_leaves_only_the_checkpoint_volume(e2e_cluster, images, services):
    """A second release installed then uninstalled leaves nothing labelled with it but its checkpoint PVC."""
    c = e2e_cluster.cluster
    release, namespace = "fraud-uninstall", "fraud-e2e-uninstall"
    if services is not None:  # its own topics, so it stays out of the main release's data
        for topic in ("uninstall-transactions", "uninstall-alerts"):
            services.kafka.create_topic(topic, 1)
    extra = ["--set", "generator.enabled=false", "--set", "notify.enabled=false",
             "--set", "kafka.topic.name=uninstall-transactions", "--set", "kafka.alertsTopic.name=uninstall-alerts"]
    if services is None:  # beside the main release (the operators watch only its namespace), in what CPU is left
        c.install_operators()
        namespace = NAMESPACE
        for key in ("kafka.resources.requests.cpu", "postgres.resources.requests.cpu",
                    "detector.driver.requestCores", "detector.executor.requestCores"):
            extra += ["--set", f"{key}=50m"]
    install(c, images, services, release, namespace, extra=tuple(extra))
    selector = f"app.kubernetes.io/instance={release}"
    kinds = "deploy,sts,job,pod,svc,cm,secret,sa,role,rolebinding,networkpolicy,pvc"
    assert "pod/" in c.kubectl("get", kinds, "-l", selector, "-o", "name", namespace=namespace)
    c.helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "5m")
    left = wait_for("only the checkpoint PVC", lambda: (names := c.kubectl(
        "get", kinds, "-l", selector, "-o", "name", namespace=namespace).split()) and all(
        n.startswith("persistentvolumeclaim/") for n in names) and names, timeout=300)
    assert left == [f"persistentvolumeclaim/{release}-fraud-detection-detector-checkpoints"]
    # What the operators made for it carries their own labels: its broker and database go with their resources.
    operands = f"strimzi.io/cluster={release}-fraud-detection-kafka", f"cnpg.io/cluster={release}-fraud-detection-pg"
    for selector in operands if services is None else ():
        wait_for(f"no pod or volume left by {selector}", lambda s=selector: not c.kubectl(
            "get", "pod,pvc", "-l", s, "-o", "name", namespace=namespace).split(), timeout=300)
    if namespace == NAMESPACE:
        c.kubectl("delete", *left, "--wait=false")
    else:
        c.kubectl("delete", "namespace", namespace, "--wait=false", namespace="default")


def test_every_alert_version_reaches_the_webhook_once_signed(cluster, services):
    """detector -> outbox -> relay -> alerts topic -> notify -> a webhook on the node: each published alert version
    arrives, signed with the shared secret, and none twice."""
    if services is None:
        pytest.skip("needs a webhook receiver the pods can reach: external mode (values-k3s.yaml) runs one on the "
                    "node's bridge; the notifier reads the alerts topic the same way in operator mode")
    scale_generator(cluster, 1)
    wait_for("published alerts", lambda: int(cluster.sql(
        "SELECT count(*) FROM alert_outbox WHERE published_at IS NOT NULL")) >= 3, timeout=900)

    def missing() -> set[tuple[str, int]]:
        published = {(a, int(v)) for a, v in (line.split("|") for line in cluster.sql(
            "SELECT alert_id, version FROM alert_outbox WHERE published_at IS NOT NULL").splitlines())}
        return published - services.webhook.versions()

    wait_for("every published version at the webhook", lambda: not missing(), timeout=300)
    requests = services.webhook.snapshot()
    keys = [r.key for r in requests]
    assert len(keys) == len(set(keys))
    assert all(r.signed_with(WEBHOOK_SECRET.encode(), tolerance_s=3600) for r in requests)


def test_a_pod_without_the_app_labels_is_refused(cluster, images):
    """The NetworkPolicies: once they apply to a new pod (the policy controller needs a few seconds), an unlabelled
    pod in the namespace can reach neither Kafka nor PostgreSQL (external mode: the node's), and a pod with the
    app's labels (a helm test's) reaches both."""
    values = json.loads(cluster.helm("get", "values", RELEASE, "-n", NAMESPACE, "--all", "-o", "json"))
    kafka = values["kafka"]["external"]["bootstrapServers"] or f"{RELEASE}-fraud-detection-kafka-kafka-bootstrap:9092"
    external_pg = values["postgres"]["external"]
    postgres = (f"{external_pg['host']}:{external_pg['port']}" if not values["postgres"]["enabled"]
                else f"{RELEASE}-fraud-detection-pg-rw:5432")
    pods = {"probe-unlabelled": "fraud-e2e=probe",
            "probe-labelled": f"app.kubernetes.io/name=fraud-detection,app.kubernetes.io/instance={RELEASE},"
                              "app.kubernetes.io/component=helm-test"}
    for name, labels in pods.items():
        cluster.kubectl("delete", "pod", name, "--ignore-not-found", "--wait")
        cluster.kubectl("run", name, f"--image={images['generator']}", "--image-pull-policy=Never",
                        "--restart=Never", f"--labels={labels}", "--command", "--", "sleep", "600")
    try:
        for name in pods:
            cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s")

        def reach(name: str, address: str) -> str:
            host, port = address.rsplit(":", 1)
            return cluster.kubectl("exec", name, "--", "python", "-c", PROBE, host, port, timeout=60).strip()

        for address in (kafka, postgres):
            wait_for(f"the unlabelled pod to be refused by {address}",
                     lambda a=address: reach("probe-unlabelled", a) in ("refused", "timeout"), timeout=120)
            assert reach("probe-labelled", address) == "open", address  # past the controller's sync now
    finally:
        cluster.kubectl("delete", "pod", *pods, "--wait=false")


def test_grafana_answers_through_the_ingress(cluster):
    """Grafana is healthy behind the ingress, the admin password works and the PostgreSQL datasource is OK."""
    if cluster.kind == "k3s":
        pytest.skip("Grafana's image cannot be had on k3s here (no registry; AGPL, not to be used): both k3s modes "
                    "leave Grafana out")
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
