#!/usr/bin/env bash
# Build the generator and detector images from images/*/Dockerfile with podman and import them into the k3s
# cluster's containerd as docker.io/library/fraud-detection-{generator,detector}:TAG (pods name them
# fraud-detection-*:TAG with imagePullPolicy IfNotPresent or Never).
#   k8s/k3s/images.sh [TAG]          TAG defaults to dev
#   k8s/k3s/images.sh --skaffold     skaffold's custom builder (skaffold.yaml, profile k3s): builds $IMAGE, the
#                                    role named by its last path part, and pushes it when $PUSH_IMAGE is true
# FRAUD_K3S_BASES=standin (default) builds FROM local stand-ins for the official base images, which cannot be
# pulled here: Debian-package images made by bases/*.Containerfile, passed as the Dockerfiles' base-image build
# arguments. They are for local clusters only and never pushed. FRAUD_K3S_BASES=official keeps the Dockerfiles'
# own bases (a machine that can pull them).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need_root
if [[ ${1:-} == --skaffold ]]; then
  [[ -n ${IMAGE:-} ]] || die "--skaffold: IMAGE is unset (skaffold's custom builder sets it)"
  role=${IMAGE##*/fraud-detection-}
  role=${role%%[:@]*}
  [[ $role == generator || $role == detector ]] || die "--skaffold: $IMAGE is neither image of images/"
fi
TAG=${1:-dev}
BASES=${FRAUD_K3S_BASES:-standin}
DEBIAN_IMAGE=localhost/fraud-k3s/debian:$DEBIAN_SUITE-minbase
[[ $BASES == standin || $BASES == official ]] || die "FRAUD_K3S_BASES is standin or official, not $BASES"
command -v podman >/dev/null || die "podman is missing: run bash k8s/k3s/cluster.sh build"
write_podman_conf
mkdir -p "$CACHE/standin"
started=$(date +%s)

# The build context of a stand-in: its Containerfile, the host's CA files, and what prepare_<name> adds.
standin() {  # name: builds localhost/fraud-k3s/<name>-standin:local (podman's layer cache makes a rebuild quick)
  local name=$1 ctx=$CACHE/standin/$1 t
  t=$(date +%s)
  mkdir -p "$ctx"
  rm -rf "$ctx/ca" && mkdir -p "$ctx/ca"
  find /usr/local/share/ca-certificates -name '*.crt' -exec cp {} "$ctx/ca/" \; 2>/dev/null || :
  cp "$HERE/bases/$name.Containerfile" "$ctx/Containerfile"
  if declare -F "prepare_$name" >/dev/null; then "prepare_$name" "$ctx"; fi
  nice_run podman build -q --network=host --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" \
    -t "localhost/fraud-k3s/$name-standin:local" "$ctx" >/dev/null
  log "stand-in $name base: $(seconds_since "$t") s"
}

prepare_maven() { cp "$HERE/bases/maven-settings.xml" "$1/"; }

# /opt/spark as the Spark distribution lays it out, from the pyspark source package (Spark's jars, bin, sbin
# and the PySpark sources): python/pyspark, python/lib/pyspark.zip and python/lib/py4j-*-src.zip.
prepare_spark() {
  local ctx=$1 sdist=$CACHE/wheels/pyspark-$SPARK_VERSION.tar.gz py4j=$CACHE/wheels/py4j-$PY4J_VERSION-py2.py3-none-any.whl
  cp "$HERE/bases/spark-entrypoint.sh" "$ctx/entrypoint.sh"
  [[ -e $ctx/opt-spark/.complete-$SPARK_VERSION ]] && return 0
  if [[ ! -s $sdist || ! -s $py4j ]]; then
    log "pip download pyspark==$SPARK_VERSION py4j==$PY4J_VERSION (PyPI)"
    python3 -m pip download -q --no-deps -d "$CACHE/wheels" "pyspark==$SPARK_VERSION" "py4j==$PY4J_VERSION"
  fi
  local tmp=$ctx/tmp
  rm -rf "$tmp" "$ctx/opt-spark" && mkdir -p "$tmp" "$ctx/opt-spark/python/lib"
  tar -xzf "$sdist" -C "$tmp"
  local src=$tmp/pyspark-$SPARK_VERSION
  mv "$src/deps/jars" "$src/deps/bin" "$src/deps/sbin" "$ctx/opt-spark/"
  rm -f "$ctx"/opt-spark/bin/*.cmd
  mv "$src/pyspark" "$ctx/opt-spark/python/pyspark"
  (cd "$ctx/opt-spark/python" && python3 -m zipfile -c lib/pyspark.zip pyspark/)
  unzip -q "$py4j" 'py4j/*' -d "$tmp/py4j"
  (cd "$tmp/py4j" && python3 -m zipfile -c "$ctx/opt-spark/python/lib/py4j-$PY4J_VERSION-src.zip" py4j/)
  rm -rf "$tmp"
  touch "$ctx/opt-spark/.complete-$SPARK_VERSION"
}

declare -A base_args=([generator]="" [detector]="")
if [[ $BASES == standin ]]; then
  if ! podman image exists "$DEBIAN_IMAGE"; then
    [[ -s $CACHE/rootfs/$DEBIAN_SUITE-minbase.tar ]] || die "no rootfs: run bash k8s/k3s/cluster.sh build"
    podman import -q "$CACHE/rootfs/$DEBIAN_SUITE-minbase.tar" "$DEBIAN_IMAGE" >/dev/null
  fi
  standin python
  standin maven
  standin spark
  base_args[generator]="PYTHON_IMAGE=localhost/fraud-k3s/python-standin:local"
  base_args[detector]="MAVEN_IMAGE=localhost/fraud-k3s/maven-standin:local SPARK_IMAGE=localhost/fraud-k3s/spark-standin:local"
fi

build_image() {  # role image
  local role=$1 image=$2 t arg build_args=()
  t=$(date +%s)
  for arg in ${base_args[$role]}; do build_args+=(--build-arg "$arg"); done
  # --network=host: RUN steps use the host's network as they would under `docker build`, without podman
  # creating a bridge and iptables rules of its own.
  nice_run podman build -q --network=host ${build_args[@]+"${build_args[@]}"} -f "$ROOT/images/$role/Dockerfile" -t "$image" "$ROOT" \
    >/dev/null
  log "built $image in $(seconds_since "$t") s ($(podman image inspect --format '{{.Size}}' "$image" \
    | awk '{printf "%.0f MB", $1 / 1e6}'))"
}

if [[ ${1:-} == --skaffold ]]; then
  build_image "$role" "$IMAGE"
  if [[ ${PUSH_IMAGE:-false} == true ]]; then
    [[ $IMAGE == "$REGISTRY"/* ]] || die "skaffold pushes to $REGISTRY only here: run it with --default-repo $REGISTRY"
    t=$(date +%s)
    nice_run podman push -q --tls-verify=false "$IMAGE"  # the local registry speaks plain HTTP on loopback
    log "pushed $IMAGE in $(seconds_since "$t") s"
  fi
  exit 0
fi

cluster_up=false
pid_alive "$(cat "$RUN/containerd.pid" 2>/dev/null)" && cluster_up=true
for role in generator detector; do
  image=docker.io/library/fraud-detection-$role:$TAG
  build_image "$role" "$image"
  $cluster_up || continue
  import_image "$image"
done
$cluster_up || log "the cluster is not up: images built in podman only (run up, then images again to import)"
log "images: done in $(seconds_since "$started") s"
