public enum IPProtocol {
    @inlinable public static var icmp: UInt8 { 1 }
    @inlinable public static var tcp: UInt8 { 6 }
    @inlinable public static var udp: UInt8 { 17 }
}

/// An IPv4 packet (RFC 791), options included. `init` checks version, IHL and total length
/// against the bytes present; bytes past the total length (Ethernet padding) are ignored.
@frozen
public struct IPv4Packet {
    public let base: UnsafeMutableRawPointer
    /// Header length in bytes (IHL * 4), 20...60.
    public let headerLength: Int
    /// Total length from the header: header plus payload, never beyond the bytes given.
    public let totalLength: Int

    @inlinable public static var minimumHeaderLength: Int { 20 }

    @inlinable
    public init(_ bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard let b = bytes.baseAddress, bytes.count >= 20 else {
            throw .truncated(needed: 20, available: bytes.count)
        }
        let versionIHL = b.load(as: UInt8.self)
        guard versionIHL >> 4 == 4 else { throw .badVersion(versionIHL >> 4) }
        let ihl = Int(versionIHL & 0x0F) * 4
        guard ihl >= 20, ihl <= bytes.count else { throw .badHeaderLength(ihl) }
        let total = Int(UInt16(bigEndian: b.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        guard total >= ihl, total <= bytes.count else { throw .badTotalLength(total) }
        base = b
        headerLength = ihl
        totalLength = total
    }

    @inlinable func u16(_ o: Int) -> UInt16 { UInt16(bigEndian: base.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
    @inlinable func setU16(_ o: Int, _ v: UInt16) { base.storeBytes(of: v.bigEndian, toByteOffset: o, as: UInt16.self) }

    /// DSCP and ECN.
    @inlinable public var typeOfService: UInt8 { base.load(fromByteOffset: 1, as: UInt8.self) }
    @inlinable public var identification: UInt16 { u16(4) }
    @inlinable public var dontFragment: Bool { u16(6) & 0x4000 != 0 }
    @inlinable public var moreFragments: Bool { u16(6) & 0x2000 != 0 }
    /// Offset of this fragment's data in the original datagram, in bytes.
    @inlinable public var fragmentOffset: Int { Int(u16(6) & 0x1FFF) * 8 }
    /// True for any fragment (first, middle or last) of a fragmented datagram.
    @inlinable public var isFragment: Bool { u16(6) & 0x3FFF != 0 }
    @inlinable public var timeToLive: UInt8 {
        get { base.load(fromByteOffset: 8, as: UInt8.self) }
        nonmutating set { base.storeBytes(of: newValue, toByteOffset: 8, as: UInt8.self) }
    }
    @inlinable public var protocolNumber: UInt8 { base.load(fromByteOffset: 9, as: UInt8.self) }
    @inlinable public var headerChecksum: UInt16 {
        get { u16(10) }
        nonmutating set { setU16(10, newValue) }
    }
    @inlinable public var source: IPv4Address {
        get { IPv4Address.load(from: base + 12) }
        nonmutating set { newValue.store(to: base + 12) }
    }
    @inlinable public var destination: IPv4Address {
        get { IPv4Address.load(from: base + 16) }
        nonmutating set { newValue.store(to: base + 16) }
    }
    /// Option bytes (empty without options).
    @inlinable public var options: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + 20, count: headerLength - 20)
    }
    /// The payload, as far as the total length says.
    @inlinable public var payload: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + headerLength, count: totalLength - headerLength)
    }

    /// True if the header checksum verifies.
    @inlinable public var isHeaderChecksumValid: Bool {
        InternetChecksum.verifies(nativeSum: InternetChecksum.shortNativeSum(base, count: headerLength))
    }
    /// Recomputes and stores the header checksum.
    @inlinable public func updateHeaderChecksum() {
        headerChecksum = 0
        headerChecksum = InternetChecksum.checksum(base, count: headerLength)
    }

    /// Swaps source and destination in place. The header checksum is unchanged (the sum does not
    /// depend on word order), and so is the UDP/TCP pseudo-header sum.
    @inlinable @inline(__always)
    public func swapAddresses() {
        let s = base.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        let d = base.loadUnaligned(fromByteOffset: 16, as: UInt32.self)
        base.storeBytes(of: d, toByteOffset: 12, as: UInt32.self)
        base.storeBytes(of: s, toByteOffset: 16, as: UInt32.self)
    }

    /// Writes a 20-byte header (no options, DF clear) with its checksum at `p`.
    @inlinable
    public static func writeHeader(at p: UnsafeMutableRawPointer, source: IPv4Address, destination: IPv4Address,
                                   protocol proto: UInt8, payloadLength: Int, identification: UInt16 = 0,
                                   timeToLive: UInt8 = 64, typeOfService: UInt8 = 0) {
        p.storeBytes(of: UInt8(0x45), as: UInt8.self)
        p.storeBytes(of: typeOfService, toByteOffset: 1, as: UInt8.self)
        p.storeBytes(of: UInt16(truncatingIfNeeded: 20 + payloadLength).bigEndian, toByteOffset: 2, as: UInt16.self)
        p.storeBytes(of: identification.bigEndian, toByteOffset: 4, as: UInt16.self)
        p.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: timeToLive, toByteOffset: 8, as: UInt8.self)
        p.storeBytes(of: proto, toByteOffset: 9, as: UInt8.self)
        p.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
        source.store(to: p + 12)
        destination.store(to: p + 16)
        p.storeBytes(of: (~UInt16(truncatingIfNeeded: InternetChecksum.ipv4HeaderSum(p))).bigEndian, toByteOffset: 10, as: UInt16.self)
    }
}

