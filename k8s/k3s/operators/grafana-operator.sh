# shellcheck shell=bash disable=SC2034  # the GRAFANA_OPERATOR_* variables are read by the scripts that source this file
# The Grafana Operator v5.24.0 as a local image, built from source (operators.sh sources this file after lib.sh):
#   localhost/fraud-k3s/grafana-operator:5.24.0
# After build_grafana_operator, its own chart (in the clone, CRDs in its crds subchart) installs it offline:
#   helm upgrade --install grafana-operator "$GRAFANA_OPERATOR_CHART_DIR" -n grafana-operator --create-namespace \
#     "${GRAFANA_OPERATOR_HELM_SET[@]}"
# Upstream's release image comes from `ko build` (.ko.yaml, .github/workflows/release.yaml): `go build -trimpath`
# with CGO off and the version stamped into embeds.Version. The same build runs here on the host, then
# grafana-operator/Containerfile lays the binary out as ko does. Grafana itself is neither built nor pulled: the
# operator only creates Grafana instances when the chart's users ask for them.

GRAFANA_OPERATOR_IMAGE=localhost/fraud-k3s/grafana-operator:$GRAFANA_OPERATOR_VERSION
GRAFANA_OPERATOR_CHART_DIR=""       # set by build_grafana_operator
# The chart writes image: "<registry>/<repository>:<tag>"; the image is imported into containerd, never pulled.
GRAFANA_OPERATOR_HELM_SET=(--set image.registry=localhost --set image.repository=fraud-k3s/grafana-operator
  --set "image.tag=$GRAFANA_OPERATOR_VERSION" --set image.pullPolicy=IfNotPresent)

build_grafana_operator() {
  local tag=v$GRAFANA_OPERATOR_VERSION image=$GRAFANA_OPERATOR_IMAGE def=$HERE/operators/grafana-operator
  local ctx=$CACHE/operators/grafana-operator stamp=$CACHE/stamps/grafana-operator-binary
  local debian_image=localhost/fraud-k3s/debian:$DEBIAN_SUITE-minbase
  local ldflags="-X github.com/grafana/grafana-operator/v5/embeds.Version=$tag"
  local key bin_key src t
  command -v podman >/dev/null || die "podman is missing: run bash k8s/k3s/cluster.sh build"
  # The clone is needed even when the image is up to date: the chart comes from it.
  src=$(operator_source grafana/grafana-operator "$tag") || die "no grafana-operator $tag source (see above)"
  GRAFANA_OPERATOR_CHART_DIR=$src/deploy/helm/grafana-operator
  # What the binary depends on besides Go's caches: the tag, the flags and the stand-in modules; the image adds
  # its Containerfile. The image carries its key as a label, so an unchanged image is found without a stamp.
  bin_key=$( { echo "$tag $ldflags"; find "$def/grafana-apis" -type f | LC_ALL=C sort | xargs cat; } | sha256sum)
  bin_key=${bin_key%% *}
  key=$( { echo "$bin_key"; cat "$def/Containerfile"; } | sha256sum)
  key=${key%% *}
  if podman image exists "$image" \
    && [[ $(podman image inspect --format '{{index .Labels "fraud-k3s.build-key"}}' "$image") == "$key" ]]; then
    log "$image: up to date"
    return 0
  fi

  if [[ $(cat "$stamp" 2>/dev/null) != "$bin_key" || ! -x $ctx/ko-app/v5 ]]; then
    t=$(date +%s)
    # The operator imports two modules of the grafana/grafana repository (AGPL-3.0-only there), used only by
    # the folder controller behind the opt-in feature flag FoldersUseNewAPI. The project's own stand-ins replace
    # them (grafana-operator/grafana-apis/README.md), so no Grafana code is fetched or linked.
    rm -rf "$src/.fraud-grafana-apis"
    cp -a "$def/grafana-apis" "$src/.fraud-grafana-apis"
    (cd "$src" && go mod edit \
      -replace=github.com/grafana/grafana/apps/folder=./.fraud-grafana-apis/folder \
      -replace=github.com/grafana/grafana/pkg/apimachinery=./.fraud-grafana-apis/apimachinery) \
      || die "go mod edit in $src failed: remove that folder and run again"
    mkdir -p "$ctx/ko-app" "$(dirname "$stamp")"
    log "grafana-operator $tag: go build (Go module proxy; a few minutes the first time)"
    (cd "$src" && CGO_ENABLED=0 GOOS=linux nice_run go build -trimpath -ldflags "$ldflags" -o "$ctx/ko-app/v5" .) \
      || die "go build of grafana-operator failed (output above): check that the Go module proxy is reachable"
    echo "$bin_key" >"$stamp"
    log "grafana-operator binary: $(seconds_since "$t") s"
  fi

  t=$(date +%s)
  if ! podman image exists "$debian_image"; then
    [[ -s $CACHE/rootfs/$DEBIAN_SUITE-minbase.tar ]] || die "no rootfs: run bash k8s/k3s/cluster.sh build"
    podman import -q "$CACHE/rootfs/$DEBIAN_SUITE-minbase.tar" "$debian_image" >/dev/null
  fi
  rm -rf "$ctx/ca" && mkdir -p "$ctx/ca"
  find /usr/local/share/ca-certificates -name '*.crt' -exec cp {} "$ctx/ca/" \; 2>/dev/null || :
  cp "$def/Containerfile" "$ctx/Containerfile"
  nice_run podman build -q --network=host --build-arg "DEBIAN_IMAGE=$debian_image" \
    --label "fraud-k3s.build-key=$key" -t "$image" "$ctx" >/dev/null \
    || die "podman build of $image failed (output above)"
  log "built $image in $(seconds_since "$t") s"
}
