import HostStack
import KVStore
import Testing
import TestSupport
import UKNetdev

/// A UDP datagram from the test client (port 40000) carrying `payload` (no memcached header),
/// padded with 0xEE to Ethernet's 60 bytes when shorter, as a NIC would deliver it.
func writeDatagram(into buf: NetBuf, _ payload: [UInt8], port: UInt16 = 11211, udpChecksum: Bool = true,
                   destination: IPv4Address = storeIP) throws {
    try payload.withUnsafeBytes { try buf.copyIn($0) }
    try buf.prependUDPHeaders(UDPFlow(sourceMAC: clientMAC, destinationMAC: storeMAC, source: clientIP, destination: destination,
                                      sourcePort: 40000, destinationPort: port), udpChecksum: udpChecksum)
    if buf.length < 60 {
        let n = 60 - buf.length
        try buf.append(n).initializeMemory(as: UInt8.self, repeating: 0xEE, count: n)
    }
}

/// `size` bytes that differ from size to size and from byte to byte.
func echoPayload(_ size: Int) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ size) } }

/// The frame of a datagram of `payload` as the client sends it.
func datagramFrame(_ payload: [UInt8], udpChecksum: Bool = true) throws -> [UInt8] {
    try frame { try writeDatagram(into: $0, payload, udpChecksum: udpChecksum) }
}

/// `f` behind an 802.1Q tag (VLAN `vlan`).
func tagged(_ f: [UInt8], vlan: UInt16) -> [UInt8] {
    Array(f[0..<12]) + [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)] + Array(f[12...])
}

/// `f` (untagged IPv4) with four NOP options in its IPv4 header, the header checksum made anew.
func withIPOptions(_ f: [UInt8]) -> [UInt8] {
    var g = Array(f[0..<34]) + [1, 1, 1, 1] + Array(f[34...])
    g[14] = 0x46
    let total = (Int(g[16]) << 8 | Int(g[17])) + 4
    g[16] = UInt8(total >> 8); g[17] = UInt8(total & 0xFF)
    g[24] = 0; g[25] = 0
    let c = g.withUnsafeBytes { InternetChecksum.checksum($0.baseAddress! + 14, count: 24) }
    g[24] = UInt8(c >> 8); g[25] = UInt8(c & 0xFF)
    return g
}

/// Checks that `frame` is the echo of `payload` back to the client: addresses turned around,
/// the IPv4 header the server's own (TTL 64, no options, not a fragment), both checksums summed
/// here from the bytes with the Wire helpers (not the views' own checks), nothing after the
/// datagram, the payload equal byte for byte. Returns the IPv4 identification.
@discardableResult
func expectEcho(_ frame: [UInt8], of payload: [UInt8], vlan: UInt16? = nil,
                to peer: (mac: MACAddress, ip: IPv4Address, port: UInt16) = (clientMAC, clientIP, 40000),
                sourceLocation: SourceLocation = #_sourceLocation) throws -> UInt16 {
    var bytes = frame
    return try bytes.withUnsafeMutableBytes { raw in
        let eth = try EthernetFrame(raw)
        #expect(eth.destination == peer.mac && eth.source == storeMAC && eth.vlanID == vlan, sourceLocation: sourceLocation)
        let ip = try IPv4Packet(eth.payload)
        #expect(ip.source == storeIP && ip.destination == peer.ip && ip.headerLength == 20 && ip.protocolNumber == IPProtocol.udp,
                sourceLocation: sourceLocation)
        #expect(ip.timeToLive == 64 && !ip.isFragment, sourceLocation: sourceLocation)
        #expect(InternetChecksum.sum(ip.base, count: 20) == 0xFFFF, "IPv4 header checksum", sourceLocation: sourceLocation)
        #expect(frame.count == eth.headerLength + ip.totalLength, "bytes after the datagram", sourceLocation: sourceLocation)
        let udp = try UDPDatagram(ip.payload)
        #expect(udp.sourcePort == 11211 && udp.destinationPort == peer.port && udp.length == 8 + payload.count, sourceLocation: sourceLocation)
        let pseudo = InternetChecksum.pseudoHeaderSum(source: storeIP, destination: peer.ip, protocol: IPProtocol.udp, length: udp.length)
        #expect(udp.checksum != 0, "no UDP checksum", sourceLocation: sourceLocation)
        #expect(InternetChecksum.sum(udp.base, count: udp.length, initial: pseudo) == 0xFFFF, "UDP checksum (\(payload.count) bytes)",
                sourceLocation: sourceLocation)
        #expect(Array(udp.payload) == payload, "payload of \(payload.count) bytes", sourceLocation: sourceLocation)
        return ip.identification
    }
}

