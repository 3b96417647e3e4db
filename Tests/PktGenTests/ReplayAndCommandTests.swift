import Foundation
import PcapNet
import PktGen
import Testing
import TestSupport
import UKNetdev

/// Traces/ at the repository root (this file is Tests/PktGenTests/...).
let tracesDirectory: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("Traces").path
}()

@Suite(.serialized) struct ReplayTests {
    /// A Traces/ capture replayed twice through a ring pair arrives frame for frame: recorded by
    /// a pcap writer on the far side and compared byte for byte with the file.
    @Test func replayThroughARingReproducesTheTrace() throws {
        let input = tracesDirectory + "/commands.in.pcap"
        let expected = try readPcapFrames(input)
        #expect(expected.count > 20)
        let dir = TemporaryDirectory(purpose: "pktgen-replay")
        let recorded = dir.file("far-side.pcap")
        try withPool(count: 512) { pool in
            var frames = FrameList(maxFrames: expected.count, maxBytes: expected.reduce(0) { $0 + $1.count })
            defer { frames.deallocate() }
            for f in expected { #expect(f.withUnsafeBytes { frames.append($0.baseAddress!, count: $0.count) }) }
            let ring = try ringPair(slots: 64)
            var a = ring.a, b = ring.b
            var farSide = try PcapWriter(inner: b, path: recorded, directions: .rx)
            var replayer = try Replayer(frames: frames, loops: 2, pool: pool, burstSize: 16)
            let burst = Burst(8)
            var rounds = 0
            while !replayer.finished && rounds < 100_000 {
                _ = replayer.send(on: &a, limit: 16)
                let n = farSide.rxBurst(queue: 0, into: burst.storage).count   // slower than the sender
                NetBuf.releaseBulk(burst.prefix(n))
                rounds += 1
            }
            while true {
                let n = farSide.rxBurst(queue: 0, into: burst.storage).count
                if n == 0 { break }
                NetBuf.releaseBulk(burst.prefix(n))
            }
            #expect(replayer.finished && replayer.sent.packets == UInt64(2 * expected.count))
            #expect(replayer.sent.bytes == UInt64(2 * expected.reduce(0) { $0 + $1.count }))
            farSide.stop()
        }
        let got = try readPcapFrames(recorded)
        #expect(got.count == 2 * expected.count)
        #expect(got == expected + expected, "the far side did not see the trace frame for frame")
    }
}

@Suite(.serialized) struct CommandTests {
    static let pktgen = Tools.executable("pktgen")

    /// The issue's own command line: 1000 valid 64-byte frames (60 without FCS) in OUT, which
    /// tshark decodes with good IPv4 and UDP checksums.
    @Test(.enabled(if: pktgen != nil && Tools.tshark != nil, "needs the pktgen executable (swift build) and tshark"))
    func txIntoAPcapDecodesInTshark() throws {
        let dir = TemporaryDirectory(purpose: "pktgen-tx")
        let out = dir.file("out.pcap")
        let (status, printed) = try runProgram(Self.pktgen!, ["tx", "--netdev", "pcap:tx=\(out)", "--size", "64", "--count", "1000"])
        #expect(status == 0, "pktgen exited with \(status): \(printed)")
        let frames = try readPcapFrames(out)
        #expect(frames.count == 1000 && frames.allSatisfy { $0.count == 60 })
        #expect(try Tools.tsharkProblems(out).isEmpty)
        // Flows, probes and a size sweep, as JSON: every frame valid too.
        let swept = dir.file("swept.pcap")
        let (status2, json) = try runProgram(Self.pktgen!, ["tx", "--netdev", "pcap:tx=\(swept)", "--size", "64,128,1518", "--count", "50",
                                                            "--flows", "7", "--vary", "both", "--probe", "--json", "--quiet"])
        #expect(status2 == 0, "pktgen exited with \(status2): \(json)")
        let results = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        let runs = results?["results"] as? [[String: Any]]
        #expect(runs?.map { $0["frame_length"] as? Int } == [60, 124, 1514])
        #expect(runs?.allSatisfy { $0["packets"] as? Int == 50 } == true)
        let sweptFrames = try readPcapFrames(swept)
        #expect(sweptFrames.map(\.count) == [Int](repeating: 60, count: 50) + [Int](repeating: 124, count: 50) + [Int](repeating: 1514, count: 50))
        #expect(try Tools.tsharkProblems(swept).isEmpty)
    }

