import KVStore
import Testing
import UKNetdev

let storeMAC = MACAddress(0x02, 0, 0, 0, 0, 2)
let storeIP = IPv4Address(192, 0, 2, 2)
let clientMAC = MACAddress(0x02, 0, 0, 0, 0, 1)
let clientIP = IPv4Address(192, 0, 2, 1)

/// A KVServer on one end of a ring pair, a test client on the other, one shared pool.
struct Harness: ~Copyable {
    let pool: NetBufPool
    var client: RingDevice
    var serverDevice: RingDevice
    var server: KVServer
    var now: UInt32 = 1_800_000_000

    init(mode: KVServerMode = .memcached, sources: SourcePolicy = SourcePolicy(), memoryBytes: Int = 4 << 20) throws {
        let pool = try NetBufPool(count: 512, roomSize: 2048, headroom: 128)
        var ring = RingDevice.pair(slots: 256)
        try ring.a.bringUp(rx: RxQueueConfig(descriptors: 256), tx: TxQueueConfig(descriptors: 256))
        try ring.b.bringUp(rx: RxQueueConfig(descriptors: 256), tx: TxQueueConfig(descriptors: 256))
        var config = KVServerConfig(mac: storeMAC, ip: storeIP, memoryBytes: memoryBytes, mode: mode)
        config.sources = sources
        let server = try KVServer(pool: pool, config: config, now: 1_800_000_000)
        self.pool = pool
        self.server = server
        client = ring.a
        serverDevice = ring.b
    }

    consuming func finish() throws {
        _ = receive()
        server.shutdown()
        #expect(pool.inUse == 0, "buffers leaked")
    }

    /// Sends one frame built by `build` (it fills the buffer and sets its length).
    mutating func send(_ build: (NetBuf) throws -> Void) throws {
        let buf = try #require(pool.allocate())
        try build(buf)
        transmit(buf)
    }

    /// Sends `buf` (one buffer or a chain) to the store, which polls once.
    mutating func transmit(_ buf: NetBuf) {
        var one = buf
        let sent = withUnsafeMutablePointer(to: &one) { client.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: $0, count: 1)).count }
        #expect(sent == 1)
        poll()
    }

    /// One server poll of its end of the ring.
    mutating func poll() { server.poll(&serverDevice, now: now) }

    mutating func send(bytes: [UInt8]) throws {
        try send { buf in try bytes.withUnsafeBytes { try buf.copyIn($0) } }
    }

    /// A UDP request from the client to the store, memcached header included.
    mutating func sendRequest(_ payload: [UInt8], id: UInt16 = 1, total: UInt16 = 1, port: UInt16 = 11211,
                              corruptUDP: Bool = false, destination: IPv4Address = storeIP, source: IPv4Address = clientIP) throws {
        try send { try writeRequest(into: $0, payload, id: id, total: total, port: port, corruptUDP: corruptUDP, destination: destination,
                                    source: source) }
    }

    /// Frames the store sent since the last call, as byte arrays; their buffers are freed.
    mutating func receive() -> [[UInt8]] {
        var out: [[UInt8]] = []
        var burst = [NetBuf](repeating: NetBuf(header: UnsafeMutableRawPointer(bitPattern: 64)!), count: 32)
        while true {
            let n = burst.withUnsafeMutableBufferPointer { client.rxBurst(queue: 0, into: $0).count }
            if n == 0 { break }
            for i in 0..<n {
                out.append(Array(UnsafeRawBufferPointer(burst[i].unsafeBytes)))
                burst[i].release()
            }
        }
        return out
    }

    /// The memcached payloads (after the 8-byte header) of UDP replies.
    mutating func replies() -> [String] {
        receive().compactMap { f in
            f.count > 50 && f[12] == 0x08 && f[13] == 0x00 && f[23] == 17 ? String(decoding: f[50...], as: UTF8.self) : nil
        }
    }
}

