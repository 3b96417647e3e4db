# Shell helpers the benchmark scripts share (sourced, not run).

# field NAME LINE: the number after " NAME=" in a benchmark's result line.
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }

# callgrind FUNCTION-GLOB OUTFILE COMMAND...: runs COMMAND under callgrind collecting only inside
# the function; sets $total (instructions) and $arc (instructions inside retain/release/alloc/
# malloc/free: 0 is the proof that the loop does neither).
callgrind() {
  local glob=$1 file=$2; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$file" --toggle-collect="$glob" "$@" >/dev/null 2>&1
  report=$(callgrind_annotate --auto=no --threshold=100 "$file" 2>/dev/null)
  total=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}' <<<"$report")
  arc=$( { grep -E ':(swift_retain|swift_release|swift_allocObject|swift_deallocObject|swift_bridgeObjectRetain|swift_bridgeObjectRelease|malloc|__libc_malloc|free|__libc_free)( |$)' <<<"$report" || true; } \
        | awk '{gsub(",", "", $1); s += $1} END {print s + 0}')
}

# vhost_scratch NAME: a scratch folder $tmp (/tmp/NAME.XXXXXX), the list $pids of background
# processes to stop at exit (INT, then KILL a second later), the EAL arguments of every testpmd
# here, and the counter $n for backend's DPDK file prefixes. KEEP=1 keeps the folder.
vhost_scratch() {
  tmp=$(mktemp -d "/tmp/$1.XXXXXX")
  pids=()
  EAL=(--no-huge -m 512 --no-pci)
  n=0
  trap vhost_cleanup EXIT
}
vhost_cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
  rm -rf /var/run/dpdk/uknet-vb-*
}

# backend MODE [NAME...]: dpdk-testpmd forwarding in MODE between net_vhost ports (vhost-user
# backends listening on $tmp/NAME.sock) polling on CPU 1, in the background; sets $backend (pid)
# and $backend_log and adds the pid to $pids (stopped at exit). Uses vhost_scratch's $tmp, $n and
# EAL, and TXPKTS. Waits until its sockets exist.
backend() {
  local mode=$1; shift
  n=$((n + 1))
  backend_log=$tmp/backend.$n.log
  local vdevs=() socks=()
  for name in "$@"; do vdevs+=(--vdev "net_vhost${#socks[@]},iface=$tmp/$name.sock"); socks+=("$tmp/$name.sock"); done
  rm -f "${socks[@]}"
  dpdk-testpmd --lcores=0@0,1@1 "${EAL[@]}" --file-prefix=uknet-vb-$n "${vdevs[@]}" -- -a --stats-period 1 \
    --forward-mode="$mode" --total-num-mbufs=32768 --txpkts="${TXPKTS:-60}" >"$backend_log" 2>&1 &
  backend=$!
  pids+=("$backend")
  for _ in $(seq 100); do
    local ok=1
    for s in "${socks[@]}"; do [ -S "$s" ] || ok=0; done
    [ $ok = 1 ] && return 0
    sleep 0.1
  done
  echo "testpmd did not create its sockets"; cat "$backend_log"; exit 1
}
stop_backend() { kill -INT "$backend" 2>/dev/null || true; wait "$backend" 2>/dev/null || true; }

# kv_summary JSON LABEL: one line from `pktgen kv --json`'s result (replies/s, p50, p99, losses);
# fails if the file is not a result.
kv_summary() {
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency"]
print(f"  {sys.argv[2]:9s}: {r['replies_per_second']:.0f} replies/s, p50 {l['p50_us']:.1f} us, p99 {l['p99_us']:.1f} us "
      f"({r['requests']} requests, {r['timeouts']} timeouts, {r['wrong_values']} wrong values)")
PY
}

# median X...: the median of the numbers, 3 decimals. ratio A B: A/B, 2 decimals (0 if B is 0).
median() { python3 -c 'import statistics, sys; print("%.3f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
ratio() { python3 -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print("%.2f" % (a / b if b else 0))' "$1" "$2"; }
# mpps_of: the Mpps figure of a `pktgen tx/rx` result line on standard input.
mpps_of() { sed -n 's/.*: \([0-9.]*\) Mpps.*/\1/p' | head -1; }