@Suite struct EchoTests {
    /// Every payload size from 0 to 1472 bytes (the most one 1500-byte packet holds), odd and
    /// even, with and without a UDP checksum in the request, comes back whole, in its own buffer
    /// (the one-pass path), with valid checksums and consecutive IPv4 identifications.
    @Test func everySizeComesBackWhole() throws {
        var h = try Harness(mode: .echo)
        var lastID: UInt16 = 0
        for size in 0...1472 {
            let payload = echoPayload(size)
            try h.send { try writeDatagram(into: $0, payload, udpChecksum: size % 3 != 0) }
            let frames = h.receive()
            #expect(frames.count == 1, "\(size) bytes: \(frames.count) replies")
            guard let f = frames.first else { continue }
            let id = try expectEcho(f, of: payload)
            #expect(id == lastID &+ 1, "identifications consecutive")
            lastID = id
        }
        let s = h.server.stats
        #expect(s.echoed == 1473 && s.echoFastPath == 1473 && s.echoCopies == 0 && s.totalDrops == 0, "\(s)")
        #expect(s.requests == 0 && s.replyDatagrams == 0 && h.server.engine.stats.commands == 0, "no memcached in echo mode")
        try h.finish()
    }

    /// Datagrams that came in fragments are reassembled by the host stack and echoed from a
    /// copy (one packet: an even, an odd and the largest payload), in order of completion;
    /// one too large for a single 1500-byte packet is dropped and counted (no fragmentation on send).
    @Test func fragmentedDatagramsAreReassembledAndEchoed() throws {
        var h = try Harness(mode: .echo)
        let cases: [(size: Int, pieces: [(Int, Int)])] = [
            (1000, [(512, 496), (0, 512)]),        // out of order
            (1001, [(0, 504), (504, 505)]),        // odd
            (1472, [(0, 800), (800, 680)]),
            (3000, [(0, 1480), (1480, 1480), (2960, 48)]),
        ]
        for (n, c) in cases.enumerated() {
            let payload = echoPayload(c.size)
            let udp = udpDatagram(payload)
            for (offset, length) in c.pieces {
                try h.send { try writeFragment(into: $0, of: udp, offset: offset, length: length, more: offset + length < udp.count,
                                               id: UInt16(100 + n)) }
            }
            let frames = h.receive()
            if c.size <= KVServer.echoMaxCopiedPayload {
                #expect(frames.count == 1, "\(c.size) bytes")
                if let f = frames.first { try expectEcho(f, of: payload) }
            } else {
                #expect(frames.isEmpty, "an echo of \(c.size) bytes was sent")
            }
        }
        let s = h.server.stats
        #expect(s.reassembled == 4 && s.echoed == 3 && s.echoCopies == 3 && s.echoFastPath == 0, "\(s)")
        #expect(s[.echoTooLarge] == 1 && s.totalDrops == 1)
        try h.finish()
    }

