import UKNetdev

/// Who we are on the link, and what the stack keeps for reassembly.
public struct HostConfig: Sendable {
    public var mac: MACAddress
    public var ip: IPv4Address
    public var prefixLength: Int
    /// UDP datagrams to this port are delivered; to any other, dropped.
    public var udpPort: UInt16
    public var reassemblySlots: Int
    /// Seconds a partly reassembled datagram waits for its missing fragments.
    public var reassemblyTimeout: UInt32

    public init(mac: MACAddress, ip: IPv4Address, prefixLength: Int = 24, udpPort: UInt16,
                reassemblySlots: Int = 8, reassemblyTimeout: UInt32 = 30) {
        self.mac = mac
        self.ip = ip
        self.prefixLength = prefixLength
        self.udpPort = udpPort
        self.reassemblySlots = reassemblySlots
        self.reassemblyTimeout = reassemblyTimeout
    }

    /// True when `address` is in our subnet: a peer ARP can reach.
    public func isOnLink(_ address: IPv4Address) -> Bool {
        let mask: UInt32 = prefixLength <= 0 ? 0 : UInt32.max << UInt32(32 - min(prefixLength, 32))
        return address.value & mask == ip.value & mask
    }
}

/// A UDP datagram for the application, from `HostStack.receive`.
public struct ReceivedDatagram {
    /// The UDP payload.
    public let payload: UnsafeMutableRawBufferPointer
    public let source: IPv4Address
    public let sourcePort: UInt16
    public let senderMAC: MACAddress
    public let vlan: UInt16?
    /// The frame the payload lies in, now the application's: to release once read, or to write
    /// the reply over when it `isWritable`. Nil when the payload lies in the stack's own memory
    /// (reassembled, or copied out of a chain too long for one buffer); it stays valid until the
    /// next `receive`.
    public let frame: NetBuf?
}

/// The host side of IPv4 over Ethernet for one address, in one small layer that the KV server
/// and the load client share (and that `--stack lwip` is to replace): ARP (a table of peers,
/// answering requests for our address, making requests), the IPv4 checks, ICMP echo replies,
/// reassembly, and chained frames made contiguous. `receive` takes one frame and either
/// consumes it (a reply to send, a peer learned, a fragment stored, a drop counted by reason)
/// or hands a UDP datagram for our address and port to the application.
///
/// Replies are written over their request when its buffer is writable (own data, one
/// reference); otherwise into a fresh buffer from `pool`, and the request is released.
public struct HostStack {
    public enum ReplyKind: Sendable { case arp, icmpEcho }

    public enum Outcome {
        /// Send this frame (a reply; the caller owns it now).
        case reply(NetBuf, ReplyKind)
        /// A UDP datagram for the application.
        case datagram(ReceivedDatagram)
        /// Taken in, nothing to do: a fragment stored, an ARP reply that resolved a peer.
        case absorbed
        /// Dropped and counted in `stats`.
        case dropped(HostDropReason)
    }

    public let config: HostConfig
    public internal(set) var stats = HostStackStats()
    /// Replies, linearised chains and ARP requests come from here.
    let pool: NetBufPool
    var fragments: FragmentTable
    var peers = ARPTable()
    /// A reassembled datagram handed to the application; its slot is freed on the next call.
    var deliveredSlot: Int?
    /// A chained frame too long for one buffer, copied here to be read (valid until the next call).
    let scratch: UnsafeMutableRawPointer
    static var scratchSize: Int { 18 + 65535 }

    public init(config: HostConfig, pool: NetBufPool) {
        self.config = config
        self.pool = pool
        fragments = FragmentTable(slots: config.reassemblySlots, timeout: config.reassemblyTimeout)
        scratch = .allocate(byteCount: HostStack.scratchSize, alignment: 64)
    }

    /// Back to the state `init` left: no peers, no reassembly, zero counters. Allocates nothing.
    public mutating func reset() {
        for slot in 0..<fragments.count { fragments.free(slot) }
        deliveredSlot = nil
        peers = ARPTable()
        stats = HostStackStats()
    }

    /// Frees the stack's memory; buffers handed out are their holders'.
    public func deallocate() {
        fragments.deallocate()
        scratch.deallocate()
    }

    /// Drops reassemblies older than the timeout (counted). Call it once per poll: with nothing
    /// being reassembled it costs one compare.
    @inline(__always)
    public mutating func expire(now: UInt32) {
        guard fragments.inUse != 0 else { return }
        freeDeliveredSlot()
        stats.drops.add(.fragmentTimeout, UInt64(fragments.expireSlots(now: now)))
    }

    /// Takes one received frame (a chain too), which is the stack's from here on.
    public mutating func receive(_ buf: NetBuf, now: UInt32) -> Outcome {
        freeDeliveredSlot()
        guard buf.next == nil else { return receiveChain(buf, now: now) }
        return handle(Frame(bytes: buf.unsafeBytes, buffer: buf), now: now)
    }

    // MARK: Frames

    /// The frame being handled: its bytes, and the buffer holding them (nil when they were
    /// copied into `scratch`).
    struct Frame {
        let bytes: UnsafeMutableRawBufferPointer
        let buffer: NetBuf?
    }

    mutating func drop(_ frame: Frame?, _ reason: HostDropReason) -> Outcome {
        frame?.buffer?.release()
        stats.drops.add(reason)
        return .dropped(reason)
    }

