#!/usr/bin/env bash
# Builds a bootable unikernel image for one app: an x86_64 ELF that `qemu-system-x86_64 -kernel`
# boots through its PVH entry note.
#   scripts/build-image.sh APP          (make image APP=...)
#
# An app is a folder Unikernel/Apps/APP/ with
#   *.swift   the app, compiled as one Embedded Swift module; it defines
#             @_cdecl("uknet_kernel_main") func(_ cmdline: UnsafePointer<CChar>) -> Int32
#             and may `import UKPlatform` (Unikernel/Platform/include/uk_platform.h);
#   modules   the repo's modules it imports, one per line in dependency order (`#` comments), each
#             a folder Sources/NAME or Sources/Apps/NAME: Swift sources are compiled as Embedded
#             Swift with the flags of scripts/embedded-flags.sh, exactly as embedded-check.sh
#             compiles them (plus -I for UKPlatform); C sources as freestanding C with the
#             runtime's flags and the module's include/ folder.
# Linked with the boot stub (Unikernel/Boot), the platform (Unikernel/Platform) and the C runtime
# (Unikernel/Runtime, its static arena cut to 4 KiB: the platform hands the heap the RAM instead)
# by the toolchain's ld.lld with Unikernel/Boot/kernel.ld. Nothing may stay undefined.
#
# Output, in .build-image/APP/: APP.elf (stripped: what boots) and APP.debug.elf (with symbols).
# Module objects are reused while their sources, the flags and the modules before them are
# unchanged; the app, the platform and the runtime (small) are compiled every time.
set -euo pipefail
cd "$(dirname "$0")/.."
app=${1:-}
if [ -z "$app" ] || [ ! -d "Unikernel/Apps/$app" ]; then
  echo "usage: scripts/build-image.sh APP, with APP one of: $(ls Unikernel/Apps | paste -sd ' ')" >&2
  exit 2
fi
dir=Unikernel/Apps/$app
out=.build-image/$app
source scripts/embedded-flags.sh   # flags, cflags, swift_embedded, the toolchain binaries
swift_extra=(-I Unikernel/Platform/include)
cflags+=(-I Unikernel/Platform/include)

# A change of flags (or toolchain) starts afresh: swiftc may keep an object whose IR is unchanged.
stamp="$("$swiftc_bin" --version 2>&1 | head -1) ${flags[*]} ${swift_extra[*]} ${cflags[*]}"
if [ "$(cat "$out/flags" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$out"
  mkdir -p "$out"
  echo "$stamp" >"$out/flags"
fi
mkdir -p "$out/c"

objects=()
rebuilt=false   # once one module is recompiled, every module after it is too (it may import it)
modules=()
[ -f "$dir/modules" ] && mapfile -t modules < <(sed 's/#.*//' "$dir/modules" | awk 'NF { print $1 }')
for m in "${modules[@]}"; do
  src=""
  for d in "Sources/$m" "Sources/Apps/$m"; do [ -d "$d" ] && src=$d && break; done
  if [ -z "$src" ]; then echo "build-image: FAIL: $dir/modules names $m, but there is no Sources/$m or Sources/Apps/$m" >&2; exit 1; fi
  mapfile -t swift_sources < <(find "$src" -name '*.swift' | sort)
  mapfile -t c_sources < <(find "$src" -name '*.c' | sort)
  for c in "${c_sources[@]}"; do
    obj=$out/c/$m-$(basename "${c%.c}").o
    "$clang" "${cflags[@]}" -I "$src/include" -c "$c" -o "$obj"
    objects+=("$obj")
  done
  [ ${#swift_sources[@]} -gt 0 ] || continue
  obj=$out/$m.o
  if $rebuilt || [ ! -f "$obj" ] || [ -n "$(find "$src" -newer "$obj" -print -quit)" ]; then
    swift_embedded "$m" "$obj" "${swift_sources[@]}"
    rebuilt=true
    echo "build-image: $m compiled from $src ($(stat -c %s "$obj") bytes of object file)"
  fi
  objects+=("$obj")
done

mapfile -t app_sources < <(find "$dir" -name '*.swift' | sort)
[ ${#app_sources[@]} -gt 0 ] || { echo "build-image: FAIL: no Swift sources in $dir" >&2; exit 1; }
module_name=$(echo "${app:0:1}" | tr a-z A-Z)${app:1}App   # hello: HelloApp (a module named like a type inside it confuses lookups)
swift_embedded "$module_name" "$out/$module_name.o" "${app_sources[@]}"
objects+=("$out/$module_name.o")

"$clang" "${cflags[@]}" -c Unikernel/Boot/boot.S -o "$out/c/boot.o"
objects+=("$out/c/boot.o")
# The platform without SSE: its ring-0 part runs where kvm-pvm emulates instructions, and that
# emulator has no SSE arithmetic (boot.S). It needs no floating point anyway.
for c in Unikernel/Platform/*.c Sources/CUKHardware/uk_hardware.c; do
  "$clang" "${cflags[@]}" -mgeneral-regs-only -c "$c" -o "$out/c/platform-$(basename "${c%.c}").o"
  objects+=("$out/c/platform-$(basename "${c%.c}").o")
done
for c in Unikernel/Runtime/*.c; do
  "$clang" "${cflags[@]}" -DUKRT_HEAP_SIZE=4096 -c "$c" -o "$out/c/runtime-$(basename "${c%.c}").o"
  objects+=("$out/c/runtime-$(basename "${c%.c}").o")
done

debug=$out/$app.debug.elf image=$out/$app.elf
# -n: sections not page-aligned in the file (QEMU's loader does not care; ~3 KB less).
"$lld" -T Unikernel/Boot/kernel.ld -nostdlib -static --gc-sections --orphan-handling=error -n \
  -o "$debug" "${objects[@]}"
# ld.lld lets weak references stay undefined (address 0): refuse those too.
undefined=$("$nm" -u "$debug")
if [ -n "$undefined" ]; then echo "build-image: FAIL: undefined in $debug:" >&2; echo "$undefined" >&2; exit 1; fi
# The kernel's stack is 64 KiB with the page directories of GiB 1-3 (where the devices' registers
# are mapped) right below it and no guard page: a function that takes a large frame overwrites them
# and the next register access faults far from the cause (seen: 54 KiB for `stats`, inlined). No
# frame may take more than 16 KiB.
largest=0 largest_fn=""
while read -r fn hex; do
  size=$((16#$hex))
  if [ "$size" -gt "$largest" ]; then largest=$size largest_fn=$fn; fi
done < <("$objdump" -d --no-show-raw-insn "$debug" | awk '/^[0-9a-f]+ </ { fn = $2 } /sub[a-z]*[ \t]+\$0x[0-9a-f]+, ?%rsp/ { match($0, /\$0x[0-9a-f]+/); print fn, substr($0, RSTART + 3, RLENGTH - 3) }')
if [ "$largest" -gt 16384 ]; then
  echo "build-image: FAIL: $largest_fn takes a stack frame of $largest bytes (at most 16384: the 64-KiB stack has no guard page)" >&2
  exit 1
fi
"$objcopy" --strip-all "$debug" "$image"
echo "build-image: $app: $image ($(stat -c %s "$image") bytes stripped; with symbols: $debug; largest stack frame $largest bytes)"
