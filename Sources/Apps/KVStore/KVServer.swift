import UKNetdev

/// Why a frame was dropped. Every frame the server does not answer is counted under one.
public enum KVDropReason: Int, CaseIterable, Sendable {
    case truncatedFrame, notForUs, unsupportedEtherType
    case arpMalformed, arpNotForUs
    case ipMalformed, ipBadChecksum, ipWrongAddress, ipUnsupportedProtocol
    case fragmentOverlap, fragmentTooLarge, fragmentMalformed, fragmentTableFull, fragmentTimeout
    case udpMalformed, udpBadChecksum, udpWrongPort
    case icmpMalformed, icmpBadChecksum, icmpNotEchoRequest, icmpTooLarge
    case memcachedTooShort, memcachedMultiDatagram
    case noBufferForReply, txQueueFull

    public var name: String {
        switch self {
        case .truncatedFrame: "truncated frame"
        case .notForUs: "not for our MAC"
        case .unsupportedEtherType: "unsupported EtherType"
        case .arpMalformed: "malformed ARP"
        case .arpNotForUs: "ARP not for us"
        case .ipMalformed: "malformed IPv4 header"
        case .ipBadChecksum: "bad IPv4 checksum"
        case .ipWrongAddress: "not for our IPv4 address"
        case .ipUnsupportedProtocol: "unsupported IP protocol"
        case .fragmentOverlap: "overlapping fragment"
        case .fragmentTooLarge: "fragment beyond 64 KiB"
        case .fragmentMalformed: "malformed fragment"
        case .fragmentTableFull: "reassembly table full"
        case .fragmentTimeout: "reassembly timeout"
        case .udpMalformed: "malformed UDP header"
        case .udpBadChecksum: "bad UDP checksum"
        case .udpWrongPort: "UDP port not ours"
        case .icmpMalformed: "malformed ICMP"
        case .icmpBadChecksum: "bad ICMP checksum"
        case .icmpNotEchoRequest: "ICMP other than echo request"
        case .icmpTooLarge: "ICMP echo too large to answer"
        case .memcachedTooShort: "memcached datagram of 8 bytes or fewer"
        case .memcachedMultiDatagram: "memcached multi-datagram request"
        case .noBufferForReply: "no buffer for a reply"
        case .txQueueFull: "transmit queue full"
        }
    }
}

public struct KVServerConfig: Sendable {
    public var mac: MACAddress
    public var ip: IPv4Address
    public var prefixLength: Int
    public var port: UInt16
    public var memoryBytes: Int
    public var reassemblySlots: Int
    public var reassemblyTimeout: UInt32
    public init(mac: MACAddress, ip: IPv4Address, prefixLength: Int = 24, port: UInt16 = 11211,
                memoryBytes: Int = 64 << 20, reassemblySlots: Int = 8, reassemblyTimeout: UInt32 = 30) {
        self.mac = mac
        self.ip = ip
        self.prefixLength = prefixLength
        self.port = port
        self.memoryBytes = memoryBytes
        self.reassemblySlots = reassemblySlots
        self.reassemblyTimeout = reassemblyTimeout
    }
}

public struct KVServerStats: Sendable {
    public var framesReceived: UInt64 = 0
    public var requests: UInt64 = 0
    public var replyDatagrams: UInt64 = 0
    public var arpReplies: UInt64 = 0
    public var icmpReplies: UInt64 = 0
    public var reassembled: UInt64 = 0
    public var drops = InlineArray<25, UInt64>(repeating: 0)
    public init() {}
    public subscript(_ r: KVDropReason) -> UInt64 { drops[r.rawValue] }
    public var totalDrops: UInt64 {
        var t: UInt64 = 0
        for i in 0..<KVDropReason.allCases.count { t &+= drops[i] }
        return t
    }
    mutating func drop(_ r: KVDropReason, count: UInt64 = 1) { drops[r.rawValue] &+= count }
}

public enum KVServerError: Error, Equatable {
    /// The pool's buffers cannot hold a full reply datagram.
    case buffersTooSmall(needed: Int, available: Int)
}

