import Foundation
import HostStack
import KVStore
import PcapNet
import Testing
import TestSupport
import UKNetdev
#if canImport(Glibc)
import Glibc
#endif

/// Replays the traces in Traces/ (written by scripts/make-traces.py; see Traces/README.md): each
/// `NAME.in.pcap` through a fresh KVServer on a PcapDevice, the frames it sends compared byte for
/// byte with `NAME.expected.pcap`, and every output file decoded by tshark without complaint.
enum Traces {
    /// Traces/ at the repository root, found from this file.
    static let directory: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }   // ReplayTests.swift, KVStoreTests, Tests
        return url.appendingPathComponent("Traces").path
    }()

    /// Every trace name (NAME of NAME.in.pcap), sorted.
    static let names: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.filter { $0.hasSuffix(".in.pcap") }.map { String($0.dropLast(".in.pcap".count)) }.sorted()
    }()

    static func input(_ name: String) -> String { directory + "/" + name + ".in.pcap" }
    static func expected(_ name: String) -> String { directory + "/" + name + ".expected.pcap" }

    /// The store's configuration the traces were made for.
    static let config = KVServerConfig(mac: MACAddress("02:00:00:00:00:02")!, ip: IPv4Address("192.0.2.2")!,
                                       port: 11211, memoryBytes: 64 << 20)

    /// The expected files' timestamp; the replay writes every frame with it.
    static let timestamp = 1_700_000_000

    /// A known bug in KVStore that a trace shows; `onlyIdentification` says the frames match once
    /// the IPv4 identification (and so the header checksum) is left out, which is then checked strictly.
    struct KnownIssue {
        var reason: String
        var onlyIdentification = false
        var tsharkComplains = false
    }

    /// Traces whose replay shows a known bug in KVStore (remove an entry once it is fixed: the
    /// test then says the known issue no longer happens).
    static let knownIssues: [String: KnownIssue] = [:
    ]

    /// Drops each trace must produce, by reason (the host stack's, then the server's); every
    /// other reason must stay at zero.
    static let expectedHostDrops: [String: [HostDropReason: UInt64]] = [
        "malformed": [
            .truncatedFrame: 1, .notForUs: 1, .unsupportedEtherType: 1,
            .ipMalformed: 5, .ipBadChecksum: 1, .ipWrongAddress: 1, .ipUnsupportedProtocol: 1,
            .udpMalformed: 2, .udpBadChecksum: 1, .udpWrongPort: 1,
            .fragmentMalformed: 1, .fragmentTooLarge: 1,
        ],
        "arp": [.notForUs: 1, .arpNotForUs: 3, .arpMalformed: 1],
        "icmp": [.icmpBadChecksum: 1, .icmpNotEchoRequest: 3, .icmpMalformed: 1],
        "fragments": [.fragmentOverlap: 2],
    ]
    static let expectedDrops: [String: [KVDropReason: UInt64]] = [
        "malformed": [.memcachedTooShort: 2, .memcachedMultiDatagram: 2],
    ]
}

/// An IPv4 frame with its identification and header checksum zeroed (other frames as they are).
func withoutIdentification(_ frame: [UInt8]) -> [UInt8] {
    guard frame.count >= 34, frame[12] == 0x08, frame[13] == 0x00 else { return frame }
    var f = frame
    f[18] = 0; f[19] = 0; f[24] = 0; f[25] = 0
    return f
}

/// Where in an Ethernet/IPv4/UDP/memcached frame byte `offset` is.
func frameField(_ offset: Int) -> String {
    switch offset {
    case 0..<6: "Ethernet destination"
    case 6..<12: "Ethernet source"
    case 12..<14: "EtherType"
    case 14..<16: "IPv4 version/IHL/TOS"
    case 16..<18: "IPv4 total length"
    case 18..<20: "IPv4 identification"
    case 20..<22: "IPv4 flags/fragment offset"
    case 22: "IPv4 TTL"
    case 23: "IPv4 protocol"
    case 24..<26: "IPv4 header checksum"
    case 26..<30: "IPv4 source"
    case 30..<34: "IPv4 destination"
    case 34..<36: "UDP source port / ICMP type, code"
    case 36..<38: "UDP destination port / ICMP checksum"
    case 38..<40: "UDP length / ICMP identifier"
    case 40..<42: "UDP checksum / ICMP sequence"
    case 42..<50: "memcached frame header (request id, sequence, total, reserved)"
    default: "payload byte \(offset - 50) after the memcached header"
    }
}