@Suite struct ServerTests {
    @Test func getAndSetOverTheWire() throws {
        var h = try Harness()
        try h.sendRequest(Array("set k 5 0 5\r\nhello\r\n".utf8))
        #expect(h.replies() == ["STORED\r\n"])
        try h.sendRequest(Array("get k\r\n".utf8), id: 77)
        let frames = h.receive()
        #expect(frames.count == 1)
        let f = try #require(frames.first)
        // Addresses turned around, request id echoed, checksums valid.
        try f.withUnsafeBytes { raw in
            let bytes = UnsafeMutableRawBufferPointer(mutating: raw)
            let eth = try EthernetFrame(bytes)
            #expect(eth.destination == clientMAC && eth.source == storeMAC)
            let ip = try IPv4Packet(eth.payload)
            #expect(ip.source == storeIP && ip.destination == clientIP && ip.isHeaderChecksumValid)
            let udp = try UDPDatagram(ip.payload)
            #expect(udp.sourcePort == 11211 && udp.destinationPort == 40000)
            #expect(udp.isChecksumValid(source: ip.source, destination: ip.destination))
            #expect(Array(udp.payload.prefix(8)) == [0, 77, 0, 0, 0, 1, 0, 0])
            #expect(String(decoding: udp.payload.dropFirst(8), as: UTF8.self) == "VALUE k 5 5\r\nhello\r\nEND\r\n")
        }
        try h.finish()
    }

    @Test func vlanTaggedRequestGetsATaggedReply() throws {
        var h = try Harness()
        try h.sendRequest(Array("set v 0 0 2\r\nok\r\n".utf8))
        _ = h.receive()
        try h.send { buf in
            let header: [UInt8] = [0, 42, 0, 0, 0, 1, 0, 0]
            try (header + Array("get v\r\n".utf8)).withUnsafeBytes { try buf.copyIn($0) }
            try buf.prependUDPHeaders(UDPFlow(sourceMAC: clientMAC, destinationMAC: storeMAC, source: clientIP,
                                              destination: storeIP, sourcePort: 40000, destinationPort: 11211))
            // Insert an 802.1Q tag (VLAN 7) after the MAC addresses.
            let p = try buf.prepend(4)
            p.copyMemory(from: p + 4, byteCount: 12)
            p.storeBytes(of: EtherType.vlan.bigEndian, toByteOffset: 12, as: UInt16.self)
            p.storeBytes(of: UInt16(7).bigEndian, toByteOffset: 14, as: UInt16.self)
        }
        let reply = try #require(h.receive().first)
        try reply.withUnsafeBytes { raw in
            let eth = try EthernetFrame(UnsafeMutableRawBufferPointer(mutating: raw))
            #expect(eth.vlanID == 7 && eth.destination == clientMAC && eth.source == storeMAC)
            let ip = try IPv4Packet(eth.payload)
            #expect(ip.isHeaderChecksumValid && ip.destination == clientIP)
            let udp = try UDPDatagram(ip.payload)
            #expect(udp.isChecksumValid(source: ip.source, destination: ip.destination))
            #expect(Array(udp.payload.prefix(8)) == [0, 42, 0, 0, 0, 1, 0, 0])
            #expect(String(decoding: udp.payload.dropFirst(8), as: UTF8.self) == "VALUE v 0 2\r\nok\r\nEND\r\n")
        }
        try h.finish()
    }

    @Test func largeValueIsSplitIntoDatagramGroups() throws {
        var h = try Harness()
        // 5000 bytes, built by appends (one request datagram fits one 2 KiB buffer here).
        let piece = String(repeating: "v", count: 1250)
        let value = String(repeating: piece, count: 4)
        try h.sendRequest(Array("set big 0 0 1250\r\n\(piece)\r\n".utf8))
        for _ in 0..<3 { try h.sendRequest(Array("append big 0 0 1250\r\n\(piece)\r\n".utf8)) }
        #expect(h.replies() == ["STORED\r\n", "STORED\r\n", "STORED\r\n", "STORED\r\n"])
        try h.sendRequest(Array("get big\r\n".utf8), id: 9)
        let frames = h.receive()
        #expect(frames.count == 4)   // 5000 + 24 + 5 bytes = 5029 -> 1392 * 3 + 853
        let seqs = frames.map { Int($0[44]) << 8 | Int($0[45]) }
        let totals = frames.map { Int($0[46]) << 8 | Int($0[47]) }
        #expect(seqs == [0, 1, 2, 3] && totals == [4, 4, 4, 4])
        let body = frames.flatMap { $0[50...] }
        #expect(String(decoding: body, as: UTF8.self) == "VALUE big 0 5000\r\n\(value)\r\nEND\r\n")
        try h.finish()
    }

