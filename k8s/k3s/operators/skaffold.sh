# shellcheck shell=bash
# skaffold v2.24.0 built from source into .cache/k3s/bin/skaffold (operators.sh sources this file after lib.sh),
# for `skaffold render|run -p k3s` against the local cluster. Built as upstream's Makefile builds its release
# binaries (tags, -s -w, the version package's stamps), so `skaffold version` prints v2.24.0. Differences: CGO is
# off (a static binary without a C toolchain; upstream links statically with CGO), and the build date is the
# tag commit's date instead of the build's, so a rebuild gives the same binary.

build_skaffold() {
  local out=$BIN/skaffold stamp=$CACHE/stamps/skaffold pkg=github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version
  local tags="timetzdata osusergo netgo static_build release" src commit date ldflags t
  # The binary's version and the flags it was built with: a change to either rebuilds it.
  if [[ -x $out && $(cat "$stamp" 2>/dev/null) == "$SKAFFOLD_VERSION $tags" \
    && $("$out" version 2>/dev/null) == "$SKAFFOLD_VERSION" ]]; then
    log "skaffold $SKAFFOLD_VERSION: up to date"
    return 0
  fi
  t=$(date +%s)
  src=$(operator_source GoogleContainerTools/skaffold "$SKAFFOLD_VERSION")
  commit=$(git -C "$src" rev-parse HEAD)
  date=$(date -u -d "@$(git -C "$src" log -1 --format=%ct)" +%Y-%m-%dT%H:%M:%SZ)
  ldflags="-X $pkg.version=$SKAFFOLD_VERSION -X $pkg.buildDate=$date -X $pkg.gitCommit=$commit -s -w"
  # What the Makefile's fs/assets/check.txt step (hack/generate-embedded-files.sh) does: the JSON schemas that
  # `skaffold schema` and `skaffold fix` read are embedded from fs/assets. No secrets, no Firelog key.
  rm -rf "$src/fs/assets/schemas_generated"
  cp -R "$src/docs-v2/content/en/schemas" "$src/fs/assets/schemas_generated"
  echo "Used for marking generating embedded files task complete, don't modify this." >"$src/fs/assets/check.txt"
  mkdir -p "$BIN" "$(dirname "$stamp")"
  log "skaffold $SKAFFOLD_VERSION: go build (Go module proxy; several minutes the first time)"
  # -mod=mod: the dependencies come from the Go module proxy, not from the clone's vendor/ (the Makefile's
  # -mod=vendor), so they are checked against go.sum like every other Go build here.
  (cd "$src" && CGO_ENABLED=0 nice_run go build -mod=mod -tags "$tags" -ldflags "$ldflags" -o "$out.new" ./cmd/skaffold) \
    || die "go build of skaffold failed (output above): check that the Go module proxy is reachable"
  mv -f "$out.new" "$out"
  [[ $("$out" version) == "$SKAFFOLD_VERSION" ]] || die "$out version does not print $SKAFFOLD_VERSION"
  echo "$SKAFFOLD_VERSION $tags" >"$stamp"
  log "built $out ($SKAFFOLD_VERSION) in $(seconds_since "$t") s"
}
