import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport

// The KV store as a unikernel (Unikernel/Apps/kvstore, built from the same Sources/ as the
// hosted store) booted by QEMU on a TAP in a namespace the test creates, spoken to by a Linux
// UDP socket there: the memcached session of the TAP tests (memcached 1.6.18's replies), ping,
// ARP, then a `shutdown` request (kv.shutdown=1, memcached's -A) ends it with the success
// status. One run per transport: legacy virtio-pci and modern-only virtio-pci on `-M pc`,
// virtio-mmio on `-M microvm`. KVM when /dev/kvm works, else TCG (scripts/run-kvm.sh decides).

enum UnikernelHarness {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let qemu = Processes.executable(["/usr/bin/qemu-system-x86_64"])
    static let canRun = TapHarness.canRun && qemu != nil
    static let skipReason: Comment = "needs root, /dev/net/tun, iproute2, python3 and qemu-system-x86_64 (make test installs them)"

    /// The image, built once per test run by scripts/build-image.sh (make test builds it first).
    static let image: Result<String, Processes.Failed> = {
        let path = repo + "/.build-image/kvstore/kvstore.elf"
        do {
            let r = try Processes.run([repo + "/scripts/build-image.sh", "kvstore"], seconds: 600)
            guard r.exit == .code(0) else { return .failure(Processes.Failed(description: "build-image: \(r.exit): \(r.output)")) }
        } catch let e as Processes.Failed {
            return .failure(e)
        } catch {
            return .failure(Processes.Failed(description: "\(error)"))
        }
        return FileManager.default.fileExists(atPath: path) ? .success(path)
            : .failure(Processes.Failed(description: "build-image made no \(path)"))
    }()

    /// Sends one memcached UDP datagram (request id 0x5151) with `payload` from `namespace`.
    static func sendDatagram(_ payload: String, in namespace: String) throws {
        let script = """
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"\\x51\\x51\\x00\\x00\\x00\\x01\\x00\\x00" + sys.argv[1].encode().decode("unicode_escape").encode("latin-1"), ("192.0.2.2", 11211))
        """
        let r = try TapHarness.python(script, in: namespace, arguments: [payload], seconds: 10)
        guard r.exit == .code(0) else { throw Processes.Failed(description: "send: \(r.exit) \(r.output)") }
    }
}

@Suite(.serialized) struct UnikernelTests {
    enum Variant: String, CaseIterable, CustomStringConvertible {
        case pcLegacyPCI, pcModernPCI, microvmMMIO, microvmModernMMIO
        /// PCI Express: config space through ECAM, found in ACPI's MCFG table.
        case q35ModernECAM
        /// The same image under QEMU's emulator (TCG), as on a machine without KVM.
        case microvmMMIOUnderTCG
        var description: String { rawValue }
        var machine: String {
            switch self {
            case .pcLegacyPCI, .pcModernPCI: "pc"
            case .q35ModernECAM: "q35"
            default: "microvm"
            }
        }
        var accel: String { self == .microvmMMIOUnderTCG ? "tcg" : "auto" }
        /// One variant naps between polls (kv.idle: the local APIC timer wakes it), so the idle
        /// path carries the same session.
        var extraCommandLine: String { self == .microvmModernMMIO || self == .pcModernPCI ? " kv.idle=250" : "" }
        var device: String {
            switch self {
            case .pcLegacyPCI: "virtio-net-pci,netdev=n0,mac=02:00:00:00:00:02"
            case .pcModernPCI, .q35ModernECAM: "virtio-net-pci,netdev=n0,mac=02:00:00:00:00:02,disable-legacy=on"
            case .microvmMMIO, .microvmMMIOUnderTCG: "virtio-net-device,netdev=n0,mac=02:00:00:00:00:02"
            // Version 2 registers (QEMU's virtio-mmio is version 1, legacy, unless told).
            case .microvmModernMMIO: "virtio-net-device,netdev=n0,mac=02:00:00:00:00:02 -global virtio-mmio.force-legacy=false"
            }
        }
        /// What the kernel must say it found.
        var found: String {
            switch self {
            case .pcLegacyPCI: "pci: legacy virtio-net"
            case .pcModernPCI: "pci: modern virtio-net"
            case .q35ModernECAM: "pcie (ECAM at 0xb0000000): modern virtio-net"
            case .microvmMMIO, .microvmMMIOUnderTCG: "virtio-mmio: net at 0xfeb0"   // then the slot QEMU chose, ", version 1"
            case .microvmModernMMIO: "virtio-mmio: net at 0xfeb0"
            }
        }
    }

