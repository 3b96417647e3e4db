#!/usr/bin/env bash
# The unikernel's boot and platform layer, checked end to end (make unikernel-check, in make test):
#   1. the hello image (Unikernel/Apps/hello) builds, and stays under 256 KB stripped;
#   2. it boots on -M microvm and on -M pc with qboot, under KVM when /dev/kvm works (else TCG,
#      saying so) and under TCG too: the console shows every boot milestone, the command line
#      echoed, the heap, the clock advancing; the exit status is 0, or 3 with `fail` on the command
#      line, or 121 (a CPU exception, reported) with `trap`; on microvm an MMIO read finds the
#      virtio-mmio magic (the uncached 3-4 GiB window is mapped);
#   3. -m decides the heap (4M, 64M, 2G: above 1 GiB the platform maps RAM itself), and the heap's
#      last byte can be written;
#   4. the PIT measurement of the TSC rate (-cpu without invtsc) against KVM's CPUID value;
#   5. a kernel that never exits (no isa-debug-exit: it halts) is stopped by the run script's
#      timeout, its QEMU process killed and reaped;
#   6. -M pc with SeaBIOS (QEMU's default firmware) boots too, and what it costs;
# and prints the image size, QEMU start to exit and the guest time (first instruction to the app's
# main), medians of 5 boots per machine.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5
out=.build-image/check
mkdir -p "$out"
fail=0
say() { echo "unikernel-check: $*"; }
bad() { echo "unikernel-check: FAIL: $*"; fail=1; }

scripts/build-image.sh hello
image=.build-image/hello/hello.elf
size=$(stat -c %s "$image")
if [ "$size" -lt 262144 ]; then say "image $image: $size bytes stripped (< 256 KB)"
else bad "image $image: $size bytes stripped, over 256 KB"; fi

if { exec 3<>/dev/kvm; } 2>/dev/null; then
  exec 3>&-
  accels=(kvm tcg)
else
  accels=(tcg)
  say "no usable /dev/kvm: every boot below runs under TCG"
fi