    /// Datagrams not for the store's port or address, or with a bad checksum, are not echoed:
    /// each is dropped and counted under its reason, as on the memcached path.
    @Test func othersAreDroppedAndCounted() throws {
        var h = try Harness(mode: .echo)
        let payload = echoPayload(20)
        try h.send { try writeDatagram(into: $0, payload, port: 11212) }
        try h.send { try writeDatagram(into: $0, payload, destination: IPv4Address(192, 0, 2, 50)) }
        try h.send { buf in
            try writeDatagram(into: buf, payload)
            buf.data.storeBytes(of: buf.data.load(fromByteOffset: 50, as: UInt8.self) ^ 0xFF, toByteOffset: 50, as: UInt8.self)
        }
        try h.send { buf in
            try writeDatagram(into: buf, payload)
            buf.data.storeBytes(of: UInt8(0x55), toByteOffset: 24, as: UInt8.self)   // IPv4 header checksum
        }
        #expect(h.receive().isEmpty, "nothing echoed")
        let s = h.server.stats
        #expect(s[.udpWrongPort] == 1 && s[.ipWrongAddress] == 1 && s[.udpBadChecksum] == 1 && s[.ipBadChecksum] == 1)
        #expect(s.totalDrops == 4 && s.echoed == 0 && s.framesReceived == 4)
        // The store's port still echoes.
        try h.send { try writeDatagram(into: $0, payload) }
        let f = try #require(h.receive().first)
        try expectEcho(f, of: payload)
        try h.finish()
    }

    /// ARP and ICMP echo are still the host stack's, answered as in memcached mode.
    @Test func arpAndPingStillAnswered() throws {
        var h = try Harness(mode: .echo)
        try h.send { try writeARPRequest(into: $0) }
        let arp = try #require(h.receive().first)
        #expect(Array(arp[0..<6]) == [2, 0, 0, 0, 0, 1] && arp[21] == 2)
        #expect(Array(arp[22..<28]) == [2, 0, 0, 0, 0, 2] && Array(arp[28..<32]) == [192, 0, 2, 2])
        try h.send { try writeEchoRequest(into: $0) }
        let reply = try #require(h.receive().first)
        try reply.withUnsafeBytes { raw in
            let eth = try EthernetFrame(UnsafeMutableRawBufferPointer(mutating: raw))
            let ip = try IPv4Packet(eth.payload)
            let echo = try ICMPEcho(ip.payload)
            #expect(echo.type == ICMPEcho.Kind.echoReply && echo.isChecksumValid && ip.isHeaderChecksumValid && ip.destination == clientIP)
        }
        #expect(h.server.stats.arpReplies == 1 && h.server.stats.icmpReplies == 1 && h.server.stats.echoed == 0)
        try h.finish()
    }

    /// Tagged frames, frames with IPv4 options, chains, frames the sender still holds (a second
    /// reference, a clone) and reassembled datagrams get the same echoes, byte for byte, as the
    /// plain frames the one-pass path turns around; frames someone else holds are never
    /// written over (`serve` checks), and every buffer comes back.
    @Test func everyPathGivesTheSameEchoes() throws {
        let sizes = [0, 1, 2, 17, 777, 1472]
        var frames: [[UInt8]] = [try frame { try writeARPRequest(into: $0) }, try frame { try writeEchoRequest(into: $0) }]
        var payloads: [(payload: [UInt8], vlan: UInt16?)] = []
        for size in sizes {
            frames.append(try datagramFrame(echoPayload(size)))
            payloads.append((echoPayload(size), nil))
        }
        frames.append(try datagramFrame(echoPayload(33), udpChecksum: false))
        payloads.append((echoPayload(33), nil))
        let fastPath = sizes.count + 1
        frames.append(tagged(try datagramFrame(echoPayload(100)), vlan: 7))
        payloads.append((echoPayload(100), 7))
        frames.append(withIPOptions(try datagramFrame(echoPayload(51))))
        payloads.append((echoPayload(51), nil))
        let fragmented = udpDatagram(echoPayload(1001))
        for (offset, length) in [(504, 505), (0, 504)] {
            frames.append(try frame { try writeFragment(into: $0, of: fragmented, offset: offset, length: length, more: offset == 0) })
        }
        payloads.append((echoPayload(1001), nil))

        let plain = try serve(frames, .plain, mode: .echo)
        #expect(plain.replies.count == 2 + payloads.count)
        for (i, p) in payloads.enumerated() where 2 + i < plain.replies.count {
            try expectEcho(plain.replies[2 + i], of: p.payload, vlan: p.vlan)
        }
        let udpCount = UInt64(payloads.count)
        #expect(plain.stats.echoed == udpCount && plain.stats.echoFastPath == UInt64(fastPath), "the one-pass path was not taken: \(plain.stats)")
        #expect(plain.stats.echoCopies == 1 && plain.stats.totalDrops == 0 && plain.stats.arpReplies == 1 && plain.stats.icmpReplies == 1)
        for delivery: Delivery in [.chained(segment: 40), .chained(segment: 1024), .extraReference, .clone] {
            let other = try serve(frames, delivery, mode: .echo)
            #expect(other.replies == plain.replies, "\(delivery): echoes differ from the plain frames'")
            #expect(other.stats.echoed == udpCount && other.stats.totalDrops == 0, "\(delivery): \(other.stats)")
            switch delivery {
            case .chained(let segment):
                // Single-segment "chains" are plain frames; longer ones are made contiguous in a
                // fresh buffer and turned around there.
                let short = frames[2..<(2 + fastPath)].filter { $0.count <= segment }.count
                #expect(other.stats.echoFastPath == UInt64(short) && other.stats.echoCopies == 1, "\(delivery): \(other.stats)")
            default:
                #expect(other.stats.echoFastPath == 0 && other.stats.echoCopies == udpCount, "\(delivery): \(other.stats)")
            }
        }
    }

