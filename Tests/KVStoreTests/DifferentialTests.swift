import Foundation
import KVStore
import Testing

/// The engine as memcached's UDP front end sees a datagram: 8 bytes or fewer, or a total other
/// than 1, get nothing; otherwise the payload is run and each response object becomes a group.
func engineReplies(_ engine: inout MemcachedEngine, datagram: [UInt8], now: UInt32) -> [[UInt8]] {
    guard datagram.count > 8, datagram[4] == 0, datagram[5] == 1 else { return [] }
    let id = UInt16(datagram[0]) << 8 | UInt16(datagram[1])
    var sink = CollectingSink()
    let payload = Array(datagram[8...])
    payload.withUnsafeBytes { engine.execute($0.baseAddress!, count: $0.count, now: now, into: &sink) }
    return sink.datagrams(requestID: id)
}

func show(_ d: [[UInt8]]) -> String {
    d.map { dg in
        let head = dg.prefix(8).map { String($0) }.joined(separator: ",")
        let body = String(decoding: dg.dropFirst(8).prefix(200), as: UTF8.self)
            .replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
        return "[\(head)] \(body)\(dg.count > 208 ? "...(\(dg.count - 8) bytes)" : "")"
    }.joined(separator: " | ")
}

/// The request set of the differential test: every command, its errors, and memcached's UDP
/// framing quirks. Order matters (later requests read what earlier ones stored).
func differentialCorpus() -> [[UInt8]] {
    func s(_ text: String) -> [UInt8] { Array(text.utf8) }
    let big = String(repeating: "x", count: 3000)
    let key250 = String(repeating: "k", count: 250)
    let key251 = String(repeating: "k", count: 251)
    return [
        s("version\r\n"),
        s("get nothing\r\n"),
        s("set a 0 0 1\r\n1\r\n"),
        s("get a\r\n"),
        s("gets a\r\n"),
        s("set b 42 0 5\r\nhello\r\n"),
        s("get a b c\r\n"),
        s("get c a\r\n"),
        s("get c d a b\r\n"),
        s("get a c\r\n"),
        s("gets a b\r\n"),
        s("add a 0 0 1\r\n2\r\n"),
        s("add new 3 0 2\r\nhi\r\n"),
        s("replace missing 0 0 1\r\nx\r\n"),
        s("replace new 4 0 3\r\nbye\r\n"),
        s("append new 0 0 3\r\n!!!\r\n"),
        s("prepend new 0 0 2\r\n<<\r\n"),
        s("append missing 0 0 1\r\nx\r\n"),
        s("get new\r\n"),
        s("cas new 0 0 1 999999\r\nz\r\n"),
        s("cas missing 0 0 1 1\r\nz\r\n"),
        s("gets new\r\n"),
        s("delete new\r\n"),
        s("delete new\r\n"),
        s("delete a 0\r\n"),
        s("delete a 5\r\n"),
        s("delete b noreply\r\n"),
        s("get b\r\n"),
        s("set n 0 0 2\r\n10\r\n"),
        s("incr n 5\r\n"),
        s("decr n 100\r\n"),
        s("get n\r\n"),
        s("incr n abc\r\n"),
        s("incr n -1\r\n"),
        s("incr missing 1\r\n"),
        s("set big 0 0 20\r\n18446744073709551615\r\n"),
        s("incr big 1\r\n"),
        s("get big\r\n"),
        s("set text 0 0 3\r\nabc\r\n"),
        s("incr text 1\r\n"),
        s("set sp 0 0 4\r\n  12\r\n"),
        s("incr sp 1\r\n"),
        s("set long 0 0 22\r\n1234567890123456789012\r\n"),
        s("incr long 1\r\n"),
        s("set grow 0 0 1\r\n9\r\n"),
        s("incr grow 1\r\n"),
        s("get grow\r\n"),
        s("touch n 100\r\n"),
        s("touch missing 100\r\n"),
        s("touch n abc\r\n"),
        s("gat 100 n missing\r\n"),
        s("gats 0 n\r\n"),
        s("gat abc n\r\n"),
        s("gat 0\r\n"),
        s("verbosity 1\r\n"),
        s("verbosity\r\n"),
        s("verbosity 1 noreply\r\n"),
        s("set q 0 0 1 noreply\r\nq\r\n"),
        s("get q\r\n"),
        s("set bigval 7 0 3000\r\n" + big + "\r\n"),
        s("get bigval\r\n"),
        s("get bigval a bigval\r\n"),
        s("set " + key250 + " 0 0 1\r\nx\r\n"),
        s("get " + key250 + "\r\n"),
        s("set " + key251 + " 0 0 1\r\nx\r\n"),
        s("get " + key251 + "\r\n"),
        s("get a " + key251 + " b\r\n"),
        s("set f 4294967295 0 1\r\nf\r\n"),
        s("get f\r\n"),
        s("set f 4294967296 0 1\r\nf\r\n"),
        s("set f -1 0 1\r\nf\r\n"),
        s("set f abc 0 1\r\nf\r\n"),
        s("set f 0 abc 1\r\nf\r\n"),
        s("set f 0 0 abc\r\nf\r\n"),
        s("set f 0 0 -1\r\nf\r\n"),
        s("set f 0 0 1\r\nff\r\n"),
        s("set neg 0 -1 1\r\nx\r\n"),
        s("get neg\r\n"),
        s("set past 0 3000000 1\r\nx\r\n"),
        s("get past\r\n"),
        s("set\r\n"),
        s("get\r\n"),
        s("bogus\r\n"),
        s("GET a\r\n"),
        s("\r\n"),
        s("\n"),
        s("x\r\n"),
        s("get\ta\r\n"),
        s("get  a   b \r\n"),
        s("get a\n"),
        s("get a"),
        s("set m1 0 0 1\r\na\r\nset m2 0 0 1\r\nb\r\nget m1 m2\r\n"),
        s("get m1\r\nget m2\r\nversion\r\n"),
        s("flush_all\r\n"),
        s("get m1\r\n"),
        s("flush_all 0\r\n"),
        s("flush_all abc\r\n"),
        s("flush_all noreply\r\n"),
        s("flush_all 0 noreply\r\n"),
        s("set s1 0 0 2\r\nv1\r\n"),
        s("version\r\nget m s1\r\n"),
        s("delete m noreply\r\nget m s1\r\n"),
        s("get m1 m2 s1 m3 s1 m4\r\n"),
        s("get s1 s1 s1\r\n"),
        s("get " + (1...21).map { "k\($0)" }.joined(separator: " ") + " s1  \r\n"),
        s("get " + (1...30).map { "k\($0)" }.joined(separator: " ") + " s1\r\n"),
        s(String(repeating: "version\r\n", count: 21) + "get m s1\r\n"),
        s(String(repeating: "version\r\n", count: 45)),
        s("version\r\nget " + key251 + "\r\n"),
        s("get s1\r\nget " + key251 + "\r\n"),
        s("version\r\nset " + key251 + " 0 0 1\r\nx\r\n"),
        s("set " + key251 + " 0 0 1 noreply\r\nx\r\n"),
        s("version\r\n" + String(repeating: "a", count: 3000)),
        s("version\r\nget " + String(repeating: "a", count: 3000)),
        s("version\r\n" + String(repeating: "a", count: 2000)),
        s("GET / HTTP/1.1\r\nversion\r\n"),
        s("version\r\nGET / HTTP/1.0\r\n"),
        s("version\r\r\n"),
        s("version\u{0}junk\r\n"),
        s("\u{0}version\r\n"),
        s("   version   \r\n"),
        s("version a b c\r\n"),
        s("set a\tb 0 0 1\r\nt\r\n"),
        s("get a\tb\r\n"),
        s("set k 0 0 1 a a a a a a a a a a a a a a a a a a a a a a a a a a\r\nx\r\n"),
        s("set k3 0 0 5\r\nhelloXX\r\n"),
        s("set k3 0 0 5\r\nhello\r\r\n"),
        s("set k3 0 0 5 noreply\r\nhelloXX\r\n"),
        s("set k0 0 0 0\r\n\r\n"),
        s("get k0\r\n"),
        s("set ex 0 4294967296 1\r\nx\r\n"),
        s("get ex\r\n"),
        s("set ex2 0 2147483648 1\r\nx\r\n"),
        s("get ex2\r\n"),
        s("set one 0 0 4294967297\r\nx\r\n"),
        s("get one\r\n"),
        s("set f 0 0 2147483646\r\nx\r\n"),
        s("set f +5 0 1\r\nx\r\n"),
        s("set f -0 0 1\r\nx\r\n"),
        s("set f 0x10 0 1\r\nx\r\n"),
        s("set f 18446744073709551616 0 1\r\nx\r\n"),
        s("set num 0 0 5\r\n12 34\r\n"),
        s("incr num 1\r\n"),
        s("get num\r\n"),
        s("incr num -18446744073709551615\r\n"),
        s("incr num -0\r\n"),
        s("incr num +3\r\n"),
        s("incr k noreply 1\r\n"),
        s("decr num 18446744073709551615\r\n"),
        s("incr num 1 x\r\n"),
        s("incr num 1 noreply x\r\n"),
        s("incr " + key251 + " 1\r\n"),
        s("set ap1 5 0 3\r\nmid\r\n"),
        s("append ap1 9 0 3\r\nEND\r\n"),
        s("prepend ap1 9 0 3\r\nBEG\r\n"),
        s("append ap1 x 0 3\r\nEND\r\n"),
        s("append ap1 0 0 0\r\n\r\n"),
        s("gets ap1\r\n"),
        s("cas ap1 0 0 1 0\r\nz\r\n"),
        s("cas ap1 0 0 1 18446744073709551615\r\nz\r\n"),
        s("cas ap1 0 0 1 abc\r\nz\r\n"),
        s("cas ap1 0 0 1\r\nz\r\n"),
        s("touch ap1\r\n"),
        s("touch ap1 0 noreply x\r\n"),
        s("touch ap1 0 x\r\n"),
        s("delete ap1 00\r\n"),
        s("delete ap1 noreply 0\r\n"),
        s("delete ap1 5 noreply\r\n"),
        s("delete ap1 x y z\r\n"),
        s("delete\r\n"),
        s("verbosity abc\r\n"),
        s("verbosity -1\r\n"),
        s("verbosity noreply\r\n"),
        s("verbosity 0 x\r\n"),
        s("verbosity 0 1 2\r\n"),
        s("flush_all x 0\r\n"),
        s("flush_all noreply 0\r\n"),
        s("flush_all 1 2 3\r\n"),
        s("flush_all -1\r\n"),
        s("mx h1\r\n"),
        s("lru foo\r\n"),
        s("get k noreply\r\n"),
        s("bget s1\r\n"),
        s("gats 4294967296 s1\r\n"),
        s("gat -1 s1\r\n"),
        s("get s1\r\n"),
        s("set after 0 0 1\r\n1\r\n"),
        s("get after\r\n"),
        s("gets after\r\n"),
    ]
}

