# Sourced (not run) by scripts/embedded-check.sh and scripts/build-image.sh: the one definition of
# how this repo compiles Swift as Embedded Swift and C as freestanding code for the unikernel's
# target, x86_64-unknown-none-elf, and which toolchain binaries it uses. Both scripts compile the
# modules in Sources/ with exactly these flags, so what embedded-check proves is what the image runs.
#
# Defines: swiftc_bin, tools (the toolchain's bin folder), nm, clang, lld, objcopy; the arrays
# flags (swiftc) and cflags (clang); and swift_embedded NAME OBJECT SOURCES..., which compiles one
# module into OBJECT and its .swiftmodule into $out (the caller sets out; -I $out finds the modules
# compiled before it). Callers may add to swift_extra (more swiftc arguments, e.g. -I for the
# platform's module map) before calling swift_embedded.

swiftc_bin=${SWIFTC:-$(command -v swiftc)}
tools=$(dirname "$(readlink -f "$swiftc_bin")")   # the toolchain's own llvm-nm, clang, ld.lld
nm=$tools/llvm-nm clang=$tools/clang lld=$tools/ld.lld objcopy=$tools/llvm-objcopy objdump=$tools/llvm-objdump
# -function-sections lets the link's --gc-sections drop Swift code nothing reaches.
flags=(-target x86_64-unknown-none-elf -enable-experimental-feature Embedded -enable-experimental-feature SuppressedAssociatedTypes -wmo -parse-as-library
       -Osize -Xfrontend -disable-stack-protector -Xfrontend -function-sections
       -Xcc -mno-red-zone -Xcc -ffreestanding -I Sources/CUKAtomics/include -I Sources/CUKHardware/include)
# The runtime's C: freestanding headers only (-nostdlibinc keeps just the compiler's own).
cflags=(--target=x86_64-unknown-none-elf -std=c11 -O2 -ffreestanding -nostdlibinc -fno-stack-protector
        -mno-red-zone -ffunction-sections -fdata-sections -Wall -Wextra -Werror -I Unikernel/Runtime -I Sources/CUKHardware/include)
swift_extra=()

swift_embedded() { # module-name, object path, sources...
  local name=$1 obj=$2; shift 2
  "$swiftc_bin" "${flags[@]}" "${swift_extra[@]}" -module-name "$name" -emit-module -emit-module-path "$out/$name.swiftmodule" \
    -I "$out" -c "$@" -o "$obj"
}
