#!/usr/bin/env bash
# The packet generator beside its peers, in one run:
#   - TX of 64-byte frames (60 without FCS) over the null device on one core: Mpps of our loop
#     (pktgen-bench tx-null: TxGenerator, prefilled pool, bursts of 32, NullDevice bulk free) and
#     of DPDK's testpmd txonly on its net_null PMD (Benchmarks/DPDKPeer/testpmd-txonly.sh), and
#     our instructions per packet from callgrind over the loop function;
#   - the pktgen command itself over the null device (`pktgen tx --netdev null --size 64`);
#   - the same with 16 flows and probes (sequence number + timestamp + UDP checksum per packet);
#   - 0 mallocs in the loops;
#   - pktgen kv against the KV store over a ring pair, one core each: replies/s, p50/p99.
# Needs: swift, valgrind, dpdk-testpmd (Debian's dpdk-dev; make bench installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
PACKETS=${PACKETS:-100000000}
CG_PACKETS=${CG_PACKETS:-1000000}
KV_SECONDS=${KV_SECONDS:-5}
swift build -c release --product pktgen-bench >/dev/null
swift build -c release --product pktgen >/dev/null
bin=.build/release/pktgen-bench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source Benchmarks/lib.sh

ours=$("$bin" tx-null "$PACKETS")
probe=$("$bin" tx-null-probe "$PACKETS")
echo "$ours"
echo "$probe"
peer=$(SECONDS=5 Benchmarks/DPDKPeer/testpmd-txonly.sh) || { echo "testpmd peer failed"; peer=""; }
echo "$peer"
# The pktgen command itself (clock reads, live-line checks), the same frames for 3 s.
cli=$(.build/release/pktgen tx --netdev null --size 64 --duration 3 --quiet --json \
      | python3 -c 'import json, sys; print("%.1f" % (json.load(sys.stdin)["results"][0]["pps"] / 1e6))')
echo "pktgen tx --netdev null --size 64 --duration 3: $cli Mpps"
if [ -n "$peer" ]; then
  testpmd=$(sed -n 's/.*Mpps=\([0-9.]*\).*/\1/p' <<<"$peer")
  awk -v a="$(field mpps "$ours")" -v c="$cli" -v b="$testpmd" \
    'BEGIN { printf "TX 64-byte frames, one core, null device: pktgen loop %.1f Mpps, pktgen command %.1f Mpps, testpmd txonly %.1f Mpps, ratios %.2f and %.2f\n", a, c, b, a / b, c / b }'
fi

for mode in tx-null tx-null-probe; do
  # The warm-up goes through the same loop function: it counts too.
  warmup=$(field warmup "$ours")
  callgrind '*txNullLoop*' "$tmp/cg.$mode" "$bin" "$mode" "$CG_PACKETS"
  awk -v t="$total" -v n="$CG_PACKETS" -v w="$warmup" -v m="$mode" -v a="$arc" \
    'BEGIN { printf "instructions per packet (%s, callgrind over the TX loop): %.1f; in retain/release/alloc: %d\n", m, t / (n + w), a }'
done
echo "mallocs in the TX loops: $(field mallocs "$ours") and $(field mallocs "$probe")"

# kv: the in-process store on CPU 1, pktgen kv on CPU 0, a ring pair between them.
.build/release/pktgen kv --netdev ring --preload --keys 1000 --value-size 32 --get-ratio 0.9 --window 64 \
  --duration "$KV_SECONDS" --quiet --json >"$tmp/kv.json"
python3 - "$tmp/kv.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency"]
print(f"pktgen kv against the KV store over a ring pair: {r['replies_per_second']:.0f} replies/s, "
      f"p50 {l['p50_us']:.1f} us, p99 {l['p99_us']:.1f} us, p99.9 {l['p99.9_us']:.1f} us "
      f"({r['requests']} requests, {r['timeouts']} timeouts, {r['wrong_values']} wrong values)")
PY
