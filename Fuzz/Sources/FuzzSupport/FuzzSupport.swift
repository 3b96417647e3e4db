import UKNetdev

/// The fuzz input, read front to back. Past its end every read gives zeros or no bytes, so a
/// target never has to check: a short input is a short run.
public struct FuzzInput {
    public let base: UnsafePointer<UInt8>
    public let count: Int
    public private(set) var position = 0

    public init(_ base: UnsafePointer<UInt8>, _ count: Int) {
        self.base = base
        self.count = count
    }

    public var isAtEnd: Bool { position >= count }
    public var remaining: Int { Swift.max(0, count - position) }

    public mutating func byte() -> UInt8 {
        guard position < count else { return 0 }
        defer { position += 1 }
        return base[position]
    }

    /// Big-endian.
    public mutating func u16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }
    public mutating func u32() -> UInt32 { UInt32(u16()) << 16 | UInt32(u16()) }

    /// The next `n` bytes (fewer at the end of the input).
    public mutating func bytes(_ n: Int) -> UnsafeRawBufferPointer {
        let n = Swift.min(Swift.max(n, 0), remaining)
        defer { position += n }
        return UnsafeRawBufferPointer(start: base + Swift.min(position, count), count: n)
    }

    /// A chunk: a 2-byte big-endian length, then that many bytes (the rest, at the end).
    public mutating func chunk() -> UnsafeRawBufferPointer { bytes(Int(u16())) }

    /// The rest of the input.
    public mutating func rest() -> UnsafeRawBufferPointer { bytes(remaining) }
}

/// Checksums repaired in place, so that mutated frames still get past the checks and reach the
/// code behind them. Only as far as the views parse the bytes; anything else stays as it is.
public enum ChecksumRepair {
    /// The IPv4 header checksum (`ipHeader`) and, for an IPv4 packet that is not a fragment,
    /// the UDP or ICMP checksum (`transport`) of the Ethernet frame in `frame`.
    public static func repair(_ frame: UnsafeMutableRawBufferPointer, ipHeader: Bool, transport: Bool) {
        guard ipHeader || transport, let eth = try? EthernetFrame(frame), eth.etherType == EtherType.ipv4,
              let ip = try? IPv4Packet(eth.payload) else { return }
        if transport && !ip.isFragment {
            switch ip.protocolNumber {
            case IPProtocol.udp:
                if let udp = try? UDPDatagram(ip.payload) { udp.updateChecksum(source: ip.source, destination: ip.destination) }
            case IPProtocol.icmp:
                if let icmp = try? ICMPEcho(ip.payload) {
                    icmp.checksum = 0
                    icmp.checksum = InternetChecksum.checksum(icmp.base, count: icmp.length)
                }
            default: break
            }
        }
        if ipHeader { ip.updateHeaderChecksum() }
    }
}

/// A frame's bytes in buffers from `pool`: one buffer when `segment` is nil and they fit, else
/// a chain of `segment`-byte pieces (a frame larger than one buffer is always chained). Nil
/// (nothing held) when the pool runs dry.
public func makeFrame(_ bytes: UnsafeRawBufferPointer, pool: NetBufPool, segment: Int? = nil) -> NetBuf? {
    let room = pool.roomSize - pool.headroom
    if segment == nil && bytes.count <= room {
        guard let buf = pool.allocate() else { return nil }
        do { try buf.copyIn(bytes) } catch { fatalError("fuzz harness: \(bytes.count) bytes do not fit a fresh buffer") }
        return buf
    }
    let piece = Swift.max(1, Swift.min(segment ?? room, room))
    var head: NetBuf? = nil
    var offset = 0
    repeat {
        let n = Swift.min(piece, bytes.count - offset)
        guard let buf = pool.allocate() else {
            head?.release()
            return nil
        }
        do { try buf.copyIn(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])) } catch {
            fatalError("fuzz harness: a segment does not fit a fresh buffer")
        }
        if let h = head {
            do { try h.chain(buf) } catch { fatalError("fuzz harness: chain refused: \(error)") }
        } else {
            head = buf
        }
        offset += n
    } while offset < bytes.count
    return head
}

/// Every segment of a buffer the code under test handed out must lie within its room, and the
/// head's packet length must be the sum of the segments: the bounds ASan cannot see inside a
/// pool's slab (one allocation for every buffer).
public func checkBounds(_ buf: NetBuf, _ what: StaticString) {
    var total = 0
    var segments = 0
    var seg: NetBuf? = buf
    while let s = seg {
        guard s.headroom >= 0, s.length >= 0, s.headroom + s.length <= s.capacity else {
            fatalError("\(what): a segment's data (offset \(s.headroom), length \(s.length)) leaves its room of \(s.capacity) bytes")
        }
        guard s.refcount > 0 else { fatalError("\(what): a buffer handed out is free in its pool (refcount 0)") }
        total += s.length
        segments += 1
        seg = s.next
    }
    guard total == buf.packetLength, segments == buf.segmentCount else {
        fatalError("\(what): packet length \(buf.packetLength) in \(buf.segmentCount) segments, but the segments hold \(total) in \(segments)")
    }
}