func hexRows(_ bytes: [UInt8], from start: Int, count: Int) -> String {
    var lines: [String] = []
    var o = start
    while o < min(bytes.count, start + count) {
        let row = bytes[o..<min(bytes.count, o + 16)]
        let hex = row.map { String(format: "%02x", $0) }.joined(separator: " ")
        let text = String(row.map { $0 >= 32 && $0 < 127 ? Character(UnicodeScalar($0)) : "." })
        lines.append(String(format: "    %04x  ", o) + hex.padding(toLength: 48, withPad: " ", startingAt: 0) + "  " + text)
        o += 16
    }
    return lines.joined(separator: "\n")
}

/// A readable account of how two frame lists differ: counts, then a hex diff of the first frame
/// that differs.
func describeDifference(expected: [[UInt8]], actual: [[UInt8]]) -> String? {
    var notes: [String] = []
    if expected.count != actual.count { notes.append("expected \(expected.count) frames, got \(actual.count)") }
    guard let i = (0..<min(expected.count, actual.count)).first(where: { expected[$0] != actual[$0] }) else {
        if notes.isEmpty { return nil }
        let extra = expected.count > actual.count ? expected[actual.count] : actual[expected.count]
        notes.append("first \(expected.count > actual.count ? "missing" : "extra") frame (#\(min(expected.count, actual.count))):\n"
                     + hexRows(extra, from: 0, count: 128))
        return notes.joined(separator: "\n")
    }
    let e = expected[i], a = actual[i]
    let d = (0..<min(e.count, a.count)).first { e[$0] != a[$0] } ?? min(e.count, a.count)
    let start = max(0, d / 16 * 16 - 32)
    notes.append("frame #\(i) differs (expected \(e.count) bytes, got \(a.count)); first difference at byte \(d) (\(frameField(d)))")
    notes.append("  expected:\n" + hexRows(e, from: start, count: 96))
    notes.append("  actual:\n" + hexRows(a, from: start, count: 96))
    return notes.joined(separator: "\n")
}

struct ReplayOutcome {
    var frames: [[UInt8]]
    var stats: KVServerStats
    /// Buffers out of the pool once the trace is done (before the server shuts down).
    var inUseAfterRun: Int
    var inUseAfterShutdown: Int
    var polls: Int
}

/// Runs a fresh server over `input` (a pcap file) until the file is done and nothing waits to be
/// sent, as `kvstore` does on a pcap device; the frames it sent end up in `output`.
func replay(input: String, output: String) throws -> ReplayOutcome {
    let pool = try NetBufPool(count: 1024, roomSize: 2048, headroom: 128)
    var device = try PcapDevice(rx: input, tx: output, timestamps: .fixed(seconds: Traces.timestamp))
    try device.bringUp(rx: RxQueueConfig(descriptors: 256, allocator: pool.rxAllocator), tx: TxQueueConfig(descriptors: 256))
    var server = try KVServer(pool: pool, config: Traces.config, now: UInt32(time(nil)))
    var polls = 0
    while polls < 1_000_000 {
        polls += 1
        let n = server.poll(&device, now: UInt32(time(nil)))
        if n == 0 && server.inputEnded && server.pendingTransmit == 0 { break }
    }
    server.flush(&device)
    let inUse = pool.inUse
    let stats = server.stats
    server.shutdown()
    device.stop()
    try device.flush()
    let after = pool.inUse
    if after == 0 { try pool.destroy() }
    return ReplayOutcome(frames: try readPcapFrames(output), stats: stats, inUseAfterRun: inUse,
                         inUseAfterShutdown: after, polls: polls)
}

@Suite(.serialized) struct ReplayTests {
    @Test func tracesArePresent() {
        for name in ["commands", "errors", "multidatagram", "arp", "icmp", "fragments", "malformed", "udp-differences"] {
            #expect(Traces.names.contains(name), "Traces/\(name).in.pcap is missing (python3 scripts/make-traces.py)")
        }
        for name in Traces.names {
            #expect(FileManager.default.fileExists(atPath: Traces.expected(name)), "Traces/\(name).expected.pcap is missing")
        }
    }

