// ASCII helpers for text protocols carried in packets (memcached's among them): numbers,
// literals and compares over raw bytes, no String, no allocation. [Embedded]

/// Writes `value` in decimal at `p`; returns the digits written (at most 20).
@inlinable @inline(__always)
public func writeDecimal(_ value: UInt64, to p: UnsafeMutableRawPointer) -> Int {
    let n = decimalLength(value)
    var v = value
    var i = n
    repeat {
        i -= 1
        p.storeBytes(of: UInt8(truncatingIfNeeded: v % 10) &+ 48, toByteOffset: i, as: UInt8.self)
        v /= 10
    } while v != 0
    return n
}

/// Digits of `value` in decimal.
@inlinable @inline(__always)
public func decimalLength(_ value: UInt64) -> Int {
    var n = 1
    var v = value
    while v >= 10 {
        v /= 10
        n += 1
    }
    return n
}

/// Copies a literal to `p`; returns the byte after it.
@inlinable @inline(__always) @discardableResult
public func putText(_ text: StaticString, at p: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
    copyPacketBytes(to: p, from: UnsafeRawPointer(text.utf8Start), count: text.utf8CodeUnitCount)
    return p + text.utf8CodeUnitCount
}

/// Whether `n` bytes at `a` and `b` are equal: whole words, then the last word overlapping
/// (keys and literals are mostly 4 to 64 bytes).
@inlinable
public func memoryEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Bool {
    if n >= 8 {
        var i = 0
        while i &+ 8 < n {
            if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
            i &+= 8
        }
        return a.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self) == b.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
    }
    if n >= 4 {
        return a.loadUnaligned(as: UInt32.self) == b.loadUnaligned(as: UInt32.self)
            && a.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self) == b.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)
    }
    var i = 0
    while i < n {
        if a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return false }
        i &+= 1
    }
    return true
}
