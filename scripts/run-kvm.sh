#!/usr/bin/env bash
# Boots a unikernel image (scripts/build-image.sh) under QEMU and exits with the app's status.
#   scripts/run-kvm.sh IMAGE            (make run-kvm APP=... builds the image first)
# Settings, from the environment (make passes its variables of the same names):
#   MACHINE   microvm (default: no firmware to speak of, no PCI, virtio-mmio), pc (PCI, with
#             FIRMWARE) or q35 (PCI Express: ECAM, named in ACPI's MCFG, and the legacy ports)
#   FIRMWARE  for pc: qboot (default, /usr/share/qemu/qboot.rom: ~10 ms) or seabios (QEMU's
#             default BIOS: seconds under this machine's KVM); microvm always uses its own qboot
#   ACCEL     auto (default: KVM when /dev/kvm can be opened, else TCG, saying so), kvm or tcg
#   CPU       the -cpu model (default: host,-arch-capabilities,+invtsc under KVM, max under TCG)
#   CMDLINE   the kernel command line (-append)
#   MEM       guest RAM (-m; default 64M): the app's heap is what is left of it
#   TIMEOUT   seconds before QEMU is stopped (default 60); then the status is 124
#   DEBUG_EXIT  1 (default) adds isa-debug-exit at 0xf4; 0 leaves it out (the kernel then halts)
#   QEMU_ARGS   more QEMU arguments (devices, -D/-trace, ...), split on spaces
#   NET       a NIC for the guest (virtio-mmio on microvm, virtio-net-pci on pc), MAC 02:00:00:00:00:02:
#             tap            a TAP in a network namespace this script creates (and removes),
#                            192.0.2.1/24 on our side: reach the guest (192.0.2.2 with the
#                            kvstore's CMDLINE netdev.ip=192.0.2.2/24) with `ip netns exec NS ...`
#                            (NS is printed)
#             vhost-user:SOCK  a vhost-user backend listening on SOCK (e.g. dpdk-testpmd
#                            --vdev net_vhost0,iface=SOCK); guest RAM is then a shared memfd
#
# The console (COM1) is this script's stdout; its own lines go to stderr, the last one
#   run-kvm: status S, QEMU start to exit T ms (MACHINE, ACCEL)
# Exit status: the app's (0 success; 0-120 the app's own, 121 a CPU exception, 122 the platform
# could not start the app, 123 an invalid status), or 124 timeout, 125 QEMU failed (its status 1
# or a signal), 126 the guest stopped without a status (a triple fault or reset under -no-reboot).
# The guest writes s + 1 to isa-debug-exit and QEMU exits with 2(s + 1) + 1 = 2s + 3: odd and at
# least 3, never QEMU's own 0 or 1.
#
# QEMU runs in the background with stdin from /dev/null (it never touches the terminal), is
# waited for, and on a timeout or an interrupt is stopped by its PID (TERM, then KILL after 2 s)
# and reaped; so is the timer.
set -euo pipefail
image=${1:-}
if [ -z "$image" ] || [ ! -f "$image" ]; then
  echo "usage: scripts/run-kvm.sh IMAGE (built by scripts/build-image.sh APP)" >&2
  exit 2
fi
machine=${MACHINE:-microvm} firmware=${FIRMWARE:-qboot} accel=${ACCEL:-auto}
mem=${MEM:-64M} timeout=${TIMEOUT:-60} debug_exit=${DEBUG_EXIT:-1} cmdline=${CMDLINE:-}
qemu=${QEMU:-qemu-system-x86_64}
say() { echo "run-kvm: $*" >&2; }

if [ "$accel" = auto ]; then
  if { exec 3<>/dev/kvm; } 2>/dev/null; then
    exec 3>&-
    accel=kvm
  else
    accel=tcg
    say "no usable /dev/kvm: running under TCG (QEMU's emulator)"
  fi
fi
case $accel in
  # host CPU features, less arch-capabilities (this nested host aborts on its MSR); invtsc makes
  # QEMU publish the TSC rate (CPUID 0x40000010), so the kernel need not measure it.
  kvm) cpu=(-accel kvm -cpu "${CPU:-host,-arch-capabilities,+invtsc}")
       [ -d /sys/module/kvm_pvm ] && say "KVM here is kvm-pvm: it emulates ring 0 instruction by instruction and runs ring 3 natively (the kernel's app runs in ring 3)" ;;
  tcg) cpu=(-accel tcg -cpu "${CPU:-max}") ;;
  *) say "ACCEL must be auto, kvm or tcg, not $accel"; exit 2 ;;
