import Foundation
import KVStore
import Testing
import UKNetdev

/// The store and a live memcached 1.6.18 side by side, each request sent to both as the same
/// UDP datagram (and, as `MemcachedPeer.exchangeRaw` does for memcached, followed by a
/// `version` datagram marking its end): ours goes through `KVDatagramService`, which counts
/// bytes read and written as memcached's UDP front end does.
struct StatsTwin {
    let peer: MemcachedPeer
    let pool: NetBufPool

    init() throws {
        peer = try MemcachedPeer()
        pool = try NetBufPool(count: 256, roomSize: 2048, headroom: 128)
    }

    /// A store like the peer: 64 MiB, every source trusted.
    func makeService() throws -> KVDatagramService {
        try KVDatagramService(pool: pool, memoryBytes: 64 << 20, now: UInt32(time(nil)), sources: .trustEveryone,
                              ownPrefix: IPv4Prefix(.any, length: 0))
    }

    /// Our reply datagrams (memcached header included) to one request datagram.
    func ours(_ datagram: [UInt8], _ service: inout KVDatagramService) -> [[UInt8]] {
        let replies = datagram.withUnsafeBytes {
            service.handle($0.baseAddress!, count: $0.count, from: IPv4Address(127, 0, 0, 1), now: UInt32(time(nil)))
        }
        var out: [[UInt8]] = []
        for reply in replies {
            out.append(Array(UnsafeRawBufferPointer(start: reply.data, count: reply.length)))
            reply.release()
        }
        return out
    }

    /// Sends `payload` to both; returns (memcached's datagrams, ours).
    func exchange(_ payload: String, _ service: inout KVDatagramService) throws -> (theirs: [[UInt8]], ours: [[UInt8]]) {
        let id = peer.nextID()
        let datagram = peer.header(id: id) + Array(payload.utf8)
        let theirs = try peer.exchangeRaw(datagram, requestID: id)
        let ours = ours(datagram, &service)
        _ = self.ours(peer.header(id: id &+ 0x8000) + Array("version\r\n".utf8), &service)   // the end marker memcached got
        return (theirs, ours)
    }

    /// After the service is gone: no reply buffer kept.
    func finish() throws {
        peer.stop()
        #expect(pool.inUse == 0, "reply buffers leaked")
        try pool.destroy()
    }
}

/// The lines of a `stats` reply (datagrams joined, headers removed) as (name, value) pairs.
func statLines(_ datagrams: [[UInt8]]) -> [(String, String)] {
    let text = String(decoding: datagrams.flatMap { $0.dropFirst(8) }, as: UTF8.self)
    var pairs: [(String, String)] = []
    for line in text.components(separatedBy: "\r\n") where line.hasPrefix("STAT ") {
        let parts = line.dropFirst(5).split(separator: " ", maxSplits: 1)
        pairs.append((String(parts[0]), parts.count > 1 ? String(parts[1]) : ""))
    }
    return pairs
}

@Suite(.serialized) struct StatsTests {
    /// Fields whose value is the process's or the machine's (time, CPU, the hash table's size
    /// for the memory, the work of memcached's LRU maintainer and crawler threads, which depends
    /// on when they wake: a slow run saw lrutail_reflocked 4): same name, same place, any value.
    static let variable: Set<String> = ["pid", "uptime", "time", "libevent", "rusage_user", "rusage_system",
                                        "hash_power_level", "hash_bytes", "lru_crawler_starts", "lru_maintainer_juggles",
                                        "moves_to_cold", "moves_to_warm", "moves_within_lru", "lrutail_reflocked",
                                        "crawler_items_checked"]

