# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this file
# Shared by the k8s/k3s scripts: pinned versions, paths, and small helpers. Sourced, never run.
# Layout: build output and caches in .cache/k3s (kept by `down`), cluster state and logs in .local/k3s.

# k3s v1.32.0+k3s1 as the Go proxy serves it: the pseudo-version of that tag's commit (the +k3s1 tag itself is
# not a valid module version). Its Kubernetes is v1.32.0.
K3S_MODULE=github.com/k3s-io/k3s
K3S_PSEUDO_VERSION=v1.32.1-0.20250107171309-cca8facaa33a
K3S_VERSION=v1.32.0+k3s1
K3S_COMMIT=cca8facaa33a
KUBERNETES_VERSION=v1.32.0
# The addon images k3s v1.32.0+k3s1's manifests ask for, built from source under the exact same names.
COREDNS_VERSION=v1.12.0
COREDNS_IMAGE=docker.io/rancher/mirrored-coredns-coredns:1.12.0
LOCAL_PATH_VERSION=v0.0.30
LOCAL_PATH_IMAGE=docker.io/rancher/local-path-provisioner:v0.0.30
BUSYBOX_IMAGE=docker.io/rancher/mirrored-library-busybox:1.36.1
# k3s's default --pod-infra-container-image; containerd's sandbox_image is set to the same local image.
PAUSE_IMAGE=docker.io/rancher/mirrored-pause:3.6
# Stand-in bases: a Debian 12 minbase rootfs (the same release as python:3.11-slim-bookworm).
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=http://deb.debian.org/debian
# = the pyspark pin in pyproject.toml and the apache/spark tag in images/detector/Dockerfile.
SPARK_VERSION=4.0.4
PY4J_VERSION=0.10.9.9
# Debian's packages (bookworm: containerd 1.6.20, runc 1.1.5, podman 4.3.1, buildah 1.28.2, plugins 1.1.1).
APT_PACKAGES=(containerd runc containernetworking-plugins iptables nftables ipset conntrack iproute2 podman buildah
  debootstrap busybox-static gcc libc6-dev libseccomp-dev pkg-config unzip docker-registry curl)

# Cluster addresses (k3s's defaults; only the node's own bridge and pods use them).
CLUSTER_CIDR=10.42.0.0/16
NODE_POD_CIDR=10.42.0.0/24
SERVICE_CIDR=10.43.0.0/16
CLUSTER_DNS=10.43.0.10

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/k8s/k3s
CACHE=$ROOT/.cache/k3s
BIN=$CACHE/bin
LOCAL=$ROOT/.local/k3s
RUN=$LOCAL/run            # PIDs and sockets
LOGS=$LOCAL/logs
HOST_SAVE=$LOCAL/host     # the host's sysctls, iptables and paths as they were before `up`
KUBECONFIG_FILE=$LOCAL/kubeconfig
CONTAINERD_SOCK=$RUN/containerd.sock
CONTAINERD_ROOT=$LOCAL/containerd/root
CONTAINERD_STATE=$LOCAL/containerd/state
K3S_DATA=$LOCAL/data
CNI_CONF_DIR=$LOCAL/cni/net.d
CNI_IPAM_DIR=$LOCAL/cni/networks
CNI_BIN_DIR=/usr/lib/cni  # Debian's containernetworking-plugins
# A local image registry (Debian's docker-registry) for `skaffold dev -p k3s`: skaffold pushes what it builds,
# the node's containerd pulls it over plain HTTP. Only this machine reaches it.
REGISTRY=localhost:5000
REGISTRY_DATA=$LOCAL/registry
# Paths outside the repository that k3s, the kubelet, containerd and CNI write; `down` removes the ones that
# did not exist before `up`.
HOST_PATHS=(/etc/rancher /var/lib/rancher /var/lib/kubelet /var/lib/cni /var/log/pods /var/log/containers
  /run/k3s /run/containerd /run/netns /var/lib/containers /run/libpod /run/containers)
# Sysctls: up saves every kernel.*, vm.* and net.* value, down writes back the ones that changed (the kubelet
# sets vm.overcommit_memory, kernel.panic, kernel.panic_on_oops; kube-proxy route_localnet; the bridge plugin
# ip_forward, which also flips every interface's forwarding and accept_redirects). Counters and per-boot values
# are left out; so are the pods' own interfaces, which go with them.
SYSCTL_SKIP='^(kernel\.(random|ns_last_pid|pty\.nr|tainted|sched_|perf_)|net\.netfilter\.nf_conntrack_count|vm\.(stat_refresh|drop_caches|compact_memory)|net\.ipv[46]\.(conf|neigh)\.(veth|cni0|lxc))'
# iptables chains the cluster creates: kube-proxy and the kubelet (KUBE-*), the CNI plugins (CNI-*), the
# network-policy controller (KUBE-ROUTER-*, KUBE-NWPLCY-*, KUBE-POD-FW-*), flannel if ever enabled. Rules of the
# built-in chains are the cluster's when they jump to those chains or carry its comments (the policy
# controller's mark-accept rules jump nowhere).
CHAIN_PATTERN='^(KUBE-|CNI-|FLANNEL|cni-)'

# Go builds: module and build caches inside .cache/k3s, no checksum database (k3s's replace targets are not in
# it), never a toolchain download.
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOPATH=$CACHE/go GOSUMDB=off GOTOOLCHAIN=local
export GOFLAGS="-modcacherw -buildvcs=false"
# podman and buildah: this project's config and storage, not the host's /etc/containers or /var/lib/containers.
export CONTAINERS_CONF=$LOCAL/podman/containers.conf CONTAINERS_STORAGE_CONF=$LOCAL/podman/storage.conf
export TMPDIR=$LOCAL/tmp
mkdir -p "$TMPDIR"