    @Test(.enabled(if: UnikernelHarness.canRun, UnikernelHarness.skipReason), arguments: Variant.allCases)
    func kvStoreImageServesMemcachedOverTAP(_ variant: Variant) throws {
        let image = try UnikernelHarness.image.get()
        let pid = getpid()
        let namespace = "uknet-uk-\(pid)"
        let ifname = "ukt\(pid % 10_000)"
        _ = try? Processes.run([TapHarness.ip!, "netns", "del", namespace])
        try TapHarness.ipCommand("netns", "add", namespace)
        defer { _ = try? Processes.run([TapHarness.ip!, "netns", "del", namespace]) }

        let output = Processes.outputPath()
        defer { unlink(output) }
        var child = try Processes.spawn(["/usr/bin/env", "MACHINE=\(variant.machine)", "ACCEL=\(variant.accel)", "TIMEOUT=90", "MEM=64M",
                                         "CMDLINE=netdev.ip=192.0.2.2/24 kv.shutdown=1 kv.seconds=80" + variant.extraCommandLine,
                                         "QEMU_ARGS=-netdev tap,id=n0,ifname=\(ifname),script=no,downscript=no -device \(variant.device)",
                                         UnikernelHarness.repo + "/scripts/run-kvm.sh", image], output: output)
        defer {
            if child > 0 {
                kill(child, SIGTERM)
                _ = Processes.wait(child, seconds: 5)
            }
        }
        // QEMU creates the TAP in this (the root) namespace: wait for it, then move it.
        var appeared = false
        let deadline = Processes.monotonic() + 20
        while Processes.monotonic() < deadline && !appeared {
            appeared = (try? Processes.run([TapHarness.ip!, "link", "show", ifname], seconds: 2))?.exit == .code(0)
            if !appeared { usleep(20_000) }
        }
        try #require(appeared, "QEMU did not create \(ifname): \(Processes.read(output))")
        try TapHarness.configureNamespaceSide(ifname, namespace)
        var ready = false
        let readyBy = Processes.monotonic() + 30
        while Processes.monotonic() < readyBy && !ready {
            ready = Processes.read(output).contains("kvstore: ready on 192.0.2.2:11211")
            if !ready { usleep(20_000) }
        }
        try #require(ready, "the kernel did not get ready:\n\(Processes.read(output))")
        let booted = Processes.read(output)
        #expect(booted.contains(variant.found), "\(booted)")
        if variant == .microvmMMIO { #expect(booted.contains(", version 1 ("), "legacy virtio-mmio registers: \(booted)") }
        if variant == .microvmModernMMIO { #expect(booted.contains(", version 2 ("), "modern virtio-mmio registers: \(booted)") }

        let exchanges = TapTests.session()
        let report = try TapHarness.memcachedClient(exchanges, in: namespace)
        TapHarness.expectReplies(report, exchanges)
        // `stats`: the window into a running unikernel store. Its counters after the session.
        let statsReport = try TapHarness.memcachedClient([TapHarness.exchange("stats", Array("stats\r\n".utf8), reply: [[[]]])],
                                                         in: namespace)
        let statsText = String(decoding: TapHarness.bytes(hex: statsReport.results.first?.hex ?? ""), as: UTF8.self)
        for line in ["STAT pid 0", "STAT version 1.6.18", "STAT cmd_get 8", "STAT get_hits 6", "STAT get_misses 2", "STAT cmd_set 5",
                     "STAT incr_hits 2", "STAT delete_hits 2", "STAT curr_items 3", "STAT threads 1", "END"] {
            #expect(statsText.contains(line + "\r\n"), "stats: no '\(line)' in \(statsText)")
        }
        let ping = try TapHarness.ping3(in: namespace)
        #expect(ping.exit == .code(0) && ping.output.contains("3 packets transmitted, 3 received"), "ping: \(ping.output)")
        let neighbour = try TapHarness.ipCommand("-n", namespace, "neigh", "show", "192.0.2.2")
        #expect(neighbour.contains("lladdr 02:00:00:00:00:02"), "neighbour entry: \(neighbour)")

        try UnikernelHarness.sendDatagram("shutdown\\r\\n", in: namespace)
        let exit = Processes.wait(child, seconds: 30)
        child = 0
        let console = Processes.read(output)
        #expect(exit == .code(0), "run-kvm: \(exit)\n\(console)")
        #expect(console.contains("kvstore: shutdown (a shutdown request)"), "\(console)")
        if variant == .microvmMMIOUnderTCG { #expect(console.contains("(microvm, tcg)"), "it ran under TCG: \(console)") }
        let requests = exchanges.filter { !$0.raw }.count
        #expect(console.contains("stats: requests \(requests + 2),"), "every request counted, stats and the shutdown too:\n\(console)")
        // The busy meter, as the hosted store prints it (make compare reads it): polls that received frames.
        #expect(console.contains(" polls that received frames (") && console.contains(" ns per request (one core at that cost: "),
                "no busy line:\n\(console)")
        print("unikernel \(variant):\n" + console)
    }

    /// The packet generator image (Unikernel/Apps/pktgen: PktGen's engine over the same driver)
    /// sends exactly what it was told: Linux's counters on the TAP agree, frame for frame and byte
    /// for byte.
    @Test(.enabled(if: UnikernelHarness.canRun, UnikernelHarness.skipReason), arguments: ["microvm", "pc"])
    func pktgenImageSendsExactlyTheCountItWasGiven(_ machine: String) throws {
        let r0 = try Processes.run([UnikernelHarness.repo + "/scripts/build-image.sh", "pktgen"], seconds: 600)
        try #require(r0.exit == .code(0), "\(r0.output)")
        let image = UnikernelHarness.repo + "/.build-image/pktgen/pktgen.elf"
        let namespace = "uknet-ukpg-\(getpid())"
        _ = try? Processes.run([TapHarness.ip!, "netns", "del", namespace])
        try TapHarness.ipCommand("netns", "add", namespace)
        defer { _ = try? Processes.run([TapHarness.ip!, "netns", "del", namespace]) }
        try TapHarness.ipCommand("-n", namespace, "tuntap", "add", "dev", "pg0", "mode", "tap")
        try TapHarness.ipCommand("-n", namespace, "link", "set", "pg0", "up")
        let nic = machine == "microvm" ? "virtio-net-device" : "virtio-net-pci"
        let r = try Processes.run([TapHarness.ip!, "netns", "exec", namespace, "/usr/bin/env", "MACHINE=\(machine)", "TIMEOUT=60",
                                   "CMDLINE=pg.count=50000 pg.size=128 pg.flows=4",
                                   "QEMU_ARGS=-netdev tap,id=n0,ifname=pg0,script=no,downscript=no,vnet_hdr=off -device \(nic),netdev=n0,mac=02:00:00:00:00:10",
                                   UnikernelHarness.repo + "/scripts/run-kvm.sh", image], seconds: 90)
        #expect(r.exit == .code(0), "\(r.output)")
        #expect(r.output.contains("pktgen: sent 50000 frames, 6200000 bytes"), "\(r.output)")
        let stats = try TapHarness.ipCommand("-n", namespace, "-s", "link", "show", "pg0")
        // "RX: bytes packets ..." then the numbers: what Linux received from the guest.
        let lines = stats.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let rx = try #require(lines.firstIndex { $0.first == "RX:" }.map { lines[$0 + 1] }, "\(stats)")
        #expect(rx.count >= 2 && rx[0] == "6200000" && rx[1] == "50000", "the TAP received \(rx): \(stats)")
    }

    /// Bad input at boot: a clear console line and the failure status, never a hang.
    @Test(.enabled(if: UnikernelHarness.qemu != nil, "qemu-system-x86_64 is not installed"),
          arguments: [("netdev.ip=192.0.2.300/24", 2, "kvstore: bad command line value netdev.ip=192.0.2.300/24: expected A.B.C.D[/prefix]"),
                      ("kv.port=11211", 2, "kvstore: missing netdev.ip= on the command line (e.g. netdev.ip=192.0.2.2/24)"),
                      ("netdev.ip=192.0.2.2/24 kv.port=70000", 2, "kvstore: bad command line value kv.port=70000: expected a number 1...65535"),
                      ("netdev.ip=192.0.2.2/24 kv.allow=198.51.100.0/24 kv.allow=10.0.0.0/33", 2,
                       "kvstore: bad command line value kv.allow=10.0.0.0/33: expected A.B.C.D/N"),
                      ("netdev.ip=192.0.2.2/24", 3, "kvstore: no virtio-net device found")])
    func badCommandLinesAndNoNICEndWithAClearMessage(_ cmdline: String, _ status: Int32, _ message: String) throws {
        let image = try UnikernelHarness.image.get()
        let r = try Processes.run(["/usr/bin/env", "MACHINE=pc", "TIMEOUT=30", "CMDLINE=\(cmdline)",
                                   UnikernelHarness.repo + "/scripts/run-kvm.sh", image], seconds: 40)
        #expect(r.exit == .code(status), "\(r.output)")
        #expect(r.output.contains(message), "\(r.output)")
    }

    /// The image links the repo's KVStore engine itself: its module list names Sources/Apps/KVStore,
    /// and no Swift file of the app defines the engine's types (a copy or fork would).
    @Test func theImageUsesTheEngineFromSources() throws {
        let app = UnikernelHarness.repo + "/Unikernel/Apps/kvstore"
        let modules = try String(contentsOfFile: app + "/modules", encoding: .utf8)
        for m in ["UKNetdev", "HostStack", "KVStore", "VirtioNet", "VirtioNetGuest"] {
            #expect(modules.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces) == m }, "\(m) not linked from Sources/")
        }
        for file in try FileManager.default.contentsOfDirectory(atPath: app) where file.hasSuffix(".swift") {
            let text = try String(contentsOfFile: app + "/" + file, encoding: .utf8)
            for type in ["struct KVServer", "struct MemcachedEngine", "struct ItemStore", "struct HostStack", "struct VirtioNetDevice"] {
                #expect(!text.contains(type), "\(file) defines \(type): the engine must come from Sources/")
            }
        }
    }
}