# boot NAME STATUS [VAR=value...]: one boot through scripts/run-kvm.sh, its console and report in
# $out/NAME.log; fails unless the status is STATUS.
boot() {
  local name=$1 want=$2 got=0; shift 2
  env TIMEOUT=30 "$@" scripts/run-kvm.sh "$image" >"$out/$name.log" 2>&1 || got=$?
  if [ "$got" != "$want" ]; then
    bad "$name: status $got, expected $want; its console:"
    sed 's/^/  | /' "$out/$name.log"
    return 1
  fi
}
has() { # name, fixed string: the boot's console must contain it
  grep -qF -- "$2" "$out/$1.log" || { bad "$1: no \"$2\" on the console"; return 1; }
}
# The numbers of a boot: QEMU start to exit (run-kvm's report), guest time to ready and to main.
qemu_ms() { sed -n 's/.*QEMU start to exit \([0-9.]*\) ms.*/\1/p' "$out/$1.log"; }
ready_us() { sed -n 's/.*boot: ready: guest time \([0-9]*\) us.*/\1/p' "$out/$1.log"; }
main_us() { sed -n 's/^\[\([0-9]*\)\.\([0-9]*\)\] boot: main:.*/\1\2/p' "$out/$1.log" | sed 's/^0*//;s/^$/0/'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

milestones=("boot: first instruction (PVH entry" "boot: long mode, paging" "boot: ring 3, IOPL 3"
            "boot: console: COM1" "boot: clock: TSC" "boot: memory:" "boot: ready: guest time" "boot: main: uknet_kernel_main"
            "hello: Embedded Swift" "hello: done in")
cmdline="hello-check greeting=world spin=2"
for accel in "${accels[@]}"; do
  for machine in microvm pc; do
    tag=$machine-$accel
    # Success, with the console checked.
    if boot "$tag" 0 ACCEL="$accel" MACHINE="$machine" CMDLINE="$cmdline"; then
      for m in "${milestones[@]}"; do has "$tag" "$m" || true; done
      has "$tag" "boot: cmdline: \"$cmdline\"" || true
      has "$tag" "hello: cmdline \"$cmdline\" (3 words)" || true
      has "$tag" "hello: clock: spun 2 ms by uk_monotonic_ns" || true
      grep -q "hello: clock: spun 2 ms.*: ok$" "$out/$tag.log" || bad "$tag: the clock check did not say ok"
      grep -q "returned: true; last byte written: true" "$out/$tag.log" || bad "$tag: the heap did not take its block back, or its end"
      has "$tag" "exit: status 0 (port I/O" || true
      [ "$machine" = microvm ] && { has "$tag" 'hello: MMIO 0xfeb00000: 0x74726976 (virtio-mmio "virt")' || true; }
      grep -q "exit: status 0 (port I/O [0-9]*, MMIO [1-9]" "$out/$tag.log" || bad "$tag: the MMIO access was not counted"
      grep -q "clock: TSC 1000000 kHz ASSUMED" "$out/$tag.log" && bad "$tag: no clock source (neither CPUID nor the PIT)"
      say "$tag: boots, milestones, command line, heap, clock, status 0: $(grep -o 'clock: TSC.*' "$out/$tag.log" | head -1)"
    fi
    # The app's failure status, and a trap.
    boot "$tag-fail" 3 ACCEL="$accel" MACHINE="$machine" CMDLINE="fail" && say "$tag: \`fail\` on the command line: status 3"
    if boot "$tag-trap" 121 ACCEL="$accel" MACHINE="$machine" CMDLINE="trap"; then
      has "$tag-trap" "panic: CPU exception 6 (#UD invalid opcode" && say "$tag: \`trap\` (fatalError): reported as #UD, status 121"
    fi
  done
done

# -m decides the heap: the largest free region above the image.
accel=${accels[0]}
for mem in 4 64 2048; do
  if boot "mem-$mem" 0 ACCEL="$accel" MEM="${mem}M"; then
    heap=$(sed -n 's/^hello: heap \([0-9]*\) KiB.*/\1/p' "$out/mem-$mem.log")
    image_end_kib=1024   # the heap starts above the image (at ~1.2 MiB), below the end of RAM
    if [ -n "$heap" ] && [ "$heap" -gt $((mem * 1024 - image_end_kib - 512)) ] && [ "$heap" -lt $((mem * 1024)) ]; then
      has "mem-$mem" "last byte written: true" && say "-m ${mem}M: heap $heap KiB, its last byte written"
    else bad "-m ${mem}M: heap '${heap}' KiB, expected a little under $((mem * 1024 - image_end_kib)) KiB"; fi
  fi
done

# The PIT measurement against the CPUID leaf (both under KVM; TCG has no such leaf).
if [ "$accel" = kvm ] && boot pit 0 ACCEL=kvm CPU=host,-arch-capabilities && boot cpuid 0 ACCEL=kvm; then
  pit=$(sed -n 's/.*clock: TSC \([0-9]*\) kHz measured against the PIT.*/\1/p' "$out/pit.log")
  cpuid=$(sed -n 's/.*clock: TSC \([0-9]*\) kHz from CPUID.*/\1/p' "$out/cpuid.log")
  if [ -z "$pit" ] || [ -z "$cpuid" ]; then bad "clock sources: PIT '$pit' kHz, CPUID '$cpuid' kHz (a source missing)"
  else
    ppm=$(( (pit - cpuid) * 1000000 / cpuid ))
    if [ "${ppm#-}" -le 1000 ]; then say "TSC rate from the PIT $pit kHz vs CPUID $cpuid kHz: $ppm ppm"
    else bad "TSC rate from the PIT $pit kHz vs CPUID $cpuid kHz: $ppm ppm (over 0.1%)"; fi
  fi
fi

# A kernel that never exits: without isa-debug-exit uk_exit halts; the timeout must end QEMU.
start=$(date +%s)
if boot hang 124 ACCEL="$accel" DEBUG_EXIT=0 TIMEOUT=3; then
  pid=$(sed -n 's/.*QEMU (PID \([0-9]*\)) stopped.*/\1/p' "$out/hang.log")
  has hang "exit: no isa-debug-exit device at 0xf4: halted" || true
  if [ -z "$pid" ]; then bad "hang: no PID in the timeout report"
  elif kill -0 "$pid" 2>/dev/null; then bad "hang: QEMU (PID $pid) still there after the timeout"
  else say "a kernel that never exits: stopped by the 3 s timeout in $(( $(date +%s) - start )) s, QEMU (PID $pid) killed and reaped"; fi
fi

# SeaBIOS on pc: works, and costs (why pc uses qboot).
if boot seabios 0 ACCEL="$accel" MACHINE=pc FIRMWARE=seabios; then
  say "pc with SeaBIOS ($accel): QEMU start to exit $(qemu_ms seabios) ms (qboot: see below)"
fi

# Boot times: medians of $runs boots per machine, with the first accelerator.
say "boot times ($accel, median of $runs; guest time = the boot stub's first instruction to ...):"
for machine in microvm pc; do
  for i in $(seq "$runs"); do boot "time-$machine-$i" 0 ACCEL="$accel" MACHINE="$machine" || true; done
  q=$(for i in $(seq "$runs"); do qemu_ms "time-$machine-$i"; done | median)
  r=$(for i in $(seq "$runs"); do ready_us "time-$machine-$i"; done | median)
  m=$(for i in $(seq "$runs"); do main_us "time-$machine-$i"; done | median)
  say "  $machine$([ $machine = pc ] && echo +qboot): QEMU start to exit $q ms; guest time to platform ready $r us, to uknet_kernel_main $m us (the boot log's printing in between)"
done
say "image: $size bytes stripped"

if [ $fail -ne 0 ]; then say "FAILED (logs in $out)"; exit 1; fi
say "all checks passed"
