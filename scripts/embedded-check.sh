#!/usr/bin/env bash
# Compiles the core modules as Embedded Swift for a bare-metal x86_64 target (the unikernel's),
# so anything hosted-only (Foundation, Glibc, existentials, untyped throws) fails here first.
# Then, so that nothing unplanned reaches the unikernel: the symbols the objects take from outside
# must be exactly those in scripts/embedded-undefined-symbols.txt, and the objects must link with
# the freestanding runtime (Unikernel/Runtime) and a test entry (Unikernel/LinkTest) into a static
# ELF with nothing undefined. On x86_64 Linux that ELF also runs (it needs no OS but two syscalls).
#   scripts/embedded-check.sh [--self-test]
# --self-test then shows each check failing when it must: a module with a new runtime need, a listed
# symbol no object needs, a link without the runtime, and a double free in the runtime's heap.
set -euo pipefail
cd "$(dirname "$0")/.."
self_test=false
[ "${1:-}" = --self-test ] && self_test=true
out=.build-embedded
source scripts/embedded-flags.sh   # flags, cflags, swift_embedded, the toolchain binaries
expected=scripts/embedded-undefined-symbols.txt
# swiftc leaves an object alone when its IR is unchanged (.swift_modhash), even if codegen flags
# changed (-function-sections did): start afresh whenever the flags differ from the last run's.
if [ "$(cat "$out/flags" 2>/dev/null)" != "${flags[*]} ${cflags[*]}" ]; then
  rm -rf "$out"
  mkdir -p "$out"
  echo "${flags[*]} ${cflags[*]}" >"$out/flags"
fi
mkdir -p "$out/link" "$out/self-test"

objects=()   # every module compiled below: the symbol check and the link take them all
compile() { # module-name, object, sources...
  local name=$1 obj=$2; shift 2
  swift_embedded "$name" "$out/$obj" "$@"
  objects+=("$out/$obj")
  echo "embedded-check: $name compiled for x86_64-unknown-none-elf ($(stat -c %s "$out/$obj") bytes of object file)"
}

# The symbols a list names (first word of a line; `#` comments and blank lines skipped), and the
# symbols objects leave undefined.
listed() { sed 's/#.*//' "$1" | awk 'NF { print $1 }' | sort -u; }
undefined() { for o in "$@"; do "$nm" -u "$o" | awk '{ print $NF }'; done | sort -u; }

check_symbols() { # list, objects...: their undefined symbols must be exactly the list's
  local list=$1 s o; shift
  local new gone
  new=$(comm -13 <(listed "$list") <(undefined "$@"))
  gone=$(comm -23 <(listed "$list") <(undefined "$@"))
  if [ -z "$new$gone" ]; then
    echo "embedded-check: undefined symbols of ${#@} objects = $list ($(listed "$list" | paste -sd ' '))"
    return 0
  fi
  echo "embedded-check: FAIL: the undefined symbols of the Embedded objects differ from $list:"
  for s in $new; do
    local users=()
    for o in "$@"; do undefined "$o" | grep -qxF -- "$s" && users+=("$(basename "$o")"); done
    echo "  + $s (needed by ${users[*]}; not listed)"
  done
  for s in $gone; do echo "  - $s (listed; no object needs it)"; done
  [ -z "$new" ] || echo "  A new runtime need (+): remove it from the Swift code, or implement it in Unikernel/Runtime and list it with the reason."
  [ -z "$gone" ] || echo "  A need gone (-): take it off the list (the list stays exact), and out of the runtime if nothing else uses it."
  return 1
}

