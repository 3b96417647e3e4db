#!/usr/bin/env bash
# The KV store unikernel's image size, boot time split as the paper splits it (VMM, guest, QEMU
# start to the first GET answered; microvm and pc+qboot; medians of RUNS boots) and the smallest
# -m that still answers: Benchmarks/unikernel-boot.py. Needs root, iproute2, qemu-system-x86.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-image.sh kvstore | tail -1
python3 Benchmarks/unikernel-boot.py "${RUNS:-10}"
