import Foundation
import KVStore
import Testing

/// The meta protocol against a live memcached 1.6.18: every command and flag, quiet modes and
/// errors, byte for byte (`compareWithMemcached`: fresh on both sides, so cas values agree).
/// Where a reply shows a time (mg l and t, me la and exp), the write that set it and the read
/// are in one datagram: the two clocks tick at different moments, but not within one datagram.
/// Items read later live an hour: memcached's crawler reaps expired items in the background, and
/// a slow run must not see one expire between two requests.
func metaCorpus() -> [[UInt8]] {
    func s(_ text: String) -> [UInt8] { Array(text.utf8) }
    let longOpaque = "O" + String(repeating: "9", count: 32)
    let manyFlags = (0..<20).map { _ in "k" }.joined(separator: " ")
    let key251 = String(repeating: "k", count: 251)
    return [
        // mn, and misses in every form.
        s("mn\r\n"), s("mn extra\r\n"), s("mg missing\r\n"), s("mg missing v\r\n"), s("mg missing v q\r\n"),
        s("mg missing k O123 q\r\n"), s("mg missing k O123\r\n"), s("mg missing s v\r\nmn\r\n"),
        // ms, then mg with each flag.
        s("ms foo 3\r\nbar\r\n"), s("ms foo 3 T0 F5 c k O99\r\nbaz\r\n"), s("mg foo v\r\n"),
        s("mg foo s v f t c k O1\r\n"), s("mg foo h\r\n"), s("mg foo u h\r\n"), s("mg foo q v\r\n"),
        s("ms fresh 2\r\nhi\r\nmg fresh h\r\nmg fresh h u\r\nmg fresh h\r\nmg fresh l h t v\r\nme fresh\r\n"),
        s("mg foo T3600 t v\r\nmg foo t\r\n"), s("mg foo T-1 v\r\nmg foo v\r\n"),
        // Autovivify (N), recache (R): the token and the flags that show it.
        s("mg nope N3600 t s v\r\nmg nope v t\r\n"), s("mg nope N3600 v\r\n"),
        s("ms late 1 T10\r\nx\r\nmg late R30 v\r\nmg late R30 v\r\nmg late R5 v\r\n"),
        // Stale: ms I with a low unique, md I.
        s("ms st 1\r\na\r\n"), s("ms st 1 C1 I\r\nb\r\n"), s("mg st v c\r\n"), s("mg st v\r\n"),
        s("ms st 1 C1\r\nc\r\n"), s("md st I T3600\r\nmg st v t\r\n"), s("mg st v\r\n"), s("md st I q\r\n"),
        // Base64 keys.
        s("ms Zm9v 1 b\r\nx\r\n"), s("mg Zm9v b k v\r\n"), s("mg foo k v\r\n"), s("ms AAEC 1 b k\r\nx\r\n"),
        s("mg AAEC b k v\r\n"), s("mg !!!! b\r\n"), s("mg Zm9 b\r\n"), s("mg AA== b k\r\n"), s("mg AAE= b k\r\n"),
        s("ms AAEC 1 b\r\ny\r\nme AAEC b\r\n"), s("me !!!! b\r\n"), s("md AAEC b k\r\n"), s("ma AAEC b\r\n"),
        // mg errors.
        s("mg\r\n"), s("mg foo v v\r\n"), s("mg foo x\r\n"), s("mg foo E\r\n"), s("mg foo Tabc\r\n"),
        s("mg foo \(longOpaque)\r\n"), s("mg missing \(longOpaque)\r\n"), s("mg foo \(manyFlags)\r\n"),
        s("mg \(key251) v\r\n"), s("mg foo N\r\n"), s("mg foo R\r\n"), s("mg foo \u{7f}\r\n"),
        // ms modes, cas, quiet, errors.
        s("ms foo 1 ME\r\nq\r\n"), s("ms new1 1 ME c\r\nq\r\n"), s("ms foo 1 MA\r\n!\r\n"), s("ms foo 1 MP\r\n<\r\n"),
        s("mg foo v\r\n"), s("ms none 1 MR\r\nz\r\n"), s("ms none 1 MA\r\nz\r\n"), s("ms foo 1 MS\r\nS\r\n"),
        s("ms foo 1 MX\r\nz\r\n"), s("ms foo 1 Mxx\r\nz\r\n"), s("ms foo 1 C1\r\nz\r\n"), s("ms foo 1 C1 MA\r\nz\r\n"),
        s("ms foo 1 C1 ME\r\nz\r\n"), s("ms gone 1 C5\r\nz\r\n"), s("ms foo 1 q\r\nz\r\n"), s("ms foo 1 q c\r\nzz\r\n"),
        s("ms foo 2\r\nzzz\r\n"), s("ms foo abc\r\nversion\r\n"), s("ms foo\r\n"), s("ms\r\n"), s("ms foo -1\r\n"),
        s("ms foo 1 Z\r\nz\r\n"), s("ms foo 1 Fx\r\nz\r\n"), s("ms foo 1 Cx\r\nz\r\n"), s("ms foo 1 \(longOpaque)\r\nz\r\n"),
        s("ms foo 1 \(manyFlags)\r\nz\r\n"), s("ms \(key251) 1\r\nz\r\n"),
        // md.
        s("md foo\r\n"), s("md foo\r\n"), s("md foo q\r\n"), s("ms foo 1\r\nz\r\nmd foo C1\r\n"), s("md foo x\r\n"),
        s("md foo O1 k\r\n"), s("md foo O1 k q\r\n"), s("md\r\n"), s("md foo \(longOpaque)\r\n"), s("md foo v v\r\n"),
        // ma.
        s("ma cnt\r\n"), s("ma cnt q\r\n"), s("ma cnt N0 J10 v\r\n"), s("ma cnt v\r\n"), s("ma cnt MD D5 v\r\n"),
        s("ma cnt M- D100 v\r\n"), s("ma cnt MI D7 v t c\r\n"), s("ma cnt M+ q\r\n"), s("mg cnt v\r\n"),
        s("ma cnt D99999999999 v\r\n"), s("ma cnt C1\r\n"), s("ma cnt O5 k v\r\n"), s("ma cnt T100 t v\r\n"),
        s("ma nope2 N0 J3 q v\r\n"), s("ma foo\r\n"), s("ma cnt MX\r\n"), s("ma cnt Dabc\r\n"), s("ma cnt Jx\r\n"),
        s("ma\r\n"), s("ma cnt \(longOpaque)\r\n"), s("ma absent O7 k\r\n"),
        // me.
        s("ms dbg 4 T300 F1\r\nabcd\r\nme dbg\r\n"), s("me missing\r\n"), s("me\r\n"), s("me \(key251)\r\n"),
        s("ms big 600\r\n\(String(repeating: "b", count: 600))\r\nme big\r\n"),
        s("ms huge 3000\r\n\(String(repeating: "h", count: 3000))\r\nme huge\r\nmg huge s v\r\n"),
        // Other two-letter commands starting with m, and meta commands among text ones.
        s("mz foo\r\n"), s("get foo\r\nmg foo v\r\nget foo\r\n"), s("mn\r\nmn\r\n"),
        s("version\r\n"),
    ]
}

@Suite(.serialized) struct MetaTests {
    @Test(.enabled(if: MemcachedPeer.binary != nil, "memcached is not installed (make test installs it)"))
    func sameRepliesAsMemcached() throws {
        let corpus = metaCorpus()
        let (mismatches, requests, datagrams) = try compareWithMemcached(corpus)
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches:\n\(mismatches.joined(separator: "\n"))")
        #expect(requests == corpus.count)
        #expect(datagrams > requests / 2)
        print("meta differential: \(requests) requests, \(datagrams) reply datagrams from memcached, \(mismatches.count) mismatches")
    }

    /// memcached's slab classes with its defaults: 96, 120, 152, ... 524288 bytes.
    @Test func slabClassesAreMemcacheds() {
        #expect(MemcachedEngine.memcachedSlabClass(61) == 1)
        #expect(MemcachedEngine.memcachedSlabClass(96) == 1)
        #expect(MemcachedEngine.memcachedSlabClass(97) == 2)
        #expect(MemcachedEngine.memcachedSlabClass(121) == 3)
        #expect(MemcachedEngine.memcachedSlabClass(1 << 20) == 39)
    }
}
