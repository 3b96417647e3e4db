import UKNetdev

/// Turns the engine's response objects into reply frames: each object becomes a group of
/// UDP datagrams (memcached frame header with sequence 0..n-1 and total n, at most 1392 payload
/// bytes each; an empty object is one header-only datagram with total 0), each datagram a
/// complete Ethernet/IPv4/UDP frame with valid checksums.
///
/// The first datagram reuses the request's buffer when there is one; the rest come from the
/// pool. Finished frames wait in `frames` until the server sends them.
struct DatagramWriter: ResponseSink {
    /// Where replies go, from the request.
    struct Peer {
        var mac: MACAddress
        var ip: IPv4Address
        var port: UInt16
        var vlan: UInt16?
        var requestID: UInt16
    }

    let pool: NetBufPool
    let ownMAC: MACAddress
    let ownIP: IPv4Address
    let ownPort: UInt16
    var peer = Peer(mac: .zero, ip: .any, port: 0, vlan: nil, requestID: 0)

    /// Finished frames, in order; those from `committed` on may still be discarded.
    let frames: UnsafeMutablePointer<NetBuf>
    let frameCapacity: Int
    var frameCount = 0
    var committed = 0
    /// A buffer to use before taking one from the pool (the request's).
    var spare: NetBuf?

    /// The response object being written: its first frame index, the current datagram, and
    /// how much payload it holds.
    var groupStart = 0
    var inGroup = false
    var skipGroup = false
    var current: NetBuf?
    /// Where the next payload byte goes, and the end of the current datagram's payload room:
    /// the fast path of `append` is one compare and a copy. Both nil-equivalent (equal) when no
    /// datagram is open.
    var cursor = UnsafeMutableRawPointer(bitPattern: 64)!
    var limit = UnsafeMutableRawPointer(bitPattern: 64)!
    var ipIdentification: UInt16 = 0
    var window = FlushWindow()

    /// Replies lost for want of buffers or frame slots (counted, never a crash).
    var droppedForBuffers: UInt64 = 0
    var groupFailed = false

    init(pool: NetBufPool, mac: MACAddress, ip: IPv4Address, port: UInt16, frameCapacity: Int) {
        self.pool = pool
        ownMAC = mac
        ownIP = ip
        ownPort = port
        self.frameCapacity = frameCapacity
        frames = .allocate(capacity: frameCapacity)
    }

    func deallocate() { frames.deallocate() }

    var headerBytes: Int { (peer.vlan == nil ? 14 : 18) + 20 + 8 + MemcachedUDP.headerLength }

    /// Starts replies to one request.
    mutating func begin(peer: Peer, spare: NetBuf?) {
        self.peer = peer
        self.spare = spare
        inGroup = false
        closeCursor()
    }

    /// Ends the request (after the engine's final flush). Returns the request buffer if it was
    /// not used.
    mutating func end() -> NetBuf? {
        flush()
        let unused = spare
        spare = nil
        return unused
    }

    // MARK: ResponseSink

    mutating func beginResponse() {
        finishGroup()
        inGroup = true
        skipGroup = false
        groupFailed = false
        groupStart = frameCount
        closeCursor()
    }

    /// No datagram open: the next append takes the slow path.
    @inline(__always)
    mutating func closeCursor() {
        current = nil
        limit = cursor
    }

    @inline(__always)
    mutating func append(_ bytes: UnsafeRawPointer, count: Int) {
        if count <= limit - cursor {
            copyPacketBytes(to: cursor, from: bytes, count: count)
            cursor += count
            return
        }
        appendSlow(bytes, count: count)
    }

    /// A datagram to open (or the next of a group), or a response not writable (skipped/failed).
    mutating func appendSlow(_ bytes: UnsafeRawPointer, count: Int) {
        if !inGroup { beginResponse() }
        guard !skipGroup, !groupFailed else { return }
        var src = bytes
        var left = count
        while left > 0 {
            if current == nil || cursor == limit {
                guard openDatagram() else { return }
            }
            let n = min(left, limit - cursor)
            copyPacketBytes(to: cursor, from: src, count: n)
            cursor += n
            src += n
            left -= n
        }
    }

    /// Payload bytes in the open datagram.
    var payloadFilled: Int { current == nil ? 0 : MemcachedUDP.maxPayload - (limit - cursor) }

    mutating func skipResponse() {
        if !inGroup { beginResponse() }
        skipGroup = true
        releaseFrames(from: groupStart)
        closeCursor()
    }

    mutating func flush() {
        finishGroup()
        committed = frameCount
        window.reset()
    }

    mutating func discardUnflushed() {
        finishGroup()
        // Those frames never go out: their IPv4 identifications are given back, so the ids on
        // the wire stay consecutive.
        ipIdentification &-= UInt16(truncatingIfNeeded: frameCount - committed)
        releaseFrames(from: committed)
        window.reset()
    }

    // MARK: Frames

