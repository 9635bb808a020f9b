#!/usr/bin/env bash
# Build (once) everything the k3s cluster needs, into .cache/k3s: Debian's packages, k3s from source, the
# addon images k3s asks for (CoreDNS, local-path-provisioner, busybox, pause) and the Debian minbase rootfs
# the stand-in bases start from. Each step is skipped when its output is there, so a second run takes seconds.
#   k8s/k3s/build.sh
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need_root
mkdir -p "$BIN" "$CACHE/images" "$CACHE/rootfs" "$CACHE/stamps" "$LOGS"

install_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive nice_run apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# k3s from the module proxy: the tagged commit's module, copied writable, its dependencies (72 replace targets)
# downloaded, then ./cmd/server built the way k3s's scripts/build does (tags, version stamps).
build_k3s() {
  local stamp=$CACHE/stamps/k3s-$K3S_PSEUDO_VERSION
  [[ -x $BIN/k3s && -e $stamp ]] && return 0
  local started src dir golang build_date pkg=github.com/k3s-io/k3s
  need_go
  started=$(date +%s)
  log "k3s $K3S_VERSION: module download"
  src=$(go mod download -json "$K3S_MODULE@$K3S_PSEUDO_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d $src ]] || die "go mod download of $K3S_MODULE@$K3S_PSEUDO_VERSION gave no source folder"
  dir=$CACHE/src/k3s
  rm -rf "$dir" && mkdir -p "$(dirname "$dir")" && cp -r "$src" "$dir" && chmod -R u+w "$dir"
  (cd "$dir" && nice_run go mod download) >>"$LOGS/build-go.log" 2>&1
  golang=$(go env GOVERSION)
  build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  # UpstreamGolang must equal the compiler's version, or k3s refuses to start. The Kubernetes version stamps make
  # the API server report v1.32.0 (charts check kubeVersion against it).
  local ldflags="-w -s
    -X $pkg/pkg/version.Version=$K3S_VERSION -X $pkg/pkg/version.GitCommit=$K3S_COMMIT
    -X $pkg/pkg/version.UpstreamGolang=$golang
    -X k8s.io/client-go/pkg/version.gitVersion=$K3S_VERSION -X k8s.io/client-go/pkg/version.gitCommit=$K3S_COMMIT
    -X k8s.io/client-go/pkg/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.buildDate=$build_date
    -X k8s.io/component-base/version.gitVersion=$K3S_VERSION
    -X k8s.io/component-base/version.gitCommit=$K3S_COMMIT
    -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=$build_date"
  log "k3s $K3S_VERSION: go build ./cmd/server (about 10 min on 2 cores)"
  (cd "$dir" && CGO_ENABLED=1 nice_run go build \
    -tags "ctrd apparmor seccomp netcgo osusergo providerless urfave_cli_no_docs" \
    -ldflags "$ldflags" -o "$BIN/k3s" ./cmd/server) >>"$LOGS/build-go.log" 2>&1 \
    || die "k3s build failed: see ${LOGS#"$ROOT"/}/build-go.log"
  built_go=true
  touch "$stamp"
  log "k3s built in $(seconds_since "$started") s"
}

# k3s is a multi-call binary: named kubectl or crictl, it is that tool (as a k3s subcommand it is not, built so).
link_tools() {
  ln -sfn k3s "$BIN/kubectl"
  ln -sfn k3s "$BIN/crictl"
}

need_go() {
  command -v go >/dev/null || die "Go is needed to build k3s, CoreDNS and local-path-provisioner (go 1.23 or newer)"
}

go_install() {  # name module@version: a static binary into .cache/k3s/bin
  local name=$1 target=$2 stamp=$CACHE/stamps/$1-${2##*@}
  [[ -x $BIN/$name && -e $stamp ]] && return 0
  local started
  need_go
  started=$(date +%s)
  log "go install $target"
  CGO_ENABLED=0 GOBIN=$BIN nice_run go install -ldflags "-w -s" "$target" >>"$LOGS/build-go.log" 2>&1 \
    || die "go install $target failed: see ${LOGS#"$ROOT"/}/build-go.log"
  built_go=true
  touch "$stamp"
  log "$name built in $(seconds_since "$started") s"
}

# The sandbox ("pause") process: a static C binary that waits and reaps, like Kubernetes' own pause.
build_pause() {
  [[ -x $BIN/pause && $BIN/pause -nt $HERE/bases/pause.c ]] && return 0
  gcc -Os -static -o "$BIN/pause" "$HERE/bases/pause.c"
  strip "$BIN/pause"
}

# A Debian minbase rootfs as a tar: the stand-in bases in images.sh start FROM it.
build_rootfs() {
  local tar=$CACHE/rootfs/$DEBIAN_SUITE-minbase.tar
  [[ -s $tar ]] && return 0
  local started dir
  started=$(date +%s)
  dir=$LOCAL/tmp/rootfs
  rm -rf "$dir" && mkdir -p "$dir"
  log "debootstrap --variant=minbase $DEBIAN_SUITE"
  nice_run debootstrap --variant=minbase "$DEBIAN_SUITE" "$dir" "$DEBIAN_MIRROR" >"$LOGS/debootstrap.log" 2>&1 \
    || die "debootstrap failed: see $LOGS/debootstrap.log"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" --numeric-owner -cf "$tar.part" . && mv "$tar.part" "$tar"
  rm -rf "$dir"
  log "rootfs in $(seconds_since "$started") s"
}

addon_image() {  # image-name containerfile-body files...: a FROM scratch image saved as an OCI archive
  local name=$1 body=$2
  shift 2
  local archive
  archive=$CACHE/images/$(basename "${name%%:*}")-${name##*:}.tar
  [[ -s $archive ]] && return 0
  local ctx
  ctx=$(mktemp -d "$TMPDIR/addon.XXXXXX")
  cp -a "$@" "$ctx/"
  printf '%s\n' "$body" >"$ctx/Containerfile"
  podman build -q --network=none -t "$name" -f "$ctx/Containerfile" "$ctx" >/dev/null
  podman save -q --format oci-archive -o "$archive.part" "$name" && mv "$archive.part" "$archive"
  rm -rf "$ctx"
  log "image $name -> ${archive#"$ROOT"/}"
}

build_addon_images() {
  write_podman_conf
  addon_image "$PAUSE_IMAGE" $'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]' \
    "$BIN/pause"
  addon_image "$COREDNS_IMAGE" $'FROM scratch\nCOPY coredns /coredns\nEXPOSE 53 53/udp\nENTRYPOINT ["/coredns"]' \
    "$BIN/coredns"
  addon_image "$LOCAL_PATH_IMAGE" \
    $'FROM scratch\nENV PATH=/usr/bin:/bin\nCOPY local-path-provisioner /usr/bin/local-path-provisioner\nCMD ["local-path-provisioner"]' \
    "$BIN/local-path-provisioner"
  # busybox for the local-path helper pods (`sh` scripts with mkdir, chmod, rm): Debian's static busybox and its
  # applets as symlinks.
  local bb=$LOCAL/tmp/busybox/rootfs applet
  rm -rf "$bb" && mkdir -p "$bb/bin" "$bb/tmp"
  cp /bin/busybox "$bb/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -s busybox "$bb/bin/$applet"
  done
  addon_image "$BUSYBOX_IMAGE" $'FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\nCMD ["sh"]' "$bb"
  rm -rf "$(dirname "$bb")"
}

started=$(date +%s)
built_go=false
install_packages
build_k3s
link_tools
go_install coredns "github.com/coredns/coredns@$COREDNS_VERSION"
go_install local-path-provisioner "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION"
# The outputs are stamped and the module cache stays: the build cache (~5 GB after k3s) is not needed again.
if $built_go; then go clean -cache; fi
build_pause
build_rootfs
build_addon_images
log "build: done in $(seconds_since "$started") s ($(du -sh "$CACHE" | cut -f1) in ${CACHE#"$ROOT"/})"