    /// `pktgen replay` into a pcap writes the trace back, loop after loop.
    @Test(.enabled(if: pktgen != nil, "needs the pktgen executable (swift build)"))
    func replayIntoAPcap() throws {
        let input = tracesDirectory + "/fragments.in.pcap"
        let dir = TemporaryDirectory(purpose: "pktgen-replay")
        let out = dir.file("out.pcap")
        let (status, printed) = try runProgram(Self.pktgen!, ["replay", "--netdev", "pcap:tx=\(out)", "--file", input, "--loops", "3", "--rate", "100k"])
        #expect(status == 0, "pktgen exited with \(status): \(printed)")
        let expected = try readPcapFrames(input)
        #expect(try readPcapFrames(out) == expected + expected + expected)
    }

    /// `pktgen kv` against the store in-process over a ring pair: every request answered and
    /// checked, exit status 0, the JSON says so.
    @Test(.enabled(if: pktgen != nil, "needs the pktgen executable (swift build)"))
    func kvAgainstTheInProcessStore() throws {
        let (status, json) = try runProgram(Self.pktgen!, ["kv", "--netdev", "ring", "--requests", "20000", "--preload", "--keys", "500",
                                                           "--distribution", "zipf", "--json", "--quiet"])
        #expect(status == 0, "pktgen kv exited with \(status): \(json)")
        let r = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(r?["requests"] as? Int == 20000)
        #expect(r?["wrong_values"] as? Int == 0 && r?["timeouts"] as? Int == 0 && r?["bad_replies"] as? Int == 0)
        #expect(r?["misses"] as? Int == 0 && r?["preloaded"] as? Int == 500)
        let latency = r?["latency"] as? [String: Any]
        #expect(latency?["samples"] as? Int == 20000 && (latency?["p99_us"] as? Double ?? 0) > 0)
    }

    /// `pktgen kv --echo` against the in-process store in echo mode: every reply its request,
    /// exit status 0.
    @Test(.enabled(if: pktgen != nil, "needs the pktgen executable (swift build)"))
    func kvEchoAgainstTheInProcessStore() throws {
        let (status, json) = try runProgram(Self.pktgen!, ["kv", "--netdev", "ring", "--echo", "--requests", "20000", "--preload",
                                                           "--keys", "500", "--json", "--quiet"])
        #expect(status == 0, "pktgen kv --echo exited with \(status): \(json)")
        let r = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(r?["requests"] as? Int == 20000 && r?["echoes"] as? Int == 20000)
        #expect(r?["wrong_values"] as? Int == 0 && r?["timeouts"] as? Int == 0 && r?["bad_replies"] as? Int == 0)
        #expect(r?["hits"] as? Int == 0 && r?["preloaded"] as? Int == 0, "an echo server stores nothing")
        let latency = r?["latency"] as? [String: Any]
        #expect(latency?["samples"] as? Int == 20000 && (latency?["p99_us"] as? Double ?? 0) > 0)
    }

