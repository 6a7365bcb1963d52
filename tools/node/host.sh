#!/usr/bin/env bash
# The real node's footprint on the host, in one place: what a run changes outside its own files,
# how that is recorded first, and how it is put back.
#
#   host.sh hold     Started by berth-testenv before the node's processes, in a process group of its
#                    own and with a pipe on stdin from the process that runs the node. It takes the
#                    machine-wide lock (one real node per machine; waits up to
#                    BERTH_NODE_LOCK_WAIT seconds, default 600, for another run to end), sweeps
#                    what a killed run left, records the host's state, sets up the node's network
#                    and prints "ready". Then it waits until its stdin closes, which happens when
#                    that process ends in any way (exit, panic, Ctrl-C, SIGKILL), cleans up, and
#                    releases the lock last.
#   host.sh sysctls  Puts back the kernel settings the kubelet changed at its start (it reads them
#                    only then), so the machine runs with its own for the rest of the run.
#   host.sh clean    Sweeps what a run left (for a run whose holder was itself killed), under the lock.
#
# What a run changes, and how it is undone:
#   processes   containerd, its shims, the containers, the kubelet, kube-proxy, kube-router: killed
#               (the node's daemons die with their parent anyway; shims and containers do not).
#   cgroups     $cgroup_name in every cgroup hierarchy (the kubelet's cgroupRoot): removed.
#   mounts      everything mounted under $state and $data (volumes, rootfs, shm, the kubelet's
#               rshared root) and the pods' network namespaces (/run/netns/cni-*): unmounted.
#   interfaces  the bridge $bridge (and the pods' veths, which go with their namespaces): deleted.
#   routes      unreachable $pod_range, $service_range on the bridge: deleted with the bridge or by hand.
#   iptables    every table that existed is restored from its iptables-save snapshot; tables
#               (nftables, as Debian's iptables uses) that did not exist are deleted.
#   ipsets      the sets kube-router made (those not there before): destroyed.
#   sysctls     the kubelet's six, ip_forward and the others in $sysctls: restored.
#   files       $state, $data and the few fixed paths containerd, the CNI plugins and the kubelet use
#               (/var/lib/cni, /run/netns, /var/log/containers, ...) where they did not exist before.
set -uo pipefail

state=${BERTH_NODE_STATE:-/run/berth-node}
data=${BERTH_NODE_DATA:-/var/lib/berth-node}
lock=${BERTH_NODE_LOCK:-/run/berth-node.lock}
bridge=${BERTH_NODE_BRIDGE:-berth0}
gateway=${BERTH_NODE_GATEWAY:-198.18.0.1/24}
pod_range=${BERTH_POD_RANGE:-198.18.0.0/16}
service_range=${BERTH_SERVICE_RANGE:-198.19.0.0/16}
cgroup_name=${BERTH_NODE_CGROUP:-berth-node}
wait_seconds=${BERTH_NODE_LOCK_WAIT:-600}
before=$state.before

sysctls="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
  net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
  net.bridge.bridge-nf-call-ip6tables net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait"
# Fixed paths the node's components use whatever their configuration says.
fixed_paths="/var/lib/cni /run/netns /var/log/containers /var/log/pods /etc/cni /opt/cni
  /run/containerd /var/lib/containerd /etc/containerd /var/lib/kubelet"

log() { printf '[tools/node/host] %s\n' "$*" >&2; }

# The mount points under the node's directories and its pods' network namespaces, deepest first.
node_mounts() {
  awk '{print $5}' /proc/self/mountinfo |
    grep -E "^($state|$data)(/|$)|^/run/netns/cni-|^/var/run/netns/cni-" |
    awk '{print length, $0}' | sort -rn | cut -d' ' -f2-
}

# Processes of the node: in its cgroups, or naming its directories (containerd's shims).
node_pids() {
  {
    cat /sys/fs/cgroup/*/"$cgroup_name"/cgroup.procs 2>/dev/null
    find /sys/fs/cgroup/*/"$cgroup_name" -name cgroup.procs -exec cat {} + 2>/dev/null
    # The bracket keeps grep's own command line from matching.
    grep -lsaE "[${state:0:1}]${state:1}|[${data:0:1}]${data:1}" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3
  } | sort -un | grep -vx -e "$$" -e "$BASHPID" || true
}

record() {
  rm -rf "$before.tmp" && mkdir -p "$before.tmp"
  local s
  for s in $sysctls; do
    [ -e "/proc/sys/${s//.//}" ] && echo "$s=$(sysctl -n "$s")"
  done > "$before.tmp/sysctl"
  iptables-save > "$before.tmp/iptables" 2>/dev/null
  ip6tables-save > "$before.tmp/ip6tables" 2>/dev/null
  nft list tables > "$before.tmp/nft-tables" 2>/dev/null
  ipset list -n > "$before.tmp/ipsets" 2>/dev/null
  local p
  for p in $fixed_paths; do [ -e "$p" ] && echo "$p"; done > "$before.tmp/paths"
  ls -d /run/netns/cni-* 2>/dev/null > "$before.tmp/netns"
  mv "$before.tmp" "$before"
}