    /// A jumbo frame in one (large) buffer is turned around as it came; the same frame as a chain
    /// too long for one of the server's buffers would need a larger packet than it may build:
    /// dropped and counted.
    @Test func jumboFrames() throws {
        let jumbo = try datagramFrame(echoPayload(2900))
        let plain = try serve([jumbo], .plain, mode: .echo)
        #expect(plain.replies.count == 1 && plain.stats.echoFastPath == 1)
        if let f = plain.replies.first { try expectEcho(f, of: echoPayload(2900)) }
        let chained = try serve([jumbo], .chained(segment: 1024), mode: .echo)
        #expect(chained.replies.isEmpty && chained.stats[.echoTooLarge] == 1 && chained.stats.totalDrops == 1)
    }

    /// The `kvstore` executable with `--echo` on the `commands` trace: every request frame comes
    /// back as an echo of its own UDP payload, in order, and the statistics say so.
    @Test(.enabled(if: Tools.executable("kvstore") != nil, "the kvstore executable is not next to the test binary (run swift build first)"))
    func kvstoreEchoExecutable() throws {
        let dir = TemporaryDirectory(purpose: "echo")
        let output = dir.file("commands.echo.pcap")
        let (status, printed) = try runProgram(Tools.executable("kvstore")!, [
            "--netdev", "pcap:rx=\(Traces.input("commands")),tx=\(output)",
            "--ip", "192.0.2.2", "--mac", "02:00:00:00:00:02", "--echo",
        ])
        #expect(status == 0, "kvstore exited with \(status):\n\(printed)")
        let requests = try readPcapFrames(Traces.input("commands"))
        let echoes = try readPcapFrames(output)
        #expect(echoes.count == requests.count && !requests.isEmpty)
        for (request, echo) in zip(requests, echoes) {
            var r = request
            let (payload, peer) = try r.withUnsafeMutableBytes { raw in
                let eth = try EthernetFrame(raw)
                let ip = try IPv4Packet(eth.payload)
                let udp = try UDPDatagram(ip.payload)
                return (Array(udp.payload), (mac: eth.source, ip: ip.source, port: udp.sourcePort))
            }
            try expectEcho(echo, of: payload, to: peer)
        }
        #expect(printed.contains("echoed datagrams: \(requests.count) (\(requests.count) on the fast path"), "\(printed)")
        #expect(!printed.contains("warning"), "kvstore printed a warning:\n\(printed)")
    }
}
