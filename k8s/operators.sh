#!/usr/bin/env bash
# Install the cluster prerequisites, each its own pinned Helm release: Strimzi, the Spark Operator,
# CloudNativePG, the Grafana Operator and (with --ingress, for kind) Traefik. Idempotent: safe to re-run.
# Used by `make operators` and by skaffold before it deploys the app.
set -euo pipefail

STRIMZI_VERSION=1.2.0          # kafka.strimzi.io/v1, KRaft only
SPARK_OPERATOR_VERSION=2.5.2   # sparkoperator.k8s.io/v1beta2, Spark 4.0.4
CNPG_CHART_VERSION=0.29.0      # CloudNativePG 1.30.x
GRAFANA_OPERATOR_VERSION=v5.24.0
TRAEFIK_CHART_VERSION=37.0.0

HELM=${HELM:-helm}
NAMESPACE=${NAMESPACE:-fraud-detection}
here=$(cd "$(dirname "$0")" && pwd)

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
  if "$HELM" list -n "$namespace" --filter "^$release\$" --deployed -o json 2>/dev/null | grep -q -- "-${version#v}\""; then
    echo "==> $release $version: up to date"
    return
  fi
  echo "==> $release $version ($namespace)"
  "$HELM" upgrade --install "$release" "$chart" --version "$version" \
    --namespace "$namespace" --create-namespace --wait --timeout 10m "$@"
}

kubectl apply -f "$here/namespace.yaml"

install strimzi strimzi oci://quay.io/strimzi-helm/strimzi-kafka-operator "$STRIMZI_VERSION" \
  --set "watchNamespaces={$NAMESPACE}"
install spark-operator spark-operator spark-operator \
  "$SPARK_OPERATOR_VERSION" --repo https://kubeflow.github.io/spark-operator \
  --set "spark.jobNamespaces={$NAMESPACE}" --set spark.serviceAccount.create=false
install cnpg cnpg-system cloudnative-pg "$CNPG_CHART_VERSION" --repo https://cloudnative-pg.github.io/charts
install grafana-operator grafana-operator oci://ghcr.io/grafana/helm-charts/grafana-operator \
  "$GRAFANA_OPERATOR_VERSION"
if [[ $with_ingress == true ]]; then
  install traefik traefik traefik "$TRAEFIK_CHART_VERSION" --repo https://traefik.github.io/charts \
    --values "$here/traefik-values.yaml"
fi
