#!/usr/bin/env bash
# The peer for the packet generator's TX benchmark: DPDK's own testpmd in txonly mode on one
# net_null port, one forwarding core pinned to CPU 1, printing one line:
#   testpmd txonly net_null 64B: Mpps=N.NN
# N is the (lower) MEDIAN of testpmd's per-second Tx-pps samples, the first dropped (it is printed as
# forwarding starts and reads 0). Median, not max: the machine is a noisy 2-vCPU VM, and a max
# would reward one lucky second.
# Frame size: --txpkts is the mbuf length, i.e. the frame WITHOUT FCS (Ethernet+IPv4+UDP headers
# and payload; the NIC appends the FCS). --txpkts=60 therefore sends 60-byte frames, which are
# 64 bytes on the wire: the usual "64-byte frame". (--txpkts=64 would be 68 on the wire.)
# Env: SECONDS (default 5) = how long testpmd forwards; it runs 2 s longer, as EAL start takes ~1 s.
# Samples come every ~2 s, not every 1 s: EAL's TSC estimate here is a little above the real rate,
# so testpmd's 1-s sleeps never reach its 1-s period (each sample is still correct: it divides by
# the elapsed time). SECONDS=5 gives about 3 samples. Needs dpdk-testpmd (Debian's dpdk-dev), root.
set -euo pipefail

# bash's own $SECONDS counts seconds since the shell started, so ${SECONDS:-5} would give 0
# when the caller set nothing: read the caller's environment instead.
secs=$(printenv SECONDS || echo 5)
if ! [[ $secs =~ ^[0-9]+$ ]] || ((secs < 2)); then
  echo "testpmd-txonly: SECONDS must be an integer >= 2 (got '$secs')" >&2; exit 2
fi
command -v dpdk-testpmd >/dev/null || { echo "testpmd-txonly: dpdk-testpmd not found (apt-get install dpdk-dev)" >&2; exit 2; }

# A private --file-prefix so a concurrent DPDK process is not disturbed; EAL leaves its runtime
# dir behind, so remove it (root: /var/run/dpdk, else $XDG_RUNTIME_DIR/dpdk).
prefix=uknet-txonly-$$
if ((EUID == 0)); then rundir=/var/run/dpdk/$prefix; else rundir=${XDG_RUNTIME_DIR:-/tmp}/dpdk/$prefix; fi
log=$(mktemp)
trap 'rm -rf "$rundir" "$log"' EXIT

# --lcores replaces -l (EAL refuses both): lcore 0 (main, stats) on CPU 0, forwarding on CPU 1.
# -m 512 without hugepages leaves too little for testpmd's default mbuf count.
rc=0
timeout -k 10 $((secs + 2)) dpdk-testpmd --lcores=0@0,1@1 --no-huge -m 512 --no-pci \
  --file-prefix="$prefix" --vdev=net_null0 -- \
  -a --stats-period 1 --forward-mode=txonly --txpkts=60 --total-num-mbufs=32768 \
  </dev/null >"$log" 2>&1 || rc=$?

# 124 is timeout ending it as planned; anything else (a failed start, an early exit) is a failure.
if ((rc != 124)); then
  echo "testpmd-txonly: dpdk-testpmd exited with $rc before the timeout; its output:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi

mpps=$(awk '/Tx-pps:/ { if (n++ > 0) print $2 }' "$log" | sort -n |
  awk '{ a[NR] = $1 } END { if (NR) printf "%.2f", a[int((NR + 1) / 2)] / 1e6 }')
if [[ -z $mpps ]]; then
  echo "testpmd-txonly: no Tx-pps samples after the first (did a port come up?); its output:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
echo "testpmd txonly net_null 64B: Mpps=$mpps"
