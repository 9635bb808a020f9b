# shellcheck shell=bash disable=SC2034  # the CNPG_* variables are read by the scripts that source this file
# CloudNativePG for the k3s cluster: the operator image and a PostgreSQL operand image, built from source and
# Debian packages because ghcr.io cannot be reached here, and the operator's Helm chart made installable offline.
# Sourced by k8s/k3s/operators.sh after lib.sh; build_cnpg does the work and skips whatever is already built.
#
# After build_cnpg:
#   helm upgrade --install cnpg "$CNPG_CHART_DIR" -n cnpg-system --create-namespace "${CNPG_HELM_SET[@]}"
#   the app chart's postgres.imageName: "$CNPG_POSTGRES_IMAGE" (the operator's default too, through
#   POSTGRES_IMAGE_NAME in CNPG_HELM_SET, so an empty imageName works as well).
# To follow a newer Debian PostgreSQL package: podman rmi the postgresql images, run build_cnpg again.

CNPG_OPERATOR_IMAGE=localhost/fraud-k3s/cloudnative-pg:$CNPG_VERSION
# CNPG reads the PostgreSQL major from the image tag (machinery's version.FromTag: "<major>[.<minor>][-_.]..."),
# so the operand is tagged <major>.<minor> of the Debian package it carries, e.g. postgresql:15.20.
CNPG_PG_MAJOR=15                    # Debian 12's PostgreSQL
CNPG_POSTGRES_REPO=localhost/fraud-k3s/postgresql
CNPG_POSTGRES_IMAGE=""              # set by build_cnpg
CNPG_BUILD=$CACHE/operators/cnpg
CNPG_CHART_DIR=$CNPG_BUILD/chart/cloudnative-pg
CNPG_HELM_SET=()                    # set by build_cnpg

# The images' common base: the Debian 12 minbase rootfs of cluster.sh build, as images.sh imports it.
cnpg_debian_base() {
  local image=localhost/fraud-k3s/debian:$DEBIAN_SUITE-minbase
  if ! podman image exists "$image"; then
    [[ -s $CACHE/rootfs/$DEBIAN_SUITE-minbase.tar ]] || die "no Debian rootfs: run bash k8s/k3s/cluster.sh build"
    podman import -q "$CACHE/rootfs/$DEBIAN_SUITE-minbase.tar" "$image" >/dev/null
  fi
  echo "$image"
}

# The `manager` binary as upstream's .goreleaser.yml builds it (static, -s -w, the Makefile's version stamps),
# with the Dockerfile's build context beside it: dist/manager/manager_<arch>, licenses/, LICENSE.
cnpg_manager() {  # source-dir arch
  local src=$1 arch=$2 ctx=$CNPG_BUILD/operator commit date stamp t
  commit=$(git -C "$src" rev-parse --short HEAD) || die "$src is not a git clone: remove it and run again"
  stamp=$CACHE/stamps/cnpg-manager-$CNPG_VERSION-$commit-$arch
  [[ -e $stamp && -x $ctx/manager/manager_$arch ]] && return 0
  date=$(git -C "$src" log -1 --pretty=format:%ad --date=short)
  t=$(date +%s)
  log "cnpg: go build manager $CNPG_VERSION ($commit, $arch)"
  rm -rf "$ctx" && mkdir -p "$ctx/manager" "$CACHE/stamps"
  local pkg=github.com/cloudnative-pg/cloudnative-pg/pkg/versions
  (cd "$src" && nice_run env CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath \
    -ldflags "-s -w -X $pkg.buildVersion=$CNPG_VERSION -X $pkg.buildCommit=$commit -X $pkg.buildDate=$date" \
    -o "$ctx/manager/manager_$arch" ./cmd/manager) \
    || die "go build of the CloudNativePG manager failed (module downloads need the Go proxy; see the output above)"
  cp -a "$src/licenses" "$src/LICENSE" "$ctx/"
  touch "$stamp"
  log "cnpg: manager built in $(seconds_since "$t") s"
}

cnpg_operator_image() {  # source-dir base-image
  local src=$1 base=$2 arch t
  podman image exists "$CNPG_OPERATOR_IMAGE" && return 0
  arch=$(go env GOARCH)
  cnpg_manager "$src" "$arch"
  cp "$HERE/operators/cnpg/operator.Containerfile" "$CNPG_BUILD/operator/Containerfile"
  t=$(date +%s)
  nice_run podman build -q --network=none --build-arg "DEBIAN_IMAGE=$base" --build-arg "TARGETARCH=$arch" \
    --build-arg "VERSION=$CNPG_VERSION" -t "$CNPG_OPERATOR_IMAGE" "$CNPG_BUILD/operator" >/dev/null \
    || die "podman build of $CNPG_OPERATOR_IMAGE failed"
  log "cnpg: built $CNPG_OPERATOR_IMAGE in $(seconds_since "$t") s"
}

