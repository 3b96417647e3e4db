import UKNetdev

/// The lone GET: one datagram holding `get <key>\r\n` alone, the commonest request, answered
/// without the parser (the same bytes and counters as the general path: tested byte for byte).
/// `KVServer` answers it straight from the frame, `KVDatagramService` (lwIP, the kernel's
/// sockets) from the UDP payload; both share the body check and the reply here.
extension MemcachedEngine {
    /// Every key byte above 0x20 (no space, control byte or NUL), checked a word at a time; keys
    /// with such bytes are legal in places and take the general path, which decides.
    @inline(__always)
    static func isPlainKey(_ key: UnsafeRawPointer, _ length: Int) -> Bool {
        // Some byte below 0x21 in w (exact for "any", Hacker's Delight 6-1 / "hasless").
        @inline(__always) func hasControlOrSpace(_ w: UInt64) -> Bool {
            (w &- 0x2121_2121_2121_2121) & ~w & 0x8080_8080_8080_8080 != 0
        }
        guard length >= 8 else {
            for i in 0..<length where key.load(fromByteOffset: i, as: UInt8.self) <= 0x20 { return false }
            return true
        }
        var i = 0
        while i &+ 8 < length {
            if hasControlOrSpace(key.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { return false }
            i &+= 8
        }
        // The last word overlapping the checked ones.
        return !hasControlOrSpace(key.loadUnaligned(fromByteOffset: length &- 8, as: UInt64.self))
    }

    /// The key of a lone GET: `count` bytes of request body (after the memcached header) that are
    /// "get ", a plain key and the body's only "\n" (after an optional "\r"). Nil for anything
    /// else: the general path decides.
    @inline(__always)
    static func loneGetKey(_ body: UnsafeRawPointer, count: Int) -> (key: UnsafeRawPointer, length: Int)? {
        guard count >= 7, count <= 4 + ItemStore.maxKeyLength + 2,
              body.loadUnaligned(as: UInt32.self) == WireConstant.getAndSpace,
              (body + count - 1).load(as: UInt8.self) == UInt8(ascii: "\n") else { return nil }
        var lineEnd = count - 1
        if (body + lineEnd - 1).load(as: UInt8.self) == UInt8(ascii: "\r") { lineEnd -= 1 }
        let keyLength = lineEnd - 4
        // The length bound above lets a 251-byte key through when the line ends in "\n" alone.
        guard keyLength >= 1, keyLength <= ItemStore.maxKeyLength, isPlainKey(body + 4, keyLength) else { return nil }
        return (body + 4, keyLength)
    }

    /// A lone GET's reply body at `payload`: the item's reply block (a hit; `blockLength` bytes),
    /// then "END\r\n". Counted as memcached counts the GET (`requestUDPBytes`: the request's UDP
    /// length, its 8-byte header included).
    @inline(__always)
    mutating func writeLoneGetReply(_ item: ItemStore.Item?, blockLength: Int, requestUDPBytes: Int, at payload: UnsafeMutableRawPointer) {
        // Counted once, here (`KVServer.stats` adds them to requests and replies).
        stats.loneGets &+= 1
        stats.loneRequestUDPBytes &+= UInt64(requestUDPBytes)
        stats.loneReplyBlockBytes &+= UInt64(blockLength)
        if let item {
            copyPacketBytes(to: payload, from: item.block, count: blockLength)
        } else {
            stats.loneMisses &+= 1
        }
        putText("END\r\n", at: payload + blockLength)
    }
}

extension KVServer {
    /// The common request answered in one pass, straight into its own buffer: untagged
    /// Ethernet to our MAC, a 20-byte IPv4 header with a good checksum, to our address, not a
    /// fragment, UDP to our port with a good (or no) checksum, one memcached datagram holding
    /// `get <key>\r\n` alone, and a reply that fits one datagram, in a buffer that is writable
    /// and not chained. Produces exactly what the host stack and the general path do for it
    /// (tested byte for byte: one response object, one datagram, the same counters). Anything
    /// else, or any doubt, returns false and takes that path, which checks again and counts what
    /// it drops.
    ///
    /// (The frame checks are `fastPathDatagram`'s, which the echo mode shares.)
    /// It reads the frame without the host stack (`--stack lwip` and the socket stacks take the
    /// payload-level one, `KVDatagramService.answerLoneGet`). Our addresses
    /// are compared as they load from packet memory (`wire`, `WireConstant`), checksums are
    /// verified on native-order sums: no byte swapping on the way in.
    @inline(__always)
    mutating func answerLoneGet(_ buf: NetBuf, now: UInt32) -> Bool {
        // At least the memcached header and "get k\n".
        guard let (f, ip, udp, _, udpLength) = fastPathDatagram(buf, minimumPayload: MemcachedUDP.headerLength + 7) else { return false }
        let mc = udp + 8
        guard mc.loadUnaligned(fromByteOffset: 4, as: UInt16.self) == UInt16(1).bigEndian else { return false }   // one datagram

        // A lone GET's body, checked before the UDP checksum, so other requests go to the general
        // path without their bytes summed here first.
        let count = udpLength - 8 - MemcachedUDP.headerLength
        guard let (key, keyLength) = MemcachedEngine.loneGetKey(mc + MemcachedUDP.headerLength, count: count) else { return false }
        let peerIP = IPv4Address.load(from: ip + 12)
        // An untrusted source's GET goes to the general path, which screens its reply.
        guard ownPrefix.contains(peerIP) || sourceGuard.trustsAllowed(peerIP) else { return false }
        if udp.loadUnaligned(fromByteOffset: 6, as: UInt16.self) != 0 {
            let pseudo = InternetChecksum.pseudoHeaderNativeSum(source: peerIP, destination: config.ip, protocol: IPProtocol.udp,
                                                                length: udpLength)
            guard InternetChecksum.verifies(nativeSum: InternetChecksum.nativeSum(udp, count: udpLength, initial: pseudo)) else {
                return false
            }
        }
        let item = engine.store.fetch(key, keyLength, now: now)
        let blockLength = item?.blockLength ?? 0
        let size = blockLength + 5   // the item's reply block (if a hit), then "END\r\n"
        let headers = NetBuf.udpHeadersLength + MemcachedUDP.headerLength
        // The reply keeps the request's headroom (its headers are as long).
        guard size <= MemcachedUDP.maxPayload, (try? buf.setLength(headers + size)) != nil else { return false }

        // Committed: the request is answered here.
        let peerMAC = MACAddress.load(from: f + 6)
        let peerPort = UInt16(bigEndian: udp.loadUnaligned(as: UInt16.self))
        let requestID = UInt16(bigEndian: mc.loadUnaligned(as: UInt16.self))
        let payload = f + headers
        engine.writeLoneGetReply(item, blockLength: blockLength, requestUDPBytes: udpLength, at: payload)
        // The payload's checksum comes from the item's stored block sum and the sum of
        // "END\r\n", byte-swapped when it starts at an odd offset (RFC 1071: sums commute with
        // byte order).
        var endSum = endOfGetSum
        if let item {
            if blockLength & 1 != 0 { endSum = UInt32(UInt16(truncatingIfNeeded: endSum).byteSwapped) }
            endSum &+= item.blockSum
        }
        writer.writeUntaggedHeaders(f, udpLength: 8 + MemcachedUDP.headerLength + size, mac: peerMAC, ip: peerIP,
                                    port: peerPort, requestID: requestID, payloadSum: endSum)
        enqueue(buf)
        return true
    }
}

/// Wire values as a native load from packet memory reads them, so the fast path compares
/// without swapping bytes (all fold to constants).
enum WireConstant {
    /// The IPv4 header's first byte for version 4 with a 20-byte header (IHL 5): no options.
    @inline(__always) static var ipv4WithoutOptions: UInt8 { 0x45 }
    /// The IPv4 flags-and-fragment-offset word masked to MF and the offset (bits 13...0); zero
    /// for a datagram that is not a fragment, whatever DF says.
    @inline(__always) static var moreFragmentsAndOffset: UInt16 { UInt16(0x3FFF).bigEndian }
    /// "get " at the start of a request body.
    @inline(__always) static var getAndSpace: UInt32 {
        bytes(UInt8(ascii: "g"), UInt8(ascii: "e"), UInt8(ascii: "t"), UInt8(ascii: " "))
    }

