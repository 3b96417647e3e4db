import HostStack
import UKNetdev

/// Turns the engine's response objects into reply frames: each object becomes a group of
/// UDP datagrams (memcached frame header with sequence 0..n-1 and total n, at most 1392 payload
/// bytes each; an empty object is one header-only datagram with total 0), each datagram a
/// complete Ethernet/IPv4/UDP frame with valid checksums.
///
/// The first datagram reuses the request's buffer when there is one; the rest come from the
/// pool. Finished frames wait in `frames` until the server sends them.
///
/// `payloadOnly`: for a stack that writes Ethernet, IPv4 and UDP itself (lwIP, the kernel's
/// sockets) each datagram is just its UDP payload (memcached header and body), starting after
/// the pool's headroom so that stack can put its headers in front.
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

    /// Ethernet/IPv4/UDP headers of our replies with every field that never changes filled in
    /// (source MAC and address, TTL, protocol, source port), and the sum of those IPv4 fields:
    /// a reply copies it and patches the rest.
    let template: UnsafeMutableRawPointer
    let templateIPSum: UInt32
    /// What every reply's UDP checksum shares: our address's two 16-bit words and the protocol
    /// (pseudo-header), our port (header).
    let fixedUDPSum: UInt32
    let payloadOnly: Bool

    init(pool: NetBufPool, mac: MACAddress, ip: IPv4Address, port: UInt16, frameCapacity: Int, payloadOnly: Bool = false) {
        self.pool = pool
        self.payloadOnly = payloadOnly
        ownMAC = mac
        self.frameCapacity = frameCapacity
        frames = .allocate(capacity: frameCapacity)
        template = .allocate(byteCount: 64, alignment: 64)
        template.initializeMemory(as: UInt8.self, repeating: 0, count: 64)
        EthernetFrame.writeHeader(at: template, destination: .zero, source: mac, etherType: EtherType.ipv4)
        IPv4Packet.writeHeader(at: template + 14, source: ip, destination: .any, protocol: IPProtocol.udp, payloadLength: 0)
        (template + 14).storeBytes(of: UInt16(0), toByteOffset: 2, as: UInt16.self)   // total length: per reply
        (template + 14).storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)  // checksum: per reply
        UDPDatagram.writeHeader(at: template + 34, sourcePort: port, destinationPort: 0, payloadLength: 0)
        (template + 34).storeBytes(of: UInt16(0), toByteOffset: 4, as: UInt16.self)
        templateIPSum = InternetChecksum.ipv4HeaderSum(template + 14)
        fixedUDPSum = (ip.value >> 16) &+ (ip.value & 0xFFFF) &+ UInt32(IPProtocol.udp) &+ UInt32(port)
    }

    func deallocate() {
        frames.deallocate()
        template.deallocate()
    }

    var headerBytes: Int { payloadOnly ? MemcachedUDP.headerLength : (peer.vlan == nil ? 14 : 18) + 20 + 8 + MemcachedUDP.headerLength }

    /// Starts replies to one request.
    mutating func begin(peer: Peer, spare: NetBuf?) {
        self.peer = peer
        self.spare = spare
        inGroup = false
        closeCursor()
    }

    /// Ends the request, after the engine's final flush (so every frame is committed): hands
    /// over the frames to send, in order (valid until the next `begin`), the replies lost for
    /// want of buffers or frame slots, and the request's buffer if no frame took it. The writer
    /// is left empty.
    mutating func end() -> (frames: UnsafeMutableBufferPointer<NetBuf>, dropped: UInt64, unused: NetBuf?) {
        let done = (frames: UnsafeMutableBufferPointer(start: frames, count: frameCount), dropped: droppedForBuffers,
                    unused: spare)
        frameCount = 0
        committed = 0
        droppedForBuffers = 0
        spare = nil
        return done
    }

    /// One datagram finished outside the engine (a lone GET's reply), handed over as `end` hands
    /// over frames (valid until the next `begin`).
    mutating func handOver(_ buf: NetBuf) -> UnsafeMutableBufferPointer<NetBuf> {
        frames[0] = buf
        return UnsafeMutableBufferPointer(start: frames, count: 1)
    }

    /// Takes back frames `end` handed over, none of them sent: released, and their IPv4
    /// identifications given back (the ids on the wire stay consecutive).
    mutating func withdraw(_ handedOver: UnsafeMutableBufferPointer<NetBuf>) {
        ipIdentification &-= UInt16(truncatingIfNeeded: handedOver.count)
        NetBuf.releaseBulk(handedOver)
    }

    /// The UDP payload (memcached header and body) of a frame this writer built for the current peer.
    func udpPayloadBytes(of frame: NetBuf) -> Int { frame.length - headerBytes + MemcachedUDP.headerLength }

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

    /// Ethernet, IPv4, UDP and memcached headers to the request's peer in front of one of its
    /// reply datagrams (its length, headers included, already set), with the next IPv4
    /// identification; the UDP checksum takes one pass over the payload.
    mutating func writeHeaders(_ buf: NetBuf, sequence: UInt16, total: UInt16) {
        if payloadOnly {
            MemcachedUDP.writeHeader(at: buf.data, requestID: peer.requestID, sequence: sequence, total: total)
            return
        }
        let l2 = peer.vlan != nil ? 18 : 14
        let udpLength = buf.length - l2 - 20
        let udp = buf.data + l2 + 20
        let payloadSum = InternetChecksum.sum(udp + 16, count: udpLength - 16)
        if let vlan = peer.vlan {
            writeTaggedHeaders(buf.data, mac: peer.mac, vlan: vlan)
        } else {
            copyPacketBytes(to: buf.data, from: template, count: NetBuf.udpHeadersLength)
            peer.mac.store(to: buf.data)
        }
        finishHeaders(ip: buf.data + l2, udpLength: udpLength, ip: peer.ip, port: peer.port, requestID: peer.requestID,
                      sequence: sequence, total: total, payloadSum: payloadSum)
    }

    /// An untagged reply's headers, all in registers: the lone-GET path's writer (the same
    /// template and the same finishing as `writeHeaders`).
    @inline(__always)
    mutating func writeUntaggedHeaders(_ frame: UnsafeMutableRawPointer, udpLength: Int, mac: MACAddress, ip: IPv4Address,
                                       port: UInt16, requestID: UInt16, payloadSum: UInt32) {
        copyPacketBytes(to: frame, from: template, count: NetBuf.udpHeadersLength)
        mac.store(to: frame)
        finishHeaders(ip: frame + 14, udpLength: udpLength, ip: ip, port: port, requestID: requestID,
                      sequence: 0, total: 1, payloadSum: payloadSum)
    }

    /// Fills the per-reply fields over the template's IPv4 and UDP headers (at `header`) and the
    /// memcached header, with the next IPv4 identification, and both checksums from their parts
    /// (template sum, patched words, pseudo-header, payload sum): no pass over the bytes.
    @inline(__always)
    mutating func finishHeaders(ip header: UnsafeMutableRawPointer, udpLength: Int, ip peerIP: IPv4Address, port: UInt16,
                                requestID: UInt16, sequence: UInt16, total: UInt16, payloadSum: UInt32) {
        let udp = header + 20
        let peerSum = finishIPv4Header(header, totalLength: UInt16(truncatingIfNeeded: 20 + udpLength), peerIP: peerIP)
        let length = UInt16(truncatingIfNeeded: udpLength)
        udp.storeBytes(of: port.bigEndian, toByteOffset: 2, as: UInt16.self)
        udp.storeBytes(of: length.bigEndian, toByteOffset: 4, as: UInt16.self)
        MemcachedUDP.writeHeader(at: udp + 8, requestID: requestID, sequence: sequence, total: total)
        // UDP: pseudo-header and header (what never changes is in fixedUDPSum; the length
        // twice: pseudo-header and header), the memcached header, the payload.
        let udpSum = fixedUDPSum &+ peerSum &+ UInt32(port)
            &+ 2 &* UInt32(length) &+ UInt32(requestID) &+ UInt32(sequence) &+ UInt32(total) &+ payloadSum
        var c = InternetChecksum.finish(udpSum)
        if c == 0 { c = 0xFFFF }
        udp.storeBytes(of: c.bigEndian, toByteOffset: 6, as: UInt16.self)
    }

    /// The per-reply IPv4 fields over the template's header at `header` (total length, the next
    /// identification, the peer's address) and the header checksum from the template's sum and
    /// those fields; returns the peer address's sum, which the UDP pseudo-header shares.
    @inline(__always)
    mutating func finishIPv4Header(_ header: UnsafeMutableRawPointer, totalLength: UInt16, peerIP: IPv4Address) -> UInt32 {
        ipIdentification &+= 1
        header.storeBytes(of: totalLength.bigEndian, toByteOffset: 2, as: UInt16.self)
        header.storeBytes(of: ipIdentification.bigEndian, toByteOffset: 4, as: UInt16.self)
        peerIP.store(to: header + 16)
        let d = peerIP.value
        let peerSum = (d >> 16) &+ (d & 0xFFFF)
        let ipSum = templateIPSum &+ UInt32(totalLength) &+ UInt32(ipIdentification) &+ peerSum
        header.storeBytes(of: InternetChecksum.finish(ipSum).bigEndian, toByteOffset: 10, as: UInt16.self)
        return peerSum
    }

    /// Ethernet, IPv4 and UDP headers of an echo (a plain UDP datagram, no memcached header) at
    /// `frame`, in front of `payloadCount` payload bytes whose sum is `payloadSum`: the same
    /// template, identification sequence and checksums from parts as memcached's replies.
    mutating func writeEchoHeaders(_ frame: UnsafeMutableRawPointer, mac: MACAddress, vlan: UInt16?, ip peerIP: IPv4Address,
                                   port: UInt16, payloadCount: Int, payloadSum: UInt32) {
        let l2: Int
        if let vlan {
            writeTaggedHeaders(frame, mac: mac, vlan: vlan)
            l2 = 18
        } else {
            copyPacketBytes(to: frame, from: template, count: NetBuf.udpHeadersLength)
            mac.store(to: frame)
            l2 = 14
        }
        let header = frame + l2
        let length = UInt16(truncatingIfNeeded: 8 + payloadCount)
        let peerSum = finishIPv4Header(header, totalLength: 20 &+ length, peerIP: peerIP)
        let udp = header + 20
        udp.storeBytes(of: port.bigEndian, toByteOffset: 2, as: UInt16.self)
        udp.storeBytes(of: length.bigEndian, toByteOffset: 4, as: UInt16.self)
        let udpSum = fixedUDPSum &+ peerSum &+ UInt32(port) &+ 2 &* UInt32(length) &+ payloadSum
        var c = InternetChecksum.finish(udpSum)
        if c == 0 { c = 0xFFFF }
        udp.storeBytes(of: c.bigEndian, toByteOffset: 6, as: UInt16.self)
    }

    /// The template's fields behind an 802.1Q tag (rare: no template of its own).
    func writeTaggedHeaders(_ frame: UnsafeMutableRawPointer, mac: MACAddress, vlan: UInt16) {
        writeEthernetHeader(at: frame, destination: mac, source: ownMAC, vlan: vlan)
        (frame + 18).copyMemory(from: template + 14, byteCount: 28)
    }
}
