"""k8s/operators.sh and the cluster add-ons: chart versions, the cluster it installs into, what it grants."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

from tests.charts.rendering import ROOT

SCRIPT = ROOT / "k8s" / "operators.sh"
VERSIONS = ROOT / "k8s" / "versions.sh"
CONTEXT = yaml.safe_load((ROOT / "skaffold.yaml").read_text())["deploy"]["kubeContext"]  # what skaffold hands hooks
SEMVER = r"\d+\.\d+\.\d+"
# The version form each pinned chart is published under. Helm repositories index plain SemVer; the OCI registries
# tag it: Strimzi as 1.2.0, and the Grafana Operator without the `v` of its git tags since 5.21 (December 2025).
PUBLISHED_FORM = {"STRIMZI_VERSION": SEMVER, "SPARK_OPERATOR_VERSION": SEMVER, "CNPG_CHART_VERSION": SEMVER,
                  "CNPG_VERSION": SEMVER, "GRAFANA_OPERATOR_VERSION": SEMVER, "TRAEFIK_CHART_VERSION": SEMVER}
STUB = """#!/usr/bin/env bash
{ printf '%s\\037' "$(basename "$0")" "$@"; printf '\\n'; } >> "$CALLS"
case "$(basename "$0") $*" in
  "helm list"*) printf '%s' "${HELM_LIST:-}" ;;
  "kubectl"*"get namespace"*) printf '%s' "${NAMESPACE_CREATED:-}" ;;
esac
"""


def test_operator_chart_versions_have_the_form_their_registries_publish():
    """Each pinned chart version is written as its repository or OCI registry publishes it (no leading v)."""
    pins = {key: value for key, value in re.findall(r"^([A-Z_]+_VERSION)=(\S+)", VERSIONS.read_text(), re.M)
            if key in PUBLISHED_FORM}
    assert set(pins) == set(PUBLISHED_FORM)
    wrong = {key: value for key, value in pins.items() if not re.fullmatch(PUBLISHED_FORM[key], value)}
    assert wrong == {}


def run_against_stubs(folder, *args: str, **env: str) -> list[list[str]]:
    """Every helm and kubectl command operators.sh runs, against stubs that record them."""
    for tool in ("helm", "kubectl"):
        (folder / tool).write_text(STUB)
        (folder / tool).chmod(0o755)
    log = folder / "calls"
    log.write_text("")
    env = {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}", "CALLS": str(log), **env}
    env.pop("HELM", None)
    result = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line.split("\x1f")[:-1] for line in log.read_text().splitlines()]


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> list[list[str]]:
    """Every helm and kubectl command `operators.sh --ingress` runs (against stubs) as skaffold's deploy hook."""
    return run_against_stubs(tmp_path_factory.mktemp("stubs"), "--ingress", SKAFFOLD_KUBE_CONTEXT=CONTEXT)


def test_a_local_copy_of_a_chart_and_its_values_replace_the_registrys(tmp_path):
    """<NAME>_CHART and <NAME>_VALUES (k8s/k3s/operators.sh) install the same release from a local chart, without
    the registry's --repo or --version, with the caller's own settings still applied after the values file."""
    calls = run_against_stubs(tmp_path, SPARK_OPERATOR_CHART="/charts/spark-operator",
                              SPARK_OPERATOR_VALUES="/charts/images.yaml")
    install = next(call for call in calls if "upgrade" in call and "spark-operator" in call)
    assert "/charts/spark-operator" in install and "--repo" not in install and "--version" not in install
    assert install.index("--values") < install.index("--set")
    assert install[install.index("--values") + 1] == "/charts/images.yaml"
    strimzi = next(call for call in calls if "upgrade" in call and "strimzi" in call)
    assert "oci://quay.io/strimzi-helm/strimzi-kafka-operator" in strimzi and "--version" in strimzi


def test_operators_install_into_the_cluster_skaffold_deploys_to(calls):
    """Run as skaffold's before-deploy hook, every helm and kubectl call targets skaffold's kube context."""
    flag = {"helm": "--kube-context", "kubectl": "--context"}

    def targeted(call: list[str]) -> bool:
        option = flag[call[0]]
        return f"{option}={CONTEXT}" in call or [option, CONTEXT] in [call[i:i + 2] for i in range(len(call))]

    assert len(calls) >= 10
    assert [" ".join(call) for call in calls if not targeted(call)] == []


def helm_sets(call: list[str]) -> dict[str, str]:
    return dict(call[i + 1].split("=", 1) for i, arg in enumerate(call) if arg == "--set")


def test_spark_operator_grants_nothing_to_the_default_service_account(calls):
    """The Spark Operator's own Role is off or bound to its own ServiceAccount, never the namespace's `default`."""
    install = next(call for call in calls if "upgrade" in call and "spark-operator" in call)
    sets = helm_sets(install)
    account = sets.get("spark.serviceAccount.name") or (
        "default" if sets.get("spark.serviceAccount.create") == "false" else "spark-operator-spark")
    assert sets.get("spark.rbac.create") == "false" or account != "default", sets


def test_traefik_can_replace_its_pod_on_the_one_ingress_node():
    """With hostPorts on a single node, Traefik's update removes the old pod before it starts the new one."""
    values = yaml.safe_load((ROOT / "k8s" / "traefik-values.yaml").read_text())
    assert any("hostPort" in port for port in values["ports"].values())
    # The chart's default is a rolling update with maxUnavailable 0 and maxSurge 1: the new pod waits for ports
    # the old one holds, and `helm upgrade --wait` times out.
    strategy = values.get("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
    assert strategy["type"] == "Recreate" or (
        strategy["rollingUpdate"]["maxSurge"] == 0 and strategy["rollingUpdate"]["maxUnavailable"] >= 1)


def _deployed(updated: str) -> str:
    """`helm list -o json` of one deployed release of each pinned chart, all last updated at ``updated``."""
    pins = dict(re.findall(r"^([A-Z_]+_VERSION)=(\S+)", VERSIONS.read_text(), re.M))
    charts = [f"chart-{pins[key]}" for key in ("STRIMZI_VERSION", "SPARK_OPERATOR_VERSION", "CNPG_CHART_VERSION",
                                               "GRAFANA_OPERATOR_VERSION")]
    return json.dumps([{"name": "r", "updated": f"{updated}.123456 +0000 UTC", "status": "deployed", "chart": c}
                       for c in charts], separators=(",", ":"))


@pytest.mark.parametrize(("updated", "installs"), [("2026-12-07 22:00:00", 4), ("2026-12-07 23:30:00", 0)])
def test_releases_deployed_before_the_namespace_was_made_are_installed_again(tmp_path, updated, installs):
    """Strimzi's and the Spark Operator's charts put RoleBindings into the namespace they watch: after the
    namespace is deleted and made again they are gone, and a release deployed before it must be installed again
    (seen on k3s: neither operator could see the app's resources). One deployed since is left alone."""
    calls = run_against_stubs(tmp_path, HELM_LIST=_deployed(updated), NAMESPACE_CREATED="2026-12-07T23:00:00Z")
    assert len([call for call in calls if call[:2] == ["helm", "upgrade"]]) == installs
