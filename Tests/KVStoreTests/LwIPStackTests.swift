// `kvstore --stack lwip`: the same store on real lwIP (Debian's liblwip), checked against the raw
// netdev path's committed replies (Traces/*.expected.pcap) and decoded by tshark.
import Foundation
import Testing
import TestSupport

/// The UDP datagrams in a capture, each as (destination address, payload): what the store said
/// and to whom, whatever stack built the headers around it.
func udpDatagrams(_ frames: [[UInt8]]) -> [(destination: [UInt8], payload: [UInt8])] {
    var out: [(destination: [UInt8], payload: [UInt8])] = []
    for f in frames where f.count >= 42 && f[12] == 0x08 && f[13] == 0x00 && f[23] == 17 {
        let ihl = Int(f[14] & 0x0F) * 4
        let total = Int(f[16]) << 8 | Int(f[17])
        guard ihl >= 20, 14 + total <= f.count, total >= ihl + 8 else { continue }
        out.append((Array(f[30..<34]), Array(f[(14 + ihl + 8)..<(14 + total)])))
    }
    return out
}

@Suite struct LwIPStackTests {
    /// Where lwIP's IPv4/UDP input accepts what the netdev stack drops (both are within the
    /// RFCs' latitude; the netdev stack is stricter). In these traces lwIP may answer more
    /// requests, never fewer, and never differently.
    static let lwipAcceptsMore: [String: String] = [
        "malformed": "lwIP ignores the UDP length field (it takes the IPv4 payload: a length beyond it or below 8 still delivers), "
            + "and reads a frame whose Ethernet padding is junk the same way",
        "fragments": "lwIP keeps the first copy of overlapping or duplicated fragments and completes the datagram; "
            + "the netdev stack drops such a datagram",
    ]

    static func runStore(_ trace: String, _ dir: TemporaryDirectory) throws -> (frames: [[UInt8]], printed: String, status: Int32) {
        let output = dir.file("\(trace).lwip.pcap")
        let (status, printed) = try runProgram(Tools.executable("kvstore")!, [
            "--stack", "lwip", "--netdev", "pcap:rx=\(Traces.input(trace)),tx=\(output)",
            "--ip", "192.0.2.2", "--mac", "02:00:00:00:00:02",
        ], seconds: 60)
        return (try readPcapFrames(output), printed, status)
    }

    /// Every committed trace: the UDP replies (destination and payload) over lwIP equal the raw
    /// netdev path's, in order; where lwIP accepts more (malformed, fragments), the raw path's
    /// replies are all there, in order, and each extra one is a reply to a request of the trace.
    /// Every buffer is back and lwIP holds no pbuf at exit; tshark finds nothing wrong.
    @Test(.enabled(if: Tools.executable("kvstore") != nil, "the kvstore executable is not next to the test binary (run swift build first)"),
          arguments: Traces.names)
    func repliesEqualTheNetdevPaths(_ trace: String) throws {
        let dir = TemporaryDirectory(purpose: "lwip-\(trace)")
        let (frames, printed, status) = try Self.runStore(trace, dir)
        #expect(status == 0, "kvstore --stack lwip exited with \(status) on \(trace):\n\(printed)")
        #expect(printed.contains("pool: 0 in use"), "buffers not back:\n\(printed)")
        #expect(printed.contains("lwIP pbufs over our buffers after shutdown: 0"), "lwIP still holds pbufs:\n\(printed)")
        #expect(!printed.contains("warning"), "\(printed)")
        let ours = udpDatagrams(frames)
        let raw = udpDatagrams(try readPcapFrames(Traces.expected(trace)))
        if Self.lwipAcceptsMore[trace] == nil {
            let same = ours.count == raw.count && zip(ours, raw).allSatisfy { $0.0.payload == $0.1.payload && $0.0.destination == $0.1.destination }
            let firstDifference = (0..<min(ours.count, raw.count)).first { ours[$0].payload != raw[$0].payload || ours[$0].destination != raw[$0].destination }
                ?? min(ours.count, raw.count)
            #expect(same, "\(trace): \(ours.count) UDP replies over lwIP, \(raw.count) over netdev; first difference at reply \(firstDifference)")
        } else {
            // The raw path's replies are a subsequence of lwIP's.
            var i = 0
            for r in ours where i < raw.count && r.payload == raw[i].payload && r.destination == raw[i].destination { i += 1 }
            #expect(i == raw.count, "\(trace): only \(i) of the netdev path's \(raw.count) replies came, in order, over lwIP")
            // Each extra reply answers a request id the trace carries (memcached header's first 2
            // bytes of each datagram, reassembled by tshark).
            if let tshark = Tools.tshark {
                let (_, fields) = try runProgram(tshark, ["-r", Traces.input(trace), "-T", "fields", "-e", "udp.payload"])
                let requestIDs = Set(fields.split(separator: "\n").compactMap { $0.count >= 4 ? String($0.prefix(4)) : nil })
                for r in ours where r.payload.count >= 8 {
                    let id = r.payload[0..<2].map { String(format: "%02x", $0) }.joined()
                    #expect(requestIDs.contains(id), "\(trace): a reply to request id \(id) that no request carried")
                }
            }
            #expect(ours.count >= raw.count)
        }
        if Tools.tshark != nil {
            let problems = try Tools.tsharkProblems(dir.file("\(trace).lwip.pcap"))
            #expect(problems.isEmpty, "\(trace) over lwIP:\n\(problems.joined(separator: "\n"))")
        }
    }
}