    /// A chain (virtio's mergeable RX buffers) made contiguous: copied into one fresh buffer
    /// when it fits, so replies can still be written in place; else into `scratch`.
    mutating func receiveChain(_ chain: NetBuf, now: UInt32) -> Outcome {
        let length = chain.packetLength
        defer { chain.release() }
        if length <= pool.roomSize - pool.headroom {
            guard let single = pool.allocate() else { return drop(nil, .noBuffer) }
            _ = chain.copyOut(into: UnsafeMutableRawBufferPointer(start: single.data, count: length))
            single.unsafeSetLength(length)
            stats.linearised &+= 1
            return handle(Frame(bytes: single.unsafeBytes, buffer: single), now: now)
        }
        guard length <= HostStack.scratchSize else { return drop(nil, .chainTooLong) }
        let bytes = UnsafeMutableRawBufferPointer(start: scratch, count: length)
        _ = chain.copyOut(into: bytes)
        stats.linearised &+= 1
        return handle(Frame(bytes: bytes, buffer: nil), now: now)
    }

    /// The frame in a buffer this stack may rewrite as its reply: the received buffer when it is
    /// writable, else a copy in a fresh buffer (the received one released). Nil when the pool is
    /// empty or the frame does not fit one buffer.
    mutating func writableCopy(of frame: Frame) -> NetBuf? {
        if let buf = frame.buffer, buf.isWritable { return buf }
        defer { frame.buffer?.release() }
        guard let copy = pool.allocate() else { return nil }
        guard (try? copy.copyIn(UnsafeRawBufferPointer(frame.bytes))) != nil else {
            copy.release()
            return nil
        }
        return copy
    }

    mutating func handle(_ frame: Frame, now: UInt32) -> Outcome {
        let eth: EthernetFrame
        do { eth = try EthernetFrame(frame.bytes) } catch { return drop(frame, .truncatedFrame) }
        let dst = eth.destination
        guard dst == config.mac || dst.isBroadcast else { return drop(frame, .notForUs) }
        switch eth.etherType {
        case EtherType.arp: return handleARP(frame, eth)
        case EtherType.ipv4: return handleIPv4(frame, eth, now: now)
        default: return drop(frame, .unsupportedEtherType)
        }
    }

    // MARK: IPv4

    mutating func handleIPv4(_ frame: Frame, _ eth: EthernetFrame, now: UInt32) -> Outcome {
        let ip: IPv4Packet
        do { ip = try IPv4Packet(eth.payload) } catch { return drop(frame, .ipMalformed) }
        guard ip.isHeaderChecksumValid else { return drop(frame, .ipBadChecksum) }
        guard ip.destination == config.ip else { return drop(frame, .ipWrongAddress) }
        guard ip.isFragment else {
            return handleTransport(ip.protocolNumber, ip.payload, source: ip.source, senderMAC: eth.source,
                                   vlan: eth.vlanID, frame: frame)
        }
        let outcome = fragments.add(ip, senderMAC: eth.source, vlan: eth.vlanID, now: now)
        frame.buffer?.release()
        switch outcome {
        case .pending:
            return .absorbed
        case .dropped(let reason):
            return drop(nil, reason)
        case .complete(let slot):
            stats.reassembled &+= 1
            deliveredSlot = slot
            let s = fragments.slots[slot]
            let payload = UnsafeMutableRawBufferPointer(start: fragments.buffer(slot), count: s.total)
            return handleTransport(s.proto, payload, source: s.source, senderMAC: s.senderMAC, vlan: s.vlan, frame: nil)
        }
    }

    @inline(__always)
    mutating func freeDeliveredSlot() {
        if let slot = deliveredSlot {
            fragments.free(slot)
            deliveredSlot = nil
        }
    }

    /// `frame` is the frame the payload came in, when it can be answered in place; nil for a
    /// reassembled datagram.
    mutating func handleTransport(_ proto: UInt8, _ payload: UnsafeMutableRawBufferPointer, source: IPv4Address,
                                  senderMAC: MACAddress, vlan: UInt16?, frame: Frame?) -> Outcome {
        switch proto {
        case IPProtocol.udp: return handleUDP(payload, source: source, senderMAC: senderMAC, vlan: vlan, frame: frame)
        case IPProtocol.icmp: return handleICMP(payload, source: source, senderMAC: senderMAC, vlan: vlan, frame: frame)
        default: return drop(frame, .ipUnsupportedProtocol)
        }
    }

    mutating func handleUDP(_ payload: UnsafeMutableRawBufferPointer, source: IPv4Address, senderMAC: MACAddress,
                            vlan: UInt16?, frame: Frame?) -> Outcome {
        let udp: UDPDatagram
        do { udp = try UDPDatagram(payload) } catch { return drop(frame, .udpMalformed) }
        guard udp.isChecksumValid(source: source, destination: config.ip) else { return drop(frame, .udpBadChecksum) }
        guard udp.destinationPort == config.udpPort else { return drop(frame, .udpWrongPort) }
        return .datagram(ReceivedDatagram(payload: udp.payload, source: source, sourcePort: udp.sourcePort,
                                          senderMAC: senderMAC, vlan: vlan, frame: frame?.buffer))
    }
}

/// An Ethernet header for an IPv4 packet, behind an 802.1Q tag when `vlan` is set; returns its
/// length (14 or 18).
@discardableResult
public func writeEthernetHeader(at p: UnsafeMutableRawPointer, destination: MACAddress, source: MACAddress, vlan: UInt16?) -> Int {
    guard let vlan else {
        EthernetFrame.writeHeader(at: p, destination: destination, source: source, etherType: EtherType.ipv4)
        return 14
    }
    EthernetFrame.writeHeader(at: p, destination: destination, source: source, etherType: EtherType.vlan)
    p.storeBytes(of: vlan.bigEndian, toByteOffset: 14, as: UInt16.self)
    p.storeBytes(of: EtherType.ipv4.bigEndian, toByteOffset: 16, as: UInt16.self)
    return 18
}