    @Test func arpAndPing() throws {
        var h = try Harness()
        try h.send { try writeARPRequest(into: $0) }
        let arp = try #require(h.receive().first)
        #expect(Array(arp[0..<6]) == [2, 0, 0, 0, 0, 1])
        #expect(arp[21] == 2, "an ARP reply")
        #expect(Array(arp[22..<28]) == [2, 0, 0, 0, 0, 2] && Array(arp[28..<32]) == [192, 0, 2, 2])
        // ARP for someone else: nothing.
        try h.send { try writeARPRequest(into: $0, target: IPv4Address(192, 0, 2, 99)) }
        #expect(h.receive().isEmpty)
        #expect(h.server.stats[.arpNotForUs] == 1)
        // Echo request -> echo reply with a valid checksum.
        try h.send { try writeEchoRequest(into: $0) }
        let reply = try #require(h.receive().first)
        try reply.withUnsafeBytes { raw in
            let eth = try EthernetFrame(UnsafeMutableRawBufferPointer(mutating: raw))
            let ip = try IPv4Packet(eth.payload)
            let echo = try ICMPEcho(ip.payload)
            #expect(echo.type == ICMPEcho.Kind.echoReply && echo.isChecksumValid && ip.isHeaderChecksumValid)
            #expect(ip.destination == clientIP && echo.identifier == 0x1234)
        }
        #expect(h.server.stats.icmpReplies == 1 && h.server.stats.arpReplies == 1)
        try h.finish()
    }

    /// Every malformed frame is dropped under its own reason; nothing crashes or leaks.
    @Test func badInputIsCountedByReason() throws {
        var h = try Harness()
        try h.send(bytes: [1, 2, 3])
        #expect(h.server.stats[.truncatedFrame] == 1)
        try h.send(bytes: [0x02, 0, 0, 0, 0, 9] + [UInt8](repeating: 0, count: 54))
        #expect(h.server.stats[.notForUs] == 1)
        try h.send(bytes: [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xDD] + [UInt8](repeating: 0, count: 46))
        #expect(h.server.stats[.unsupportedEtherType] == 1)
        let eth: [UInt8] = [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]
        try h.send(bytes: eth + [0x44] + [UInt8](repeating: 0, count: 45))     // IHL 4
        try h.send(bytes: eth + [0x45, 0, 0x05, 0xDC] + [UInt8](repeating: 0, count: 42))  // total length 1500 > frame
        #expect(h.server.stats[.ipMalformed] == 2)
        try h.send(bytes: Array(eth[0..<12]) + [0x08, 0x06, 0, 6, 0x08, 0, 6, 4] + [UInt8](repeating: 0, count: 38))  // ARP, hardware type 6
        #expect(h.server.stats[.arpMalformed] == 1)
        try h.sendRequest(Array("get k\r\n".utf8), corruptUDP: true)
        #expect(h.server.stats[.udpBadChecksum] == 1)
        try h.sendRequest(Array("get k\r\n".utf8), port: 11212)
        #expect(h.server.stats[.udpWrongPort] == 1)
        try h.sendRequest(Array("get k\r\n".utf8), destination: IPv4Address(192, 0, 2, 50))
        #expect(h.server.stats[.ipWrongAddress] == 1)
        try h.sendRequest([], id: 3)
        #expect(h.server.stats[.memcachedTooShort] == 1)
        try h.sendRequest(Array("get k\r\n".utf8), total: 2)
        #expect(h.server.stats[.memcachedMultiDatagram] == 1)
        // A frame whose IP header checksum is wrong.
        try h.send { buf in
            try Array("x".utf8).withUnsafeBytes { try buf.copyIn($0) }
            try buf.prependUDPHeaders(UDPFlow(sourceMAC: clientMAC, destinationMAC: storeMAC, source: clientIP, destination: storeIP,
                                              sourcePort: 1, destinationPort: 11211))
            buf.data.storeBytes(of: UInt8(0x55), toByteOffset: 24, as: UInt8.self)
        }
        #expect(h.server.stats[.ipBadChecksum] == 1)
        // UDP length beyond the IP payload.
        try h.send { buf in
            try Array("abcdefghijkl".utf8).withUnsafeBytes { try buf.copyIn($0) }
            try buf.prependUDPHeaders(UDPFlow(sourceMAC: clientMAC, destinationMAC: storeMAC, source: clientIP, destination: storeIP,
                                              sourcePort: 1, destinationPort: 11211), udpChecksum: false)
            buf.data.storeBytes(of: UInt16(100).bigEndian, toByteOffset: 38, as: UInt16.self)
        }
        #expect(h.server.stats[.udpMalformed] == 1)
        #expect(h.receive().isEmpty, "no reply to any of it")
        #expect(h.server.stats.totalDrops == 13)
        try h.finish()
    }

