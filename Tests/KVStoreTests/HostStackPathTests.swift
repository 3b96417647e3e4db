import HostStack
import KVStore
import Testing
import TestSupport
import UKNetdev

/// How a test frame reaches the store.
enum Delivery: CustomStringConvertible {
    /// One buffer the store may write over.
    case plain
    /// A chain of `segment`-byte buffers (virtio's mergeable RX buffers).
    case chained(segment: Int)
    /// One buffer the sender keeps a second reference to (as a tracer would).
    case extraReference
    /// A clone: the data room stays the sender's buffer's.
    case clone

    var description: String {
        switch self {
        case .plain: "plain"
        case .chained(let segment): "chained(\(segment))"
        case .extraReference: "extra reference"
        case .clone: "clone"
        }
    }
}

/// What a fresh store answered to a run of frames.
struct Served {
    var replies: [[UInt8]]
    var stats: KVServerStats
    var loneGets: UInt64
}

/// Sends `frames` in order to a fresh store (or echo server), each as `delivery` says, and
/// collects every reply.
/// A frame the sender still holds (extra reference, clone) must come back unchanged; both pools
/// must be whole at the end.
func serve(_ frames: [[UInt8]], _ delivery: Delivery, mode: KVServerMode = .memcached) throws -> Served {
    var h = try Harness(mode: mode)
    // For frames longer than the store's buffers (a jumbo frame from a peer with bigger ones).
    let jumboPool = try NetBufPool(count: 8, roomSize: 9216, headroom: 128)
    var replies: [[UInt8]] = []
    for f in frames {
        let serverPool = h.pool
        func single() throws -> NetBuf {
            let pool = f.count <= serverPool.roomSize - serverPool.headroom ? serverPool : jumboPool
            let buf = try #require(pool.allocate())
            try f.withUnsafeBytes { try buf.copyIn($0) }
            return buf
        }
        switch delivery {
        case .plain:
            h.transmit(try single())
        case .chained(let segment):
            h.transmit(try #require(makeChain(f, segment: segment, pool: h.pool)))
        case .extraReference:
            let buf = try single()
            buf.retain()
            h.transmit(buf)
            #expect(frameBytes(buf) == f, "a frame someone else holds was written over")
            buf.release()
        case .clone:
            let original = try single()
            h.transmit(try #require(original.clone(using: h.pool)))
            #expect(frameBytes(original) == f, "the frame behind a clone was written over")
            original.release()
        }
        replies += h.receive()
    }
    let stats = h.server.stats
    let loneGets = h.server.engine.stats.loneGets
    try h.finish()
    #expect(jumboPool.inUse == 0, "jumbo buffers leaked")
    try jumboPool.destroy()
    return Served(replies: replies, stats: stats, loneGets: loneGets)
}

/// A request frame for `text` with request id `id`.
func request(_ text: String, id: UInt16) throws -> [UInt8] {
    try frame { try writeRequest(into: $0, Array(text.utf8), id: id) }
}

/// Every path through the host stack and the server, and which frames the lone-GET fast path
/// answers when they come plain.
func everyPath() throws -> (frames: [[UInt8]], loneGets: [Int]) {
    let value = String(repeating: "f", count: 3000)
    let fragmented = udpDatagram([0, 9, 0, 0, 0, 1, 0, 0] + Array("set frag 0 0 3000\r\n\(value)\r\n".utf8))
    let jumbo = String(repeating: "j", count: 2900)
    var frames: [[UInt8]] = [
        try frame { try writeARPRequest(into: $0) },
        try frame { try writeEchoRequest(into: $0, data: (0..<200).map { UInt8(truncatingIfNeeded: $0) }) },
        try request("set k 5 0 5\r\nhello\r\n", id: 1),
        try request("get k\r\n", id: 2),                   // lone GET, hit
        try request("get nothing\r\n", id: 3),             // lone GET, miss
        try request("get k nothing k\r\n", id: 4),         // the general path
        try request("set jumbo 0 0 2900\r\n\(jumbo)\r\n", id: 5),   // one frame longer than the store's buffers
        try request("get jumbo\r\n", id: 6),               // a reply of three datagrams: the general path
    ]
    for (offset, length) in [(1480, 1480), (2960, fragmented.count - 2960), (0, 1480)] {
        frames.append(try frame { try writeFragment(into: $0, of: fragmented, offset: offset, length: length,
                                                    more: offset + length < fragmented.count) })
    }
    frames.append(try request("get frag\r\n", id: 7))
    return (frames, [3, 4])
}

@Suite struct HostStackPathTests {
    /// Chained frames (ARP, ICMP echo, lone and general GETs, SETs, fragments, a frame longer
    /// than one of the store's buffers) get the same replies, byte for byte, as the same frames
    /// in one buffer; so do frames the sender still holds (a second reference, a clone), which
    /// are never written over. The lone-GET fast path answers the plain ones only.
    @Test func chainedAndSharedFramesGetTheSameReplies() throws {
        let (frames, loneGets) = try everyPath()
        let plain = try serve(frames, .plain)
        #expect(plain.replies.count > frames.count)
        #expect(plain.loneGets == UInt64(loneGets.count), "the lone-GET fast path was not taken")
        #expect(plain.stats.totalDrops == 0 && plain.stats.host.linearised == 0)
        for delivery: Delivery in [.chained(segment: 40), .chained(segment: 1024), .extraReference, .clone] {
            let other = try serve(frames, delivery)
            #expect(other.replies == plain.replies, "\(delivery): replies differ from the plain frames'")
            // It declines chains and frames it may not write over.
            var fastPath = 0
            if case .chained(let segment) = delivery { fastPath = loneGets.filter { frames[$0].count <= segment }.count }
            #expect(other.loneGets == UInt64(fastPath), "\(delivery): the fast path took a frame it must not")
            #expect(other.stats.requests == plain.stats.requests && other.stats.totalDrops == 0, "\(delivery)")
            #expect(other.stats.arpReplies == 1 && other.stats.icmpReplies == 1 && other.stats.reassembled == 1, "\(delivery)")
            if case .chained(let segment) = delivery {
                let chains = frames.filter { $0.count > segment }.count
                #expect(other.stats.host.linearised == UInt64(chains), "\(delivery)")
            }
        }
    }

    /// The fast path is what answers lone GETs (hits and misses, either line ending): if it
    /// stopped being taken, this fails (the replies would still be right).
    @Test func loneGetsTakeTheFastPath() throws {
        var h = try Harness()
        try h.sendRequest(Array("set a 0 0 1\r\nx\r\n".utf8))
        #expect(h.replies() == ["STORED\r\n"])
        for (i, text) in ["get a\r\n", "get missing\r\n", "get missing\n"].enumerated() {
            try h.sendRequest(Array(text.utf8), id: UInt16(10 + i))
        }
        #expect(h.replies() == ["VALUE a 0 1\r\nx\r\nEND\r\n", "END\r\n", "END\r\n"])
        #expect(h.server.engine.stats.loneGets == 3)
        // Not lone GETs, or too short for the fast path's checks: the general path answers.
        for text in ["get a\n", "get a a\r\n", "gets a\r\n", "set b 0 0 1\r\ny\r\n"] { try h.sendRequest(Array(text.utf8)) }
        #expect(!h.replies().isEmpty)
        #expect(h.server.engine.stats.loneGets == 3 && h.server.stats.requests == 8)
        // A key one byte over memcached's 250, the line ending in "\n" alone (so within the fast
        // path's first length bound): memcached's error from the general path, not a miss (found
        // by the memcached fuzz target).
        try h.sendRequest(Array(("get " + String(repeating: "k", count: 251) + "\n").utf8), id: 20)
        #expect(h.replies() == ["CLIENT_ERROR bad command line format\r\n"])
        #expect(h.server.engine.stats.loneGets == 3)
        try h.finish()
    }

    /// No buffer for a chain's copy: counted under its reason, the chain freed.
    @Test func chainWithoutABufferIsCountedAndFreed() throws {
        var h = try Harness()
        let chain = try #require(makeChain(try request("get k\r\n", id: 1), segment: 32, pool: h.pool))
        var held: [NetBuf] = []
        while let b = h.pool.allocate() { held.append(b) }
        h.transmit(chain)
        for b in held { b.release() }
        #expect(h.receive().isEmpty)
        #expect(h.server.stats[.noBuffer] == 1 && h.server.stats.totalDrops == 1)
        try h.finish()
    }

    /// Each drop counter's storage has one slot per reason (checked when stats are made).
    @Test func dropCountersAreSizedByTheirReasons() {
        let stats = KVServerStats()
        var names: [String] = []
        stats.forEachDrop { name, count in
            names.append(name)
            #expect(count == 0)
        }
        #expect(names.count == HostDropReason.allCases.count + KVDropReason.allCases.count)
        #expect(Set(names).count == names.count, "every reason has a name of its own")
    }
}
