import HostStack
import UKNetdev

/// memcached over UDP for a stack that does Ethernet, IPv4 and UDP itself (lwIP, the kernel's
/// sockets): request datagrams in as bytes, reply datagrams out as payload NetBufs (memcached
/// header and body, each starting after the pool's headroom, where that stack puts its headers).
/// The same engine, the same datagram rules and the same drop reasons as `KVServer`.
///
/// `~Copyable`: it owns its store and scratch memory and frees them once.
public struct KVDatagramService: ~Copyable {
    public var engine: MemcachedEngine
    var writer: DatagramWriter
    /// The request is parsed from here (the caller's buffer may be reused meanwhile).
    let requestCopy: UnsafeMutableRawPointer
    /// Requests, reply datagrams and memcached-level drops (no host-stack counters here).
    public private(set) var stats = KVServerStats()
    var sourceGuard: SourceGuard

    /// `sources` applies to requests from outside `ownPrefix` (the store's address and prefix).
    public init(pool: NetBufPool, memoryBytes: Int, now: UInt32, sources: SourcePolicy, ownPrefix: IPv4Prefix,
                shutdownCommand: Bool = false) throws(KVServerError) {
        let needed = MemcachedUDP.headerLength + MemcachedUDP.maxPayload + 42
        guard pool.roomSize >= needed else { throw .buffersTooSmall(needed: needed, available: pool.roomSize) }
        engine = MemcachedEngine(memoryBytes: memoryBytes, startTime: now)
        engine.shutdownEnabled = shutdownCommand
        sourceGuard = SourceGuard(policy: sources, ownPrefix: ownPrefix)
        writer = DatagramWriter(pool: pool, mac: .zero, ip: .any, port: 0, frameCapacity: 1024, payloadOnly: true)
        requestCopy = .allocate(byteCount: 65536, alignment: 64)
    }

    deinit {
        writer.deallocate()
        requestCopy.deallocate()
        engine.deallocate()
        sourceGuard.deallocate()
    }

    /// Empties the store, zeroes the counters (the engine's and these) and refills every
    /// source's budget, allocating nothing: the state `init` left, for a caller that reuses one
    /// service (a fuzzer's inputs).
    public mutating func removeAll() {
        engine.removeAll()
        stats = KVServerStats()
        sourceGuard.reset()
    }

    /// Handles one request datagram (`count` bytes of UDP payload at `payload`, from `source`). Returns the
    /// replies to send, in order, to the request's source: the caller owns each (send it or
    /// release it); the buffer pointer is valid until the next call. Empty for a dropped
    /// request (counted) or a request without a reply (noreply).
    public mutating func handle(_ payload: UnsafeRawPointer, count: Int, from source: IPv4Address, now: UInt32) -> UnsafeMutableBufferPointer<NetBuf> {
        let (requestID, dropReason) = MemcachedUDP.requestID(of: payload, count: count)
        if let dropReason {
            if count > MemcachedUDP.headerLength { engine.stats.generalBytesRead &+= UInt64(count) }
            stats.drops.add(dropReason)
            return UnsafeMutableBufferPointer(start: nil, count: 0)
        }
        stats.requests &+= 1
        let trusted = sourceGuard.trusts(source)
        if trusted, let reply = answerLoneGet(payload, count: count, requestID: requestID, now: now) { return reply }
        engine.stats.generalBytesRead &+= UInt64(count)   // more than the header: requestID checked
        engine.writesAllowed = trusted || sourceGuard.untrustedMayWrite
        let bodyLength = min(count - MemcachedUDP.headerLength, 65536)
        copyPacketBytes(to: requestCopy, from: payload + MemcachedUDP.headerLength, count: bodyLength)
        writer.begin(peer: DatagramWriter.Peer(mac: .zero, ip: .any, port: 0, vlan: nil, requestID: requestID), spare: nil)
        engine.execute(UnsafeRawPointer(requestCopy), count: bodyLength, now: now, into: &writer)
        let replies = writer.end()
        replies.unused?.release()
        stats.drops.add(.noBufferForReply, replies.dropped)
        var frames = replies.frames
        if !trusted {
            frames = sourceGuard.screen(frames, requestBytes: count, source: source, now: now, writer: &writer, stats: &stats)
        }
        stats.replyDatagrams &+= UInt64(frames.count)
        for frame in frames { engine.stats.generalBytesWritten &+= UInt64(writer.udpPayloadBytes(of: frame)) }
        return frames
    }

    /// A lone GET (`MemcachedEngine.loneGetKey`) from a trusted source answered without the
    /// parser, in one datagram from the pool: the bytes and counters of the general path. Nil
    /// leaves the request to the general path (anything else, a reply over one datagram, no buffer).
    @inline(__always)
    mutating func answerLoneGet(_ payload: UnsafeRawPointer, count: Int, requestID: UInt16, now: UInt32) -> UnsafeMutableBufferPointer<NetBuf>? {
        guard let (key, keyLength) = MemcachedEngine.loneGetKey(payload + MemcachedUDP.headerLength,
                                                               count: count - MemcachedUDP.headerLength) else { return nil }
        writer.begin(peer: DatagramWriter.Peer(mac: .zero, ip: .any, port: 0, vlan: nil, requestID: requestID), spare: nil)
        guard let buf = writer.takeBuffer() else { return nil }   // the general path counts the drop
        let item = engine.store.fetch(key, keyLength, now: now)
        let blockLength = item?.blockLength ?? 0
        let size = blockLength + 5   // the item's reply block (if a hit), then "END\r\n"
        guard size <= MemcachedUDP.maxPayload else {
            buf.release()
            return nil
        }
        writer.seal(buf, payload: size)
        writer.writeHeaders(buf, sequence: 0, total: 1)
        engine.writeLoneGetReply(item, blockLength: blockLength, requestUDPBytes: 8 + count, at: buf.data + MemcachedUDP.headerLength)
        stats.replyDatagrams &+= 1
        return writer.handOver(buf)
    }
}