    /// Each trace through a fresh server: the same frames as expected, byte for byte, in order;
    /// the pool full again; drops counted under the right reasons.
    @Test(arguments: Traces.names)
    func replayMatchesExpected(_ name: String) throws {
        let dir = TemporaryDirectory(purpose: "replay")
        let outcome = try replay(input: Traces.input(name), output: dir.file(name + ".out.pcap"))
        let expected = try readPcapFrames(Traces.expected(name))
        let inputFrames = try readPcapFrames(Traces.input(name))
        let check = {
            let diff = describeDifference(expected: expected, actual: outcome.frames)
            #expect(diff == nil, "Traces/\(name): \(diff ?? "")")
        }
        if let known = Traces.knownIssues[name] {
            if known.onlyIdentification {
                let diff = describeDifference(expected: expected.map(withoutIdentification),
                                              actual: outcome.frames.map(withoutIdentification))
                #expect(diff == nil, "Traces/\(name), IPv4 identification and header checksum left out: \(diff ?? "")")
            }
            withKnownIssue(Comment(rawValue: known.reason)) { check() }
        } else {
            check()
        }
        #expect(outcome.inUseAfterRun == 0, "\(name): \(outcome.inUseAfterRun) buffers still out after the trace")
        #expect(outcome.inUseAfterShutdown == 0, "\(name): \(outcome.inUseAfterShutdown) buffers still out after shutdown")
        #expect(outcome.stats.framesReceived == UInt64(inputFrames.count), "\(name): not every frame was received")
        let wantedHost = Traces.expectedHostDrops[name] ?? [:]
        for reason in HostDropReason.allCases {
            #expect(outcome.stats[reason] == wantedHost[reason] ?? 0,
                    "\(name): \(outcome.stats[reason]) drops for '\(reason.name)', expected \(wantedHost[reason] ?? 0)")
        }
        let wanted = Traces.expectedDrops[name] ?? [:]
        for reason in KVDropReason.allCases {
            #expect(outcome.stats[reason] == wanted[reason] ?? 0,
                    "\(name): \(outcome.stats[reason]) drops for '\(reason.name)', expected \(wanted[reason] ?? 0)")
        }
        // Every frame is answered or counted as a drop (a reassembled datagram answers several).
        print("replay \(name): \(inputFrames.count) frames in, \(outcome.frames.count) out (expected \(expected.count)), "
              + "\(outcome.stats.totalDrops) drops, \(outcome.polls) polls")
    }

    /// The files the traces expect, and the files the store writes, decode in tshark with every
    /// checksum verified and no malformed packet, warning or error.
    @Test(.enabled(if: Tools.tshark != nil, "tshark is not installed: apt-get install tshark"), arguments: Traces.names)
    func outputDecodesCleanlyInTshark(_ name: String) throws {
        let dir = TemporaryDirectory(purpose: "replay")
        let output = dir.file(name + ".out.pcap")
        _ = try replay(input: Traces.input(name), output: output)
        let expectedProblems = try Tools.tsharkProblems(Traces.expected(name))
        #expect(expectedProblems.isEmpty, "Traces/\(name).expected.pcap:\n\(expectedProblems.joined(separator: "\n"))")
        let check = {
            let problems = try Tools.tsharkProblems(output)
            #expect(problems.isEmpty, "\(name) output:\n\(problems.joined(separator: "\n"))")
        }
        if let known = Traces.knownIssues[name], known.tsharkComplains {
            withKnownIssue(Comment(rawValue: known.reason)) { try check() }
        } else {
            try check()
        }
    }

    /// The `kvstore` executable on the `commands` trace, run the way the README shows.
    @Test(.enabled(if: Tools.executable("kvstore") != nil, "the kvstore executable is not next to the test binary (run swift build first)"))
    func kvstoreExecutableReplaysCommands() throws {
        let dir = TemporaryDirectory(purpose: "replay")
        let output = dir.file("commands.out.pcap")
        let (status, printed) = try runProgram(Tools.executable("kvstore")!, [
            "--netdev", "pcap:rx=\(Traces.input("commands")),tx=\(output)",
            "--ip", "192.0.2.2", "--mac", "02:00:00:00:00:02",
        ])
        #expect(status == 0, "kvstore exited with \(status):\n\(printed)")
        let frames = try readPcapFrames(output)
        let expected = try readPcapFrames(Traces.expected("commands"))
        let diff = describeDifference(expected: expected, actual: frames)
        #expect(diff == nil, "kvstore on Traces/commands: \(diff ?? "")")
        #expect(!printed.contains("warning"), "kvstore printed a warning:\n\(printed)")
    }
}
