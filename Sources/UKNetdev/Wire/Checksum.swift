/// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
///
/// Values are 16-bit numbers as they read on the wire (store them with `.bigEndian`). Sums are
/// kept as one's-complement partial sums so pieces (a pseudo-header, a header, a payload) can be
/// added before the final fold and complement.
public enum InternetChecksum {
    /// The one's-complement sum of `count` bytes at `bytes`, as 16-bit big-endian words (an odd
    /// last byte is padded with zero), folded to 16 bits and added to `initial`. Not complemented.
    ///
    /// Sums 8 bytes at a time in native order with end-around carry (RFC 1071 section 2: byte
    /// order only swaps the result), then swaps once.
    @inlinable @inline(__always)
    public static func sum(_ bytes: UnsafeRawPointer, count: Int, initial: UInt32 = 0) -> UInt32 {
        let native = foldNative(nativeSum(bytes, count: count))
        return fold(fold(initial) &+ UInt32(native.bigEndian))
    }

    /// The sum of `count` bytes as 64-bit words in native byte order with end-around carry,
    /// added to `initial` (also native), before any folding. Byte order only swaps the final
    /// 16-bit result (RFC 1071 section 2), so a check against 0xFFFF can skip the swap: see
    /// `foldNative`. Values read from packet memory (addresses, lengths) join a native sum as
    /// they load, with no swapping.
    @inlinable @inline(__always)
    public static func nativeSum(_ bytes: UnsafeRawPointer, count: Int, initial: UInt64 = 0) -> UInt64 {
        // 64-bit words with end-around carry (add, adc): two instructions per 8 bytes, which
        // beats wider tricks on the short datagrams this mostly sees.
        var acc: UInt64 = initial
        var p = bytes
        var n = count
        @inline(__always) func add(_ w: UInt64) {
            let (s, carry) = acc.addingReportingOverflow(w)
            acc = s &+ (carry ? 1 : 0)
        }
        while n >= 32 {
            add(p.loadUnaligned(as: UInt64.self))
            add(p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            add(p.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
            add(p.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            p += 32
            n -= 32
        }
        while n >= 8 {
            add(p.loadUnaligned(as: UInt64.self))
            p += 8
            n -= 8
        }
        guard n > 0 else { return acc }
        var tail: UInt64 = 0
        if count >= 8 {
            // The last n bytes as one load of the 8 bytes ending there, shifted so the first
            // of them lands in the low byte (little-endian), as if loaded at p: parity kept.
            tail = (p + n - 8).loadUnaligned(as: UInt64.self) >> UInt64((8 - n) * 8)
        } else {
            if n >= 4 {
                tail = UInt64(p.loadUnaligned(as: UInt32.self))
                p += 4
                n -= 4
            }
            if n >= 2 {
                tail |= UInt64(p.loadUnaligned(as: UInt16.self)) << (count & 4 != 0 ? 32 : 0)
                p += 2
                n -= 2
            }
            if n == 1 {
                // Low byte in little-endian = first byte on the wire; its position keeps word parity.
                tail |= UInt64(p.load(as: UInt8.self)) << UInt64((count & 6) * 8)
            }
        }
        add(tail)
        return acc
    }

    /// Whether data that includes its own checksum field verifies, from its native sum: the
    /// folded sum is 0xFFFF exactly when the 64-bit end-around-carry sum is a non-zero multiple
    /// of 0xFFFF (2^16 and 2^64 are both 1 modulo 0xFFFF, so folding keeps the residue), which
    /// costs one multiply instead of four folds.
    @inlinable @inline(__always)
    public static func verifies(nativeSum acc: UInt64) -> Bool {
        acc != 0 && acc % 0xFFFF == 0
    }

    /// A native sum folded to 16 bits, still in native byte order (`.bigEndian` turns it into
    /// a wire-order sum; 0xFFFF, the verdict of a good checksum, reads the same either way).
    @inlinable @inline(__always)
    public static func foldNative(_ acc: UInt64) -> UInt16 {
        var folded = (acc & 0xFFFF_FFFF) &+ (acc >> 32)
        folded = (folded & 0xFFFF) &+ (folded >> 16)
        folded = (folded & 0xFFFF) &+ (folded >> 16)
        folded = (folded & 0xFFFF) &+ (folded >> 16)
        return UInt16(truncatingIfNeeded: folded)
    }

    /// The native sum of a few bytes (`count` a multiple of 4, at most 64: IPv4 headers, other
    /// fixed headers): 32-bit loads into a 64-bit accumulator, no carries to chase, no call; for
    /// a constant `count` the loop unrolls away.
    @inlinable @inline(__always)
    public static func shortNativeSum(_ p: UnsafeRawPointer, count: Int) -> UInt64 {
        var acc: UInt64 = 0
        var i = 0
        while i < count {
            acc &+= UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            i &+= 4
        }
        return acc
    }

    /// `sum` for a few bytes (see `shortNativeSum`), folded and in wire order, plus `initial`.
    @inlinable @inline(__always)
    public static func shortSum(_ p: UnsafeRawPointer, count: Int, initial: UInt32 = 0) -> UInt32 {
        // `initial` is in wire order and joins after the swap.
        fold(fold(initial) &+ UInt32(foldNative(shortNativeSum(p, count: count)).bigEndian))
    }

    /// The folded sum of a 20-byte IPv4 header (no options) in wire order: the complement of the
    /// checksum field's value when that field is zero, 0xFFFF when the header is intact.
    @inlinable @inline(__always)
    public static func ipv4HeaderSum(_ p: UnsafeRawPointer) -> UInt32 {
        UInt32(foldNative(shortNativeSum(p, count: 20)).bigEndian)
    }

    /// Folds a 32-bit partial sum to 16 bits with end-around carry.
    @inlinable @inline(__always)
    public static func fold(_ sum: UInt32) -> UInt32 {
        var s = (sum & 0xFFFF) &+ (sum >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        return s
    }

    /// The checksum field value for data whose partial sum is `sum`.
    @inlinable @inline(__always)
    public static func finish(_ sum: UInt32) -> UInt16 { ~UInt16(truncatingIfNeeded: fold(sum)) }

    /// The checksum of `count` bytes at `bytes`.
    @inlinable
    public static func checksum(_ bytes: UnsafeRawPointer, count: Int) -> UInt16 {
        finish(sum(bytes, count: count))
    }

    /// Partial sum of the IPv4 pseudo-header (RFC 768 / RFC 793).
    @inlinable @inline(__always)
    public static func pseudoHeaderSum(source: IPv4Address, destination: IPv4Address, protocol proto: UInt8, length: Int) -> UInt32 {
        let s = source.value, d = destination.value
        return (s >> 16) &+ (s & 0xFFFF) &+ (d >> 16) &+ (d & 0xFFFF) &+ UInt32(proto) &+ UInt32(truncatingIfNeeded: length & 0xFFFF)
    }

    /// The IPv4 pseudo-header (RFC 768 / RFC 793) as a native sum, to start `nativeSum` with:
    /// each field as it would load from packet memory.
    @inlinable @inline(__always)
    public static func pseudoHeaderNativeSum(source: IPv4Address, destination: IPv4Address, protocol proto: UInt8,
                                             length: Int) -> UInt64 {
        UInt64(source.value.bigEndian) &+ UInt64(destination.value.bigEndian) &+ UInt64(UInt16(proto).bigEndian)
            &+ UInt64(UInt16(truncatingIfNeeded: length).bigEndian)
    }

    /// The value to store (as is, `storeBytes`) in a UDP checksum field, from the native sum of
    /// the pseudo-header and the datagram with that field zero. RFC 768: a computed 0 is sent as
    /// all ones (0 means "no checksum").
    @inlinable @inline(__always)
    public static func udpChecksumField(nativeSum acc: UInt64) -> UInt16 {
        let c = ~foldNative(acc)
        return c == 0 ? 0xFFFF : c
    }

    /// RFC 1624 eqn. 3: the checksum after one 16-bit word of the covered data changed from
    /// `old` to `new`: HC' = ~(~HC + ~m + m').
    @inlinable @inline(__always)
    public static func update(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        let s = UInt32(~checksum) &+ UInt32(~old) &+ UInt32(new)
        return ~UInt16(truncatingIfNeeded: fold(s))
    }

    /// The checksum after a 32-bit field (an IPv4 address) changed from `old` to `new`.
    @inlinable @inline(__always)
    public static func update(_ checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        let s = UInt32(~checksum) &+ (~old >> 16) &+ (~old & 0xFFFF) &+ (new >> 16) &+ (new & 0xFFFF)
        return ~UInt16(truncatingIfNeeded: fold(s))
    }
}

extension NetBuf {
    /// Completes a partial L4 checksum in software: the field at `start + offset` holds only the
    /// pseudo-header's sum (a peer offloaded the checksum and no device on the way computed it:
    /// virtio-net's NEEDS_CSUM, DPDK's RX_L4_CKSUM_NONE). Sums from `start` to the end of the
    /// frame and stores the result; marks the buffer `checksumValid`. False (nothing written)
    /// when the buffer is chained, its data may not be written (a clone's view of another
    /// buffer's room, read-only memory) or the offsets do not fit the frame.
    @inlinable
    public func completePartialChecksum(start: Int, offset: Int) -> Bool {
        let length = self.length
        guard next == nil, hasWritableRoom, start >= 0, offset >= 0, start < length, offset &+ 2 <= length &- start else {
            return false
        }
        var sum = InternetChecksum.checksum(data + start, count: length &- start)
        if sum == 0 { sum = 0xFFFF }
        (data + start + offset).storeBytes(of: sum.bigEndian, as: UInt16.self)
        flags.insert(.checksumValid)
        return true
    }
}

extension NetBuf {
    /// Computes the IPv4 header checksum of this frame in software (Ethernet, optionally one VLAN
    /// tag): for devices that cannot (virtio-net has no IPv4 header offload) when a sender set
    /// `needsIPv4Checksum`. False when the frame is not IPv4, its header is not in this segment,
    /// or its data may not be written (a clone's, read-only memory).
    @inlinable
    public func fillIPv4HeaderChecksum() -> Bool {
        let length = self.length
        guard length >= 34, hasWritableRoom else { return false }
        var l2 = 14
        if data.load(fromByteOffset: 12, as: UInt16.self) == UInt16(0x8100).bigEndian { l2 = 18 }
        guard length >= l2 + 20, data.load(fromByteOffset: l2 - 2, as: UInt16.self) == UInt16(0x0800).bigEndian else { return false }
        let headerLength = Int(data.load(fromByteOffset: l2, as: UInt8.self) & 0x0F) * 4
        guard headerLength >= 20, l2 + headerLength <= length else { return false }
        (data + l2 + 10).storeBytes(of: UInt16(0), as: UInt16.self)
        let sum = InternetChecksum.checksum(data + l2, count: headerLength)
        (data + l2 + 10).storeBytes(of: sum.bigEndian, as: UInt16.self)
        return true
    }
}
