#!/usr/bin/env bash
# make soak (SOAK_SECONDS=600) / make soak-quick (30 s): the KV store and its
# load under injected faults, through a vhost-user switch that is killed and restarted mid-run.
#
#   dpdk-testpmd, io forwarding between net_vhost ports kv.sock and gen.sock (CPU 1);
#   kvstore --netdev vhost-user:path=kv.sock,reconnect=0.2 --faults ... (CPU 0);
#   pktgen kv --netdev vhost-user:path=gen.sock,reconnect=0.2 --faults ... (CPU 0), closed loop,
#     every reply checked, for SOAK_SECONDS;
#   testpmd killed (SIGKILL: no goodbye on the sockets) at 1/3 and 2/3 of the run, restarted a
#   second later on the same sockets.
# Faults on both programs' devices (FAULTS): frames dropped, duplicated, corrupted, reordered,
# bursts stalled. Corruption is injected on RX only: over vhost-user the checksums are left to
# the receiver (NEEDS_CSUM), so a bit flipped before TX would be summed as if sent that way.
#
# Checks (exit 1 if one fails): both frontends reconnected after each restart and requests were
# answered after the last one; pktgen's own counts add up and it reports its losses; the store
# answered every request it received that was not dropped (its counters), ended cleanly, every
# buffer back in its pool; the store's resident memory at the end within 1 MiB of the start.
# Prints: requests served, faults injected on each side, losses, resident memory at start and end.
# Needs root (DPDK's /var/run/dpdk), dpdk-testpmd, swift.
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECONDS=${SOAK_SECONDS:-600}
FAULTS=${FAULTS:-drop=0.002,duplicate=0.002,reorder=0.002,stall=0.002,seed=11}
RX_FAULTS=${RX_FAULTS:-corrupt=0.002,on=rx,seed=12}
say() { echo "soak [${SECONDS} s]: $*"; }
if ((EUID != 0)); then say "needs root (DPDK's /var/run/dpdk): skipped"; exit 0; fi
command -v dpdk-testpmd >/dev/null || { say "dpdk-testpmd is not installed (Debian: dpdk-dev)"; exit 1; }

swift build -c release --product kvstore >/dev/null
swift build -c release --product pktgen >/dev/null
bin=.build/release
tmp=$(mktemp -d /tmp/uknet-soak.XXXXXX)
prefix=uknet-soak-$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf /var/run/dpdk/$prefix-*
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
failed=0
fail() { echo "soak: FAILED: $*"; failed=1; }

switch_runs=0
switch_start() {
  switch_runs=$((switch_runs + 1))
  rm -f "$tmp/kv.sock" "$tmp/gen.sock"
  dpdk-testpmd --lcores=0@1,1@1 --no-huge -m 512 --no-pci --file-prefix=$prefix-$switch_runs \
    --vdev "net_vhost0,iface=$tmp/kv.sock" --vdev "net_vhost1,iface=$tmp/gen.sock" -- -a --stats-period 10 \
    --forward-mode=io --total-num-mbufs=32768 --no-mlockall >"$tmp/testpmd.$switch_runs.log" 2>&1 &
  switch=$!
  pids+=("$switch")
  for _ in $(seq 600); do [ -S "$tmp/kv.sock" ] && [ -S "$tmp/gen.sock" ] && return 0; sleep 0.1; done
  fail "testpmd did not create its sockets ($tmp/testpmd.$switch_runs.log)"; cat "$tmp/testpmd.$switch_runs.log"; exit 1
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

switch_start
taskset -c 0 "$bin/kvstore" --netdev "vhost-user:path=$tmp/kv.sock,reconnect=0.2" --ip 198.51.100.2/24 --mac 02:00:00:00:00:02 \
  --memory 16 --faults "$FAULTS" >"$tmp/kvstore.log" 2>&1 &
kv=$!
pids+=("$kv")
sleep 1
# pktgen's own duration is only a bound: the script ends the load (SIGINT) a third of the run after
# the last restart, so a slow machine still gives both frontends time to reconnect before the load
# ends. Reaping a killed testpmd waits for kernel work queued on every CPU (its exit_mmap); while
# pktgen spun on CPU 0 with no replies to wait for, that work sat runnable for seconds to minutes
# ("workqueue lockup" in dmesg, reaps of 12-400 s). pktgen kv now naps when no reply has come for
# 10 ms, and testpmd runs without mlockall (less to undo at exit): reaps take under a second.
taskset -c 0 "$bin/pktgen" kv --netdev "vhost-user:path=$tmp/gen.sock,reconnect=0.2" --faults "$RX_FAULTS" \
  --server-ip 198.51.100.2 --server-mac 02:00:00:00:00:02 --ip 198.51.100.3 --mac 02:00:00:00:00:03 \
  --preload --keys 1000 --value-size 32 --get-ratio 0.9 --window 32 --duration $((SOAK_SECONDS * 4 + 300)) --quiet --json \
  >"$tmp/pktgen.json" 2>"$tmp/pktgen.log" &
gen=$!
pids+=("$gen")
say "running ${SOAK_SECONDS} s: kvstore (faults: $FAULTS), pktgen kv (faults: $RX_FAULTS), testpmd killed at 1/3 and 2/3"
sleep 2
rss_start=$(rss_kib "$kv")
kill -0 "$kv" 2>/dev/null || { fail "kvstore ended at start: $(tail -3 "$tmp/kvstore.log")"; KEEP=1; exit 1; }
third=$((SOAK_SECONDS / 3))
for k in 1 2; do
  sleep $((third - (k == 1 ? 2 : 1)))
  killed_at=$SECONDS
  kill -KILL "$switch"; wait "$switch" 2>/dev/null || true
  rm -rf /var/run/dpdk/$prefix-$switch_runs
  say "testpmd killed (reaped after $((SECONDS - killed_at)) s); restarting it in 1 s"
  sleep 1
  switch_start
done
sleep "$third"
kill -0 "$gen" 2>/dev/null && kill -INT "$gen"
wait "$gen" && gen_status=0 || gen_status=$?
kill -0 "$kv" 2>/dev/null || fail "kvstore ended before the load did (log: $(tail -3 "$tmp/kvstore.log"))"
# After the restarts: a short load without faults of its own, GETs only, must be answered.
taskset -c 0 "$bin/pktgen" kv --netdev "vhost-user:path=$tmp/gen.sock" \
  --server-ip 198.51.100.2 --server-mac 02:00:00:00:00:02 --ip 198.51.100.3 --mac 02:00:00:00:00:03 \
  --preload --keys 100 --value-size 32 --get-ratio 1 --window 8 --duration 2 --quiet --json \
  >"$tmp/after.json" 2>"$tmp/after.log" || true
rss_end=$(rss_kib "$kv" 2>/dev/null || echo 0)
kill -INT "$kv"; wait "$kv" && kv_status=0 || kv_status=$?
kill -INT "$switch" 2>/dev/null || true; wait "$switch" 2>/dev/null || true

# pktgen kv's status: 1 when requests timed out, 2 when a reply was wrong. Both are what faults
# do (a duplicated or reordered set leaves an older value; a bit flipped in a frame whose checksum
# the receiver completes goes unseen), reported in its counts below; anything else is a failure.
case $gen_status in 0|1|2) ;; *) fail "pktgen kv exited with status $gen_status ($(tail -3 "$tmp/pktgen.log"))" ;; esac
[ "$kv_status" = 0 ] || fail "kvstore exited with status $kv_status"
python3 - "$tmp/pktgen.json" "$tmp/kvstore.log" "$tmp/pktgen.log" "$rss_start" "$rss_end" "$SOAK_SECONDS" "$tmp/after.json" <<'PY' || failed=1
import json, re, sys
r = json.load(open(sys.argv[1]))
kv = open(sys.argv[2]).read()
gen_log = open(sys.argv[3]).read()
rss_start, rss_end, seconds = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
ok = True
def check(cond, what):
    global ok
    if not cond:
        ok = False
        print("soak: FAILED:", what)
