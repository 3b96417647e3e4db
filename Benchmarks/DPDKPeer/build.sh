#!/usr/bin/env bash
# Builds the DPDK C peer: build.sh [OUTPUT]   (default .build-peer/ring_peer)
# Needs libdpdk-dev (and pkg-config) already installed; this script installs nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-.build-peer/ring_peer}"
mkdir -p "$(dirname "$out")"

# Debian's libdpdk.pc has a multi-line Description and a huge Libs.private; plain
# `pkg-config --cflags --libs` still parses it (verified on 22.11), it is some other .pc
# readers that choke. If it fails anyway, fall back to the few libraries the peer uses.
if flags="$(pkg-config --cflags --libs libdpdk 2>/dev/null)" && [ -n "$flags" ]; then
    read -r -a dpdk_flags <<<"$flags"
else
    echo "build.sh: pkg-config libdpdk failed, using fallback flags" >&2
    dpdk_flags=(-march=corei7 -I/usr/include/dpdk -I/usr/include/x86_64-linux-gnu/dpdk
                -include rte_config.h
                -lrte_eal -lrte_mempool -lrte_ring -lrte_mbuf -lrte_kvargs -lrte_telemetry)
fi

# The source comes first so the libraries (with --as-needed) resolve its references.
gcc -O3 -g -Wall -Wextra -std=gnu11 "$here/ring_peer.c" "${dpdk_flags[@]}" -pthread -o "$out"
echo "built $out"