# The operand: built as postgresql:<major>, then tagged with the <major>.<minor> of the package apt installed
# (recorded in a stamp, so a rerun needs neither apt nor a container).
cnpg_postgres_image() {  # base-image
  local base=$1 stamp=$CACHE/stamps/cnpg-postgres-$CNPG_PG_MAJOR.image ctx=$CNPG_BUILD/postgres t deb
  if [[ -s $stamp ]] && podman image exists "$(cat "$stamp")"; then
    CNPG_POSTGRES_IMAGE=$(cat "$stamp")
    return 0
  fi
  t=$(date +%s)
  mkdir -p "$ctx" "$CACHE/stamps"
  cp "$HERE/operators/cnpg/postgres.Containerfile" "$ctx/Containerfile"
  # --network=host: apt-get reaches the Debian mirror as under `docker build`, without a podman bridge.
  nice_run podman build -q --network=host --build-arg "DEBIAN_IMAGE=$base" --build-arg "PG_MAJOR=$CNPG_PG_MAJOR" \
    --build-arg "DEBIAN_MIRROR=$DEBIAN_MIRROR" -t "$CNPG_POSTGRES_REPO:$CNPG_PG_MAJOR" "$ctx" >/dev/null \
    || die "podman build of $CNPG_POSTGRES_REPO:$CNPG_PG_MAJOR failed (apt needs $DEBIAN_MIRROR)"
  deb=$(podman run --rm --network=none "$CNPG_POSTGRES_REPO:$CNPG_PG_MAJOR" \
    dpkg-query -W -f '${Version}' "postgresql-$CNPG_PG_MAJOR") || die "no postgresql-$CNPG_PG_MAJOR in the image"
  [[ $deb =~ ^$CNPG_PG_MAJOR\.[0-9]+ ]] || die "postgresql-$CNPG_PG_MAJOR $deb is not a $CNPG_PG_MAJOR.<minor> version"
  CNPG_POSTGRES_IMAGE=$CNPG_POSTGRES_REPO:${BASH_REMATCH[0]}
  podman tag "$CNPG_POSTGRES_REPO:$CNPG_PG_MAJOR" "$CNPG_POSTGRES_IMAGE"
  echo "$CNPG_POSTGRES_IMAGE" >"$stamp"
  log "cnpg: built $CNPG_POSTGRES_IMAGE (Debian postgresql-$CNPG_PG_MAJOR $deb) in $(seconds_since "$t") s"
}

# The chart at its tag, installable without the network: Chart.yaml names a subchart (alias `monitoring`, the
# Grafana dashboard, off unless monitoring.grafanaDashboard.create) from a repository unreachable here, and helm
# refuses a chart whose dependency is missing from charts/ even when its condition is off. A stub takes its place
# and fails the render if someone turns it on.
cnpg_chart() {  # charts-repo-dir
  local src=$1/charts/cloudnative-pg
  [[ -e $CNPG_CHART_DIR/.fraud-complete ]] && return 0
  [[ -f $src/Chart.yaml ]] || die "no charts/cloudnative-pg in $1"
  rm -rf "$CNPG_CHART_DIR" && mkdir -p "$(dirname "$CNPG_CHART_DIR")"
  cp -a "$src" "$CNPG_CHART_DIR"
  mkdir -p "$CNPG_CHART_DIR/charts/cluster/templates"
  printf '%s\n' 'apiVersion: v2' 'name: cluster' 'version: 0.0.5' \
    'description: Offline stub of the cloudnative-pg/grafana-dashboards chart (k8s/k3s/operators/cnpg.sh).' \
    >"$CNPG_CHART_DIR/charts/cluster/Chart.yaml"
  printf '%s\n' '{{- fail "monitoring.grafanaDashboard.create: the dashboard subchart is not available offline" }}' \
    >"$CNPG_CHART_DIR/charts/cluster/templates/unavailable.yaml"
  touch "$CNPG_CHART_DIR/.fraud-complete"
}

build_cnpg() {
  local started src charts base
  started=$(date +%s)
  command -v podman >/dev/null || die "podman is missing: run bash k8s/k3s/cluster.sh build"
  write_podman_conf
  src=$(operator_source cloudnative-pg/cloudnative-pg "v$CNPG_VERSION")
  charts=$(operator_source cloudnative-pg/charts "cloudnative-pg-v$CNPG_CHART_VERSION")
  base=$(cnpg_debian_base)
  cnpg_operator_image "$src" "$base"
  cnpg_postgres_image "$base"
  cnpg_chart "$charts"
  # Never pull: the images exist only in the cluster's containerd. POSTGRES_IMAGE_NAME makes the operand the
  # operator's default (upstream's is ghcr.io/cloudnative-pg/postgresql:18.x, unreachable here).
  CNPG_HELM_SET=(--set "image.repository=${CNPG_OPERATOR_IMAGE%:*}" --set "image.tag=${CNPG_OPERATOR_IMAGE##*:}"
    --set image.pullPolicy=Never --set "config.data.POSTGRES_IMAGE_NAME=$CNPG_POSTGRES_IMAGE")
  log "cnpg: $CNPG_OPERATOR_IMAGE, $CNPG_POSTGRES_IMAGE, chart $CNPG_CHART_DIR ($(seconds_since "$started") s)"
}
