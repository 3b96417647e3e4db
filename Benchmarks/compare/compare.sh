#!/usr/bin/env bash
# make compare: the paper's Table 4 and fig. 19 (Unikraft, EuroSys'21), re-run on this machine in
# one command, with the paper's own figures beside ours.
#
#   Table 4: the UDP KV store under one load (pktgen kv --preload --keys 1000 --value-size 32
#     --get-ratio 0.9 --window 32, every reply checked) over six paths:
#       Linux single / Linux batch  kvstore --stack linux-single|linux-batch (a kernel UDP socket,
#                                   recvfrom/sendto or recvmmsg/sendmmsg) on the kernel side of a
#                                   TAP in a private namespace (CPU 1); pktgen kv on the TAP (CPU 0);
#       DPDK                        kvstore --netdev "dpdk:... net_virtio_user" (DPDK's virtio driver),
#       lwIP                        kvstore --stack lwip --netdev vhost-user:...,
#       netdev (vhost-user)         kvstore --netdev vhost-user:... (our VirtioNet and host stack),
#       unikernel netdev            the kvstore image under QEMU/KVM (-M pc, virtio-pci) on vhost-user:
#                                   these four on CPU 1, each connected to the vhost-user socket of
#                                   pktgen kv over DPDK's net_vhost backend on CPU 0: the client is the
#                                   host side, as the paper's host switch and client machine were, and
#                                   each program has a core to itself;
#     and memcached 1.6.18 -t 1 in the Linux columns' setup (as run-tap-kv-bench.sh), for "our
#     store vs memcached, per core". Requests/s, p50/p99 latency (pktgen's JSON), the server's CPU
#     time per request (/proc/PID/stat utime+stime over the measured load).
#   fig. 19: TX throughput vs frame size into dpdk-testpmd net_vhost rxonly (CPU 1) from pktgen tx
#     over our VirtioNet, pktgen tx over DPDK's net_virtio_user, and testpmd txonly on
#     net_virtio_user (each on CPU 0); the switch's received count checked against the frames sent.
#
# Writes into OUT (default compare-results/ at the repository's root): table4.md, table4.json,
# fig19.csv, fig19.png (gnuplot, Benchmarks/compare/fig19.gp), fig19-runs.csv, fig19-paper.csv,
# and logs/ (every program's output, and one JSON record per run in logs/runs/).
# Settings: QUICK=1 (3 frame sizes, short runs, one round: ~1.5 min), ROUNDS, KV_SECONDS,
# TX_SECONDS, SIZES. Exit status 0 when every column and every fig. 19 run passed its checks
# (columns whose kvstore option is not built yet excepted: "not built yet"), 1 otherwise.
# Needs root (namespaces, TAP, /var/run/dpdk, KVM), dpdk-testpmd, memcached, qemu, gnuplot, swift.
# The whole script is one block, read before it runs: editing this file mid-run cannot derail it.
{
set -euo pipefail
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd); fi   # relative to the caller's folder
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/Benchmarks/compare
SECONDS=0
say() { echo "compare [${SECONDS} s]: $*" >&2; }

if [ -n "${QUICK:-}" ] && [ "${QUICK:-}" != 0 ]; then
  quick=1 SIZES=${SIZES:-64 512 1500} ROUNDS=${ROUNDS:-1} KV_SECONDS=${KV_SECONDS:-2} TX_SECONDS=${TX_SECONDS:-1}
else
  quick=0 SIZES=${SIZES:-64 128 256 512 1024 1500} ROUNDS=${ROUNDS:-3} KV_SECONDS=${KV_SECONDS:-4} TX_SECONDS=${TX_SECONDS:-2}
fi
OUT=${OUT:-$root/compare-results}
if ((EUID != 0)); then
  say "needs root (network namespaces, TAP, DPDK's /var/run/dpdk, KVM): skipped"
  exit 0
fi

# --- build --------------------------------------------------------------------------------------
mkdir -p "$OUT"
logs=$OUT/logs runs=$OUT/logs/runs
rm -rf "$logs"
rm -f "$OUT"/{table4.md,table4.json,fig19.csv,fig19.png,fig19-runs.csv,fig19-paper.csv}
mkdir -p "$runs"
say "building kvstore and pktgen (swift build -c release), the kvstore unikernel image (scripts/build-image.sh kvstore)"
for product in kvstore pktgen; do
  if ! swift build -c release --product "$product" >"$logs/build-$product.log" 2>&1; then
    tail -20 "$logs/build-$product.log" >&2
    say "FAILED: swift build -c release --product $product (log: $logs/build-$product.log)"
    exit 1
  fi
