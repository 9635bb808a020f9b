#!/usr/bin/env bash
# Start a single-node k3s on Debian's containerd: containerd with this project's config, then `k3s server`,
# then wait for the node, CoreDNS and local-path. Saves the host's sysctls, iptables and paths first, so
# down.sh can put them back. Needs build.sh's output (cluster.sh up runs it first).
#   k8s/k3s/up.sh
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need_root
for f in k3s kubectl coredns local-path-provisioner pause; do
  [[ -x $BIN/$f ]] || die "$BIN/$f is missing: run bash k8s/k3s/cluster.sh build"
done
if pid_alive "$(cat "$RUN/k3s.pid" 2>/dev/null)"; then
  log "k3s is already running (PID $(cat "$RUN/k3s.pid")); kubeconfig: ${KUBECONFIG_FILE#"$ROOT"/}"
  exit 0
fi
pid_alive "$(cat "$RUN/containerd.pid" 2>/dev/null)" \
  && die "containerd from an earlier up is still running: run bash k8s/k3s/cluster.sh down first"

started=$(date +%s)
mkdir -p "$RUN" "$LOGS" "$HOST_SAVE" "$CNI_CONF_DIR" "$CNI_IPAM_DIR" "$CONTAINERD_ROOT" "$CONTAINERD_STATE"
step() { log "$1 (+$(seconds_since "$started") s)"; }

# The host as it is now. Kept from an earlier up whose down did not finish: that one saw the host untouched.
save_host() {
  [[ -e $HOST_SAVE/complete ]] && return 0
  local path
  sysctl_snapshot >"$HOST_SAVE/sysctl.conf"
  : >"$HOST_SAVE/absent-paths"
  for path in "${HOST_PATHS[@]}"; do
    [[ -e $path ]] || echo "$path" >>"$HOST_SAVE/absent-paths"
  done
  nft list tables >"$HOST_SAVE/nft-tables" 2>/dev/null || :
  ipset list -n >"$HOST_SAVE/ipsets" 2>/dev/null || :
  ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 >"$HOST_SAVE/links"
  find /sys/fs/cgroup -maxdepth 2 -mindepth 2 -type d >"$HOST_SAVE/cgroups" 2>/dev/null || :
  touch "$HOST_SAVE/complete"
}

write_containerd_config() {
  # restrict_oom_score_adj: without CAP_SYS_RESOURCE every sandbox fails ("can't get final child's PID from
  # pipe: EOF"). sandbox_image: the local pause image (nothing is pulled). Registries point at a closed local
  # port, so a missing image fails at once instead of reaching out.
  cat >"$LOCAL/containerd/config.toml" <<CONF
version = 2
root = "$CONTAINERD_ROOT"
state = "$CONTAINERD_STATE"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CONTAINERD_ROOT/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CNI_CONF_DIR"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$LOCAL/containerd/certs.d"
CONF
  local registry
  for registry in _default docker.io registry.k8s.io quay.io ghcr.io gcr.io; do
    mkdir -p "$LOCAL/containerd/certs.d/$registry"
    printf 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' \
      >"$LOCAL/containerd/certs.d/$registry/hosts.toml"
  done
  mkdir -p "$LOCAL/containerd/certs.d/$REGISTRY"
  printf 'server = "http://%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$REGISTRY" "$REGISTRY" \
    >"$LOCAL/containerd/certs.d/$REGISTRY/hosts.toml"
}

write_registry_config() {
  mkdir -p "$REGISTRY_DATA/data"
  cat >"$REGISTRY_DATA/config.yml" <<CONF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $REGISTRY_DATA/data}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:${REGISTRY##*:}
CONF
}

