#!/usr/bin/env bash
# The operators of the chart's default mode on the k3s cluster, where their images cannot be pulled: each is built
# from the git tag of the release k8s/versions.sh pins (k8s/k3s/operators/<name>.sh: Strimzi, the Spark Operator,
# CloudNativePG, the Grafana Operator; and skaffold), imported into the cluster's containerd, and installed with its
# own Helm chart from that same tag through k8s/operators.sh, the script a user runs against any cluster.
#   k8s/k3s/operators.sh build     build every image and chart (first time ~1 h on 2 cores; cached in .cache/k3s)
#   k8s/k3s/operators.sh install   build, import the images into the running cluster, install the operators
# Sources: `git clone --branch TAG` from GitHub, or FRAUD_OPERATOR_SOURCES, a folder of local clones or mirrors
# (<owner>+<repo>). The images are local stand-ins, never pushed: Debian-based, built from upstream's sources.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=../versions.sh
source "$HERE/../versions.sh"
for builder in "$HERE"/operators/*.sh; do
  # shellcheck source=/dev/null
  source "$builder"
done

VALUES=$CACHE/operators/values

# Named apart from commands the builders run: a function `install` once shadowed install(1) in strimzi.sh.
build_operators() {
  need_root
  local started
  started=$(date +%s)
  command -v podman >/dev/null || die "podman is missing: run bash k8s/k3s/cluster.sh build"
  write_podman_conf
  # The Spark Operator runs spark-submit from the Spark stand-in base, which images.sh makes with the app's images.
  podman image exists "$SPARK_OPERATOR_BASE" || bash "$HERE/images.sh"
  build_cnpg
  build_spark_operator
  build_strimzi
  build_grafana_operator
  build_skaffold
  write_values
  log "operators built in $(seconds_since "$started") s"
}

# Each operator chart's values for the images built here: never pulled, they exist only in containerd.
# An image's name split as the charts take it: registry, repository (path without the tag), tag.
registry() { echo "${1%%/*}"; }
repository() { local path=${1#*/}; echo "${path%:*}"; }
tag() { echo "${1##*:}"; }

write_values() {
  mkdir -p "$VALUES"
  local operator kafka
  operator=$(basename "$(repository "$STRIMZI_OPERATOR_IMAGE")")
  kafka=$(basename "$(repository "$STRIMZI_KAFKA_IMAGE")")
  # Strimzi composes <registry>/<repository>/<name>:<tag>, and for Kafka :<tag>-kafka-<version>.
  cat >"$VALUES/strimzi.yaml" <<YAML
defaultImageRegistry: $(registry "$STRIMZI_OPERATOR_IMAGE")
defaultImageRepository: $(dirname "$(repository "$STRIMZI_OPERATOR_IMAGE")")
defaultImageTag: "$(tag "$STRIMZI_OPERATOR_IMAGE")"
image: {name: $operator, imagePullPolicy: IfNotPresent}
topicOperator: {image: {name: $operator}}
userOperator: {image: {name: $operator}}
kafkaInit: {image: {name: $operator}}
kafka: {image: {name: $kafka}}
YAML
  cat >"$VALUES/spark-operator.yaml" <<YAML
image:
  registry: $(registry "$SPARK_OPERATOR_IMAGE")
  repository: $(repository "$SPARK_OPERATOR_IMAGE")
  tag: "$(tag "$SPARK_OPERATOR_IMAGE")"
  pullPolicy: IfNotPresent
YAML
  cat >"$VALUES/cnpg.yaml" <<YAML
image:
  repository: $(registry "$CNPG_OPERATOR_IMAGE")/$(repository "$CNPG_OPERATOR_IMAGE")
  tag: "$(tag "$CNPG_OPERATOR_IMAGE")"
  pullPolicy: IfNotPresent
config:
  data:
    POSTGRES_IMAGE_NAME: $CNPG_POSTGRES_IMAGE  # the operand built from Debian's PostgreSQL
YAML
  cat >"$VALUES/grafana-operator.yaml" <<YAML
image:
  registry: $(registry "$GRAFANA_OPERATOR_IMAGE")
  repository: $(repository "$GRAFANA_OPERATOR_IMAGE")
  tag: "$(tag "$GRAFANA_OPERATOR_IMAGE")"
  pullPolicy: IfNotPresent
YAML
}

install_operators() {
  build_operators
  pid_alive "$(cat "$RUN/k3s.pid" 2>/dev/null)" || die "k3s is not running: make k3s-up"
  local started image
  started=$(date +%s)
  for image in "$CNPG_OPERATOR_IMAGE" "$CNPG_POSTGRES_IMAGE" "$SPARK_OPERATOR_IMAGE" "$STRIMZI_OPERATOR_IMAGE" \
      "$STRIMZI_KAFKA_IMAGE" "$GRAFANA_OPERATOR_IMAGE"; do
    import_image "$image"
  done
  bash "$ROOT/k8s/tools.sh" --dir "$ROOT/.cache/tools/bin" helm
  PATH=$ROOT/.cache/tools/bin:$ROOT/.venv/bin:$PATH KUBECONFIG=$KUBECONFIG_FILE \
    STRIMZI_CHART=$STRIMZI_CHART_DIR STRIMZI_VALUES=$VALUES/strimzi.yaml \
    SPARK_OPERATOR_CHART=$(operator_source "$SPARK_OPERATOR_REPO" "$SPARK_OPERATOR_TAG")/charts/spark-operator-chart \
    SPARK_OPERATOR_VALUES=$VALUES/spark-operator.yaml \
    CNPG_CHART=$CNPG_CHART_DIR CNPG_VALUES=$VALUES/cnpg.yaml \
    GRAFANA_OPERATOR_CHART=$GRAFANA_OPERATOR_CHART_DIR GRAFANA_OPERATOR_VALUES=$VALUES/grafana-operator.yaml \
    bash "$ROOT/k8s/operators.sh"
  log "operators installed in $(seconds_since "$started") s"
}

case ${1:-} in
  build) build_operators ;;
  install) install_operators ;;
  *) echo "usage: $0 build|install" >&2; exit 2 ;;
esac
