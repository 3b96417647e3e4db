// The amplification guard (SourcePolicy): what untrusted sources get, on the netdev path (lone-GET
// fast path and general path) and in KVDatagramService (the lwIP and socket stacks).
import KVStore
import Testing
import UKNetdev

@Suite struct SourceGuardTests {
    static let outsider = IPv4Address(198, 51, 100, 7)   // outside the store's 192.0.2.0/24
    static let stranger = IPv4Address(203, 0, 113, 9)
    static let limited = "SERVER_ERROR reply too large for an untrusted source\r\n"
    static let refused = "SERVER_ERROR writes are accepted from trusted sources only\r\n"

    /// A 5,000-byte value (4 datagrams, ~330x a 15-byte GET).
    static func storeLargeValue(_ h: inout Harness) throws {
        let piece = String(repeating: "v", count: 1250)
        try h.sendRequest(Array("set big 0 0 1250\r\n\(piece)\r\n".utf8))
        for _ in 0..<3 { try h.sendRequest(Array("append big 0 0 1250\r\n\(piece)\r\n".utf8)) }
        #expect(h.replies() == Array(repeating: "STORED\r\n", count: 4))
    }

    /// Reply frames: (destination IP, request id, memcached body).
    static func parse(_ frames: [[UInt8]]) -> [(IPv4Address, UInt16, String)] {
        frames.map { f in
            (IPv4Address(f[30], f[31], f[32], f[33]), UInt16(f[42]) << 8 | UInt16(f[43]), String(decoding: f[50...], as: UTF8.self))
        }
    }

    @Test func aLargeReplyGoesToTrustedSourcesAndIsLimitedForOthers() throws {
        var h = try Harness(memoryBytes: 16 << 20)
        try Self.storeLargeValue(&h)
        try h.sendRequest(Array("get big\r\n".utf8), id: 7)
        #expect(h.receive().count == 4, "a source in the store's prefix gets the whole value")

        try h.sendRequest(Array("get big\r\n".utf8), id: 8, source: Self.outsider)
        let replies = Self.parse(h.receive())
        try #require(replies.count == 1)
        #expect(replies[0].0 == Self.outsider && replies[0].1 == 8 && replies[0].2 == Self.limited)
        #expect(Self.limited.utf8.count + 8 <= 10 * (8 + 9), "the replacement itself keeps within the ratio")
        #expect(h.server.stats.repliesLimited == 1)

        // A reply within 10x is sent as it is.
        try h.sendRequest(Array("set small 0 0 20\r\n01234567890123456789\r\n".utf8))
        _ = h.receive()
        let fastPathBefore = h.server.engine.stats.loneGets
        try h.sendRequest(Array("get small\r\n".utf8), id: 9, source: Self.outsider)
        let small = Self.parse(h.receive())
        #expect(h.server.engine.stats.loneGets == fastPathBefore, "an untrusted GET takes the general path, which screens it")
        #expect(small.map(\.2) == ["VALUE small 0 20\r\n01234567890123456789\r\nEND\r\n"] && small.first?.0 == Self.outsider)
        #expect(h.server.stats.repliesLimited == 1)
        try h.finish()
    }

    @Test func anUntrustedSourceHasAByteBudgetPerSecond() throws {
        var h = try Harness(sources: SourcePolicy(maxReplyRatio: 10, budgetBytesPerSecond: 300))
        try h.sendRequest(Array("set k 0 0 32\r\n\(String(repeating: "x", count: 32))\r\n".utf8))
        _ = h.receive()
        // Each reply: 8 + "VALUE k 0 32\r\n" (14) + 32 + 2 + "END\r\n" (5) = 61 bytes; 4 fit in 300.
        for i in 0..<6 { try h.sendRequest(Array("get k\r\n".utf8), id: UInt16(i), source: Self.outsider) }
        #expect(Self.parse(h.receive()).map(\.1) == [0, 1, 2, 3])
        #expect(h.server.stats[.sourceBudget] == 2)
        // Another source has its own budget; a trusted one has none.
        for i in 0..<4 { try h.sendRequest(Array("get k\r\n".utf8), id: UInt16(10 + i), source: Self.stranger) }
        for i in 0..<10 { try h.sendRequest(Array("get k\r\n".utf8), id: UInt16(20 + i)) }
        #expect(h.receive().count == 14)
        // The next second, the budget is back.
        h.now += 1
        try h.sendRequest(Array("get k\r\n".utf8), id: 99, source: Self.outsider)
        #expect(Self.parse(h.receive()).map(\.1) == [99])
        #expect(h.server.stats[.sourceBudget] == 2)
        try h.finish()
    }

