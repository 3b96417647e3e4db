/// A 48-bit Ethernet address, kept as the number its six bytes spell in network order.
@frozen
public struct MACAddress: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64

    @inlinable public init(value: UInt64) { self.value = value & 0xFFFF_FFFF_FFFF }
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        value = UInt64(b0) << 40 | UInt64(b1) << 32 | UInt64(b2) << 24 | UInt64(b3) << 16 | UInt64(b4) << 8 | UInt64(b5)
    }
    @inlinable public static var broadcast: MACAddress { MACAddress(value: 0xFFFF_FFFF_FFFF) }
    @inlinable public static var zero: MACAddress { MACAddress(value: 0) }

    /// Parses `xx:xx:xx:xx:xx:xx` (or with `-`); nil if malformed.
    public init?(_ text: String) {
        var v: UInt64 = 0
        var parts = 0
        for part in text.utf8.split(whereSeparator: { $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "-") }) {
            guard part.count == 2, let hi = hexValue(part[part.startIndex]), let lo = hexValue(part[part.index(after: part.startIndex)]) else { return nil }
            v = v << 8 | UInt64(hi << 4 | lo)
            parts += 1
        }
        guard parts == 6 else { return nil }
        value = v
    }

    public var isBroadcast: Bool { value == 0xFFFF_FFFF_FFFF }
    /// Group (multicast or broadcast) addresses have the low bit of the first byte set.
    public var isMulticast: Bool { value & (1 << 40) != 0 }

    @inlinable @inline(__always)
    public static func load(from p: UnsafeRawPointer) -> MACAddress {
        let hi = UInt64(UInt16(bigEndian: p.loadUnaligned(as: UInt16.self)))
        let lo = UInt64(UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt32.self)))
        return MACAddress(value: hi << 32 | lo)
    }
    @inlinable @inline(__always)
    public func store(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: UInt16(truncatingIfNeeded: value >> 32).bigEndian, as: UInt16.self)
        p.storeBytes(of: UInt32(truncatingIfNeeded: value).bigEndian, toByteOffset: 2, as: UInt32.self)
    }

    public var description: String {
        var s = ""
        for i in 0..<6 {
            if i > 0 { s += ":" }
            s += hexByte(UInt8(truncatingIfNeeded: value >> UInt64(40 - 8 * i)))
        }
        return s
    }
}

/// An IPv4 address, kept as the number its four bytes spell in network order.
@frozen
public struct IPv4Address: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let value: UInt32

    @inlinable public init(value: UInt32) { self.value = value }
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }
    @inlinable public static var any: IPv4Address { IPv4Address(value: 0) }
    @inlinable public static var broadcast: IPv4Address { IPv4Address(value: 0xFFFF_FFFF) }

    /// Parses dotted decimal `a.b.c.d`; nil if malformed.
    public init?(_ text: String) {
        var v: UInt32 = 0
        var parts = 0
        for part in text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard !part.isEmpty, part.count <= 3 else { return nil }
            var octet: UInt32 = 0
            for c in part {
                guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
                octet = octet * 10 + UInt32(c - UInt8(ascii: "0"))
            }
            guard octet <= 255 else { return nil }
            v = v << 8 | octet
            parts += 1
        }
        guard parts == 4 else { return nil }
        value = v
    }

    @inlinable @inline(__always)
    public static func load(from p: UnsafeRawPointer) -> IPv4Address {
        IPv4Address(value: UInt32(bigEndian: p.loadUnaligned(as: UInt32.self)))
    }
    @inlinable @inline(__always)
    public func store(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: value.bigEndian, as: UInt32.self)
    }

    public var description: String {
        var s = ""
        for i in 0..<4 {
            if i > 0 { s += "." }
            s += decimal(UInt8(truncatingIfNeeded: value >> UInt32(24 - 8 * i)))
        }
        return s
    }
}

/// An IPv4 network: `A.B.C.D/length` (a bare address is a /32).
@frozen
public struct IPv4Prefix: Equatable, Sendable, CustomStringConvertible {
    public let network: IPv4Address
    public let length: Int
    /// The mask's bits, in `IPv4Address.value`'s order.
    public let mask: UInt32

    /// The network holding `address` (its host bits cleared); `length` is clamped to 0...32.
    public init(_ address: IPv4Address, length: Int) {
        let bits = max(0, min(length, 32))
        mask = bits == 0 ? 0 : UInt32.max << UInt32(32 - bits)
        network = IPv4Address(value: address.value & mask)
        self.length = bits
    }

    /// Parses `A.B.C.D/N` or `A.B.C.D`; nil if malformed or N > 32.
    public init?(_ text: String) {
        let parts = text.utf8.split(separator: UInt8(ascii: "/"), maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPv4Address(String(decoding: parts[0], as: UTF8.self)) else { return nil }
        var bits = 32
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].count <= 2 else { return nil }
            bits = 0
            for c in parts[1] {
                guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
                bits = bits * 10 + Int(c - UInt8(ascii: "0"))
            }
            guard bits <= 32 else { return nil }
        }
        self.init(address, length: bits)
    }

    @inlinable @inline(__always)
    public func contains(_ address: IPv4Address) -> Bool { address.value & mask == network.value }

    public var description: String { network.description + "/" + decimal(UInt8(length)) }
}

/// The value of one hexadecimal digit (either case), or nil.
public func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
    default: nil
    }
}

/// Two lowercase hexadecimal digits.
public func hexByte(_ b: UInt8) -> String {
    let digits: StaticString = "0123456789abcdef"
    return digits.withUTF8Buffer { d in
        String(decoding: [d[Int(b >> 4)], d[Int(b & 0xF)]], as: UTF8.self)
    }
}

func decimal(_ b: UInt8) -> String {
    var digits: [UInt8] = []
    var v = b
    repeat {
        digits.append(UInt8(ascii: "0") + v % 10)
        v /= 10
    } while v > 0
    return String(decoding: digits.reversed(), as: UTF8.self)
}