done
image_ok=1
scripts/build-image.sh kvstore >"$logs/build-image.log" 2>&1 || image_ok=0
bin=$root/.build/release
image=$root/.build-image/kvstore/kvstore.elf
has_stack=0
"$bin/kvstore" --help 2>&1 | grep -q -- '--stack' && has_stack=1
kvm=0
{ exec 3<>/dev/kvm; } 2>/dev/null && { exec 3>&-; kvm=1; }

# --- scratch, processes, cleanup ----------------------------------------------------------------
tmp=$(mktemp -d /tmp/uknet-compare.XXXXXX)   # vhost-user sockets (short paths)
prefix=uknet-cmp-$$                          # DPDK file prefixes: /var/run/dpdk/$prefix-N
ns=uknet-cmp-$$                              # the Linux columns' namespace
EAL=(--no-huge -m 512 --no-pci)
n=0
declare -A live=()                            # background processes still to be reaped
# any_alive PID...: 0 when one of them still runs.
any_alive() { local p; for p; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
# Every process still running: INT, then TERM (scripts started in the background ignore INT:
# run-kvm.sh stops QEMU on TERM), then KILL.
cleanup() {
  local p sig
  for sig in INT TERM KILL; do
    for p in "${!live[@]}"; do kill "-$sig" "$p" 2>/dev/null || true; done
    for _ in $(seq 15); do any_alive "${!live[@]}" || break; sleep 0.1; done
  done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp" /var/run/dpdk/"$prefix"-*
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM

# spawn LOG CMD...: CMD in the background, output into LOG; sets $spawned.
spawn() {
  local log=$1; shift
  "$@" </dev/null >"$log" 2>&1 &
  spawned=$!
  live[$spawned]=1
}
# reap PID SECONDS: waits for PID at most SECONDS (then TERM, and KILL 3 s later); sets $status.
reap() {
  local pid=$1 limit=$2
  for _ in $(seq $((limit * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid still running after ${limit} s: stopped (TERM, then KILL)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  status=0
  wait "$pid" 2>/dev/null || status=$?
  unset "live[$pid]"
}
# stop PID SIGNAL SECONDS: signal, then reap.
stop() { kill "-$2" "$1" 2>/dev/null || true; reap "$1" "$3"; }
# wait_for FILE TEXT SECONDS
wait_for() {
  for _ in $(seq $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
# udp_bound: a socket is bound to 192.0.2.2:11211 in the namespace.
udp_bound() { ip netns exec "$ns" ss -Hlun 'sport = :11211' 2>/dev/null | grep -q 192.0.2.2; }
# q ARG...: the command line, quoted for a shell where it needs to be.
q() {
  local a out=() plain='^[A-Za-z0-9_./:=@,+%-]+$'
  for a; do if [[ $a =~ $plain ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi; done
  echo "${out[*]}"
}

# switch_start MODE LOG NAME...: dpdk-testpmd forwarding in MODE between net_vhost ports on
# $tmp/NAME.sock, its poller on CPU 1; sets $switch_pid, $switch_prefix, $switch_cmd.
switch_start() {
  local mode=$1 log=$2; shift 2
  local vdevs=() socks=() i=0
  for name; do vdevs+=(--vdev "net_vhost$i,iface=$tmp/$name.sock"); socks+=("$tmp/$name.sock"); i=$((i + 1)); done
  rm -f "${socks[@]}"
  n=$((n + 1)) switch_prefix=$prefix-$n
  local cmd=(dpdk-testpmd --lcores=0@0,1@1 "${EAL[@]}" --file-prefix="$switch_prefix" "${vdevs[@]}" -- -a
             --stats-period 1 --forward-mode="$mode" --total-num-mbufs=32768)
  switch_cmd=$(q "${cmd[@]}")
  spawn "$log" "${cmd[@]}"
  switch_pid=$spawned
  for _ in $(seq 150); do
    local ok=1
    for s in "${socks[@]}"; do [ -S "$s" ] || ok=0; done
    [ $ok = 1 ] && return 0
    kill -0 "$switch_pid" 2>/dev/null || break
    sleep 0.1
  done
  say "testpmd did not create its sockets (log: $log)"
  return 1
}
switch_stop() { stop "$switch_pid" INT 10; switch_status=$status; rm -rf "/var/run/dpdk/$switch_prefix"; }

# --- Table 4 ------------------------------------------------------------------------------------
load=(--preload --keys 1000 --value-size 32 --get-ratio 0.9 --window 32 --duration "$KV_SECONDS" --quiet --json)
# The vhost-user columns' client: pktgen kv over DPDK's net_vhost (the vhost-user backend, socket
# kv.sock) on CPU 0; the store connects to it from CPU 1.
vhost_client=(--server-ip 198.51.100.2 --server-mac 02:00:00:00:00:02 --ip 198.51.100.3 --mac 02:00:00:00:00:03)
tap_client=(--netdev tap:ifname=pg0 --ip 192.0.2.3 --mac 02:00:00:00:00:03 --server-ip 192.0.2.2)
store=(--ip 198.51.100.2/24 --mac 02:00:00:00:00:02)
failures=0

# kv_run COLUMN ROUND: one run of the load against one server; its record in $runs.
kv_run() {
  local col=$1 round=$2
  local base=$logs/kv-$col.$round rec=$runs/kv-$col.$round.json
  local server=() client=() ready="" on_switch=1 cpu_of="" natural_end=0 own_prefix="" stop_with=INT
  case $col in
    netdev) server=(taskset -c 1 "$bin/kvstore" --netdev "vhost-user:path=$tmp/kv.sock" "${store[@]}"); ready="virtio features" ;;
    lwip) server=(taskset -c 1 "$bin/kvstore" --stack lwip --netdev "vhost-user:path=$tmp/kv.sock" "${store[@]}"); ready="virtio features" ;;
    dpdk) n=$((n + 1)) own_prefix=$prefix-$n
      server=(taskset -c 1 "$bin/kvstore" --netdev "dpdk:--no-huge -m 512 --no-pci -l 1 --file-prefix=$own_prefix --vdev=net_virtio_user0,path=$tmp/kv.sock" "${store[@]}")
      ready="dpdk: port" ;;
    unikernel)
      # The store ends itself after kv.seconds (printing its statistics); run-kvm.sh's TIMEOUT backs it up.
      server=(env MACHINE=pc "NET=vhost-user:$tmp/kv.sock" TIMEOUT=$((KV_SECONDS + 40))
              "CMDLINE=netdev.ip=198.51.100.2/24 kv.seconds=$((KV_SECONDS + 5)) kv.idle=100"
              taskset -c 1 scripts/run-kvm.sh "$image")
      ready="kvstore: ready on" natural_end=1 stop_with=TERM ;;   # run-kvm.sh, in the background, ignores INT
    linux-single|linux-batch)
      server=(ip netns exec "$ns" taskset -c 1 "$bin/kvstore" --stack "$col" --ip 192.0.2.2/24 --port 11211); ready=udp on_switch=0 ;;
    memcached)
      server=(ip netns exec "$ns" taskset -c 1 memcached -U 11211 -p 0 -l 192.0.2.2 -t 1 -m 64 -u root); ready=udp on_switch=0 ;;
  esac
  local client_pid="" pidfile=$base.server.pid
  rm -f "$pidfile"
  if [ $on_switch = 1 ]; then
    # The client first: its net_vhost creates the socket the store connects to (it waits 5 s for
    # the link). The load's CPU sampling learns the store's PID from $pidfile.
    n=$((n + 1)) switch_prefix=$prefix-$n
    client=(taskset -c 0 "$bin/pktgen" kv --netdev "dpdk:--no-huge -m 512 --no-pci -l 0 --file-prefix=$switch_prefix --vdev=net_vhost0,iface=$tmp/kv.sock"
            "${vhost_client[@]}" "${load[@]}")
    switch_cmd="" switch_status=-1
    rm -f "$tmp/kv.sock"
    python3 "$here/compare.py" run-load --record "$base.load.json" --stdout "$base.json" --stderr "$base.pktgen.log" \
      --timeout $((KV_SECONDS + 30)) --cpu-pid-file "$pidfile" -- "${client[@]}" &
    client_pid=$!
    live[$client_pid]=1
    for _ in $(seq 100); do [ -S "$tmp/kv.sock" ] && break; kill -0 "$client_pid" 2>/dev/null || break; sleep 0.1; done
  else
    client=(ip netns exec "$ns" taskset -c 0 "$bin/pktgen" kv "${tap_client[@]}" "${load[@]}")
    switch_cmd="" switch_status=-1
  fi
  spawn "$base.server.log" "${server[@]}"
  local server_pid=$spawned up=0
  if [ "$ready" = udp ]; then
    for _ in $(seq 100); do udp_bound && { up=1; break; }; kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  else
    wait_for "$base.server.log" "$ready" 30 && up=1
  fi
  if [ $up = 0 ]; then
    stop "$server_pid" $stop_with 10
    [ -n "$client_pid" ] && stop "$client_pid" INT 10
    [ -n "$own_prefix" ] && rm -rf "/var/run/dpdk/$own_prefix"
    [ $on_switch = 1 ] && rm -rf "/var/run/dpdk/$switch_prefix"
    say "  $col, round $round: FAILED: the server did not come up (exit status $status if it ended; log: $base.server.log)"
    python3 "$here/compare.py" skip --col "$col" --note "failed: the server did not come up (logs/kv-$col.$round.server.log)" --round "$round" --out "$rec"
    failures=$((failures + 1))
    return
  fi
  cpu_of=$server_pid
  if [ $col = unikernel ]; then   # the server's CPU is QEMU's (run-kvm.sh's child)
    cpu_of=$(ps -o pid=,comm= --ppid "$server_pid" | awk '$2 ~ /^qemu/ {print $1; exit}')
  fi
  echo "${cpu_of:-0}" >"$pidfile"
  if [ -n "$client_pid" ]; then
    reap "$client_pid" $((KV_SECONDS + 40))
  else
    sleep 0.3   # the store's first polls
    # The load (bounded: the load's seconds plus set-up and retries), sampling the server's CPU.
    python3 "$here/compare.py" run-load --record "$base.load.json" --stdout "$base.json" --stderr "$base.pktgen.log" \
      --timeout $((KV_SECONDS + 30)) --cpu-pid "${cpu_of:-0}" -- "${client[@]}" || true
  fi
  if [ $natural_end = 1 ]; then
    reap "$server_pid" $((KV_SECONDS + 45)); local server_status=$status
  else
    stop "$server_pid" INT 10; local server_status=$status
  fi
  [ $on_switch = 1 ] && rm -rf "/var/run/dpdk/$switch_prefix"
  [ -n "$own_prefix" ] && rm -rf "/var/run/dpdk/$own_prefix"
  printf '%s' "  $col, round $round: " >&2
  python3 "$here/compare.py" kv-result --record "$base.load.json" --pktgen-json "$base.json" --col "$col" --round "$round" \
    --server-status "$server_status" --server-log "$base.server.log" --switch-status "$switch_status" --server-cmd "$(q "${server[@]}")" \
    --load-cmd "$(q "${client[@]}")" --switch-cmd "$switch_cmd" --out "$rec" >&2 || failures=$((failures + 1))
}

# The Linux columns' namespace: a TAP pg0 with 192.0.2.2/24 on the kernel's side.
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add dev pg0 mode tap
ip -n "$ns" addr add 192.0.2.2/24 dev pg0
ip -n "$ns" link set pg0 up

cols=(linux-single linux-batch dpdk lwip netdev unikernel memcached)
say "Table 4: ${#cols[@]} servers, $ROUNDS round(s) of $KV_SECONDS s of load each"
for round in $(seq "$ROUNDS"); do
  for col in "${cols[@]}"; do
    case $col in
      lwip|linux-single|linux-batch)
        if [ $has_stack = 0 ]; then
          [ "$round" = 1 ] && { say "  $col: not built yet (kvstore has no --stack)"; python3 "$here/compare.py" skip --col "$col" --note "not built yet" --out "$runs/kv-$col.0.json"; }
          continue
        fi ;;
      unikernel)
        if [ $kvm = 0 ]; then
          [ "$round" = 1 ] && { say "  $col: n/a: no /dev/kvm"; python3 "$here/compare.py" skip --col "$col" --note "n/a: no /dev/kvm" --out "$runs/kv-$col.0.json"; }
          continue
        fi
        if [ $image_ok = 0 ]; then
          say "  $col: the image did not build (log: $logs/build-image.log)"
          python3 "$here/compare.py" skip --col "$col" --note "failed: the image did not build (logs/build-image.log)" --round "$round" --out "$runs/kv-$col.$round.json"
          failures=$((failures + 1))
          continue
        fi ;;
    esac
    kv_run "$col" "$round"
  done
done

# --- fig. 19 ------------------------------------------------------------------------------------
say "fig. 19: TX into testpmd net_vhost rxonly at ${SIZES// /, } bytes, $ROUNDS round(s) of $TX_SECONDS s each"
for size in $SIZES; do
  switch_start rxonly "$logs/tx-switch-$size.log" tx || { failures=$((failures + 1)); continue; }
  records=()
  for round in $(seq "$ROUNDS"); do
    for path in pktgen-virtionet pktgen-dpdk testpmd-txonly; do
      base=$logs/tx-$path-$size.$round rec=$runs/tx-$path-$size.$round.json
      case $path in
        pktgen-virtionet) kind=pktgen
          cmd=(taskset -c 0 "$bin/pktgen" tx --netdev "vhost-user:path=$tmp/tx.sock" --size "$size" --duration "$TX_SECONDS" --quiet --json)
          limit=$((TX_SECONDS + 30)) ;;
        pktgen-dpdk) kind=pktgen n=$((n + 1))
          cmd=(taskset -c 0 "$bin/pktgen" tx --netdev "dpdk:--no-huge -m 512 --no-pci -l 0 --file-prefix=$prefix-$n --vdev=net_virtio_user0,path=$tmp/tx.sock"
               --size "$size" --duration "$TX_SECONDS" --quiet --json)
          limit=$((TX_SECONDS + 30)) ;;
        testpmd-txonly) kind=testpmd n=$((n + 1))
          # ~3 s of start-up, then TX_SECONDS + 2 of sending (two steady rate samples at least).
          cmd=(dpdk-testpmd --lcores=0@1,1@0 "${EAL[@]}" --file-prefix="$prefix-$n" --vdev "net_virtio_user0,path=$tmp/tx.sock"
               -- -a --stats-period 1 --forward-mode=txonly --total-num-mbufs=32768 --txpkts=$((size - 4)))
          limit=$((TX_SECONDS + 6)) ;;
      esac
      rc=0
      if [ $kind = pktgen ]; then
        timeout -k 5 -s INT "$limit" "${cmd[@]}" >"$base.json" 2>"$base.log" </dev/null || rc=$?
        log=$base.json
      else
        # testpmd sends until its timeout (status 124 expected); its Tx-pps lines give the rate.
        timeout -k 5 -s INT "$limit" "${cmd[@]}" >"$base.log" 2>&1 </dev/null || rc=$?
        log=$base.log
      fi
      rm -rf "/var/run/dpdk/$prefix-$n"
      printf '%s' "  $size B, round $round, $path: " >&2
      python3 "$here/compare.py" tx-result --kind $kind --path $path --size "$size" --round "$round" --rc $rc \
        --log "$log" --cmd "$(q timeout -k 5 -s INT "$limit" "${cmd[@]}")" --out "$rec" >&2 || failures=$((failures + 1))
      records+=("$rec")
    done
  done
  switch_stop
  printf '%s' "  $size B: " >&2
  python3 "$here/compare.py" switch-check --log "$logs/tx-switch-$size.log" --size "$size" --status "$switch_status" \
    --out "$runs/txswitch-$size.json" "${records[@]}" >&2 || failures=$((failures + 1))