def num(pattern, text, default=None):
    m = re.search(pattern, text)
    return int(m.group(1)) if m else default

answered = r["requests"]
print(f"soak: pktgen kv: {answered} requests answered in {r['seconds']:.0f} s ({r['replies_per_second']:.0f}/s), "
      f"{r['timeouts']} timed out, {r['retries']} retried, {r['wrong_values']} wrong values, {r['bad_replies']} bad replies, "
      f"{r['late_replies']} late, {r['bad_checksums']} bad checksums")
check(r.get("failure", "") == "", f"pktgen reported a failure: {r.get('failure')}")
check(answered > 0, "no request answered")
check(r["sent"] >= answered, "pktgen answered more than it sent")
# Losses are the faults' and the restarts': reported, not hidden. Each restart costs the requests in flight.
check(r["timeouts"] + r["retries"] > 0, "faults were injected but pktgen reports no loss")
for line in kv.splitlines():
    if line.startswith(("faults injected", "memcached requests", "drops:", "pool:", "warning", "vhost-user")) or "reconnect" in line:
        print("soak: kvstore:", line.strip())
for line in gen_log.splitlines():
    if line.startswith("faults injected") or "reconnect" in line:
        print("soak: pktgen:", line.strip())
pool = re.search(r"pool: (\d+) in use of (\d+) after stop", kv)
check(pool is not None and pool.group(1) == "0", "kvstore's pool is not full after stop")
check("warning" not in kv, "kvstore warned at exit")
for name, log in (("kvstore", kv), ("pktgen kv", gen_log)):
    reconnects = num(r"reconnections\[-?\d+\]=(\d+)", log, 0)
    check(reconnects == 2, f"{name} reconnected {reconnects} times (2 restarts)")
store_faults = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", (re.search(r"faults injected: (.*)", kv) or re.search("()", "")).group(1))}
gen_faults = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", (re.search(r"faults injected: (.*)", gen_log) or re.search("()", "")).group(1))}
check(all(store_faults.get(k, 0) > 0 for k in ("dropped", "duplicated", "reordered", "stalled_bursts")), f"faults on the store: {store_faults}")
check(gen_faults.get("corrupted", 0) > 0, f"faults on pktgen: {gen_faults}")
# Wrong values come only from what the faults can do: no more than the duplicated, reordered and
# corrupted frames.
bound = store_faults.get("duplicated", 0) + store_faults.get("reordered", 0) + gen_faults.get("corrupted", 0)
check(r["wrong_values"] + r["bad_replies"] <= bound, f"{r['wrong_values']} wrong values, {r['bad_replies']} bad replies: more than the faults explain ({bound})")
after = json.load(open(sys.argv[7]))
print(f"soak: after the restarts, GETs without faults on the client: {after['requests']} answered, {after['timeouts']} timed out, "
      f"{after['wrong_values']} wrong values")
check(after["requests"] > 0 and after["wrong_values"] == 0 and after["bad_replies"] == 0, "the store did not answer after the restarts")
print(f"soak: kvstore resident memory: {rss_start} KiB at start, {rss_end} KiB at the end ({rss_end - rss_start:+d} KiB)")
check(rss_end - rss_start <= 1024, "resident memory grew by more than 1 MiB")
sys.exit(0 if ok else 1)
PY
if [ $failed = 0 ]; then say "passed"; else say "FAILED (logs: $tmp, kept)"; KEEP=1; exit 1; fi