    /// Compares two `stats` replies: every field, in order, with equal values outside `variable`.
    /// `shorter`: how many bytes fewer than memcached's our earlier `stats` replies had (their
    /// variable fields' widths differ), which bytes_written holds.
    static func compare(_ theirs: [[UInt8]], _ ours: [[UInt8]], _ when: String, shorter: Int = 0) {
        let a = statLines(theirs)
        let b = statLines(ours).map { name, value in
            name == "bytes_written" ? (name, String(Int(value)! + shorter)) : (name, value)
        }
        #expect(a.count > 80, "\(when): memcached's stats has \(a.count) fields")
        #expect(a.map(\.0) == b.map(\.0), "\(when): field names or order differ:\n memcached \(a.map(\.0))\n ours      \(b.map(\.0))")
        for ((name, theirValue), (_, ourValue)) in zip(a, b) where !variable.contains(name) {
            #expect(theirValue == ourValue, "\(when): \(name) is \(ourValue), memcached says \(theirValue)")
        }
        #expect(ours.last.map { Array($0.suffix(5)) } == Array("END\r\n".utf8), "\(when): our reply ends with END")
        // memcached splits the reply over datagrams of 1,392 payload bytes: so does ours.
        let ourLength = ours.reduce(0) { $0 + $1.count - 8 }
        #expect(ours.count == (ourLength + 1391) / 1392, "\(when): \(ourLength) bytes in \(ours.count) datagrams")
        for (i, d) in ours.enumerated() {
            #expect(d[2] == 0 && Int(d[3]) == i && Int(d[5]) == ours.count, "\(when): datagram \(i)'s header \(d.prefix(8))")
        }
    }

    static func bytes(_ datagrams: [[UInt8]]) -> Int { datagrams.reduce(0) { $0 + $1.count } }

    /// After a known sequence of commands, every counter of `stats` is memcached's, and `stats
    /// reset` zeroes the same ones.
    @Test(.enabled(if: MemcachedPeer.binary != nil, "memcached is not installed (make test installs it)"))
    func countersMoveAsMemcachedsDo() throws {
        let twin = try StatsTwin()
        var service = try twin.makeService()
        // From zero on both sides (memcached's start-up probes counted bytes).
        var r = try twin.exchange("stats reset\r\n", &service)
        #expect(r.theirs == r.ours && r.ours.count == 1)
        r = try twin.exchange("stats\r\n", &service)
        StatsTests.compare(r.theirs, r.ours, "after the reset")
        let shorter = StatsTests.bytes(r.theirs) - StatsTests.bytes(r.ours)

        // memcached's LRU maintainer and crawler reap dead items in the background (its curr_items
        // drops, and a later lookup misses without counting get_expired or get_flushed); ours reaps
        // them when looked up. So no item may expire during the test (long TTLs), and an item
        // killed on purpose is looked up in the datagram that killed it.
        let sequence = [
            "set a 0 0 1\r\n1\r\n", "set b 7 0 5\r\nhello\r\n", "get a b c\r\n", "gets a\r\n", "bget a\r\n",
            "gat 3600 a c\r\n", "gats 3600 b\r\n", "touch a 7200\r\n", "touch c 7200\r\n",
            "delete b\r\n", "delete b\r\n", "incr a 5\r\n", "incr c 1\r\n", "decr a 2\r\n", "decr c 1\r\n",
            "set n 0 0 3\r\nabc\r\n", "incr n 1\r\n",
            "gets a\r\n", "cas a 0 0 1 999\r\nz\r\n", "cas c 0 0 1 1\r\nz\r\n",
            "add a 0 0 1\r\nq\r\n", "add d 0 0 1\r\nq\r\n", "replace d 0 0 2\r\nqq\r\n", "append d 0 0 1\r\n!\r\n",
            "prepend zz 0 0 1\r\n!\r\n", "set bad 0 0 2\r\nabc\r\n",
            "set e 0 -1 1\r\nx\r\nget e\r\n", "touch e 10\r\n",
            "set g 1 0 1\r\ng\r\n", "set h 0 0 300\r\n" + String(repeating: "h", count: 300) + "\r\n",
            // Lone GETs (the service's fast path): a hit, a miss, "\n" alone, a 300-byte value.
            "get a\r\n", "get zz\r\n", "get g\n", "get h\r\n",
            "stats foo\r\n", "version\r\n",
            // The meta commands count where memcached counts them (me alone in cmd_meta).
            "mg a v\r\n", "mg zz v\r\n", "mg a T3600 v\r\n", "mg zz T3600 v\r\n", "ms m1 1\r\nx\r\n", "md m1\r\n", "md m1\r\n",
            "ma n\r\n", "ma nope\r\n", "ma n MD\r\n", "ms m2 1\r\nx\r\nme m2\r\n", "me zz\r\n", "mn\r\n",
            // A flush kills every item: each is looked up in the flush's own datagram, and the later
            // flushes find nothing alive. Then two items that stay.
            "set f 0 0 1\r\nf\r\nflush_all\r\nget a d f g h n\r\nmg m2 v\r\nmg m2 v\r\n",
            "flush_all 0 noreply\r\n", "flush_all bad\r\n",
            "set k 1 0 1\r\nk\r\n", "set l 0 0 300\r\n" + String(repeating: "l", count: 300) + "\r\n",
        ]
        for request in sequence {
            r = try twin.exchange(request, &service)
            #expect(r.theirs == r.ours, "\(request.prefix(40)): replies differ: memcached \(show(r.theirs)) ours \(show(r.ours))")
            if request == "gets a\r\n", let line = String(decoding: r.ours.first?.dropFirst(8) ?? [], as: UTF8.self)
                .components(separatedBy: "\r\n").first, let unique = line.split(separator: " ").last {
                // A cas with the right unique (both stores number their stores alike).
                r = try twin.exchange("cas a 0 0 1 \(unique)\r\n7\r\n", &service)
                #expect(r.theirs == r.ours && r.ours.count == 1, "cas with \(unique): memcached \(show(r.theirs)) ours \(show(r.ours))")
            }
        }
        r = try twin.exchange("stats\r\n", &service)
        StatsTests.compare(r.theirs, r.ours, "after the sequence", shorter: shorter)
        let ours = Dictionary(statLines(r.ours), uniquingKeysWith: { a, _ in a })
        // The sequence moved them (a comparison of zeros would prove nothing). Not store_too_large:
        // over UDP memcached then swallows a megabyte of the following datagrams.
        for field in ["cmd_get", "cmd_set", "cmd_touch", "cmd_flush", "cmd_meta", "get_hits", "get_misses", "get_expired", "get_flushed",
                      "delete_hits", "delete_misses", "incr_hits", "incr_misses", "decr_hits", "decr_misses", "cas_hits",
                      "cas_misses", "cas_badval", "touch_hits", "touch_misses", "bytes", "curr_items",
                      "total_items", "bytes_read", "bytes_written"] {
            #expect((UInt64(ours[field] ?? "") ?? 0) > 0, "\(field) did not move: \(ours[field] ?? "missing")")
        }

        r = try twin.exchange("stats reset\r\n", &service)
        #expect(r.theirs == r.ours)
        r = try twin.exchange("stats\r\n", &service)
        StatsTests.compare(r.theirs, r.ours, "after a second reset")
        _ = consume service
        try twin.finish()
    }