    /// Bad command lines get a clear error and a non-zero exit, not a crash.
    @Test(.enabled(if: pktgen != nil, "needs the pktgen executable (swift build)"))
    func badArgumentsAreClearErrors() throws {
        let cases: [([String], String)] = [
            (["tx", "--netdev", "null", "--size", "60", "--count", "1"], "FCS"),
            (["tx", "--netdev", "null", "--rate", "fast", "--count", "1"], "--rate"),
            (["tx", "--netdev", "bogus", "--count", "1"], "--netdev"),
            (["kv", "--netdev", "ring", "--value-size", "5000"], "--value-size"),
            (["kv", "--netdev", "ring", "--keys", "100000", "--key-size", "3"], "--key-size"),
            (["replay", "--netdev", "null", "--file", "/nonexistent.pcap"], "--file"),
        ]
        for (arguments, mention) in cases {
            let (status, printed) = try runProgram(Self.pktgen!, arguments)
            #expect(status != 0 && status != -1, "\(arguments): exit \(status)")
            #expect(printed.contains(mention), "\(arguments) printed: \(printed)")
        }
    }
}

/// `pktgen kv` against the real memcached 1.6.18 through the Linux kernel: in a namespace of the
/// test's own, a TAP whose kernel side is 192.0.2.2/24 with memcached listening there on UDP;
/// pktgen speaks Ethernet on the TAP as 192.0.2.3 (it asks for the kernel's MAC with ARP and
/// answers the kernel's ARP). Every reply byte pktgen checks is memcached's own, so what the
/// load generator expects is what memcached sends, not only what our store sends.
@Suite(.serialized) struct RealMemcachedTests {
    static let canRun = getuid() == 0 && access("/dev/net/tun", R_OK | W_OK) == 0 && Tools.ip != nil && Tools.memcached != nil
        && CommandTests.pktgen != nil

    @Test(.enabled(if: canRun, "needs root, /dev/net/tun, ip (iproute2), memcached and the pktgen executable"))
    func kvLoadAgainstRealMemcachedOverATap() throws {
        let ns = "uknet-pgmc-\(getpid())"
        let ip = Tools.ip!
        _ = try? Processes.run([ip, "netns", "del", ns])   // a leftover from a killed run
        try Processes.check([ip, "netns", "add", ns])
        defer { _ = try? Processes.run([ip, "netns", "del", ns]) }
        try Processes.check([ip, "-n", ns, "link", "set", "lo", "up"])
        try Processes.check([ip, "-n", ns, "tuntap", "add", "dev", "pg0", "mode", "tap"])
        try Processes.check([ip, "-n", ns, "addr", "add", "192.0.2.2/24", "dev", "pg0"])
        try Processes.check([ip, "-n", ns, "link", "set", "pg0", "up"])
        let log = Processes.outputPath()
        defer { unlink(log) }
        let server = try Processes.spawn([ip, "netns", "exec", ns, Tools.memcached!, "-U", "11211", "-p", "0", "-l", "192.0.2.2",
                                          "-t", "1", "-m", "64", "-u", "root"], output: log)
        defer {
            kill(server, SIGTERM)
            _ = Processes.wait(server, seconds: 5)
        }
        usleep(300_000)   // memcached binds its UDP socket
        let (exit, output) = try Processes.run([ip, "netns", "exec", ns, CommandTests.pktgen!, "kv", "--netdev", "tap:ifname=pg0",
                                                "--ip", "192.0.2.3", "--mac", "02:00:00:00:00:03", "--server-ip", "192.0.2.2",
                                                "--preload", "--keys", "300", "--value-size", "200", "--get-ratio", "0.8",
                                                "--window", "16", "--requests", "5000", "--json", "--quiet"], seconds: 60)
        #expect(exit == .code(0), "pktgen kv against memcached: \(exit): \(output)\nmemcached: \(Processes.read(log))")
        let json = output.split(separator: "\n").first { $0.hasPrefix("{") }.map(String.init) ?? ""
        let r = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(r?["requests"] as? Int == 5000 && r?["preloaded"] as? Int == 300)
        #expect(r?["wrong_values"] as? Int == 0 && r?["bad_replies"] as? Int == 0 && r?["misses"] as? Int == 0)
        #expect((r?["hits"] as? Int ?? 0) > 3000 && (r?["stored"] as? Int ?? 0) > 500)
    }
}