    @Test func fragmentedRequestIsReassembledAndBadFragmentsDropped() throws {
        var h = try Harness()
        // A 3000-byte set, as three fragments sent out of order.
        let value = String(repeating: "f", count: 3000)
        let udp = udpDatagram([0, 5, 0, 0, 0, 1, 0, 0] + Array("set frag 0 0 3000\r\n\(value)\r\n".utf8))
        let udpLength = udp.count
        func fragment(_ h: inout Harness, _ offset: Int, _ length: Int, more: Bool, id: UInt16 = 0x4242) throws {
            try h.send { try writeFragment(into: $0, of: udp, offset: offset, length: length, more: more, id: id) }
        }
        try fragment(&h, 1480, 1480, more: true)
        try fragment(&h, 2960, udpLength - 2960, more: false)
        try fragment(&h, 0, 1480, more: true)
        #expect(h.replies() == ["STORED\r\n"])
        #expect(h.server.stats.reassembled == 1)
        // Overlap: the same datagram id again with overlapping pieces is dropped whole.
        try fragment(&h, 0, 1480, more: true, id: 7)
        try fragment(&h, 1472, 1480, more: true, id: 7)
        #expect(h.server.stats[.fragmentOverlap] == 1)
        // A fragment beyond 64 KiB.
        try h.send { buf in
            try [UInt8](repeating: 0, count: 16).withUnsafeBytes { try buf.copyIn($0) }
            let ip = try buf.prepend(20)
            IPv4Packet.writeHeader(at: ip, source: clientIP, destination: storeIP, protocol: IPProtocol.udp, payloadLength: 16, identification: 9)
            ip.storeBytes(of: UInt16(8190).bigEndian, toByteOffset: 6, as: UInt16.self)
            ip.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
            ip.storeBytes(of: InternetChecksum.checksum(ip, count: 20).bigEndian, toByteOffset: 10, as: UInt16.self)
            EthernetFrame.writeHeader(at: try buf.prepend(14), destination: storeMAC, source: clientMAC, etherType: EtherType.ipv4)
        }
        #expect(h.server.stats[.fragmentTooLarge] == 1)
        // An incomplete datagram times out.
        try fragment(&h, 0, 1480, more: true, id: 11)
        h.now += 31
        h.poll()
        #expect(h.server.stats[.fragmentTimeout] == 1)
        try h.sendRequest(Array("get frag\r\n".utf8))
        let body = h.receive().flatMap { $0[50...] }
        #expect(String(decoding: body, as: UTF8.self) == "VALUE frag 0 3000\r\n\(value)\r\nEND\r\n")
        try h.finish()
    }

    @Test func evictionWhenMemoryIsFull() throws {
        var h = try Harness()   // 4 MiB of items
        let value = String(repeating: "e", count: 1000)
        for i in 0..<6000 {
            try h.sendRequest(Array("set key\(i) 0 0 1000 noreply\r\n\(value)\r\n".utf8))
            if i % 100 == 0 { _ = h.receive() }
        }
        #expect(h.server.engine.store.evictions > 1000)
        #expect(h.server.engine.store.pagesInUse <= h.server.engine.store.pageLimitCount, "never past --memory")
        // A value over memcached's 1 MB item limit: memcached's own error, nothing stored.
        try h.sendRequest(Array("set huge 0 0 2000000\r\nabc\r\n".utf8))
        #expect(h.replies() == ["SERVER_ERROR object too large for cache\r\n"])
        try h.sendRequest(Array("get key5999\r\n".utf8))
        #expect(h.replies().first?.hasPrefix("VALUE key5999 0 1000\r\n") == true, "the newest item survives")
        try h.sendRequest(Array("get key0\r\n".utf8))
        #expect(h.replies() == ["END\r\n"], "the oldest was evicted")
        try h.finish()
    }
}

