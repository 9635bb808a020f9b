#!/usr/bin/env bash
# A single-node k3s cluster on Debian's containerd, for machines without Docker (where kind cannot run).
#   bash k8s/k3s/cluster.sh up        build what is missing (first time ~15-25 min), start containerd + k3s, wait
#                                     for the node, CoreDNS and local-path; kubeconfig in .local/k3s/kubeconfig
#   bash k8s/k3s/cluster.sh images [TAG]   build images/*/Dockerfile with podman, import them (tag: dev)
#   bash k8s/k3s/cluster.sh down      stop everything by PID and restore the host (idempotent)
#   bash k8s/k3s/cluster.sh status    what runs, the node and the pods
#   bash k8s/k3s/cluster.sh build     only the builds (packages, k3s, addon images, rootfs), all cached
# Builds and caches: .cache/k3s (kept by down). Cluster state, logs, PIDs: .local/k3s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

status() {
  # shellcheck source=lib.sh
  source "$here/lib.sh"
  local name pid
  for name in containerd k3s; do
    pid=$(cat "$RUN/$name.pid" 2>/dev/null || :)
    if pid_alive "$pid"; then echo "$name: running (PID $pid)"; else echo "$name: not running"; fi
  done
  [[ -s $KUBECONFIG_FILE ]] || return 0
  echo "KUBECONFIG=$KUBECONFIG_FILE"
  "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" get nodes -o wide
  "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" get pods -A
}

command=${1:-}
[[ $# -gt 0 ]] && shift
case $command in
  build) bash "$here/build.sh" ;;
  up) started=$(date +%s)
    bash "$here/build.sh"
    bash "$here/up.sh"
    echo "up (builds included): $(($(date +%s) - started)) s" >&2 ;;
  images) bash "$here/images.sh" "$@" ;;
  down) bash "$here/down.sh" ;;
  status) status ;;
  *) echo "usage: $0 up|images [TAG]|down|status|build" >&2; exit 2 ;;
esac
