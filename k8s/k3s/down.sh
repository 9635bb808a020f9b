#!/usr/bin/env bash
# Stop the k3s cluster and put the host back as up.sh found it: pods, k3s and containerd stopped by PID, their
# mounts unmounted, cni0 and the KUBE-*/CNI-* iptables chains (and the policy controller's ipsets) removed,
# the saved sysctls restored, the state k3s wrote deleted. Keeps .cache/k3s (builds, images) and containerd's
# image store. Idempotent: safe to run when nothing is up.
#   k8s/k3s/down.sh
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need_root
started=$(date +%s)
mkdir -p "$LOGS"

stop_pid() {  # name pid [seconds]: SIGTERM, then SIGKILL after the grace period
  local name=$1 pid=$2 grace=${3:-30} i
  pid_alive "$pid" || return 0
  log "stopping $name (PID $pid)"
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
  log "$name (PID $pid) did not stop in ${grace} s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || :
  sleep 0.5
}

containerd_alive() { pid_alive "$(cat "$RUN/containerd.pid" 2>/dev/null)"; }

# k3s first: the kubelet then stops restarting pods. k3s leaves the pods running by design.
stop_pid k3s "$(cat "$RUN/k3s.pid" 2>/dev/null)" 60
rm -f "$RUN/k3s.pid"

# The pods through the CRI while containerd still runs: stops containers, tears down their network (veths,
# addresses) and unmounts their volumes.
if containerd_alive && [[ -x $BIN/crictl ]]; then
  timeout 120 "$BIN/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCK" --image-endpoint \
    "unix://$CONTAINERD_SOCK" rmp --all --force >>"$LOGS/down.log" 2>&1 \
    || log "crictl rmp failed ($(tail -1 "$LOGS/down.log")); killing by PID below"
  for id in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks kill -s KILL "$id" 2>/dev/null || :; done
  sleep 0.5
  for id in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks rm -f "$id" >/dev/null 2>&1 || :; done
  for id in $(ctr_k8s containers ls -q 2>/dev/null); do ctr_k8s containers rm "$id" >/dev/null 2>&1 || :; done
fi
stop_pid containerd "$(cat "$RUN/containerd.pid" 2>/dev/null)" 30
rm -f "$RUN/containerd.pid"
stop_pid registry "$(cat "$RUN/registry.pid" 2>/dev/null)" 10
rm -f "$RUN/registry.pid"

# Whatever outlived containerd (a crash, a kill -9), by PID: containers' first processes (init.pid in the state
# folder), anything still in the kubelet's cgroups, and the shims (below).
pids=()
if [[ -d $CONTAINERD_STATE ]]; then
  while IFS= read -r f; do pids+=("$(cat "$f")"); done \
    < <(find "$CONTAINERD_STATE" -name init.pid -o -name shim.pid 2>/dev/null)
fi
while IFS= read -r f; do mapfile -t -O "${#pids[@]}" pids <"$f"; done \
  < <(find /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/memory/kubepods -name cgroup.procs 2>/dev/null)
# Shims name containerd's socket on their command line (-address): found even when the state folder is gone.
for dir in /proc/[0-9]*; do
  [[ $(tr '\0' ' ' 2>/dev/null <"$dir/cmdline") == *containerd-shim*"$CONTAINERD_SOCK"* ]] && pids+=("${dir#/proc/}")
done
for pid in ${pids[@]+"${pids[@]}"}; do
  if ! [[ $pid =~ ^[0-9]+$ ]] || ! pid_alive "$pid"; then continue; fi
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || continue
  # Only this cluster's: a shim on its socket or a process in the kubelet's cgroups (a recorded PID may be reused).
  [[ $cmdline == *"$CONTAINERD_SOCK"* ]] || grep -q kubepods "/proc/$pid/cgroup" 2>/dev/null || continue
  log "killing leftover PID $pid (${cmdline:0:80})"
  kill -KILL "$pid" 2>/dev/null || :
