#!/usr/bin/env bash
# Install the cluster prerequisites, each its own pinned Helm release: Strimzi, the Spark Operator,
# CloudNativePG, the Grafana Operator and (with --ingress, for kind) Traefik. Idempotent: safe to re-run.
# Used by `make operators` and by skaffold before it deploys the app. The cluster is the kube context named by
# KUBE_CONTEXT, else the one skaffold deploys to (SKAFFOLD_KUBE_CONTEXT, set for its hooks), else the current one.
set -euo pipefail

# Chart versions as their registries publish them: plain SemVer, no leading v (the OCI tags included).
STRIMZI_VERSION=1.2.0          # kafka.strimzi.io/v1, KRaft only
SPARK_OPERATOR_VERSION=2.5.2   # sparkoperator.k8s.io/v1beta2, Spark 4.0.4
CNPG_CHART_VERSION=0.29.0      # CloudNativePG 1.30.x
GRAFANA_OPERATOR_VERSION=5.24.0  # git tag v5.24.0; the OCI chart tags dropped the v in December 2025
TRAEFIK_CHART_VERSION=37.0.0

HELM=${HELM:-helm}
NAMESPACE=${NAMESPACE:-fraud-detection}
KUBE_CONTEXT=${KUBE_CONTEXT:-${SKAFFOLD_KUBE_CONTEXT:-}}
here=$(cd "$(dirname "$0")" && pwd)

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

install() {  # release namespace chart version [helm args...]
  local release=$1 namespace=$2 chart=$3 version=$4
  shift 4
  # Already deployed at this version: skip, so skaffold's pre-deploy hook stays quick on every redeploy.
  if "$HELM" list ${helm_context[@]+"${helm_context[@]}"} -n "$namespace" --filter "^$release\$" --deployed \
      -o json 2>/dev/null | grep -q -- "-$version\""; then
    echo "==> $release $version: up to date"
    return
  fi
  echo "==> $release $version ($namespace)"
  "$HELM" upgrade --install ${helm_context[@]+"${helm_context[@]}"} "$release" "$chart" --version "$version" \
    --namespace "$namespace" --create-namespace --wait --timeout 10m "$@"
}

kubectl ${kubectl_context[@]+"${kubectl_context[@]}"} apply -f "$here/namespace.yaml"

install strimzi strimzi oci://quay.io/strimzi-helm/strimzi-kafka-operator "$STRIMZI_VERSION" \
  --set "watchNamespaces={$NAMESPACE}"
# No Spark ServiceAccount or Role from the operator chart: the app chart gives the detector its own. (With
# serviceAccount.create off and rbac.create on, the operator chart binds its Role to the `default` ServiceAccount.)
install spark-operator spark-operator spark-operator \
  "$SPARK_OPERATOR_VERSION" --repo https://kubeflow.github.io/spark-operator \
  --set "spark.jobNamespaces={$NAMESPACE}" --set spark.serviceAccount.create=false --set spark.rbac.create=false
install cnpg cnpg-system cloudnative-pg "$CNPG_CHART_VERSION" --repo https://cloudnative-pg.github.io/charts
install grafana-operator grafana-operator oci://ghcr.io/grafana/helm-charts/grafana-operator \
  "$GRAFANA_OPERATOR_VERSION"
if [[ $with_ingress == true ]]; then
  install traefik traefik traefik "$TRAEFIK_CHART_VERSION" --repo https://traefik.github.io/charts \
    --values "$here/traefik-values.yaml"
fi