runtime() { # heap size, object dir: compiles Unikernel/Runtime/*.c, prints the objects
  local heap=$1 dir=$2 c
  for c in Unikernel/Runtime/*.c; do
    "$clang" "${cflags[@]}" -DUKRT_HEAP_SIZE="$heap" -c "$c" -o "$dir/$(basename "${c%.c}").o"
    echo "$dir/$(basename "${c%.c}").o"
  done
}

link() { # elf, objects...: static, no libc, unreached sections dropped; fails on anything undefined
  local elf=$1; shift
  "$lld" -nostdlib -static --gc-sections -e _start -o "$elf" "$@" || return 1
  # ld.lld lets weak references stay undefined (address 0): refuse those too.
  local weak
  weak=$("$nm" -u "$elf")
  if [ -n "$weak" ]; then echo "embedded-check: FAIL: undefined in $elf:"; echo "$weak"; return 1; fi
}

can_run() { [ "$(uname -sm)" = "Linux x86_64" ]; }

compile UKNetdev UKNetdev.o $(find Sources/UKNetdev -name '*.swift' | sort)
compile HostStack HostStack.o $(find Sources/HostStack -name '*.swift' | sort)
compile KVStore KVStore.o $(find Sources/Apps/KVStore -name '*.swift' | sort)
compile PktGen PktGen.o $(find Sources/Apps/PktGen -name '*.swift' | sort)
compile VirtioNet VirtioNet.o $(find Sources/VirtioNet -name '*.swift' | sort)
# The in-process device, so the link test can drive the generic driver (specialized as the
# unikernel's transports will be) through its rings.
compile VirtioNetGuest VirtioNetGuest.o $(find Sources/VirtioNetGuest -name '*.swift' | sort)
compile KernelCommandLine KernelCommandLine.o $(find Sources/KernelCommandLine -name '*.swift' | sort)
"$clang" "${cflags[@]}" -c Sources/CUKHardware/uk_hardware.c -o "$out/uk_hardware.o"   # the exit counters
objects+=("$out/uk_hardware.o")
compile VirtioNetEmulator VirtioNetEmulator.o $(find Sources/VirtioNetEmulator -name '*.swift' | sort)

check_symbols "$expected" "${objects[@]}"

# The link test: the runtime with a 16 MiB arena (the test's KV store takes 2 MiB, its pool 1 MiB).
swift_embedded LinkTest "$out/link/LinkTest.o" Unikernel/LinkTest/LinkTest.swift
"$clang" "${cflags[@]}" -c Unikernel/LinkTest/start.c -o "$out/link/start.o"
mapfile -t runtime_objects < <(runtime '(16u << 20)' "$out/link")
elf=$out/link/linktest
link "$elf" "${objects[@]}" "$out/link/LinkTest.o" "$out/link/start.o" "${runtime_objects[@]}"
echo "embedded-check: linked $elf: $("$objcopy" --strip-all "$elf" "$elf.stripped" && stat -c %s "$elf.stripped") bytes stripped, nothing undefined"
if can_run; then
  status=0; "$elf" >"$out/link/run.log" 2>&1 || status=$?
  sed 's/^/  /' "$out/link/run.log"
  if [ "$status" -ne 0 ]; then
    echo "embedded-check: FAIL: $elf exited with status $status (see LinkTest.swift and start.c; 132: ud2, a bad free)"
    exit 1
  fi
  echo "embedded-check: $elf ran as a Linux process: heap checks, ring loopback, KV requests, virtio driver loopback passed"
else
  echo "embedded-check: $elf not run (needs x86_64 Linux)"
fi

$self_test || exit 0

# Negative controls: each check must fail here, and say why.
st=$out/self-test
fail=0
expect_failure() { # description, pattern the output must contain, command...
  local what=$1 pattern=$2; shift 2
  if "$@" >"$st/log" 2>&1; then
    echo "embedded-check: self-test FAILED: $what passed"; fail=1
  elif ! grep -qF -- "$pattern" "$st/log"; then
    echo "embedded-check: self-test FAILED: $what failed without naming '$pattern':"; sed 's/^/  /' "$st/log"; fail=1
  else
    echo "embedded-check: self-test: $what is caught:"; sed -n '1,8s/^/  | /p' "$st/log"   # no pipe into head: with pipefail its SIGPIPE (141) ended the script
  fi
}

# A realistic slip: a Double remainder (a pacer's phase) lowers to a call to libm's fmod.
printf '%s\n' 'public func phase(_ t: Double, period: Double) -> Double { t.truncatingRemainder(dividingBy: period) }' \
  >"$st/NewNeed.swift"
swift_embedded NewNeed "$st/NewNeed.o" "$st/NewNeed.swift"
expect_failure "a module needing fmod" "+ fmod (needed by NewNeed.o" check_symbols "$expected" "${objects[@]}" "$st/NewNeed.o"

{ cat "$expected"; echo "strlen   # the control: listed, needed by nothing"; } >"$st/list-plus-one.txt"
expect_failure "a listed symbol no object needs" "- strlen" check_symbols "$st/list-plus-one.txt" "${objects[@]}"

expect_failure "a link without the runtime" "undefined symbol: posix_memalign" \
  link "$st/linktest" "${objects[@]}" "$out/link/LinkTest.o" "$out/link/start.o"

# One live handle per device: a second handle to a device does not compile (NetDevice is ~Copyable).
printf '%s\n' 'import UKNetdev' \
  'public func twoHandles() -> Int { var a = RingDevice.loopback(); let b = a; a.stop(); return b.info.mtu }' >"$st/TwoHandles.swift"
expect_failure "a second handle to a device" "used after consume" swift_embedded TwoHandles "$st/TwoHandles.o" "$st/TwoHandles.swift"

if can_run; then
  # ud2 in free: the process dies of SIGILL (status 132) instead of corrupting the free list.
  # (An inner bash, so its report of the signal lands in the log rather than on the terminal.)
  status=0; bash -c '"$0" double-free; exit $?' "$elf" >"$st/log" 2>&1 || status=$?
  if [ "$status" -eq 132 ]; then echo "embedded-check: self-test: a double free stops the runtime (SIGILL)"
  else echo "embedded-check: self-test FAILED: a double free gave status $status:"; cat "$st/log"; fail=1; fi
fi
exit $fail