setup() {
  mkdir -p "$state" "$data"
  local dir
  for dir in /sys/fs/cgroup/*/; do
    mountpoint -q "$dir" || continue
    mkdir -p "$dir$cgroup_name"
    # A v1 cpuset cgroup takes no task until it has cpus and mems.
    if [ -e "$dir$cgroup_name/cpuset.cpus" ]; then
      cat "${dir}cpuset.cpus" > "$dir$cgroup_name/cpuset.cpus"
      cat "${dir}cpuset.mems" > "$dir$cgroup_name/cpuset.mems"
    fi
  done
  ip link add "$bridge" type bridge &&
    ip addr add "$gateway" dev "$bridge" &&
    ip link set "$bridge" up || return 1
  # Traffic to pod addresses that are not on this node (kwok's pods) and to unused Service
  # addresses stays here instead of following the default route out of the machine.
  ip route add unreachable "$pod_range" || return 1
  ip route add "$service_range" dev "$bridge" src "${gateway%/*}" || return 1
  # Forward only between the pods on the bridge; mangle runs before the filter rules that
  # kube-proxy and kube-router prepend, so nothing can accept a packet past this guard.
  iptables -t mangle -N BERTH-NODE-GUARD &&
    iptables -t mangle -A BERTH-NODE-GUARD -i "$bridge" -o "$bridge" -j RETURN &&
    iptables -t mangle -A BERTH-NODE-GUARD -j DROP &&
    iptables -t mangle -I FORWARD 1 -j BERTH-NODE-GUARD || return 1
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 >/dev/null || return 1
}

restore_sysctls() {
  [ -e "$before/sysctl" ] || return 0
  local line name value
  while IFS= read -r line; do
    name=${line%%=*} value=${line#*=}
    [ "$(sysctl -n "$name" 2>/dev/null)" = "$value" ] || sysctl -qw "$name=$value" >/dev/null ||
      log "could not restore $name to $value"
  done < "$before/sysctl"
}

clean() {
  [ -d "$before" ] || [ -d "$state" ] || [ -d "$data" ] || ip link show "$bridge" >/dev/null 2>&1 || return 0
  local round pids
  for round in $(seq 1 50); do
    pids=$(node_pids)
    [ -z "$pids" ] && break
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null
    sleep 0.1
  done
  [ -n "$(node_pids)" ] && log "processes still alive after 5 s: $(node_pids | paste -sd' ')"

  local m
  for m in $(node_mounts); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"; done
  if [ -e "$before/netns" ]; then
    for m in /run/netns/cni-*; do
      [ -e "$m" ] && ! grep -qx "$m" "$before/netns" && rm -f "$m"
    done
  fi

  ip link del "$bridge" 2>/dev/null
  ip route del unreachable "$pod_range" 2>/dev/null
  ip route del "$service_range" 2>/dev/null

  if [ -e "$before/nft-tables" ]; then
    [ -s "$before/iptables" ] && iptables-restore < "$before/iptables"
    [ -s "$before/ip6tables" ] && ip6tables-restore < "$before/ip6tables"
    local table
    nft list tables 2>/dev/null | while read -r _ family name; do
      grep -qx "table $family $name" "$before/nft-tables" || nft delete table "$family" "$name"
    done
  fi
  if [ -e "$before/ipsets" ]; then
    local set
    for set in $(ipset list -n 2>/dev/null); do
      grep -qx "$set" "$before/ipsets" || ipset destroy "$set" 2>/dev/null || log "could not destroy ipset $set"
    done
  fi

  local dir
  for dir in /sys/fs/cgroup/*/"$cgroup_name"; do
    [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$dir" ] && log "could not remove cgroup $dir"
  done

  restore_sysctls
  if [ -e "$before/paths" ]; then
    local p
    for p in $fixed_paths; do
      [ -e "$p" ] && ! grep -qx "$p" "$before/paths" && rm -rf --one-file-system "$p"
    done
  fi
  if [ -z "$(node_mounts)" ]; then
    rm -rf --one-file-system "$state" "$data" "$before"
  else
    log "left $state and $data: still mounted: $(node_mounts | paste -sd' ')"
  fi
}

take_lock() {
  exec 9>>"$lock"
  if ! flock -n 9; then
    log "another run holds the real node ($(cat "$lock.owner" 2>/dev/null || echo "lock $lock")); waiting up to $wait_seconds s"
    flock -w "$wait_seconds" 9 || { log "the real node is still busy after $wait_seconds s"; return 1; }
  fi
  echo "pid ${BERTH_NODE_OWNER:-$PPID} since $(date -Is)" > "$lock.owner"
}

case ${1:-} in
  hold)
    # Only the answer goes to stdout (fd 3); everything the commands print goes to stderr.
    exec 3>&1 1>&2
    trap '' INT HUP
    take_lock || { echo busy >&3; exit 3; }
    if [ -d "$before" ] || [ -d "$state" ] || [ -d "$data" ]; then
      log "sweeping what an earlier, killed run left"
      clean
    fi
    record
    trap 'clean; rm -f "$lock.owner"; exit 0' TERM
    if ! setup; then
      log "setting up the node's network failed"
      clean
      echo failed >&3
      exit 1
    fi
    echo ready >&3
    exec 3>&-
    # Until the node's process ends, however it ends.
    cat > /dev/null
    clean
    rm -f "$lock.owner"
    ;;
  sysctls)
    restore_sysctls
    ;;
  clean)
    take_lock || exit 3
    clean
    rm -f "$lock.owner"
    ;;
  *)
    echo "usage: $0 hold|sysctls|clean" >&2
    exit 2
    ;;
esac
