# shellcheck shell=bash
# The Kubeflow Spark Operator v2.5.2 (controller and webhook: one binary) built from its tag, in an image laid out
# as upstream's but FROM the project's Spark stand-in. Sourced by k8s/k3s/operators.sh after lib.sh, never run.
# Needs localhost/fraud-k3s/spark-standin:local, which k8s/k3s/images.sh builds.

SPARK_OPERATOR_REPO=kubeflow/spark-operator
SPARK_OPERATOR_TAG=v$SPARK_OPERATOR_VERSION  # k8s/versions.sh
SPARK_OPERATOR_IMAGE=localhost/fraud-k3s/spark-operator:${SPARK_OPERATOR_TAG#v}
SPARK_OPERATOR_BASE=localhost/fraud-k3s/spark-standin:local

build_spark_operator() {
  local src out=$CACHE/operators/spark-operator t
  local ctx=$out/context stamp=$CACHE/stamps/spark-operator-$SPARK_OPERATOR_TAG
  mkdir -p "$ctx" "$CACHE/stamps" "$LOGS"
  src=$(operator_source "$SPARK_OPERATOR_REPO" "$SPARK_OPERATOR_TAG")

  if [[ ! -x $ctx/spark-operator || ! -e $stamp ]]; then
    command -v go >/dev/null || die "Go is needed to build the Spark operator (go 1.24 or newer)"
    t=$(date +%s)
    # Upstream's Makefile (build-operator) stamps the version into component-base. Its tree state comes from
    # `git status`, which our clone's marker file would turn "dirty": the tag's own values are given instead.
    local commit ldflags
    commit=$(git -C "$src" rev-parse HEAD)
    ldflags="-X k8s.io/component-base/version.gitVersion=$SPARK_OPERATOR_TAG
      -X k8s.io/component-base/version.gitCommit=$commit
      -X k8s.io/component-base/version.gitTreeState=clean
      -X k8s.io/component-base/version.buildDate=$(date -u +%Y-%m-%dT%H:%M:%S%:z)
      -extldflags -static"
    log "spark-operator $SPARK_OPERATOR_TAG: go build (a few minutes on 2 cores)"
    (cd "$src" && CGO_ENABLED=0 GOOS=linux nice_run go build -o "$ctx/spark-operator.part" -ldflags "$ldflags" \
      cmd/operator/main.go) >>"$LOGS/build-spark-operator.log" 2>&1 \
      || die "spark-operator build failed: see ${LOGS#"$ROOT"/}/build-spark-operator.log"
    mv "$ctx/spark-operator.part" "$ctx/spark-operator"
    touch "$stamp"
    log "spark-operator binary built in $(seconds_since "$t") s"
  fi

  command -v podman >/dev/null || die "podman is missing: run bash k8s/k3s/cluster.sh build"
  write_podman_conf
  podman image exists "$SPARK_OPERATOR_BASE" \
    || die "$SPARK_OPERATOR_BASE is missing: run bash k8s/k3s/images.sh (its stand-in spark step builds it)"
  cp "$HERE/operators/spark-operator/Containerfile" "$ctx/Containerfile"
  cp "$src/entrypoint.sh" "$ctx/entrypoint.sh"
  chmod 0755 "$ctx/entrypoint.sh"
  # The image is current when it was built from these very inputs: the base's ID, the binary, the Containerfile
  # and the entrypoint. (A rebuilt stand-in base changes the key, and the image follows it.)
  local key
  key=$({ podman image inspect --format '{{.Id}}' "$SPARK_OPERATOR_BASE"; cat "$ctx/spark-operator" \
    "$ctx/Containerfile" "$ctx/entrypoint.sh"; } | sha256sum | cut -d' ' -f1)
  if podman image exists "$SPARK_OPERATOR_IMAGE" \
      && [[ $(cat "$CACHE/stamps/spark-operator-image" 2>/dev/null) == "$key" ]]; then
    return 0
  fi
  t=$(date +%s)
  # --network=host: the apt-get step uses the host's network without podman making a bridge of its own.
  nice_run podman build -q --network=host --build-arg "SPARK_IMAGE=$SPARK_OPERATOR_BASE" \
    -t "$SPARK_OPERATOR_IMAGE" "$ctx" >/dev/null || die "podman build of $SPARK_OPERATOR_IMAGE failed"
  echo "$key" >"$CACHE/stamps/spark-operator-image"
  log "built $SPARK_OPERATOR_IMAGE in $(seconds_since "$t") s"
}
