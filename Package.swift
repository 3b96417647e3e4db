// swift-tools-version:6.1
import PackageDescription

// Devices are ~Copyable (one live handle per device); middleware names its inner device as an
// associated type that may be ~Copyable, which needs this (also passed by make embedded-check).
let swiftSettings: [SwiftSetting] = [.enableExperimentalFeature("SuppressedAssociatedTypes")]

// Core modules (UKNetdev and its Wire views) must also build as Embedded Swift for
// x86_64-unknown-none-elf: `make embedded-check` compiles them that way. Keep Foundation,
// Glibc and existentials out of them; OS code goes in UKNetdevLinux.
let package = Package(
    name: "UKNet",
    products: [
        .library(name: "UKNetdev", targets: ["UKNetdev"]),
        .library(name: "UKNetdevLinux", targets: ["UKNetdevLinux"]),
        .library(name: "PcapNet", targets: ["PcapNet"]),
        .library(name: "NetdevSpec", targets: ["NetdevSpec"]),
        .library(name: "HostStack", targets: ["HostStack"]),
        .library(name: "VirtioNet", targets: ["VirtioNet"]),
        .library(name: "VirtioNetVhostUser", targets: ["VirtioNetVhostUser"]),
        .library(name: "KVStore", targets: ["KVStore"]),
        .library(name: "VirtioNetEmulator", targets: ["VirtioNetEmulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // Atomics, fences and CPU hints as static inline C (freestanding, Embedded-safe).
        .target(name: "CUKAtomics", path: "Sources/CUKAtomics"),
        // The core: netbufs, pools, the device contract, in-memory devices, middleware, wire views.
        .target(name: "UKNetdev", dependencies: ["CUKAtomics"], path: "Sources/UKNetdev", swiftSettings: swiftSettings),
        // What only a Linux process has: eventfd-based RX events, waiting with poll(2).
        // DWARF 4: the benchmarks link it (through ToolSupport) and valgrind 3.19 cannot read DWARF 5.
        .target(name: "CUKLinux", path: "Sources/CUKLinux", cSettings: [.unsafeFlags(["-gdwarf-4"])]),
        .target(name: "UKNetdevLinux", dependencies: ["UKNetdev", "CUKLinux"], path: "Sources/UKNetdevLinux", swiftSettings: swiftSettings),
        // The vhost-user frontend protocol (hosted): shared memory a backend maps, and the
        // socket messages that hand it our memory and virtqueues.
        .target(name: "VirtioNetVhostUser", dependencies: ["VirtioNet", "UKNetdev", "UKNetdevLinux", "CUKLinux"], path: "Sources/VirtioNetVhostUser", swiftSettings: swiftSettings),

        // The host stack both apps share: ARP, IPv4 checks, ICMP echo, reassembly, chained RX frames. [Embedded]
        .target(name: "HostStack", dependencies: ["UKNetdev"], path: "Sources/HostStack", swiftSettings: swiftSettings),

        // The memcached-UDP key-value store engine: storage, text protocol, memcached over UDP. [Embedded]
        .target(name: "KVStore", dependencies: ["UKNetdev", "HostStack"], path: "Sources/Apps/KVStore", swiftSettings: swiftSettings),

        // The virtio-net driver: split virtqueues and the net device logic, generic over a transport. [Embedded]
        .target(name: "VirtioNet", dependencies: ["UKNetdev", "CUKAtomics"], path: "Sources/VirtioNet", swiftSettings: swiftSettings),

        // Port I/O, MMIO and the TSC as static inline C, for the unikernel's drivers (freestanding).
        .target(name: "CUKHardware", path: "Sources/CUKHardware"),
        // VirtioNet inside a guest: PCI enumeration, legacy and modern virtio-pci, virtio-mmio. [Embedded]
        .target(name: "VirtioNetGuest", dependencies: ["VirtioNet", "UKNetdev", "CUKHardware"], path: "Sources/VirtioNetGuest", swiftSettings: swiftSettings),

        // The unikernel's command line (Unikraft-style key=value words), typed and checked. [Embedded]
        .target(name: "KernelCommandLine", dependencies: ["UKNetdev"], path: "Sources/KernelCommandLine", swiftSettings: swiftSettings),

        // An in-process virtio-net device (the device side of the rings) for tests and benchmarks.
        .target(name: "VirtioNetEmulator", dependencies: ["VirtioNet", "UKNetdev", "CUKAtomics"], path: "Sources/VirtioNetEmulator", swiftSettings: swiftSettings),

        // The packet generator engine: template TX, pacing, RX meter, memcached load, replay. [Embedded]
        .target(name: "PktGen", dependencies: ["UKNetdev", "HostStack"], path: "Sources/Apps/PktGen", swiftSettings: swiftSettings),

        // Command-line tools: thin entry points over the libraries.
        .target(name: "ToolSupport", dependencies: ["CUKAtomics", "CUKLinux"], path: "Sources/Tools/ToolSupport", swiftSettings: swiftSettings),
        .executableTarget(
            name: "kvstore",
            dependencies: ["KVStore", "HostStack", "NetdevSpec", "UKNetdev", "LwIPBridge", "ToolSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/Tools/kvstore", swiftSettings: swiftSettings),
        .executableTarget(
            name: "pktgen",
            dependencies: ["PktGen", "KVStore", "NetdevSpec", "PcapNet", "UKNetdev", "ToolSupport",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Histogram", package: "hdrhistogram-swift")],
            path: "Sources/Tools/pktgen", swiftSettings: swiftSettings),

        // Benchmarks: counting malloc calls needs an interposer linked into the benchmark only.
        // DWARF 4: valgrind 3.19 (callgrind in the hot-path check) cannot read clang's DWARF 5.
        .target(name: "CBenchSupport", path: "Benchmarks/CBenchSupport", cSettings: [.unsafeFlags(["-gdwarf-4"])]),
        .target(name: "BenchSupport", dependencies: ["CBenchSupport", "ToolSupport"], path: "Benchmarks/BenchSupport", swiftSettings: swiftSettings),
        .executableTarget(
            name: "netdev-bench",
            dependencies: ["UKNetdev", "VirtioNet", "VirtioNetEmulator", "DPDKNet", "BenchSupport"],
            path: "Benchmarks/NetdevBench", swiftSettings: swiftSettings),

        // pcap backend (hosted): PcapDevice and the PcapWriter middleware over libpcap.
        .systemLibrary(name: "CPcap", path: "Sources/CPcap", pkgConfig: "libpcap", providers: [.apt(["libpcap-dev"])]),
        .target(name: "PcapNet", dependencies: ["UKNetdev", "CPcap"], path: "Sources/PcapNet", swiftSettings: swiftSettings),
        // DPDK backend (hosted): a C shim that alone includes DPDK's headers (Swift cannot import
        // rte_mbuf; the headers want -march), and DPDKNet, a NetDevice over any DPDK port whose
        // mbufs are our NetBufs. Debian's libdpdk.pc cannot be parsed by SwiftPM: flags by hand.
        .target(name: "CDPDK", path: "Sources/CDPDK",
                cSettings: [.unsafeFlags(["-march=corei7", "-I/usr/include/dpdk", "-I/usr/include/x86_64-linux-gnu/dpdk", "-gdwarf-4"])],
                linkerSettings: [.linkedLibrary("rte_eal"), .linkedLibrary("rte_ethdev"), .linkedLibrary("rte_mbuf"),
                                 .linkedLibrary("rte_mempool"), .linkedLibrary("rte_ring"), .linkedLibrary("rte_net"),
                                 .linkedLibrary("rte_kvargs"), .linkedLibrary("rte_telemetry"), .linkedLibrary("dl"),
                                 // The shim's munmap must be the one the PMDs (loaded at run time) call.
                                 .unsafeFlags(["-Xlinker", "--export-dynamic-symbol=munmap"])]),
        .target(name: "DPDKNet", dependencies: ["UKNetdev", "CDPDK"], path: "Sources/DPDKNet", swiftSettings: swiftSettings),
        // lwIP as a netif over any UKNetdev device (hosted): a C shim that alone includes
        // Debian's lwIP headers (Hurd-built: its lwipopts.h decides the struct layouts), and
        // LwIPBridge, the netif, zero-copy pbufs over NetBufs, and UDP.
        .target(name: "CLwIP", path: "Sources/CLwIP",
                cSettings: [.unsafeFlags(["-I/usr/include/lwip", "-gdwarf-4"])],
                linkerSettings: [.linkedLibrary("lwip")]),
        .target(name: "LwIPBridge", dependencies: ["UKNetdev", "CLwIP"], path: "Sources/LwIPBridge", swiftSettings: swiftSettings),
        // Device specs for command-line tools ("pcap:rx=F", "tap:ifname=N", "null", "ring").
        .target(name: "NetdevSpec", dependencies: ["UKNetdev", "UKNetdevLinux", "PcapNet", "VirtioNet", "VirtioNetVhostUser", "DPDKNet"], path: "Sources/NetdevSpec", swiftSettings: swiftSettings),

        .executableTarget(
            name: "pktgen-bench",
            dependencies: ["PktGen", "UKNetdev", "BenchSupport"],
            path: "Benchmarks/PktGenBench", swiftSettings: swiftSettings),
        .executableTarget(
            name: "kv-bench",
            dependencies: ["KVStore", "UKNetdev", "BenchSupport"],
            path: "Benchmarks/KVBench", swiftSettings: swiftSettings),

        // Helpers shared by the test targets (burst arrays, pools checked for leaks).
        .target(name: "TestSupport", dependencies: ["UKNetdev"], path: "Tests/TestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "KVStoreTests", dependencies: ["TestSupport", "KVStore", "HostStack", "UKNetdev", "PcapNet", "UKNetdevLinux"], path: "Tests/KVStoreTests", swiftSettings: swiftSettings),
        .testTarget(name: "HostStackTests", dependencies: ["TestSupport", "HostStack", "UKNetdev"], path: "Tests/HostStackTests", swiftSettings: swiftSettings),
        .testTarget(name: "UKNetdevTests", dependencies: ["TestSupport", "UKNetdev", "UKNetdevLinux"], path: "Tests/UKNetdevTests", swiftSettings: swiftSettings),
        .testTarget(name: "UKNetdevLinuxTests", dependencies: ["TestSupport", "UKNetdev", "UKNetdevLinux"], path: "Tests/UKNetdevLinuxTests", swiftSettings: swiftSettings),
        .testTarget(name: "PcapNetTests", dependencies: ["TestSupport", "UKNetdev", "PcapNet"], path: "Tests/PcapNetTests", swiftSettings: swiftSettings),
        .testTarget(name: "PktGenTests", dependencies: ["TestSupport", "PktGen", "KVStore", "HostStack", "UKNetdev", "PcapNet"], path: "Tests/PktGenTests", swiftSettings: swiftSettings),
        .testTarget(name: "VirtioNetTests", dependencies: ["TestSupport", "UKNetdev", "VirtioNet", "VirtioNetEmulator", "VirtioNetGuest"], path: "Tests/VirtioNetTests", swiftSettings: swiftSettings),
        .testTarget(name: "VirtioNetVhostUserTests", dependencies: ["TestSupport", "VirtioNetVhostUser", "VirtioNet", "UKNetdev", "UKNetdevLinux", "CUKLinux"], path: "Tests/VirtioNetVhostUserTests", swiftSettings: swiftSettings),
        .testTarget(name: "KernelCommandLineTests", dependencies: ["KernelCommandLine", "UKNetdev"], path: "Tests/KernelCommandLineTests", swiftSettings: swiftSettings),
        .testTarget(name: "DPDKNetTests", dependencies: ["TestSupport", "DPDKNet", "UKNetdev", "VirtioNetVhostUser"], path: "Tests/DPDKNetTests", swiftSettings: swiftSettings),
        .testTarget(name: "NetdevSpecTests", dependencies: ["TestSupport", "UKNetdev", "PcapNet", "NetdevSpec"], path: "Tests/NetdevSpecTests", swiftSettings: swiftSettings),
    ]
)