# flannel is off: a plain bridge (cni0) with host-local addresses. Pods get routes to the cluster's own ranges
# and to the node only, no default route: nothing in a pod can reach past this machine.
write_cni_config() {
  local node_ip=$1
  cat >"$CNI_CONF_DIR/10-fraud-k3s.conflist" <<CONF
{
  "cniVersion": "1.0.0",
  "name": "fraud-k3s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CNI_IPAM_DIR",
        "ranges": [[{"subnet": "$NODE_POD_CIDR"}]],
        "routes": [{"dst": "$CLUSTER_CIDR"}, {"dst": "$SERVICE_CIDR"}, {"dst": "$node_ip/32"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CONF
}

start_bg() {  # name command...: run in its own session, log to logs/name.log, PID in run/name.pid
  local name=$1
  shift
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

# A failed start leaves what did start running, for a look at the logs; down stops it.
trap '(($? == 0)) || log "not up; stop what started with: bash k8s/k3s/cluster.sh down"' EXIT

wait_until() {  # what timeout-seconds command...
  local what=$1 timeout=$2 deadline
  shift 2
  deadline=$(($(date +%s) + timeout))
  until "$@" >/dev/null 2>&1; do
    (($(date +%s) < deadline)) || die "timed out after ${timeout} s waiting for $what (logs: ${LOGS#"$ROOT"/})"
    pid_alive "$(cat "$RUN/containerd.pid")" || die "containerd exited: see ${LOGS#"$ROOT"/}/containerd.log"
    [[ ! -e $RUN/k3s.pid ]] || pid_alive "$(cat "$RUN/k3s.pid")" || die "k3s exited: see ${LOGS#"$ROOT"/}/k3s.log"
    sleep 1
  done
}

kubectl_() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
rollout() { kubectl_ -n kube-system rollout status "deploy/$1" --timeout=5s; }

save_host
node_ip=$(ip -4 -o addr show dev "$(ip -4 route show default | awk '{print $5; exit}')" | awk '{print $4; exit}')
node_ip=${node_ip%/*}
[[ -n $node_ip ]] || die "no IPv4 address on the default route's interface: the node needs one"
write_containerd_config
write_cni_config "$node_ip"

rm -f "$RUN/k3s.pid"
start_bg containerd containerd --config "$LOCAL/containerd/config.toml"
wait_until containerd 30 ctr --address "$CONTAINERD_SOCK" version
step "containerd up (PID $(cat "$RUN/containerd.pid"))"
write_registry_config
start_bg registry docker-registry serve "$REGISTRY_DATA/config.yml"
wait_until "the registry" 30 curl -fsS "http://$REGISTRY/v2/"
step "registry on $REGISTRY (PID $(cat "$RUN/registry.pid"))"

# The addon images under the names k3s's manifests use; imported once (containerd's root is kept by down).
for archive in "$CACHE"/images/*.tar; do
  name=$(tar -xOf "$archive" index.json | sed -n 's/.*"org.opencontainers.image.ref.name":"\([^"]*\)".*/\1/p')
  [[ -n $name ]] && ctr_k8s images ls -q | grep -qxF "$name" && continue
  ctr_k8s images import "$archive" >/dev/null
done
step "addon images in containerd: $(ctr_k8s images ls -q | grep -c rancher/)"

rm -f "$KUBECONFIG_FILE"
# WatchList=false on all four control-plane parts: kine (SQLite) cannot serve watch-list requests, which Spark's
# pod watches use. conntrack-* 0: kube-proxy leaves the host's conntrack sysctls alone. No image garbage
# collection and eviction only on a nearly full disk: every image here was built and imported, none can be pulled
# back, and the disk is the host's, shared (kubelet's 85% default once deleted the pause image mid-run).
start_bg k3s "$BIN/k3s" server \
  --data-dir "$K3S_DATA" \
  --write-kubeconfig "$KUBECONFIG_FILE" --write-kubeconfig-mode 0600 \
  --container-runtime-endpoint "unix://$CONTAINERD_SOCK" \
  --pause-image "$PAUSE_IMAGE" \
  --node-ip "$node_ip" \
  --cluster-cidr "$CLUSTER_CIDR" --service-cidr "$SERVICE_CIDR" --cluster-dns "$CLUSTER_DNS" \
  --flannel-backend none \
  --disable traefik,servicelb,metrics-server --disable-helm-controller \
  --kubelet-arg image-gc-high-threshold=100 --kubelet-arg image-gc-low-threshold=99 \
  --kubelet-arg 'eviction-hard=memory.available<100Mi,nodefs.available<2%,imagefs.available<2%' \
  --kube-proxy-arg conntrack-max-per-core=0 \
  --kube-proxy-arg conntrack-tcp-timeout-established=0s \
  --kube-proxy-arg conntrack-tcp-timeout-close-wait=0s \
  --kube-apiserver-arg feature-gates=WatchList=false \
  --kube-controller-manager-arg feature-gates=WatchList=false \
  --kube-scheduler-arg feature-gates=WatchList=false \
  --kube-cloud-controller-manager-arg feature-gates=WatchList=false
wait_until "the API server" 120 kubectl_ get --raw /readyz
step "API server ready (k3s PID $(cat "$RUN/k3s.pid"))"
wait_until "the node" 120 kubectl_ wait --for=condition=Ready node --all --timeout=5s
step "node Ready"
wait_until CoreDNS 180 rollout coredns
step "CoreDNS running"
wait_until local-path-provisioner 180 rollout local-path-provisioner
step "local-path-provisioner running"
log "cluster up in $(seconds_since "$started") s; export KUBECONFIG=${KUBECONFIG_FILE#"$ROOT"/}"