done

# --- the report ---------------------------------------------------------------------------------
python3 - "$logs/meta.json" "$quick" "$ROUNDS" "$KV_SECONDS" "$TX_SECONDS" "$SIZES" <<'PY'
import json, os, platform, subprocess, sys, time
def sh(*c):
    try: return subprocess.run(c, capture_output=True, text=True).stdout.strip()
    except OSError: return ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
commit = sh("git", "rev-parse", "--short", "HEAD") + (" + uncommitted changes" if sh("git", "status", "--porcelain", "--untracked-files=no") else "")
json.dump({"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}",
           "commit": commit, "quick": sys.argv[2] == "1", "rounds": int(sys.argv[3]), "kv_seconds": float(sys.argv[4]),
           "tx_seconds": float(sys.argv[5]), "sizes": [int(s) for s in sys.argv[6].split()]}, open(sys.argv[1], "w"), indent=1)
PY
report=0
python3 "$here/compare.py" report --out "$OUT" --runs "$runs" --meta "$logs/meta.json" || report=$?
if [ -s "$OUT/fig19.csv" ]; then
  gnuplot -e "datafile='$OUT/fig19.csv'; paperfile='$OUT/fig19-paper.csv'; outfile='$OUT/fig19.png'" "$here/fig19.gp" \
    >"$logs/gnuplot.log" 2>&1 || { say "FAILED: gnuplot (log: $logs/gnuplot.log)"; failures=$((failures + 1)); }
fi
say "wrote $OUT/table4.md, table4.json, fig19.csv, fig19.png (logs in $OUT/logs) in $SECONDS s"
if [ $failures -gt 0 ] || [ $report != 0 ]; then
  say "FAILED: $failures run(s) failed their checks (see above and $OUT/table4.md)"
  exit 1
fi
exit 0
}