    /// The other arguments of `stats`, and the commands memcached answers with a fixed text.
    @Test(.enabled(if: MemcachedPeer.binary != nil, "memcached is not installed (make test installs it)"))
    func argumentsAndFixedTextsAsMemcached() throws {
        let twin = try StatsTwin()
        var service = try twin.makeService()
        #expect(try twin.exchange("stats reset\r\n", &service).ours.count == 1)
        for request in ["stats sizes\r\n", "stats detail\r\n", "stats bogus\r\n", "stats  \r\n", "stats reset now\r\n",
                        "STATS\r\n", "shutdown\r\n", "shutdown graceful\r\n", "shutdown now\r\n", "refresh_certs\r\n",
                        "stats sizes\r\nversion\r\n"] {
            let r = try twin.exchange(request, &service)
            if request.hasPrefix("stats  ") {
                StatsTests.compare(r.theirs, r.ours, "stats with trailing spaces")
            } else {
                #expect(r.theirs == r.ours, "\(request.prefix(40)): memcached \(show(r.theirs)) ours \(show(r.ours))")
            }
        }
        let settings = try twin.exchange("stats settings\r\n", &service)
        let a = statLines(settings.theirs), b = statLines(settings.ours)
        #expect(a.map(\.0) == b.map(\.0), "stats settings: fields differ:\n memcached \(a.map(\.0))\n ours      \(b.map(\.0))")
        _ = consume service
        try twin.finish()
    }
}
