#!/usr/bin/env bash
# Install the cluster prerequisites, each its own pinned Helm release: Strimzi, the Spark Operator,
# CloudNativePG, the Grafana Operator and (with --ingress, for kind) Traefik. Idempotent: safe to re-run.
# Used by `make operators` and by skaffold before it deploys the app. The cluster is the kube context named by
# KUBE_CONTEXT, else the one skaffold deploys to (SKAFFOLD_KUBE_CONTEXT, set for its hooks), else the current one.
# Each chart comes from its registry; <NAME>_CHART names a local copy of the same chart at the same version
# instead, and <NAME>_VALUES a values file for it (NAME: STRIMZI, SPARK_OPERATOR, CNPG, GRAFANA_OPERATOR), as
# k8s/k3s/operators.sh does where the registries and the operators' images cannot be reached.
set -euo pipefail

HELM=${HELM:-helm}
NAMESPACE=${NAMESPACE:-fraud-detection}
KUBE_CONTEXT=${KUBE_CONTEXT:-${SKAFFOLD_KUBE_CONTEXT:-}}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.sh
source "$here/versions.sh"

helm_context=() kubectl_context=()
if [[ -n $KUBE_CONTEXT ]]; then
  helm_context=(--kube-context "$KUBE_CONTEXT")
  kubectl_context=(--context "$KUBE_CONTEXT")
fi

with_ingress=false
for arg in "$@"; do
  case $arg in
    --ingress) with_ingress=true ;;
    *) echo "usage: $0 [--ingress]" >&2; exit 2 ;;
  esac
done

install() {  # release namespace version name chart [helm args...]: NAME_CHART and NAME_VALUES replace the chart
  local release=$1 namespace=$2 version=$3 local_chart=${4}_CHART values=${4}_VALUES
  local chart=(--version "$version" "$5")
  shift 5
  if [[ -n ${!local_chart:-} ]]; then
    chart=("${!local_chart}")
    [[ ${1:-} == --repo ]] && shift 2  # the registry's, not needed for a local copy
  fi
  [[ -n ${!values:-} ]] && chart+=(--values "${!values}")
  # Already deployed at this version since the app's namespace was made: skip, so skaffold's pre-deploy hook
  # stays quick on every redeploy. (Strimzi and the Spark Operator put RoleBindings into the namespace they
  # watch: a namespace deleted and made again has lost them, and the release must be installed again.)
  local deployed
  deployed=$("$HELM" list ${helm_context[@]+"${helm_context[@]}"} -n "$namespace" --filter "^$release\$" --deployed \
    -o json 2>/dev/null | grep -o -- "\"updated\":\"[^\"]*\",\"status\":\"deployed\",\"chart\":\"[^\"]*-$version\"" \
    | sed -E 's/"updated":"([^."]*)[^" ]* ([+-][0-9]{4})[^"]*".*/\1 \2/') || :
  if [[ -n $deployed ]] && (($(date -d "$deployed" +%s) >= $(date -d "$namespace_created" +%s))); then
    echo "==> $release $version: up to date"
    return
  fi
  echo "==> $release $version ($namespace)"
  "$HELM" upgrade --install ${helm_context[@]+"${helm_context[@]}"} "$release" "${chart[@]}" \
    --namespace "$namespace" --create-namespace --wait --timeout 10m "$@"
}

kubectl ${kubectl_context[@]+"${kubectl_context[@]}"} apply -f "$here/namespace.yaml"
namespace_created=$(kubectl ${kubectl_context[@]+"${kubectl_context[@]}"} get namespace "$NAMESPACE" \
  -o jsonpath='{.metadata.creationTimestamp}')

install strimzi strimzi "$STRIMZI_VERSION" STRIMZI oci://quay.io/strimzi-helm/strimzi-kafka-operator \
  --set "watchNamespaces={$NAMESPACE}"
# No Spark ServiceAccount or Role from the operator chart: the app chart gives the detector its own. (With
# serviceAccount.create off and rbac.create on, the operator chart binds its Role to the `default` ServiceAccount.)
install spark-operator spark-operator "$SPARK_OPERATOR_VERSION" SPARK_OPERATOR spark-operator \
  --repo https://kubeflow.github.io/spark-operator \
  --set "spark.jobNamespaces={$NAMESPACE}" --set spark.serviceAccount.create=false --set spark.rbac.create=false
install cnpg cnpg-system "$CNPG_CHART_VERSION" CNPG cloudnative-pg --repo https://cloudnative-pg.github.io/charts
install grafana-operator grafana-operator "$GRAFANA_OPERATOR_VERSION" GRAFANA_OPERATOR \
  oci://ghcr.io/grafana/helm-charts/grafana-operator
if [[ $with_ingress == true ]]; then
  install traefik traefik "$TRAEFIK_CHART_VERSION" TRAEFIK traefik --repo https://traefik.github.io/charts \
    --values "$here/traefik-values.yaml"
fi
