#!/usr/bin/env bash
# Compiles the core modules as Embedded Swift for a bare-metal x86_64 target (the unikernel's),
# so anything hosted-only (Foundation, Glibc, existentials, untyped throws) fails here first.
set -euo pipefail
cd "$(dirname "$0")/.."
swiftc_bin=${SWIFTC:-$(command -v swiftc)}
out=.build-embedded
mkdir -p "$out"
flags=(-target x86_64-unknown-none-elf -enable-experimental-feature Embedded -wmo -parse-as-library
       -Osize -Xfrontend -disable-stack-protector -Xcc -mno-red-zone -Xcc -ffreestanding
       -I Sources/CUKAtomics/include)

compile() { # module-name, object, sources...
  local name=$1 obj=$2; shift 2
  "$swiftc_bin" "${flags[@]}" -module-name "$name" -emit-module -emit-module-path "$out/$name.swiftmodule" \
    -I "$out" -c "$@" -o "$out/$obj"
  echo "embedded-check: $name compiled for x86_64-unknown-none-elf ($(stat -c %s "$out/$obj") bytes of object code)"
}

compile UKNetdev UKNetdev.o $(find Sources/UKNetdev -name '*.swift' | sort)
compile HostStack HostStack.o $(find Sources/HostStack -name '*.swift' | sort)
compile KVStore KVStore.o $(find Sources/Apps/KVStore -name '*.swift' | sort)
compile PktGen PktGen.o $(find Sources/Apps/PktGen -name '*.swift' | sort)