@Suite struct LoneGetFastPathTests {
    /// The server answers a lone `get <key>` straight into the request's buffer; the datagrams
    /// must be exactly those of the general engine path (run here on a twin engine fed the same
    /// stores), across hits, misses, flags, key lengths and the one-datagram size limit.
    @Test func sameBytesAsTheGeneralPath() throws {
        var h = try Harness()
        var twin = MemcachedEngine(memoryBytes: 4 << 20, startTime: h.now)
        defer { twin.deallocate() }
        let key250 = String(repeating: "k", count: 250)
        let stores: [(String, UInt32, Int)] = [("a", 0, 1), ("flags", 4294967295, 32), (key250, 7, 100),
                                              ("fits", 0, 1392 - 7 - 4 - 3 - 2 - 4 - 2 - 7), ("splits", 0, 1392 - 7 - 6 - 3 - 2 - 4 - 2 - 6),
                                              ("8bytekey", 1, 8), ("9-bytekey", 2, 9), ("sixteen-byte-key", 3, 16), ("tab\tinkey", 4, 4)]
        // memcached's bytes_read and bytes_written (UDP payloads, its 8-byte header included),
        // counted alike by both paths.
        var bytesSent = 0, bytesReceived = 0
        for (k, f, n) in stores {
            let request = Array("set \(k) \(f) 0 \(n) noreply\r\n\(String(repeating: "v", count: n))\r\n".utf8)
            try h.sendRequest(request)
            bytesSent += 8 + request.count
            var sink = CollectingSink()
            request.withUnsafeBytes { twin.execute($0.baseAddress!, count: $0.count, now: h.now, into: &sink) }
        }
        _ = h.receive()
        var id: UInt16 = 100
        // Keys of 8, 9 and 16 bytes end on and across word boundaries of the key check; keys
        // with a control byte take the general path, which must still answer the same.
        for k in ["a", "flags", key250, "fits", "splits", "missing", "a\rb", "8bytekey", "9-bytekey", "sixteen-byte-key",
                  "tab\tinkey", "missing-key-of-17"] {
            for ending in ["\r\n", "\n"] {
                id += 1
                let request = Array("get \(k)\(ending)".utf8)
                try h.sendRequest(request, id: id)
                let ours = h.receive().map { Array($0[42...]) }
                bytesSent += 8 + request.count
                bytesReceived += ours.reduce(0) { $0 + $1.count }
                var sink = CollectingSink()
                request.withUnsafeBytes { twin.execute($0.baseAddress!, count: $0.count, now: h.now, into: &sink) }
                #expect(ours == sink.datagrams(requestID: id), "get \(k.prefix(20))")
            }
        }
        #expect(h.server.engine.stats.hits == twin.stats.hits && h.server.engine.stats.misses == twin.stats.misses)
        let s = h.server.engine.stats
        #expect(s.loneGets >= 12 && s.loneGets < s[.get], "\(s.loneGets) of \(s[.get]) GETs on the fast path")
        #expect(s.bytesRead == UInt64(bytesSent) && s.bytesWritten == UInt64(bytesReceived),
                "bytes read \(s.bytesRead) of \(bytesSent), written \(s.bytesWritten) of \(bytesReceived)")
        try h.finish()
    }
}

/// memcached's -A over UDP: with the shutdown command enabled, `shutdown` and `shutdown
/// graceful` ask the program to stop (no reply, as memcached closes the connection), other
/// forms are an invalid mode; without it, every form gets memcached's fixed text (also checked
/// against memcached itself in StatsTests).
@Suite struct ShutdownCommandTests {
    @Test(arguments: [false, true])
    func shutdownOnlyWhenEnabled(enabled: Bool) {
        for (request, stops, reply) in [("shutdown\r\n", true, ""), ("shutdown graceful\r\n", true, ""),
                                         ("shutdown now\r\n", false, "CLIENT_ERROR invalid shutdown mode\r\n")] {
            var engine = MemcachedEngine(memoryBytes: 1 << 20, startTime: 0)
            engine.shutdownEnabled = enabled
            var sink = CollectingSink()
            Array(request.utf8).withUnsafeBytes { engine.execute($0.baseAddress!, count: $0.count, now: 0, into: &sink) }
            sink.flush()
            let text = String(decoding: sink.responses.joined(), as: UTF8.self)
            #expect(engine.shutdownRequested == (enabled && stops), "\(request)")
            #expect(text == (enabled ? reply : "ERROR: shutdown not enabled\r\n"), "\(request): \(text)")
            engine.deallocate()
        }
    }
}