/// A UDP datagram (RFC 768) inside an IPv4 payload. `init` checks the length field against the
/// bytes of the IP payload.
@frozen
public struct UDPDatagram {
    public let base: UnsafeMutableRawPointer
    /// The UDP length field: header plus payload.
    public let length: Int
    @inlinable public static var headerLength: Int { 8 }

    @inlinable
    public init(_ bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard let b = bytes.baseAddress, bytes.count >= 8 else {
            throw .truncated(needed: 8, available: bytes.count)
        }
        let len = Int(UInt16(bigEndian: b.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
        guard len >= 8, len <= bytes.count else { throw .badUDPLength(len) }
        base = b
        length = len
    }

    @inlinable public var sourcePort: UInt16 {
        get { UInt16(bigEndian: base.loadUnaligned(as: UInt16.self)) }
        nonmutating set { base.storeBytes(of: newValue.bigEndian, as: UInt16.self) }
    }
    @inlinable public var destinationPort: UInt16 {
        get { UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) }
        nonmutating set { base.storeBytes(of: newValue.bigEndian, toByteOffset: 2, as: UInt16.self) }
    }
    /// 0 means "no checksum" (IPv4 only).
    @inlinable public var checksum: UInt16 {
        get { UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 6, as: UInt16.self)) }
        nonmutating set { base.storeBytes(of: newValue.bigEndian, toByteOffset: 6, as: UInt16.self) }
    }
    @inlinable public var payload: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + 8, count: length - 8)
    }

    /// The checksum this datagram should carry between `source` and `destination`.
    @inlinable
    public func computeChecksum(source: IPv4Address, destination: IPv4Address) -> UInt16 {
        let saved = checksum
        checksum = 0
        let field = InternetChecksum.udpChecksumField(nativeSum: nativeSum(source: source, destination: destination))
        checksum = saved
        return UInt16(bigEndian: field)
    }
    /// True if the checksum verifies, or is 0 (not used).
    @inlinable
    public func isChecksumValid(source: IPv4Address, destination: IPv4Address) -> Bool {
        guard checksum != 0 else { return true }
        return InternetChecksum.verifies(nativeSum: nativeSum(source: source, destination: destination))
    }
    /// Pseudo-header and datagram as one native sum.
    @inlinable @inline(__always)
    func nativeSum(source: IPv4Address, destination: IPv4Address) -> UInt64 {
        let pseudo = InternetChecksum.pseudoHeaderNativeSum(source: source, destination: destination, protocol: IPProtocol.udp, length: length)
        return InternetChecksum.nativeSum(base, count: length, initial: pseudo)
    }
    @inlinable
    public func updateChecksum(source: IPv4Address, destination: IPv4Address) {
        checksum = computeChecksum(source: source, destination: destination)
    }

    /// Swaps the ports in place; the checksum stays valid (word order does not change the sum).
    @inlinable @inline(__always)
    public func swapPorts() {
        let ports = base.loadUnaligned(as: UInt32.self)
        base.storeBytes(of: ports >> 16 | ports << 16, as: UInt32.self)
    }

    /// Writes an 8-byte header (checksum 0) at `p`.
    @inlinable @inline(__always)
    public static func writeHeader(at p: UnsafeMutableRawPointer, sourcePort: UInt16, destinationPort: UInt16, payloadLength: Int) {
        p.storeBytes(of: sourcePort.bigEndian, as: UInt16.self)
        p.storeBytes(of: destinationPort.bigEndian, toByteOffset: 2, as: UInt16.self)
        p.storeBytes(of: UInt16(truncatingIfNeeded: 8 + payloadLength).bigEndian, toByteOffset: 4, as: UInt16.self)
        p.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
    }
}

/// An ICMP echo request or reply (RFC 792); other ICMP types parse too (type/code/checksum).
@frozen
public struct ICMPEcho {
    public let base: UnsafeMutableRawPointer
    /// The whole ICMP message: header and data.
    public let length: Int

    public enum Kind {
        @inlinable public static var echoReply: UInt8 { 0 }
        @inlinable public static var echoRequest: UInt8 { 8 }
    }

    @inlinable
    public init(_ bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard let b = bytes.baseAddress, bytes.count >= 8 else {
            throw .truncated(needed: 8, available: bytes.count)
        }
        base = b
        length = bytes.count
    }

    @inlinable public var type: UInt8 {
        get { base.load(as: UInt8.self) }
        nonmutating set { base.storeBytes(of: newValue, as: UInt8.self) }
    }
    @inlinable public var code: UInt8 { base.load(fromByteOffset: 1, as: UInt8.self) }
    @inlinable public var checksum: UInt16 {
        get { UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) }
        nonmutating set { base.storeBytes(of: newValue.bigEndian, toByteOffset: 2, as: UInt16.self) }
    }
    @inlinable public var identifier: UInt16 { UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 4, as: UInt16.self)) }
    @inlinable public var sequenceNumber: UInt16 { UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 6, as: UInt16.self)) }
    @inlinable public var data: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + 8, count: length - 8)
    }
    @inlinable public var isChecksumValid: Bool {
        InternetChecksum.verifies(nativeSum: InternetChecksum.nativeSum(base, count: length))
    }

    /// Turns an echo request into its reply in place: only the type byte changes. The checksum
    /// is updated incrementally (RFC 1624 eqn. 3), except that eqn. 3 yields 0x0000 where an
    /// all-zero message needs 0xFFFF; then it is computed afresh.
    @inlinable
    public func makeReply() {
        let oldWord = UInt16(type) << 8 | UInt16(code)
        type = Kind.echoReply
        let updated = InternetChecksum.update(checksum, old: oldWord, new: UInt16(code))
        if updated == 0 {
            checksum = 0
            checksum = InternetChecksum.checksum(base, count: length)
        } else {
            checksum = updated
        }
    }
}