/// Sends each request of `corpus` (a UDP payload) to a fresh memcached 1.6.18 and to a fresh
/// engine, in order; returns every request whose reply datagrams differ (both shown), how many
/// requests ran, and how many datagrams memcached sent.
func compareWithMemcached(_ corpus: [[UInt8]]) throws -> (mismatches: [String], requests: Int, datagrams: Int) {
    let peer = try MemcachedPeer()
    defer { peer.stop() }
    var engine = MemcachedEngine(memoryBytes: 64 << 20, startTime: UInt32(time(nil)))
    defer { engine.deallocate() }
    var mismatches: [String] = []
    var requests = 0, datagrams = 0
    for payload in corpus where !payload.isEmpty {
        let id = peer.nextID()
        let datagram = peer.header(id: id) + payload
        let request = String(decoding: payload.prefix(80), as: UTF8.self)
            .replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
        let theirs: [[UInt8]]
        do { theirs = try peer.exchangeRaw(datagram, requestID: id) } catch {
            mismatches.append("request \(request): \(error)")
            break
        }
        let ours = engineReplies(&engine, datagram: datagram, now: UInt32(time(nil)))
        requests += 1
        datagrams += theirs.count
        if ours != theirs {
            mismatches.append("request \(request)\n  memcached: \(show(theirs))\n  ours:      \(show(ours))")
        }
    }
    return (mismatches, requests, datagrams)
}