esac
case $machine in
  microvm) machine_args=(-M microvm) ;;
  pc|q35) machine_args=(-M "$machine")
      case $firmware in
        qboot) machine_args+=(-bios /usr/share/qemu/qboot.rom) ;;
        seabios) ;;
        *) say "FIRMWARE must be qboot or seabios, not $firmware"; exit 2 ;;
      esac ;;
  *) say "MACHINE must be microvm, pc or q35, not $machine"; exit 2 ;;
esac
args=("${machine_args[@]}" "${cpu[@]}" -m "$mem" -nodefaults -no-user-config -display none
      -serial stdio -no-reboot -kernel "$image" -append "$cmdline")
[ "$debug_exit" = 1 ] && args+=(-device isa-debug-exit,iobase=0xf4,iosize=0x04)
# shellcheck disable=SC2206  # QEMU_ARGS is split on spaces on purpose
[ -n "${QEMU_ARGS:-}" ] && args+=($QEMU_ARGS)
net=${NET:-} netns="" run_in=()
if [ "$machine" = microvm ]; then nic=virtio-net-device; else nic=virtio-net-pci; fi
case $net in
  "") ;;
  tap)
    netns=uknet-run-$$
    ip netns add "$netns"
    ip -n "$netns" link set lo up
    ip -n "$netns" tuntap add dev ukrun0 mode tap
    ip -n "$netns" addr add 192.0.2.1/24 dev ukrun0
    ip -n "$netns" link set ukrun0 up
    run_in=(ip netns exec "$netns")
    args+=(-netdev tap,id=n0,ifname=ukrun0,script=no,downscript=no,vnet_hdr=off -device "$nic,netdev=n0,mac=02:00:00:00:00:02")
    say "NET=tap: namespace $netns, TAP ukrun0 with 192.0.2.1/24 on our side: ip netns exec $netns ..." ;;
  vhost-user:*)
    sock=${net#vhost-user:}
    [ -S "$sock" ] || { say "NET=$net: no socket at $sock (start the backend first, e.g. dpdk-testpmd --vdev net_vhost0,iface=$sock)"; exit 2; }
    args+=(-object "memory-backend-memfd,id=mem,size=$mem,share=on" -numa node,memdev=mem
           -chardev "socket,id=c0,path=$sock" -netdev vhost-user,id=n0,chardev=c0 -device "$nic,netdev=n0,mac=02:00:00:00:00:02") ;;
  *) say "NET must be tap or vhost-user:SOCK, not $net"; exit 2 ;;
esac

pid="" timer="" stopped=$(mktemp)
cleanup() {
  [ -n "$timer" ] && kill "$timer" 2>/dev/null && wait "$timer" 2>/dev/null
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -f "$stopped"
  [ -n "$netns" ] && ip netns del "$netns" 2>/dev/null
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(date +%s%N)
"${run_in[@]}" "$qemu" "${args[@]}" </dev/null &
pid=$! qemu_pid=$!
# The timer: after TIMEOUT seconds, TERM, then KILL 2 s later. Its own sleep is killed by PID
# when the timer is (the trap), so nothing outlives this script.
(
  s=""
  trap '[ -n "$s" ] && kill "$s" 2>/dev/null; exit 0' TERM
  sleep "$timeout" & s=$!; wait "$s"; s=""
  echo timeout >"$stopped"
  kill -TERM "$pid" 2>/dev/null || exit 0
  sleep 2 & s=$!; wait "$s"; s=""
  kill -KILL "$pid" 2>/dev/null
  exit 0
) &
timer=$!
rc=0
wait "$pid" || rc=$?
end=$(date +%s%N)
pid=""
kill "$timer" 2>/dev/null || true
wait "$timer" 2>/dev/null || true
timer=""
ms=$(( (end - start) / 1000000 )).$(( (end - start) / 100000 % 10 ))

if [ -s "$stopped" ]; then
  status=124
  say "TIMEOUT: QEMU (PID $qemu_pid) stopped after ${timeout} s, killed and reaped"
elif [ "$rc" -ge 3 ] && [ "$rc" -le 249 ] && [ $((rc % 2)) -eq 1 ] && [ "$debug_exit" = 1 ]; then
  status=$(( (rc - 3) / 2 ))
elif [ "$rc" -eq 0 ]; then
  status=126
  say "the guest stopped without a status (QEMU exit 0: a triple fault or a reset under -no-reboot)"
else
  status=125
  say "QEMU failed (exit status $rc)"
fi
say "status $status, QEMU start to exit $ms ms ($machine$(case $machine in pc|q35) true ;; *) false ;; esac && echo "+$firmware"), $accel)"
exit "$status"
