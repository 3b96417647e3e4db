import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The programs over DPDK ports (`--netdev dpdk:<EAL arguments>`), against DPDK's own PMDs.
/// Each run gets its own EAL file prefix, whose runtime directory is removed afterwards.
@Suite(.serialized) struct DPDKProgramTests {
    static let traces: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("Traces").path
    }()
    static let traceNames: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: traces)) ?? []
        return files.filter { $0.hasSuffix(".in.pcap") }.map { String($0.dropLast(".in.pcap".count)) }.sorted()
    }()

    static func program(_ name: String) throws -> String {
        try #require(Tools.executable(name), "no \(name) executable beside the test binary (swift build --build-tests builds it)")
    }

    /// EAL arguments for a test run: no hugepages, no PCI, a file prefix of its own.
    static func eal(_ prefix: String, _ vdevs: String...) -> String {
        (["--no-huge", "-m", "256", "--no-pci", "--file-prefix=\(prefix)"] + vdevs.map { "--vdev=\($0)" }).joined(separator: " ")
    }
    static func removeRuntime(_ prefix: String) { try? FileManager.default.removeItem(atPath: "/var/run/dpdk/\(prefix)") }

    static let store = ["--ip", "192.0.2.2", "--mac", "02:00:00:00:00:02"]

    /// Every trace through the KV store twice: read and written by the pcap backend (libpcap), and
    /// by DPDK's net_pcap through DPDKNet. The replies must be the same frames, in the same order,
    /// and every buffer back in the pool at the end.
    @Test(arguments: traceNames)
    func kvStoreRepliesThroughNetPcapEqualThePcapBackends(_ trace: String) throws {
        let kvstore = try Self.program("kvstore")
        let dir = TemporaryDirectory(purpose: "dpdk-pcap")
        let input = Self.traces + "/" + trace + ".in.pcap"
        let viaPcap = dir.file("pcap.out.pcap"), viaDPDK = dir.file("dpdk.out.pcap")
        let a = try runProgram(kvstore, ["--netdev", "pcap:rx=\(input),tx=\(viaPcap)"] + Self.store, seconds: 60)
        #expect(a.status == 0, "\(a.output)")
        let prefix = "uknet-t-\(getpid())-\(trace)"
        defer { Self.removeRuntime(prefix) }
        let b = try runProgram(kvstore, ["--netdev", "dpdk:" + Self.eal(prefix, "net_pcap0,rx_pcap=\(input),tx_pcap=\(viaDPDK)")] + Self.store,
                               seconds: 60)
        #expect(b.status == 0, "\(b.output)")
        #expect(b.output.contains("dpdk: port 0 (net_pcap)"), "\(b.output)")
        #expect(b.output.contains("pool: 0 in use"), "\(b.output)")
        let expected = try readPcapFrames(viaPcap)
        let got = try readPcapFrames(viaDPDK)
        #expect(!expected.isEmpty || trace == "malformed" || trace.hasPrefix("arp"), "the pcap backend wrote nothing for \(trace)")
        #expect(got.count == expected.count, "\(trace): \(got.count) frames through DPDK, \(expected.count) through libpcap")
        for (i, (g, e)) in zip(got, expected).enumerated() where g != e {
            Issue.record("\(trace): frame \(i + 1) differs (\(g.count) vs \(e.count) bytes)")
            break
        }
        // The same frames memcached itself gave (the trace's expected file).
        #expect(got == (try readPcapFrames(Self.traces + "/" + trace + ".expected.pcap")), "\(trace)")
    }

    /// Bad DPDK settings: one clear line naming what to change, a non-zero exit, no hang.
    @Test(arguments: [
        ("--bogus-eal-option", "DPDK's EAL did not start (Invalid argument)"),
        ("", "DPDK found no port: give one with --vdev"),
        ("--vdev=net_nosuchpmd0", "a --vdev names a driver that is not installed"),
        ("--port=3 --vdev=net_null0", "DPDK has no port 3 (ports: --port=0)"),
        ("--vdev=net_null0 -m 16", "raise EAL's -m"),
    ])
    func badSettingsEndWithAClearMessage(_ extra: String, _ message: String) throws {
        let kvstore = try Self.program("kvstore")
        let prefix = "uknet-t-\(getpid())-bad"
        defer { Self.removeRuntime(prefix) }
        let spec = "dpdk:" + Self.eal(prefix) + (extra.isEmpty ? "" : " " + extra)
        let start = Processes.monotonic()
        let r = try runProgram(kvstore, ["--netdev", spec] + Self.store, seconds: 30)
        #expect(r.status != 0 && r.status != -1, "exit \(r.status): \(r.output.suffix(2000))")
        #expect(r.output.contains(message), "\(r.output.suffix(2000))")
        #expect(Processes.monotonic() - start < 20)
    }

    /// The paper's host-switch setup with DPDK's virtio driver on the store's side: testpmd `io`
    /// between two net_vhost ports, the KV store over DPDK's net_virtio_user on one, `pktgen kv`
    /// over our own vhost-user frontend on the other. Every reply is checked by pktgen (values,
    /// ids); the store's counts match, and every buffer is back in the pool at the end.
    @Test(.enabled(if: TestPMD.isAvailable, "dpdk-testpmd is not installed (Debian package dpdk-dev)"))
    func kvStoreOverVirtioUserAnswersPktgenOverOurVhostUser() throws {
        let kvstore = try Self.program("kvstore"), pktgen = try Self.program("pktgen")
        let dir = TemporaryDirectory(purpose: "dpdk-vhost")
        let kvSock = dir.file("kv.sock"), genSock = dir.file("gen.sock")
        let testpmd = try TestPMD(vdevs: ["net_vhost0,iface=\(kvSock)", "net_vhost1,iface=\(genSock)"],
                                  testpmdArguments: ["--forward-mode=io"], forwardingCPU: 1, directory: dir)
        defer { testpmd.stop() }
        #expect(testpmd.waitForLog("binding succeeded", count: 2, timeout: 20), "\(testpmd.log.suffix(2000))")
        let prefix = "uknet-t-\(getpid())-vu"
        defer { Self.removeRuntime(prefix) }
        let store = try RunningProgram([kvstore, "--netdev", "dpdk:--no-huge -m 512 --no-pci -l 0 --file-prefix=\(prefix) --vdev=net_virtio_user0,path=\(kvSock)",
                                        "--ip", "198.51.100.2/24", "--mac", "02:00:00:00:00:02"], cpu: 0, output: dir.file("kvstore.out"))
        #expect(testpmd.waitForLog("virtio is now ready for processing", timeout: 20), "\(testpmd.log.suffix(2000))\n\(store.output)")
        let gen = try RunningProgram([pktgen, "kv", "--netdev", "vhost-user:path=\(genSock)", "--server-ip", "198.51.100.2",
                                      "--server-mac", "02:00:00:00:00:02", "--ip", "198.51.100.3", "--mac", "02:00:00:00:00:03",
                                      "--preload", "--keys", "500", "--value-size", "32", "--get-ratio", "0.9", "--requests", "20000",
                                      "--window", "16", "--json", "--quiet"], cpu: 0, output: dir.file("pktgen.out"))
        #expect(gen.wait(seconds: 120) == .code(0), "pktgen kv:\n\(gen.output)")
        let j = try gen.json()
        #expect((j["timeouts"] as? Int) == 0 && (j["wrong_values"] as? Int) == 0, "\(gen.output)")
        #expect((j["requests"] as? Int).map { $0 >= 20_000 } == true, "\(gen.output)")
        #expect(store.interrupt() == .code(0), "\(store.output)")
        let out = store.output
        #expect(out.contains("dpdk: port 0 (net_virtio_user)"), "\(out)")
        #expect(out.contains("errors: 0"), "\(out)")
        // Every request pktgen completed (and its preload) was a command the store answered.
        let setup = j["setup"] as? [String: Any]
        let expectedCommands = ((j["requests"] as? Int) ?? -1) + ((setup?["requests"] as? Int) ?? -1)
        let commands = out.split(separator: "\n").first { $0.hasPrefix("commands: ") }
            .flatMap { Int($0.dropFirst("commands: ".count).prefix { $0.isNumber }) }
        #expect(commands == expectedCommands, "store: \(commands ?? -1) commands, pktgen: \(expectedCommands)\n\(out)")
        #expect(out.contains("pool: 0 in use"), "every buffer back, the virtio rings' too: \(out)")
    }

    /// memif, DPDK's shared-memory interface: `pktgen tx` over net_memif (client) into testpmd
    /// (server, rxonly): testpmd's packet and byte counters equal what pktgen sent. DPDK's memif
    /// counts only while connected (its counters read 0 once the peer has gone), so pktgen stays
    /// connected (`--linger`) until testpmd's periodic statistics have shown them.
    @Test(.enabled(if: TestPMD.isAvailable, "dpdk-testpmd is not installed (Debian package dpdk-dev)"))
    func pktgenOverMemifIntoTestpmdCountsAgree() throws {
        let pktgen = try Self.program("pktgen")
        let dir = TemporaryDirectory(purpose: "dpdk-memif")
        let sock = dir.file("memif.sock")
        let testpmd = try TestPMD(vdevs: ["net_memif0,role=server,socket=\(sock),socket-abstract=no"],
                                  testpmdArguments: ["--forward-mode=rxonly"], forwardingCPU: 1, directory: dir)
        defer { testpmd.stop() }
        #expect(testpmd.waitForLog("rxonly packet forwarding", timeout: 20), "\(testpmd.log.suffix(2000))")
        let prefix = "uknet-t-\(getpid())-memif"
        defer { Self.removeRuntime(prefix) }
        // Not pinned: EAL's control thread (which handles memif's connection) may then run on the
        // other CPU, away from the sending core.
        let out = dir.file("pktgen.out")
        let pid = try Processes.spawn([pktgen, "tx", "--netdev", "dpdk:" + Self.eal(prefix, "net_memif0,role=client,socket=\(sock),socket-abstract=no") + " -l 0",
                                       "--count", "100000", "--size", "64", "--linger", "5", "--quiet"], output: out)
        let deadline = Processes.monotonic() + 30
        while Processes.monotonic() < deadline && testpmd.nicStatistics[0]?.rxPackets != 100_000 { usleep(50_000) }
        #expect(testpmd.nicStatistics[0] == TestPMDNICStatistics(rxPackets: 100_000, rxBytes: 6_000_000),
                "testpmd's NIC statistics: \(testpmd.nicStatistics)")
        #expect(Processes.wait(pid, seconds: 30) == .code(0), "\(Processes.read(out))")
        let sent = Processes.read(out)
        #expect(sent.contains("100000 packets, 6000000 bytes"), "\(sent)")
        #expect(sent.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("port_tx_packets[-1]=100000"), "\(sent)")
    }

    /// The other direction, and the peer leaving first: testpmd (memif client, txonly) into
    /// `pktgen rx` (memif server), pinned to one CPU with EAL's control thread. When testpmd stops,
    /// DPDK's memif unmaps the rings on that thread; before the shim fenced munmap against bursts in
    /// progress, pktgen died in librte_net_memif 3 runs out of 3 like this. pktgen counts every
    /// frame testpmd sent but those still in the ring when it left (at most the ring, 1024).
    @Test(.enabled(if: TestPMD.isAvailable, "dpdk-testpmd is not installed (Debian package dpdk-dev)"))
    func memifPeerLeavingMidRunIsSurvivedAndCounted() throws {
        let pktgen = try Self.program("pktgen")
        let dir = TemporaryDirectory(purpose: "dpdk-memif-rx")
        let sock = dir.file("memif.sock")
        let prefix = "uknet-t-\(getpid())-memif-rx"
        defer { Self.removeRuntime(prefix) }
        let rx = try RunningProgram([pktgen, "rx", "--netdev", "dpdk:" + Self.eal(prefix, "net_memif0,role=server,socket=\(sock),socket-abstract=no") + " -l 0",
                                     "--duration", "8", "--json", "--quiet"], cpu: 0, output: dir.file("rx.out"))
        var listening = false
        for _ in 0..<400 where !listening {
            listening = FileManager.default.fileExists(atPath: sock)
            if !listening { usleep(50_000) }
        }
        #expect(listening, "no memif socket: \(rx.output)")
        let testpmd = try TestPMD(vdevs: ["net_memif0,role=client,socket=\(sock),socket-abstract=no"],
                                  testpmdArguments: ["--forward-mode=txonly", "--txpkts=60"], forwardingCPU: 1, directory: dir)
        #expect(testpmd.waitForLog("txonly packet forwarding", timeout: 20), "\(testpmd.log.suffix(2000))")
        usleep(2_000_000)
        #expect(testpmd.stop() == .code(0), "\(testpmd.log.suffix(2000))")
        let sent = try #require(testpmd.statistics[0]?.txPackets, "no TX-packets in testpmd's log: \(testpmd.log.suffix(2000))")
        #expect(sent > 10_000, "testpmd sent only \(sent) frames")
        #expect(rx.wait(seconds: 30) == .code(0), "\(rx.output)")
        let received = try #require((try rx.json()["packets"] as? Int).map(UInt64.init))
        #expect(received <= sent && sent - received <= 1024, "pktgen rx: \(received), testpmd: \(sent)")
    }

    /// `pktgen kv` over a net_vhost port no frontend ever connects to: setup's limits count link-up
    /// time only (a backend may restart), so without `--link-wait` the preload waited for a peer
    /// forever. It must end, with status 1 and the reason.
    @Test func pktgenKVEndsWhenTheLinkNeverComesUp() throws {
        let pktgen = try Self.program("pktgen")
        let prefix = "uknet-t-\(getpid())-nolink"
        let sock = "/tmp/uknet-nolink-\(getpid()).sock"
        defer { Self.removeRuntime(prefix); unlink(sock) }
        let r = try runProgram(pktgen, ["kv", "--netdev", "dpdk:" + Self.eal(prefix, "net_vhost0,iface=\(sock)"), "--server-ip", "198.51.100.2",
                                        "--server-mac", "02:00:00:00:00:02", "--preload", "--duration", "1", "--link-wait", "1"], seconds: 30)
        #expect(r.status == 1, "\(r.output)")
        #expect(r.output.contains("the device's link stayed down for 1.0 s (--link-wait)"), "\(r.output)")
    }

    /// `pktgen tx` over net_null: the port counts exactly what pktgen says it sent, and the pool is
    /// whole at the end (every mbuf the PMD freed came back as its NetBuf).
    @Test func pktgenTxOverNetNullCountsEveryFrame() throws {
        let pktgen = try Self.program("pktgen")
        let prefix = "uknet-t-\(getpid())-null"
        defer { Self.removeRuntime(prefix) }
        let r = try runProgram(pktgen, ["tx", "--netdev", "dpdk:" + Self.eal(prefix, "net_null0"), "--size", "64",
                                        "--count", "100000", "--flows", "4"], seconds: 60)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("100000 packets, 6000000 bytes"), "\(r.output)")
        let words = r.output.split(whereSeparator: { $0 == " " || $0 == "\n" })
        #expect(words.contains("port_tx_packets[-1]=100000"), "the port's own count: \(r.output)")
        #expect(!r.output.contains("tx_copied"), "every frame should go out as its own mbuf: \(r.output)")
    }
}