    @Test func withAnAllowListOnlyTrustedSourcesWrite() throws {
        var h = try Harness(sources: SourcePolicy(allow: [IPv4Prefix("198.51.100.0/24")!]), memoryBytes: 16 << 20)
        try Self.storeLargeValue(&h)
        try h.sendRequest(Array("get big\r\n".utf8), id: 1, source: Self.outsider)
        #expect(h.receive().count == 4, "an allowed prefix is trusted")

        // A stranger's writes are refused; the data of a refused set is skipped, not run as a command.
        try h.sendRequest(Array("set x 0 0 9\r\nflush_all\r\nget x\r\n".utf8), id: 2, source: Self.stranger)
        #expect(Self.parse(h.receive()).map(\.2) == [Self.refused, "END\r\n"])
        try h.sendRequest(Array("set x 0 0 3 noreply\r\nabc\r\ndelete big\r\nincr n 1\r\ntouch big 10\r\n".utf8), id: 3, source: Self.stranger)
        #expect(Self.parse(h.receive()).map(\.2) == [Self.refused, Self.refused, Self.refused])
        #expect(h.server.engine.stats.refusedWrites == 5)
        // The meta protocol's writes too (ms's data skipped), its reads not.
        try h.sendRequest(Array("ms x 9\r\nflush_all\r\nmd big\r\nma n\r\nmg x v\r\n".utf8), id: 7, source: Self.stranger)
        #expect(Self.parse(h.receive()).map(\.2) == [Self.refused, Self.refused, Self.refused, "EN\r\n"])
        #expect(h.server.engine.stats.refusedWrites == 8)
        try h.sendRequest(Array("get x\r\n".utf8), id: 4)
        #expect(h.replies() == ["END\r\n"], "nothing stored")
        try h.sendRequest(Array("get big\r\n".utf8), id: 5)
        #expect(h.receive().count == 4, "nothing deleted")
        // An allowed source writes.
        try h.sendRequest(Array("set x 0 0 3\r\nabc\r\n".utf8), id: 6, source: Self.outsider)
        #expect(Self.parse(h.receive()).map(\.2) == ["STORED\r\n"])
        try h.finish()
    }

    @Test func withoutAnAllowListUntrustedSourcesWriteAndNoLimitsMeansNone() throws {
        var h = try Harness(sources: SourcePolicy(maxReplyRatio: 0, budgetBytesPerSecond: 0), memoryBytes: 16 << 20)
        try h.sendRequest(Array("set x 0 0 3\r\nabc\r\n".utf8), source: Self.outsider)
        #expect(Self.parse(h.receive()).map(\.2) == ["STORED\r\n"])
        try Self.storeLargeValue(&h)
        for i in 0..<50 { try h.sendRequest(Array("get big\r\n".utf8), id: UInt16(i), source: Self.outsider) }
        #expect(h.receive().count == 200)
        #expect(h.server.stats.repliesLimited == 0 && h.server.stats[.sourceBudget] == 0)
        try h.finish()
    }

    /// The same rules in the service the lwIP and socket stacks use.
    @Test func theDatagramServiceAppliesTheSamePolicy() throws {
        let pool = try NetBufPool(count: 64, roomSize: 2048, headroom: 128)
        do {
            var service = try KVDatagramService(pool: pool, memoryBytes: 4 << 20, now: 100,
                                                sources: SourcePolicy(budgetBytesPerSecond: 200, allow: [IPv4Prefix("198.51.100.0/24")!]),
                                                ownPrefix: IPv4Prefix(storeIP, length: 24))
            func ask(_ text: String, from source: IPv4Address, id: UInt16 = 1, now: UInt32 = 100) -> [String] {
                let datagram: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0, 0, 0, 1, 0, 0] + Array(text.utf8)
                let replies = datagram.withUnsafeBytes { service.handle($0.baseAddress!, count: $0.count, from: source, now: now) }
                defer { NetBuf.releaseBulk(replies) }
                return replies.map { String(decoding: UnsafeRawBufferPointer($0.unsafeBytes)[8...], as: UTF8.self) }
            }
            let value = String(repeating: "v", count: 1000)
            #expect(ask("set big 0 0 1000\r\n\(value)\r\n", from: Self.stranger) == [Self.refused])
            #expect(ask("set big 0 0 1000\r\n\(value)\r\n", from: clientIP) == ["STORED\r\n"])
            #expect(ask("get big\r\n", from: Self.outsider) == ["VALUE big 0 1000\r\n\(value)\r\nEND\r\n"])
            #expect(ask("get big\r\n", from: Self.stranger) == [Self.limited])
            #expect(service.stats.repliesLimited == 1)
            // The stranger's budget (200 bytes a second) has paid for the refusal (68 bytes) and
            // one limited reply (62): one more fits, the next two do not.
            for _ in 0..<3 { _ = ask("get big\r\n", from: Self.stranger) }
            #expect(service.stats[.sourceBudget] == 2)
            #expect(ask("get big\r\n", from: Self.stranger, now: 101) == [Self.limited])
            #expect(service.engine.stats.refusedWrites == 1)
        }
        #expect(pool.inUse == 0)
    }

    @Test func prefixesParseAndContain() {
        let p = IPv4Prefix("198.51.100.77/24")
        #expect(p?.description == "198.51.100.0/24")
        #expect(p?.contains(IPv4Address(198, 51, 100, 1)) == true && p?.contains(IPv4Address(198, 51, 101, 1)) == false)
        #expect(IPv4Prefix("192.0.2.1")?.length == 32 && IPv4Prefix("0.0.0.0/0")?.contains(IPv4Address(1, 2, 3, 4)) == true)
        for bad in ["192.0.2.1/33", "192.0.2/24", "192.0.2.1/", "192.0.2.1/2x", "x/24", "192.0.2.1/24/1"] {
            #expect(IPv4Prefix(bad) == nil, "\(bad)")
        }
    }
}