/// The pool must be full again (every buffer back, none released twice); else a crash, which
/// libFuzzer reports with the input.
public func requireFullPool(_ pool: NetBufPool, _ what: StaticString) {
    if pool.inUse != 0 { fatalError("\(what): \(pool.inUse) buffers not back in the pool") }
    if pool.invalidReleases != 0 { fatalError("\(what): \(pool.invalidReleases) buffers released twice") }
}

/// One frame of a fuzz input that carries frames: [control][length: 2 bytes, big-endian][bytes].
/// control: bit 0 repairs the IPv4 header checksum, bit 1 the UDP or ICMP checksum (so mutated
/// frames get past the checks to the code behind them); bit 2 delivers the frame as a chain of
/// (16 << bits 5-7)-byte segments; bit 3 as a read-only clone; bit 4 moves the clock on 16 s
/// first (reassembly times out after 30).
public struct FrameRecord {
    public let control: UInt8
    public let bytes: UnsafeRawBufferPointer

    public init(control: UInt8, bytes: UnsafeRawBufferPointer) {
        self.control = control
        self.bytes = bytes
    }

    public static func read(_ input: inout FuzzInput) -> FrameRecord {
        let control = input.byte()
        return FrameRecord(control: control, bytes: input.chunk())
    }

    public var advancesClock: Bool { control & 0x10 != 0 }

    /// The frame in buffers from `pool` as a device would hand it over, repaired, chained or
    /// cloned as `control` says; nil (nothing held) when the pool runs dry.
    public func buffer(from pool: NetBufPool) -> NetBuf? {
        let segment = control & 0x04 != 0 ? 16 << Int(control >> 5) : nil
        guard let buf = makeFrame(bytes, pool: pool, segment: segment) else { return nil }
        if control & 0x03 != 0, buf.next == nil {
            ChecksumRepair.repair(buf.unsafeBytes, ipHeader: control & 0x01 != 0, transport: control & 0x02 != 0)
        }
        guard control & 0x08 != 0 else { return buf }
        // The clone holds the data now, read-only.
        defer { buf.release() }
        return buf.clone(using: pool)
    }
}

/// A frame a server sent: within its buffers, from our MAC, and, as far as it is IPv4, UDP or
/// ICMP, from our address with checksums that verify; an ARP frame is a reply from us.
public func checkSentFrame(_ buf: NetBuf, mac: MACAddress, ip: IPv4Address, _ what: StaticString) {
    checkBounds(buf, what)
    guard buf.next == nil else { fatalError("\(what): a chained reply") }
    guard let eth = try? EthernetFrame(buf.unsafeBytes) else { fatalError("\(what): not an Ethernet frame") }
    guard eth.source == mac else { fatalError("\(what): not from our MAC") }
    switch eth.etherType {
    case EtherType.arp:
        guard let arp = try? ARPPacket(eth.payload), arp.operation == ARPPacket.Operation.reply, arp.senderProtocol == ip,
              arp.senderHardware == mac else { fatalError("\(what): an ARP frame that is not our reply") }
    case EtherType.ipv4:
        guard let packet = try? IPv4Packet(eth.payload) else { fatalError("\(what): a malformed IPv4 header") }
        guard packet.isHeaderChecksumValid else { fatalError("\(what): a bad IPv4 header checksum") }
        guard packet.source == ip else { fatalError("\(what): not from our address") }
        guard !packet.isFragment else { return }
        switch packet.protocolNumber {
        case IPProtocol.udp:
            guard let udp = try? UDPDatagram(packet.payload), udp.length == packet.payload.count else {
                fatalError("\(what): a malformed UDP header")
            }
            guard udp.isChecksumValid(source: packet.source, destination: packet.destination) else {
                fatalError("\(what): a bad UDP checksum")
            }
        case IPProtocol.icmp:
            guard let icmp = try? ICMPEcho(packet.payload), icmp.type == ICMPEcho.Kind.echoReply else {
                fatalError("\(what): an ICMP message that is not an echo reply")
            }
            guard icmp.isChecksumValid else { fatalError("\(what): a bad ICMP checksum") }
        default:
            fatalError("\(what): an IPv4 protocol we never send")
        }
    default:
        fatalError("\(what): an EtherType we never send")
    }
}