/// The key-value store on a device: its own MAC and IPv4 address, ARP and ICMP echo answered,
/// IPv4 checked and reassembled, memcached's UDP protocol on one port. Call `poll` in a loop
/// (or after an RX event); it handles one RX burst and sends what is ready.
public struct KVServer<Device: NetDevice> {
    public var engine: MemcachedEngine
    public private(set) var stats = KVServerStats()
    public let config: KVServerConfig
    let pool: NetBufPool
    var writer: DatagramWriter
    var fragments: FragmentTable
    let burst: UnsafeMutablePointer<NetBuf>
    static var burstSize: Int { 32 }
    /// Frames waiting to be sent, in order (a ring).
    let txQueue: UnsafeMutablePointer<NetBuf>
    /// A power of two, so ring positions wrap with `txQueueMask`.
    static var txQueueSize: Int { 4096 }
    static var txQueueMask: Int { txQueueSize - 1 }
    var txHead = 0
    var txCount = 0
    /// The request payload is parsed from here, so its buffer can carry the reply.
    let requestCopy: UnsafeMutableRawPointer
    /// One's-complement sum of "END\r\n" at an even offset.
    let endOfGetSum = InternetChecksum.sum(UnsafeRawPointer(("END\r\n" as StaticString).utf8Start), count: 5)
    let wire: WireAddresses
    /// Last, so that every field before it sits at an offset fixed at compile time even where
    /// this generic type is not specialized (the per-request path reads them all).
    public var device: Device

    /// A server on a device that is already started, replying with buffers from `pool`.
    public init(device: Device, pool: NetBufPool, config: KVServerConfig, now: UInt32) throws(KVServerError) {
        let needed = 18 + 20 + 8 + MemcachedUDP.headerLength + MemcachedUDP.maxPayload
        guard pool.roomSize >= needed else { throw .buffersTooSmall(needed: needed, available: pool.roomSize) }
        self.device = device
        self.pool = pool
        self.config = config
        wire = WireAddresses(config)
        engine = MemcachedEngine(memoryBytes: config.memoryBytes, startTime: now)
        writer = DatagramWriter(pool: pool, mac: config.mac, ip: config.ip, port: config.port, frameCapacity: 1024)
        fragments = FragmentTable(slots: config.reassemblySlots, timeout: config.reassemblyTimeout)
        burst = .allocate(capacity: KVServer.burstSize)
        txQueue = .allocate(capacity: KVServer.txQueueSize)
        requestCopy = .allocate(byteCount: 65536, alignment: 64)
    }

    /// Frees what the server allocated and any frame still queued; the device is the caller's.
    public mutating func shutdown() {
        while txCount > 0 {
            txQueue[txHead].release()
            txHead = (txHead + 1) & KVServer.txQueueMask
            txCount -= 1
        }
        writer.deallocate()
        fragments.deallocate()
        burst.deallocate()
        txQueue.deallocate()
        requestCopy.deallocate()
        engine.deallocate()
    }

    /// True once the device said its input is all delivered (`BurstStatus.endOfInput`).
    public private(set) var inputEnded = false

    /// Reply frames queued and not yet taken by the device.
    public var pendingTransmit: Int { txCount }

    /// Handles one RX burst and transmits what is ready; returns the frames received.
    @discardableResult
    public mutating func poll(now: UInt32) -> Int {
        stats.drop(.fragmentTimeout, count: UInt64(fragments.expire(now: now)))
        let result = device.rxBurst(queue: 0, into: UnsafeMutableBufferPointer(start: burst, count: KVServer.burstSize))
        let n = result.count
        if result.status.contains(.endOfInput) { inputEnded = true }
        stats.framesReceived &+= UInt64(n)
        for i in 0..<n { handle(burst[i], now: now) }
        flush()
        return n
    }