    /// Closes the current datagram (if any) and opens a new one; false if no buffer.
    mutating func openDatagram() -> Bool {
        if let c = current { seal(c, payload: payloadFilled) }
        closeCursor()
        guard frameCount < frameCapacity, let buf = takeBuffer() else {
            groupFailed = true
            droppedForBuffers &+= 1
            releaseFrames(from: groupStart)
            closeCursor()
            return false
        }
        frames[frameCount] = buf
        frameCount += 1
        current = buf
        cursor = buf.data + headerBytes
        limit = cursor + MemcachedUDP.maxPayload
        return true
    }

    mutating func takeBuffer() -> NetBuf? {
        let buf: NetBuf
        if let s = spare {
            spare = nil
            buf = s
        } else if let b = pool.allocate() {
            buf = b
        } else {
            return nil
        }
        // The frame starts at the pool's headroom; headers are written when the datagram is sealed.
        do {
            try buf.reset(headroom: min(pool.headroom, buf.capacity - headerBytes - MemcachedUDP.maxPayload))
        } catch {
            buf.release()
            return nil
        }
        return buf
    }

    /// Sets the datagram's length; headers come in `finishGroup` when the total is known.
    func seal(_ buf: NetBuf, payload: Int) {
        try? buf.setLength(headerBytes + payload)
    }

    mutating func finishGroup() {
        guard inGroup else { return }
        inGroup = false
        let empty = current == nil
        guard window.admits(empty: empty, skipped: skipGroup), !groupFailed else {
            closeCursor()
            return
        }
        if empty {
            // The first object of a flush, empty: one header-only datagram with total 0.
            guard openDatagram() else { return }
        }
        let filled = payloadFilled
        seal(current!, payload: filled)
        closeCursor()
        let datagrams = frameCount - groupStart
        let total = empty ? 0 : datagrams
        for i in 0..<datagrams {
            writeHeaders(frames[groupStart + i], sequence: UInt16(truncatingIfNeeded: i), total: UInt16(truncatingIfNeeded: min(total, 65535)))
        }
    }

    mutating func releaseFrames(from index: Int) {
        guard index < frameCount else { return }
        for i in index..<frameCount {
            if spareEligible(frames[i]) { continue }
            frames[i].release()
        }
        frameCount = index
        if committed > frameCount { committed = frameCount }
    }

    /// Frames taken back keep the request buffer for reuse instead of freeing it.
    mutating func spareEligible(_ buf: NetBuf) -> Bool {
        guard spare == nil, buf.pool == pool else { return false }
        spare = buf
        return true
    }

    /// Ethernet, IPv4, UDP and memcached headers in front of a datagram's payload.
    mutating func writeHeaders(_ buf: NetBuf, sequence: UInt16, total: UInt16) {
        ipIdentification &+= 1
        DatagramWriter.writeHeaders(buf, peer: peer, mac: ownMAC, ip: ownIP, port: ownPort,
                                    sequence: sequence, total: total, identification: ipIdentification)
    }

    /// The reply headers of one datagram whose length (headers included) is already set.
    @inline(__always)
    /// With `payloadSum` (the one's-complement sum of what follows the memcached header), the
    /// UDP checksum covers only the 16 header bytes and adds it; otherwise it reads the payload.
    static func writeHeaders(_ buf: NetBuf, peer: Peer, mac: MACAddress, ip: IPv4Address, port: UInt16,
                             sequence: UInt16, total: UInt16, identification: UInt16, payloadSum: UInt32? = nil) {
        let frame = buf.data
        let udpLength = buf.length - (peer.vlan == nil ? 14 : 18) - 20
        var p = frame
        EthernetFrame.writeHeader(at: p, destination: peer.mac, source: mac, etherType: peer.vlan == nil ? EtherType.ipv4 : EtherType.vlan)
        p += 14
        if let vlan = peer.vlan {
            p.storeBytes(of: vlan.bigEndian, as: UInt16.self)
            p.storeBytes(of: EtherType.ipv4.bigEndian, toByteOffset: 2, as: UInt16.self)
            p += 4
        }
        IPv4Packet.writeHeader(at: p, source: ip, destination: peer.ip, protocol: IPProtocol.udp,
                               payloadLength: udpLength, identification: identification)
        let udp = p + 20
        UDPDatagram.writeHeader(at: udp, sourcePort: port, destinationPort: peer.port, payloadLength: udpLength - 8)
        let mc = udp + 8
        mc.storeBytes(of: peer.requestID.bigEndian, as: UInt16.self)
        mc.storeBytes(of: sequence.bigEndian, toByteOffset: 2, as: UInt16.self)
        mc.storeBytes(of: total.bigEndian, toByteOffset: 4, as: UInt16.self)
        mc.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
        let pseudo = InternetChecksum.pseudoHeaderSum(source: ip, destination: peer.ip, protocol: IPProtocol.udp, length: udpLength)
        var c: UInt16
        if let payloadSum {
            c = InternetChecksum.finish(InternetChecksum.shortSum(udp, count: 16, initial: pseudo) &+ payloadSum)
        } else {
            c = InternetChecksum.finish(InternetChecksum.sum(udp, count: udpLength, initial: pseudo))
        }
        if c == 0 { c = 0xFFFF }
        udp.storeBytes(of: c.bigEndian, toByteOffset: 6, as: UInt16.self)
    }
}