sysctl_snapshot() {  # key = value lines of the sysctls up saves and down compares
  sysctl -a 2>/dev/null | grep -E '^(kernel|vm|net)\.' | grep -vE "$SYSCTL_SKIP" || :
}

sysctl_changed() {  # saved-file: the saved "key = value" lines whose key still exists and now differs
  awk -F' = ' 'NR == FNR { now[$1] = $2; seen[$1]++; next }
    ($1 in now) && seen[$1] == 1 && now[$1] != $2' <(sysctl_snapshot) "$1"
}

cluster_rules() {  # keep|count: iptables-save text without the cluster's chains and rules, or how many there are
  awk -v mode="$1" -v pat="$CHAIN_PATTERN" '
    function ours() {
      if ($1 == "-A" && $2 ~ pat) return 1
      for (i = 3; i < NF; i++) if (($i == "-j" || $i == "-g") && $(i + 1) ~ pat) return 1
      return $1 == "-A" && $0 ~ /--comment "?(KUBE-ROUTER|kube-router|kubernetes )/
    }
    /^:/ { if (substr($1, 2) ~ pat) { n++; next } }
    /^-A / { if (ours()) { n++; next } }
    { if (mode == "keep") print }
    END { if (mode == "count") print n + 0 }'
}

# Long CPU work yields to everything else on the machine.
nice_run() { nice -n 19 ionice -c3 "$@"; }
log() { printf '%s [k3s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
seconds_since() { echo $(($(date +%s) - $1)); }
pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }
ctr_k8s() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
need_root() { ((EUID == 0)) || die "run as root: k3s, containerd and podman change the host's network and mounts"; }

# podman's config files, rewritten on every use so they follow the checkout's path. Debian's podman 4.3 still
# keeps a blob-info cache in /var/lib/containers/cache whatever storage.conf says: removed on exit when it was
# not there before.
write_podman_conf() {
  if [[ ! -e /var/lib/containers ]]; then
    trap 'rm -rf /var/lib/containers' EXIT
  fi
  mkdir -p "$LOCAL/podman/net.d" "$CACHE/podman/storage" "$LOCAL/podman/run" "$LOCAL/podman/tmp" "$TMPDIR"
  # runc: crun fails on this cgroup v1 hybrid host; cgroupfs: no systemd; ulimits: no CAP_SYS_RESOURCE for more.
  # network_config_dir: podman's CNI files (its lock included) stay out of /etc/cni.
  cat >"$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$LOCAL/podman/tmp"
image_copy_tmp_dir = "$TMPDIR"
[network]
network_config_dir = "$LOCAL/podman/net.d"
CONF
  cat >"$CONTAINERS_STORAGE_CONF" <<CONF
[storage]
driver = "overlay"
graphroot = "$CACHE/podman/storage"
runroot = "$LOCAL/podman/run"
CONF
}

# An upstream repository at a tag, cloned once into .cache/k3s/operators/src (operators.sh builds the operators'
# images from it). From GitHub by default; FRAUD_OPERATOR_SOURCES names a folder of local clones or mirrors
# instead, one per repository as <owner>+<repo> (or <owner>+<repo>/repo), each holding the tag.
operator_source() {  # owner/repo tag: prints the folder with that tag checked out
  local repo=$1 tag=$2 dir=$CACHE/operators/src/${1//\//+}-$2 url=https://github.com/$1.git local_copy
  if [[ -n ${FRAUD_OPERATOR_SOURCES:-} ]]; then
    for local_copy in "$FRAUD_OPERATOR_SOURCES/${repo//\//+}/repo" "$FRAUD_OPERATOR_SOURCES/${repo//\//+}"; do
      if [[ -e $local_copy ]]; then url=file://$local_copy; break; fi
    done
  fi
  if [[ ! -e $dir/.fraud-complete ]]; then
    rm -rf "$dir" && mkdir -p "$(dirname "$dir")"
    git -c advice.detachedHead=false clone -q --depth 1 --branch "$tag" "$url" "$dir" >&2 \
      || die "git clone --branch $tag $url failed"
    touch "$dir/.fraud-complete"
  fi
  echo "$dir"
}

# A podman image into the cluster's containerd under the same name, unless it is there already (the ID of what was
# imported last is kept beside the cache). The old image goes first, its garbage collection awaited (--sync):
# replaced during the import instead, it leaves its unpacked layers unreferenced, and a collection mid-import
# deletes layers the new image shares ("parent snapshot ... does not exist").
import_image() {  # image
  local image=$1 id archive t
  id=$(podman image inspect --format '{{.Id}}' "$image") || die "no podman image $image to import"
  archive=$CACHE/images/import/$(echo "$image" | tr '/:' '__').tar
  if [[ $(cat "$archive.id" 2>/dev/null) == "$id" ]] && ctr_k8s images ls -q | grep -qxF "$image"; then
    log "$image: unchanged, already in the cluster"
    return 0
  fi
  t=$(date +%s)
  mkdir -p "$(dirname "$archive")"
  rm -f "$archive"
  nice_run podman save -q --format oci-archive -o "$archive" "$image"
  ctr_k8s images rm --sync "$image" >/dev/null 2>&1 || :
  nice_run ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$archive" >/dev/null
  # The archive is only the way in: containerd keeps the image (down keeps its store), the ID says what it is.
  echo "$id" >"$archive.id"
  rm -f "$archive"
  log "imported $image into the cluster in $(seconds_since "$t") s"
}
