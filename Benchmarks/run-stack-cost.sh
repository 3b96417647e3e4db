#!/usr/bin/env bash
# What each stack costs the KV store per request, counted (not timed): the store replays a capture
# of N memcached GET hits and one of 2N (the same requests twice over), once per stack (netdev, the
# host stack with the lone-GET path; lwip), under valgrind. The difference of the two runs' totals,
# divided by N, is what one request costs (start-up and shutdown cancel out):
#   - heap allocations (memcheck's "total heap usage");
#   - instructions (callgrind's total), the pcap device's reading and writing included (the same
#     frames for both stacks).
# No network: pcap files in, pcap files out.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5000}
swift build -c release --product kvstore >/dev/null
bin=$PWD/.build/release/kvstore
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp" "$N" <<'PY'
import struct, sys
tmp, n = sys.argv[1], int(sys.argv[2])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack(f"!{len(b)//2}H", b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
def frame(i, body):
    payload = struct.pack("!HHHH", i & 0xFFFF, 0, 1, 0) + body
    udp = struct.pack("!HHHH", 40000, 11211, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, bytes([192,0,2,1]), bytes([192,0,2,2]))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip + udp
def write(path, count):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        frames = [frame(0, b"set k 0 0 5\r\nvalue\r\n")] + [frame(i, b"get k\r\n") for i in range(1, count + 1)]
        for fr in frames:
            f.write(struct.pack("<IIII", 0, 0, len(fr), len(fr)) + fr)
write(f"{tmp}/n.pcap", n)
write(f"{tmp}/2n.pcap", 2 * n)
PY
run() {  # tool, stack, capture: one replay under valgrind; its report on stdout
  valgrind --tool="$1" "${@:4}" "$bin" --stack "$2" --netdev "pcap:rx=$3,tx=$tmp/out.pcap" \
      --ip 192.0.2.2 --mac 02:00:00:00:00:02 --memory 8 --buffers 1024 2>&1 >/dev/null
}
allocs() {  # stack, capture: the "total heap usage: A allocs" of one run
  run memcheck "$1" "$2" --leak-check=no | sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' | tr -d ,
}
instructions() {  # stack, capture: callgrind's "I refs" of one run
  run callgrind "$1" "$2" --callgrind-out-file=/dev/null | sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' | tr -d ,
}
per() {  # what, stack, count for N, count for 2N
  python3 -c "import sys; a,b,n=map(int,sys.argv[3:]); print(f'--stack {sys.argv[2]}: {a:,} {sys.argv[1]} for {n} GETs, {b:,} for {2*n}: {(b-a)/n:,.3f} per request')" "$@" "$N"
}
for stack in netdev lwip; do
  per "heap allocations" "$stack" "$(allocs "$stack" "$tmp/n.pcap")" "$(allocs "$stack" "$tmp/2n.pcap")"
  per instructions "$stack" "$(instructions "$stack" "$tmp/n.pcap")" "$(instructions "$stack" "$tmp/2n.pcap")"
done