    /// Sends queued frames until the device refuses more.
    public mutating func flush() {
        while txCount > 0 {
            let run = min(txCount, KVServer.txQueueSize - txHead)
            let sent = device.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: txQueue + txHead, count: run)).count
            txHead = (txHead + sent) & KVServer.txQueueMask
            txCount -= sent
            if sent < run { return }
        }
    }

    @inline(__always)
    mutating func enqueue(_ buf: NetBuf) {
        guard txCount < KVServer.txQueueSize else {
            buf.release()
            stats.drop(.txQueueFull)
            return
        }
        txQueue[(txHead &+ txCount) & KVServer.txQueueMask] = buf
        txCount += 1
    }

    mutating func drop(_ buf: NetBuf, _ reason: KVDropReason) {
        buf.release()
        stats.drop(reason)
    }

    // MARK: Link layer

    mutating func handle(_ buf: NetBuf, now: UInt32) {
        if answerLoneGet(buf, now: now) { return }
        guard buf.next == nil else {
            // Chained frames (from a scatter-gather device) are not expected here.
            return drop(buf, .truncatedFrame)
        }
        let eth: EthernetFrame
        do { eth = try EthernetFrame(buf.unsafeBytes) } catch { return drop(buf, .truncatedFrame) }
        let dst = eth.destination
        guard dst == config.mac || dst.isBroadcast else { return drop(buf, .notForUs) }
        switch eth.etherType {
        case EtherType.arp: handleARP(buf, eth)
        case EtherType.ipv4: handleIPv4(buf, eth, now: now)
        default: drop(buf, .unsupportedEtherType)
        }
    }

    mutating func handleARP(_ buf: NetBuf, _ eth: EthernetFrame) {
        let arp: ARPPacket
        do { arp = try ARPPacket(eth.payload) } catch { return drop(buf, .arpMalformed) }
        guard arp.operation == ARPPacket.Operation.request, arp.targetProtocol == config.ip else {
            return drop(buf, .arpNotForUs)
        }
        arp.makeReply(hardware: config.mac, address: config.ip)
        eth.reply(from: config.mac)
        stats.arpReplies &+= 1
        enqueue(buf)
    }

    mutating func handleIPv4(_ buf: NetBuf, _ eth: EthernetFrame, now: UInt32) {
        let ip: IPv4Packet
        do { ip = try IPv4Packet(eth.payload) } catch { return drop(buf, .ipMalformed) }
        guard ip.isHeaderChecksumValid else { return drop(buf, .ipBadChecksum) }
        guard ip.destination == config.ip else { return drop(buf, .ipWrongAddress) }
        if ip.isFragment {
            let outcome = fragments.add(ip, senderMAC: eth.source, vlan: eth.vlanID, now: now)
            buf.release()
            switch outcome {
            case .pending: return
            case .dropped(let reason): stats.drop(reason)
            case .complete(let slot):
                stats.reassembled &+= 1
                let s = fragments.slots[slot]
                let payload = UnsafeMutableRawBufferPointer(start: fragments.buffer(slot), count: s.total)
                handleTransport(s.proto, payload, source: s.source, senderMAC: s.senderMAC, vlan: s.vlan,
                                request: nil, now: now)
                fragments.free(slot)
            }
            return
        }
        handleTransport(ip.protocolNumber, ip.payload, source: ip.source, senderMAC: eth.source, vlan: eth.vlanID,
                        request: (buf, eth, ip), now: now)
    }

    /// `request` is the frame the payload came in, when it can be answered in place; nil for a
    /// reassembled datagram.
    mutating func handleTransport(_ proto: UInt8, _ payload: UnsafeMutableRawBufferPointer, source: IPv4Address,
                                  senderMAC: MACAddress, vlan: UInt16?, request: (NetBuf, EthernetFrame, IPv4Packet)?,
                                  now: UInt32) {
        switch proto {
        case IPProtocol.udp:
            handleUDP(payload, source: source, senderMAC: senderMAC, vlan: vlan, request: request?.0, now: now)
        case IPProtocol.icmp:
            handleICMP(payload, source: source, senderMAC: senderMAC, vlan: vlan, request: request, now: now)
        default:
            dropRequest(request?.0, .ipUnsupportedProtocol)
        }
    }

    mutating func dropRequest(_ buf: NetBuf?, _ reason: KVDropReason) {
        if let b = buf { drop(b, reason) } else { stats.drop(reason) }
    }

    mutating func handleICMP(_ payload: UnsafeMutableRawBufferPointer, source: IPv4Address, senderMAC: MACAddress,
                             vlan: UInt16?, request: (NetBuf, EthernetFrame, IPv4Packet)?, now: UInt32) {
        let icmp: ICMPEcho
        do { icmp = try ICMPEcho(payload) } catch { return dropRequest(request?.0, .icmpMalformed) }
        guard icmp.isChecksumValid else { return dropRequest(request?.0, .icmpBadChecksum) }
        guard icmp.type == ICMPEcho.Kind.echoRequest, icmp.code == 0 else { return dropRequest(request?.0, .icmpNotEchoRequest) }
        if let (buf, eth, ip) = request {
            // In place: addresses swapped, type changed, checksum updated incrementally.
            icmp.makeReply()
            ip.swapAddresses()
            ip.timeToLive = 64
            ip.updateHeaderChecksum()
            eth.reply(from: config.mac)
            stats.icmpReplies &+= 1
            enqueue(buf)
            return
        }
        // A reassembled echo: answered if it fits one frame.
        let headers = (vlan == nil ? 14 : 18) + 20
        guard let reply = pool.allocate() else { return stats.drop(.noBufferForReply) }
        guard (try? reply.setLength(headers + payload.count)) != nil, payload.count <= 1480 else {
            reply.release()
            return stats.drop(.icmpTooLarge)
        }
        let p = reply.data + writeEthernetHeader(at: reply.data, destination: senderMAC, source: config.mac, vlan: vlan)
        IPv4Packet.writeHeader(at: p, source: config.ip, destination: source, protocol: IPProtocol.icmp, payloadLength: payload.count)
        (p + 20).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
        let echo = try! ICMPEcho(UnsafeMutableRawBufferPointer(start: p + 20, count: payload.count))
        echo.makeReply()
        stats.icmpReplies &+= 1
        enqueue(reply)
    }

    // MARK: memcached over UDP

    mutating func handleUDP(_ payload: UnsafeMutableRawBufferPointer, source: IPv4Address, senderMAC: MACAddress,
                            vlan: UInt16?, request: NetBuf?, now: UInt32) {
        let udp: UDPDatagram
        do { udp = try UDPDatagram(payload) } catch { return dropRequest(request, .udpMalformed) }
        guard udp.isChecksumValid(source: source, destination: config.ip) else { return dropRequest(request, .udpBadChecksum) }
        guard udp.destinationPort == config.port else { return dropRequest(request, .udpWrongPort) }
        let data = udp.payload
        // memcached: 8 bytes or fewer is nothing; a request spread over datagrams is dropped.
        guard data.count > MemcachedUDP.headerLength else { return dropRequest(request, .memcachedTooShort) }
        let base = data.baseAddress!
        let requestID = UInt16(bigEndian: base.loadUnaligned(as: UInt16.self))
        guard UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 4, as: UInt16.self)) == 1 else {
            return dropRequest(request, .memcachedMultiDatagram)
        }
        stats.requests &+= 1
        let bodyLength = data.count - MemcachedUDP.headerLength
        let peer = DatagramWriter.Peer(mac: senderMAC, ip: source, port: udp.sourcePort, vlan: vlan, requestID: requestID)
        // Parse from a copy, so the request's buffer can be rewritten with the reply.
        copyPacketBytes(to: requestCopy, from: base + MemcachedUDP.headerLength, count: bodyLength)
        writer.begin(peer: peer, spare: request)
        engine.execute(UnsafeRawPointer(requestCopy), count: bodyLength, now: now, into: &writer)
        let replies = writer.end()
        replies.unused?.release()
        stats.drop(.noBufferForReply, count: replies.dropped)
        for frame in replies.frames { enqueue(frame) }
        stats.replyDatagrams &+= UInt64(replies.frames.count)
    }

    /// Every key byte above 0x20 (no space, control byte or NUL), checked a word at a time; keys
    /// with such bytes are legal in places and take the general path, which decides.
    @inline(__always)
    func isPlainKey(_ key: UnsafeRawPointer, _ length: Int) -> Bool {
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

    /// The common request answered in one pass, straight into its own buffer: untagged
    /// Ethernet to our MAC, a 20-byte IPv4 header with a good checksum, to our address, not a
    /// fragment, UDP to our port with a good (or no) checksum, one memcached datagram holding
    /// `get <key>\r\n` alone, and a reply that fits one datagram. Produces exactly what the general
    /// path does for it (tested byte for byte: one response object, one datagram, the same
    /// counters). Anything else, or any doubt, returns false and takes the general path, which
    /// checks again and counts what it drops.
    ///
    /// Our addresses are compared as they load from packet memory (`wire`), checksums are
    /// verified on native-order sums: no byte swapping on the way in.
    @inline(__always)
    mutating func answerLoneGet(_ buf: NetBuf, now: UInt32) -> Bool {
        let length = buf.length
        guard length >= NetBuf.udpHeadersLength + 8 + 7, buf.next == nil, !buf.isClone else { return false }
        let f = buf.data
        guard f.loadUnaligned(as: UInt32.self) == wire.macHead, f.loadUnaligned(fromByteOffset: 4, as: UInt16.self) == wire.macTail,
              f.loadUnaligned(fromByteOffset: 12, as: UInt16.self) == EtherType.ipv4.bigEndian else { return false }
        let ip = f + 14
        // Version 4, IHL 5; no MF, offset 0 (DF allowed: 0xFF3F masks the wire bytes as loaded);
        // protocol UDP; our address.
        guard ip.load(as: UInt8.self) == 0x45,
              ip.loadUnaligned(fromByteOffset: 6, as: UInt16.self) & 0xFF3F == 0,
              ip.load(fromByteOffset: 9, as: UInt8.self) == IPProtocol.udp,
              ip.loadUnaligned(fromByteOffset: 16, as: UInt32.self) == wire.ip else { return false }
        let total = Int(UInt16(bigEndian: ip.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        guard total >= 28 + 8, total <= length - 14,
              InternetChecksum.verifies(nativeSum: InternetChecksum.shortNativeSum(ip, count: 20)) else { return false }
        let udp = ip + 20
        let udpLength = Int(UInt16(bigEndian: udp.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
        guard udpLength == total - 20, udpLength > 8 + MemcachedUDP.headerLength,
              udp.loadUnaligned(fromByteOffset: 2, as: UInt16.self) == wire.port else { return false }
        let mc = udp + 8
        guard mc.loadUnaligned(fromByteOffset: 4, as: UInt16.self) == UInt16(1).bigEndian else { return false }

        // "get " then a key, then the datagram's only "\n": checked before the UDP checksum, so
        // other requests go to the general path without their bytes summed here first.
        let body = UnsafeRawPointer(mc + MemcachedUDP.headerLength)
        let count = udpLength - 8 - MemcachedUDP.headerLength
        guard count >= 7, count <= 4 + ItemStore.maxKeyLength + 2,
              body.loadUnaligned(as: UInt32.self) == 0x2074_6567,
              (body + count - 1).load(as: UInt8.self) == 10 else { return false }
        var lineEnd = count - 1
        if (body + lineEnd - 1).load(as: UInt8.self) == 13 { lineEnd -= 1 }
        let key = body + 4
        let keyLength = lineEnd - 4
        guard keyLength >= 1, isPlainKey(key, keyLength) else { return false }
        let peerIP = IPv4Address.load(from: ip + 12)
        if udp.loadUnaligned(fromByteOffset: 6, as: UInt16.self) != 0 {
            let pseudo = InternetChecksum.pseudoHeaderNativeSum(source: peerIP, destination: config.ip, protocol: IPProtocol.udp,
                                                                length: udpLength)
            guard InternetChecksum.verifies(nativeSum: InternetChecksum.nativeSum(udp, count: udpLength, initial: pseudo)) else {
                return false
            }
        }
        let item = engine.store.find(key, keyLength, now: now)
        let blockLength = item?.blockLength ?? 0
        let size = blockLength + 5   // the item's reply block (if a hit), then "END\r\n"
        let headers = NetBuf.udpHeadersLength + MemcachedUDP.headerLength
        // The reply keeps the request's headroom (its headers are as long).
        guard size <= MemcachedUDP.maxPayload, (try? buf.setLength(headers + size)) != nil else { return false }

        // Committed: the request is answered here.
        stats.requests &+= 1
        engine.stats.commands &+= 1
        engine.stats.count(.get)
        let peerMAC = MACAddress.load(from: f + 6)
        let peerPort = UInt16(bigEndian: udp.loadUnaligned(as: UInt16.self))
        let requestID = UInt16(bigEndian: mc.loadUnaligned(as: UInt16.self))
        let payload = f + headers
        // The payload's checksum comes from the item's stored block sum and the sum of
        // "END\r\n", byte-swapped when it starts at an odd offset (RFC 1071: sums commute with
        // byte order).
        var endSum = endOfGetSum
        if let item {
            engine.stats.hits &+= 1
            copyPacketBytes(to: payload, from: item.block, count: blockLength)
            if blockLength & 1 != 0 { endSum = UInt32(UInt16(truncatingIfNeeded: endSum).byteSwapped) }
            endSum &+= item.blockSum
        } else {
            engine.stats.misses &+= 1
        }
        putText("END\r\n", at: payload + blockLength)
        writer.writeUntaggedHeaders(f, udpLength: 8 + MemcachedUDP.headerLength + size, mac: peerMAC, ip: peerIP,
                                    port: peerPort, requestID: requestID, payloadSum: endSum)
        stats.replyDatagrams &+= 1
        enqueue(buf)
        return true
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