/// `removeAll` leaves the engine as `init` did, and the store fills again the same way: the same
/// replies (cas numbers included) for the same requests as a new engine's.
@Suite struct RemoveAllTests {
    @Test func anEmptiedEngineAnswersAsANewOne() {
        var used = MemcachedEngine(memoryBytes: 2 << 20, startTime: 0)
        var fresh = MemcachedEngine(memoryBytes: 2 << 20, startTime: 0)
        defer {
            used.deallocate()
            fresh.deallocate()
        }
        func run(_ engine: inout MemcachedEngine, _ text: String) -> [[UInt8]] {
            var sink = CollectingSink()
            Array(text.utf8).withUnsafeBytes { engine.execute($0.baseAddress!, count: $0.count, now: 100, into: &sink) }
            sink.flush()
            return sink.responses
        }
        let big = String(repeating: "b", count: 900)
        var script = ""
        for i in 0..<3000 { script += "set k\(i) 0 0 \(i % 2 == 0 ? 900 : 5)\r\n\(i % 2 == 0 ? big : "small")\r\n" }
        script += "gets k1 k3 k2999\r\nincr n 1\r\nset n 0 0 1\r\n5\r\nincr n 1\r\n"
        _ = run(&used, script)
        #expect(used.store.evictions > 0 && used.store.items > 0, "the store filled up")
        used.removeAll()
        #expect(used.store.items == 0 && used.store.pagesInUse == 0 && used.store.evictions == 0 && used.stats.commands == 0)
        #expect(run(&used, "get k1 k2999\r\n") == run(&fresh, "get k1 k2999\r\n"))
        used.removeAll()
        fresh.removeAll()
        #expect(run(&used, script) == run(&fresh, script))
        #expect(used.store.evictions == fresh.store.evictions && used.store.items == fresh.store.items)
    }
}

extension RemoveAllTests {
    /// `KVServer.reset`: the same frames in give the same frames out as from a new server, byte
    /// for byte (IPv4 ids included), after traffic that filled its ARP table, reassembly and store.
    @Test func aResetServerAnswersAsANewOne() throws {
        var h = try Harness()
        func traffic(_ h: inout Harness) throws -> [[UInt8]] {
            try h.send { try writeARPRequest(into: $0) }
            try h.send { try writeEchoRequest(into: $0) }
            try h.sendRequest(Array("set a 0 0 3\r\nabc\r\nget a b\r\nincr a 1\r\n".utf8), id: 3)
            try h.sendRequest(Array("get a\r\n".utf8), id: 4)
            let datagram = udpDatagram(MemcachedUDP.header(requestID: 5, sequence: 0, total: 1) + Array("get a\r\n".utf8))
            try h.send { try writeFragment(into: $0, of: datagram, offset: 0, length: 16, more: true) }   // left unfinished
            return h.receive()
        }
        let first = try traffic(&h)
        #expect(first.count >= 5 && h.server.stats.arpReplies == 1 && h.server.engine.store.items == 1)
        h.server.reset()
        #expect(h.server.stats.requests == 0 && h.server.stats.arpReplies == 0 && h.server.engine.store.items == 0)
        #expect(try traffic(&h) == first)
        try h.finish()
    }
}

/// The busy meter's line, which `make compare` reads from the hosted and the unikernel store alike.
@Suite struct BusyTimeTests {
    @Test func reportLineRoundsIntegersAsTheHostedStorePrintedThem() {
        var busy = BusyTime()
        for _ in 0..<99 { busy.add(poll: 15_000_000) }
        busy.add(poll: 14_999_999)
        #expect(busy.polls == 100 && busy.nanoseconds == 1_499_999_999)
        // 3,169 requests in 100 polls: 31.69 per poll rounds to 31.7; 473,335.4 ns per request; 2,112.7 per second.
        #expect(busy.reportLine(requests: 3169) == "busy: 1.500 s in 100 polls that received frames (31.7 requests per poll), "
                + "473335 ns per request (one core at that cost: 2113 requests/s)")
        var short = BusyTime()
        short.add(poll: 42_000)
        #expect(short.reportLine(requests: 2) == "busy: 0.000 s in 1 polls that received frames (2.0 requests per poll), "
                + "21000 ns per request (one core at that cost: 47619 requests/s)")
        #expect(short.reportLine(requests: 0) == "busy: 0.000 s in polls that received frames")
        #expect(BusyTime().reportLine(requests: 5) == "busy: 0.000 s in polls that received frames")
    }
}
