import FuzzSupport
import KVStore
import UKNetdev

// The memcached request parser and engine on any datagram, through `KVDatagramService.handle`
// (memcached's UDP frame header, the engine, the reply writer), checked against a second engine
// writing into a `CollectingSink` (the reference sink the differential tests use): for every
// request both must answer the same datagrams, byte for byte. Every reply is checked (within its
// buffer, the request's id, sequence below total) and released; after each input every buffer
// is back in the pool.
//
// Input: records of [seconds to move the clock on][length: 2 bytes, big-endian][datagram], the
// datagram being the UDP payload (the 8-byte memcached frame header, then the text). Both
// engines start empty for each input.

let pool = try! NetBufPool(count: 1100, roomSize: 2048, headroom: 128)
/// Requests up to this size are also run on the reference engine: a reply can be as large as
/// the keys of a request times the largest value, and the collecting sink keeps it all.
let referenceLimit = 8192

/// One service and one reference engine for every input, emptied at its start (`removeAll`):
/// making them anew cost a fresh 2 MiB arena each, whose page faults were most of an input's time.
/// Every source trusted: this target compares the engine's replies (SourceGuardTests test the guard).
nonisolated(unsafe) var service: KVDatagramService = {
    do {
        return try KVDatagramService(pool: pool, memoryBytes: 1 << 20, now: 1_000_000, sources: .trustEveryone,
                                     ownPrefix: IPv4Prefix(.any, length: 0), shutdownCommand: true)
    } catch {
        fatalError("memcached: no service: \(error)")
    }
}()
nonisolated(unsafe) var reference: MemcachedEngine = {
    var engine = MemcachedEngine(memoryBytes: 1 << 20, startTime: 1_000_000)
    engine.shutdownEnabled = true
    return engine
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    var now: UInt32 = 1_000_000
    service.removeAll()
    reference.removeAll()
    // The engines hold the same items as long as every request went to both.
    var inStep = true
    while !input.isAtEnd {
        now &+= UInt32(input.byte())
        // Each datagram in an allocation of its own size: ASan sees any byte read past its end.
        let chunk = input.chunk()
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk.count, alignment: 1)
        defer { copy.deallocate() }
        copy.copyMemory(from: chunk)
        let datagram = UnsafeRawBufferPointer(copy)
        let base = datagram.baseAddress!
        let dropsBefore = service.stats[.noBufferForReply]
        let readBefore = service.engine.stats.bytesRead
        let writtenBefore = service.engine.stats.bytesWritten
        let replies = service.handle(base, count: datagram.count, from: IPv4Address(192, 0, 2, 1), now: now)
        // The reference engine runs without the UDP front end that counts bytes: it is given the
        // service's counts as `stats` would show them to this request (the datagram's bytes read,
        // none of its replies written; not the counts after it: a `stats reset` in it zeroes them).
        reference.stats.generalBytesRead = readBefore &+ (datagram.count > 8 ? UInt64(datagram.count) : 0)
        reference.stats.generalBytesWritten = writtenBefore
        let complete = service.stats[.noBufferForReply] == dropsBefore
        // The request as the service takes it: more than the header, one datagram of one.
        let valid = datagram.count > 8 && datagram.loadUnaligned(fromByteOffset: 4, as: UInt16.self) == UInt16(1).bigEndian
        let requestID = valid ? UInt16(bigEndian: datagram.loadUnaligned(as: UInt16.self)) : 0
        var expected: [[UInt8]]? = nil
        if valid {
            if datagram.count <= referenceLimit {
                var sink = CollectingSink()
                reference.execute(base + 8, count: datagram.count - 8, now: now, into: &sink)
                if inStep && complete { expected = sink.datagrams(requestID: requestID) }
            } else {
                inStep = false
            }
        } else if replies.count != 0 {
            fatalError("memcached: replies to a request that is dropped")
        }
        for (i, reply) in replies.enumerated() {
            checkBounds(reply, "memcached: a reply")
            let length = reply.length
            guard reply.next == nil, length >= 8, length <= 8 + MemcachedUDP.maxPayload else {
                fatalError("memcached: a reply datagram of \(length) bytes")
            }
            let p = UnsafeRawPointer(reply.data)
            let id = UInt16(bigEndian: p.loadUnaligned(as: UInt16.self))
            let sequence = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            let total = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
            guard id == requestID, total == 0 ? sequence == 0 && length == 8 : sequence < total else {
                fatalError("memcached: a reply with id \(id) (request \(requestID)), sequence \(sequence) of \(total)")
            }
            if let expected {
                let bytes = Array(UnsafeRawBufferPointer(start: p, count: length))
                guard i < expected.count, bytes == expected[i] else {
                    fatalError("memcached: reply \(i) differs from the reference sink's (\(expected.count) datagrams): "
                               + firstDifference(bytes, i < expected.count ? expected[i] : []))
                }
            }
            reply.release()
        }
        if let expected, expected.count != replies.count {
            fatalError("memcached: \(replies.count) reply datagrams, the reference sink has \(expected.count)")
        }
    }
    requireFullPool(pool, "memcached: after the input")
    return 0
}

/// Where two replies part: the offset, and the 60 bytes from the line it falls in, of each.
func firstDifference(_ ours: [UInt8], _ theirs: [UInt8]) -> String {
    let at = (0..<min(ours.count, theirs.count)).first { ours[$0] != theirs[$0] } ?? min(ours.count, theirs.count)
    let lineStart = (ours[..<min(at, ours.count)].lastIndex(of: UInt8(ascii: "\n")) ?? 7) + 1
    func text(_ b: [UInt8]) -> String {
        String(decoding: b[min(lineStart, b.count)..<min(lineStart + 60, b.count)].map { $0 < 0x20 || $0 > 0x7E ? UInt8(ascii: ".") : $0 },
               as: UTF8.self)
    }
    return "\(ours.count) vs \(theirs.count) bytes, first difference at \(at): ours \"\(text(ours))\" vs \"\(text(theirs))\""
}