@Suite(.serialized) struct DifferentialTests {
    /// Every reply datagram of the engine equals memcached 1.6.18's, byte for byte, for the same
    /// request sequence (cas values included: both count one per store).
    @Test(.enabled(if: MemcachedPeer.binary != nil, "memcached is not installed (make test installs it)"))
    func sameRepliesAsMemcached() throws {
        let corpus = differentialCorpus()
        let (mismatches, requests, datagrams) = try compareWithMemcached(corpus)
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches:\n\(mismatches.joined(separator: "\n"))")
        // The comparison really ran: every request, and memcached answered most of them.
        #expect(requests == corpus.filter { !$0.isEmpty }.count)
        #expect(datagrams > requests)
        print("differential: \(requests) requests, \(datagrams) reply datagrams from memcached, \(mismatches.count) mismatches")
    }

    /// memcached's UDP framing: short datagrams and multi-datagram requests get nothing; a
    /// nonzero sequence or reserved field is processed normally.
    @Test(.enabled(if: MemcachedPeer.binary != nil, "memcached is not installed (make test installs it)"))
    func framingLikeMemcached() throws {
        let peer = try MemcachedPeer()
        defer { peer.stop() }
        let now = UInt32(time(nil))
        var engine = MemcachedEngine(memoryBytes: 8 << 20, startTime: now)
        defer { engine.deallocate() }
        let cases: [(String, [UInt8])] = [
            ("8 bytes", peer.header(id: 11)),
            ("7 bytes", Array(peer.header(id: 12).prefix(7))),
            ("total 2", peer.header(id: 13, total: 2) + Array("version\r\n".utf8)),
            ("total 0", peer.header(id: 14, total: 0) + Array("version\r\n".utf8)),
            ("seq 5", peer.header(id: 15, sequence: 5) + Array("version\r\n".utf8)),
            ("reserved 7", peer.header(id: 16, reserved: 7) + Array("version\r\n".utf8)),
            ("9 bytes", peer.header(id: 17) + [10]),
        ]
        for (name, datagram) in cases {
            let id = UInt16(datagram.count >= 2 ? UInt16(datagram[0]) << 8 | UInt16(datagram[1]) : 0)
            let theirs = try peer.exchangeRaw(datagram, requestID: id)
            let ours = engineReplies(&engine, datagram: datagram, now: now)
            #expect(ours == theirs, "\(name): memcached \(show(theirs)) ours \(show(ours))")
        }
    }
}