done
((${#pids[@]})) && sleep 0.5

# Mounts under the kubelet's, k3s's, containerd's and this cluster's folders, deepest first. Lazy unmount as
# the fallback for a busy one.
mount_roots=(/var/lib/kubelet /run/k3s /run/containerd /run/netns "$LOCAL" /var/lib/rancher)
for ((round = 0; round < 3; round++)); do
  mapfile -t mounts < <(awk '{print $2}' /proc/mounts | sed 's/\\040/ /g' | while IFS= read -r m; do
    for r in "${mount_roots[@]}"; do [[ $m == "$r" || $m == "$r"/* ]] && echo "$m"; done
  done | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
  ((${#mounts[@]})) || break
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || :; done
done

# Network: the pods' veths on cni0, then the bridge.
for link in $(ip -o link show master cni0 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
  ip link delete "$link" 2>/dev/null || :
done
for link in cni0 flannel.1 kube-ipvs0 kube-bridge; do
  ip link show "$link" >/dev/null 2>&1 && ip link delete "$link" && log "removed link $link"
done

# iptables: every table rewritten without the cluster's chains and the rules that jump to them (iptables-restore
# replaces only the tables it is given, atomically); then the tables and ipsets that did not exist before up.
for family in iptables ip6tables; do
  for variant in "" -legacy; do
    command -v "$family$variant-save" >/dev/null || continue
    rules=$("$family$variant-save" 2>/dev/null) || continue
    (($(cluster_rules count <<<"$rules"))) || continue
    cluster_rules keep <<<"$rules" | "$family$variant-restore" && log "removed the cluster's $family$variant rules"
  done
done
if command -v nft >/dev/null; then
  while IFS= read -r table; do
    grep -qxF "$table" "$HOST_SAVE/nft-tables" 2>/dev/null && continue
    # A table created while the cluster ran goes when it is the cluster's own or holds no rule any more.
    # shellcheck disable=SC2086  # "table FAMILY NAME" splits into nft's arguments
    if [[ $table =~ kube|cni|k3s ]] \
        || ! nft list $table 2>/dev/null | grep -vqE '^\s*(table .*\{|chain .*\{|type .*policy .*;|\}|)\s*$'; then
      nft delete $table 2>/dev/null && log "removed nft $table"
    fi
  done < <(nft list tables 2>/dev/null)
fi
if command -v ipset >/dev/null; then
  for set in $(ipset list -n 2>/dev/null); do
    if [[ -e $HOST_SAVE/ipsets ]]; then
      grep -qxF "$set" "$HOST_SAVE/ipsets" && continue
    else
      [[ $set =~ ^(inet6:)?(KUBE-|kube-router) ]] || continue  # nothing saved: the policy controller's only
    fi
    ipset destroy "$set" 2>/dev/null || log "ipset $set still in use"
  done
fi

# Sysctls back to their saved values: ip_forward and the all/default ones first (writing them resets every
# interface's), then whatever still differs.
if [[ -s $HOST_SAVE/sysctl.conf ]]; then
  for ((pass = 0; pass < 3; pass++)); do
    mapfile -t changed < <(sysctl_changed "$HOST_SAVE/sysctl.conf" \
      | awk '{print ($1 ~ /ip_forward|\.all\.|\.default\./ ? 0 : 1), $0}' | sort -s -k1,1n | cut -d' ' -f2-)
    ((${#changed[@]})) || break
    for line in "${changed[@]}"; do
      sysctl -qw "${line%% = *}=${line#* = }" && log "restored ${line%% = *} = ${line#* = }"
    done
  done
fi

# The kubelet's cgroups (cgroup v1: one tree per controller), deepest first.
for dir in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
  [[ -d $dir ]] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || :
done

# State k3s, the kubelet, CNI and containerd wrote: the host paths that did not exist before up (the full list
# when up never saved one) and the cluster's own state under .local/k3s. containerd's image store stays.
if [[ -s $HOST_SAVE/absent-paths ]]; then mapfile -t absent <"$HOST_SAVE/absent-paths"; else absent=(); fi
[[ -e $HOST_SAVE/complete ]] || absent=(/etc/rancher /var/lib/rancher /var/lib/kubelet /var/lib/cni /var/log/pods
  /var/log/containers /run/k3s)
for path in "${absent[@]}"; do
  [[ -e $path ]] || continue
  if grep -q " ${path}[/ ]" /proc/mounts; then log "not removing $path: something is still mounted under it"; continue; fi
  rm -rf "$path" && log "removed $path"
done
rm -rf "$K3S_DATA" "$CONTAINERD_STATE" "$LOCAL/cni" "$RUN" "$KUBECONFIG_FILE"

# Check the host is as it was; on a finding, keep the saved state so a second down can finish the job.
problems=()
ip link show cni0 >/dev/null 2>&1 && problems+=("the cni0 bridge exists")
for save in iptables-save ip6tables-save iptables-legacy-save ip6tables-legacy-save; do
  command -v "$save" >/dev/null || continue
  n=$("$save" 2>/dev/null | cluster_rules count)
  ((n == 0)) || problems+=("$save: $n of the cluster's chains or rules")
done
n=$(ipset list -n 2>/dev/null | grep -cE '^(inet6:)?(KUBE-|kube-router)' || :)
((n == 0)) || problems+=("$n of the network-policy controller's ipsets")
left=$(awk '{print $2}' /proc/mounts | grep -cE "^(/var/lib/kubelet|/run/k3s|/run/containerd|/run/netns|$LOCAL)(/|$)" || :)
((left == 0)) || problems+=("$left mounts under the kubelet's, k3s's or containerd's folders")
if [[ -s $HOST_SAVE/sysctl.conf ]]; then
  while IFS= read -r line; do problems+=("sysctl ${line%% = *} is not ${line#* = }"); done \
    < <(sysctl_changed "$HOST_SAVE/sysctl.conf")
fi
for dir in /proc/[0-9]*; do
  cmdline=$(tr '\0' ' ' 2>/dev/null <"$dir/cmdline") || continue
  [[ $cmdline == *"$CONTAINERD_SOCK"* || $cmdline == "$BIN/k3s "* ]] && problems+=("PID ${dir#/proc/} runs: ${cmdline:0:80}")
done
if ((${#problems[@]})); then
  for p in "${problems[@]}"; do log "not restored: $p"; done
  die "the host is not fully restored; run down again (saved state kept in ${HOST_SAVE#"$ROOT"/})"
fi
rm -rf "$HOST_SAVE"
log "host restored: no cni0, no KUBE-/CNI- iptables chains, no cluster mounts or processes, sysctls as before"
log "down in $(seconds_since "$started") s"
