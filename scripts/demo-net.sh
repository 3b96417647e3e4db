#!/usr/bin/env bash
# The demo's private network: in namespace NS, TAPs kv0 (KV store) and pg0 (load generator)
# joined by bridge br0. No addresses: the programs speak Ethernet/IPv4 on the TAPs themselves
# (store 192.0.2.2, generator 192.0.2.3), so nothing here ever touches the host's network.
#   scripts/demo-net.sh up NS     create it (a leftover NS of that name is removed first)
#   scripts/demo-net.sh down NS   remove it; fine if already gone
set -euo pipefail

usage() { echo "usage: $0 up|down NAMESPACE" >&2; exit 2; }
die() { echo "demo-net: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || usage
cmd=$1 ns=$2
[[ $ns =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad namespace name '$ns'"
((EUID == 0)) || die "must run as root (creates a network namespace, TAPs and a bridge)"
command -v ip >/dev/null || die "'ip' not found (apt-get install iproute2)"

down() {
  # Captured first: with pipefail, grep -q quitting early could fail the pipe and skip the cleanup.
  local names; names=$(ip netns list | awk '{print $1}')
  grep -qxF "$ns" <<<"$names" || return 0
  # Persistent TAPs are deleted explicitly: a namespace kept alive by a straggling process
  # would otherwise keep them too.
  for dev in br0 kv0 pg0; do ip -n "$ns" link del "$dev" 2>/dev/null || true; done
  pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
  [[ -z $pids ]] || echo "demo-net: warning: processes still in $ns (pids $pids); it lives on until they exit" >&2
  ip netns del "$ns"
}

up() {
  down
  ip netns add "$ns"
  # Before any link exists, so every new one inherits it: no router solicitations, DAD or MLD
  # from the kernel on the bridge, only the demo's own frames.
  if ip netns exec "$ns" test -d /proc/sys/net/ipv6; then
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  fi
  ip -n "$ns" link set lo up
  # No STP and forward_delay 0: a port forwards as soon as its TAP has carrier, i.e. a program
  # opened it (measured: well under 1 ms later; a frame written in that same instant can still
  # be dropped), not after 2 x 15 s of listening and learning.
  # No multicast snooping: with it br0 joins 224.0.0.106 and sends IGMP reports to the ports.
  ip -n "$ns" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
  for dev in kv0 pg0; do
    # Persistent, so the programs can attach by name; the framing (IFF_NO_PI or not) is set by
    # the flags the program passes to TUNSETIFF, not by this.
    ip -n "$ns" tuntap add dev "$dev" mode tap
    ip -n "$ns" link set "$dev" master br0 up
  done
  ip -n "$ns" link set br0 up
}

case $cmd in
  up) up ;;
  down) down ;;
  *) usage ;;
esac
