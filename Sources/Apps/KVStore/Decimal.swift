/// Writes `value` in decimal at `p`; returns the digits written (at most 20).
@inline(__always)
func writeDecimal(_ value: UInt64, to p: UnsafeMutableRawPointer) -> Int {
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

@inline(__always)
func decimalLength(_ value: UInt64) -> Int {
    var n = 1
    var v = value
    while v >= 10 {
        v /= 10
        n += 1
    }
    return n
}
