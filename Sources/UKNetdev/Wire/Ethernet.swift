/// Why a packet did not parse. Parsing never traps: every view checks lengths once, in `init`,
/// and its accessors cannot fail afterwards.
public enum WireError: Error, Equatable, Sendable {
    /// Fewer bytes than the header (or what the header claims) needs.
    case truncated(needed: Int, available: Int)
    case badVersion(UInt8)
    /// IPv4 IHL below 5 or beyond the bytes present.
    case badHeaderLength(Int)
    /// IPv4 total length below the header length or beyond the frame.
    case badTotalLength(Int)
    /// UDP length below 8 or beyond the IP payload.
    case badUDPLength(Int)
    /// ARP for something other than Ethernet/IPv4.
    case unsupportedARP
}

/// Zero-copy views over packet bytes (smoltcp's `wire`): they hold a pointer into a buffer the
/// caller keeps alive (a `NetBuf`'s `unsafeBytes`), and write in place.
public enum EtherType {
    @inlinable public static var ipv4: UInt16 { 0x0800 }
    @inlinable public static var arp: UInt16 { 0x0806 }
    @inlinable public static var vlan: UInt16 { 0x8100 }
    @inlinable public static var ipv6: UInt16 { 0x86DD }
}

/// An Ethernet II frame (without FCS), optionally with one 802.1Q tag.
@frozen
public struct EthernetFrame {
    public let base: UnsafeMutableRawPointer
    public let count: Int
    /// 14, or 18 with a VLAN tag.
    public let headerLength: Int

    @inlinable public static var minimumHeaderLength: Int { 14 }

    @inlinable
    public init(_ bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard let b = bytes.baseAddress, bytes.count >= 14 else {
            throw .truncated(needed: 14, available: bytes.count)
        }
        base = b
        count = bytes.count
        if UInt16(bigEndian: b.loadUnaligned(fromByteOffset: 12, as: UInt16.self)) == EtherType.vlan {
            guard bytes.count >= 18 else { throw .truncated(needed: 18, available: bytes.count) }
            headerLength = 18
        } else {
            headerLength = 14
        }
    }

    @inlinable public var destination: MACAddress {
        get { MACAddress.load(from: base) }
        nonmutating set { newValue.store(to: base) }
    }
    @inlinable public var source: MACAddress {
        get { MACAddress.load(from: base + 6) }
        nonmutating set { newValue.store(to: base + 6) }
    }
    /// The EtherType of the payload (behind the VLAN tag, if any).
    @inlinable public var etherType: UInt16 {
        get { UInt16(bigEndian: base.loadUnaligned(fromByteOffset: headerLength - 2, as: UInt16.self)) }
        nonmutating set { base.storeBytes(of: newValue.bigEndian, toByteOffset: headerLength - 2, as: UInt16.self) }
    }
    /// The VLAN ID (12 bits) if the frame carries an 802.1Q tag.
    @inlinable public var vlanID: UInt16? {
        headerLength == 18 ? UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 14, as: UInt16.self)) & 0x0FFF : nil
    }
    @inlinable public var payload: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + headerLength, count: count - headerLength)
    }

    /// Writes a 14-byte header at `p`.
    @inlinable @inline(__always)
    public static func writeHeader(at p: UnsafeMutableRawPointer, destination: MACAddress, source: MACAddress, etherType: UInt16) {
        destination.store(to: p)
        source.store(to: p + 6)
        p.storeBytes(of: etherType.bigEndian, toByteOffset: 12, as: UInt16.self)
    }

    /// Turns the frame around in place: source becomes `newSource`, destination the old source.
    @inlinable @inline(__always)
    public func reply(from newSource: MACAddress) {
        let requester = source
        destination = requester
        source = newSource
    }
}

/// An ARP packet for IPv4 over Ethernet (RFC 826).
@frozen
public struct ARPPacket {
    public let base: UnsafeMutableRawPointer
    @inlinable public static var length: Int { 28 }

    public enum Operation {
        @inlinable public static var request: UInt16 { 1 }
        @inlinable public static var reply: UInt16 { 2 }
    }

    @inlinable
    public init(_ bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard let b = bytes.baseAddress, bytes.count >= 28 else {
            throw .truncated(needed: 28, available: bytes.count)
        }
        guard UInt16(bigEndian: b.loadUnaligned(as: UInt16.self)) == 1,
              UInt16(bigEndian: b.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) == EtherType.ipv4,
              b.load(fromByteOffset: 4, as: UInt8.self) == 6, b.load(fromByteOffset: 5, as: UInt8.self) == 4 else {
            throw .unsupportedARP
        }
        base = b
    }

    @inlinable public var operation: UInt16 {
        get { UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 6, as: UInt16.self)) }
        nonmutating set { base.storeBytes(of: newValue.bigEndian, toByteOffset: 6, as: UInt16.self) }
    }
    @inlinable public var senderHardware: MACAddress {
        get { MACAddress.load(from: base + 8) }
        nonmutating set { newValue.store(to: base + 8) }
    }
    @inlinable public var senderProtocol: IPv4Address {
        get { IPv4Address.load(from: base + 14) }
        nonmutating set { newValue.store(to: base + 14) }
    }
    @inlinable public var targetHardware: MACAddress {
        get { MACAddress.load(from: base + 18) }
        nonmutating set { newValue.store(to: base + 18) }
    }
    @inlinable public var targetProtocol: IPv4Address {
        get { IPv4Address.load(from: base + 24) }
        nonmutating set { newValue.store(to: base + 24) }
    }

    /// Writes a whole 28-byte ARP packet at `p`.
    @inlinable
    public static func write(at p: UnsafeMutableRawPointer, operation: UInt16, senderHardware: MACAddress,
                             senderProtocol: IPv4Address, targetHardware: MACAddress, targetProtocol: IPv4Address) {
        p.storeBytes(of: UInt16(1).bigEndian, as: UInt16.self)
        p.storeBytes(of: EtherType.ipv4.bigEndian, toByteOffset: 2, as: UInt16.self)
        p.storeBytes(of: UInt8(6), toByteOffset: 4, as: UInt8.self)
        p.storeBytes(of: UInt8(4), toByteOffset: 5, as: UInt8.self)
        p.storeBytes(of: operation.bigEndian, toByteOffset: 6, as: UInt16.self)
        senderHardware.store(to: p + 8)
        senderProtocol.store(to: p + 14)
        targetHardware.store(to: p + 18)
        targetProtocol.store(to: p + 24)
    }

    /// Turns a request into the reply that `hardware`/`address` (the target) sends, in place.
    @inlinable
    public func makeReply(hardware: MACAddress, address: IPv4Address) {
        let asker = senderHardware, askerIP = senderProtocol
        operation = Operation.reply
        targetHardware = asker
        targetProtocol = askerIP
        senderHardware = hardware
        senderProtocol = address
    }
}