    /// Four bytes in memory order, as one native UInt32 load of them gives.
    @inline(__always)
    static func bytes(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) -> UInt32 {
        UInt32(littleEndian: UInt32(b0) | UInt32(b1) << 8 | UInt32(b2) << 16 | UInt32(b3) << 24)
    }
}

/// The server's own MAC, address and port as they load from packet memory (native loads of
/// wire bytes), for compares without swapping.
struct WireAddresses {
    let macHead: UInt32
    let macTail: UInt16
    let ip: UInt32
    let port: UInt16

    init(_ config: KVServerConfig) {
        var bytes = InlineArray<12, UInt8>(repeating: 0)
        var span = bytes.mutableSpan
        span.withUnsafeMutableBytes { raw in
            let p = raw.baseAddress!
            config.mac.store(to: p)
            config.ip.store(to: p + 6)
            p.storeBytes(of: config.port.bigEndian, toByteOffset: 10, as: UInt16.self)
        }
        (macHead, macTail, ip, port) = span.withUnsafeBytes { raw in
            let p = raw.baseAddress!
            return (p.loadUnaligned(as: UInt32.self), p.loadUnaligned(fromByteOffset: 4, as: UInt16.self),
                    p.loadUnaligned(fromByteOffset: 6, as: UInt32.self), p.loadUnaligned(fromByteOffset: 10, as: UInt16.self))
        }
    }
}

extension KVServer {
    /// The fast paths' frame check, without the host stack: one segment we may write, to our MAC,
    /// IPv4 without options and not a fragment (DF allowed), UDP to our address and port, the
    /// IPv4 header checksum right, the lengths consistent, at least `minimumPayload` bytes of UDP
    /// payload. Returns the frame, its IPv4 and UDP headers, the IPv4 total length and the UDP
    /// length; nil sends the frame to the general path, which checks again and counts drops.
    /// Compared as the fields load from packet memory (`wire`, `WireConstant`): no byte swapping.
    @inline(__always)
    func fastPathDatagram(_ buf: NetBuf, minimumPayload: Int)
        -> (frame: UnsafeMutableRawPointer, ip: UnsafeMutableRawPointer, udp: UnsafeMutableRawPointer, total: Int, udpLength: Int)? {
        let length = buf.length
        guard length >= NetBuf.udpHeadersLength + minimumPayload, buf.next == nil, buf.isWritable else { return nil }
        let f = buf.data
        guard f.loadUnaligned(as: UInt32.self) == wire.macHead, f.loadUnaligned(fromByteOffset: 4, as: UInt16.self) == wire.macTail,
              f.loadUnaligned(fromByteOffset: 12, as: UInt16.self) == EtherType.ipv4.bigEndian else { return nil }
        let ip = f + 14
        guard ip.load(as: UInt8.self) == WireConstant.ipv4WithoutOptions,
              ip.loadUnaligned(fromByteOffset: 6, as: UInt16.self) & WireConstant.moreFragmentsAndOffset == 0,
              ip.load(fromByteOffset: 9, as: UInt8.self) == IPProtocol.udp,
              ip.loadUnaligned(fromByteOffset: 16, as: UInt32.self) == wire.ip else { return nil }
        let total = Int(UInt16(bigEndian: ip.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        guard total >= 28 + minimumPayload, total <= length - 14,
              InternetChecksum.verifies(nativeSum: InternetChecksum.shortNativeSum(ip, count: 20)) else { return nil }
        let udp = ip + 20
        let udpLength = Int(UInt16(bigEndian: udp.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
        guard udpLength == total - 20, udp.loadUnaligned(fromByteOffset: 2, as: UInt16.self) == wire.port else { return nil }
        return (f, ip, udp, total, udpLength)
    }
}
