/// Copies `count` bytes between non-overlapping buffers. Up to 128 bytes (reply fragments,
/// template frames, headers) are copied inline with straight-line moves, front and back halves
/// overlapping, as DPDK's rte_memcpy does; anything longer goes to memcpy. Saves the call and
/// its size dispatch on every small packet.
@inlinable @inline(__always)
public func copyPacketBytes(to destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, count: Int) {
    typealias Chunk = SIMD16<UInt8>
    @inline(__always) func move(_ offset: Int) {
        destination.storeBytes(of: source.loadUnaligned(fromByteOffset: offset, as: Chunk.self), toByteOffset: offset, as: Chunk.self)
    }
    // Larger sizes first: replies and templates are mostly 33 to 128 bytes; a binary
    // split keeps every size within three compares.
    if count > 32 {
        if count <= 64 {
            move(0)
            move(16)
            move(count &- 32)
            move(count &- 16)
        } else if count <= 128 {
            move(0)
            move(16)
            move(32)
            move(48)
            move(count &- 64)
            move(count &- 48)
            move(count &- 32)
            move(count &- 16)
        } else {
            destination.copyMemory(from: source, byteCount: count)
        }
    } else if count >= 16 {
        move(0)
        move(count &- 16)
    } else if count >= 8 {
        destination.storeBytes(of: source.loadUnaligned(as: UInt64.self), as: UInt64.self)
        destination.storeBytes(of: source.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self), toByteOffset: count &- 8, as: UInt64.self)
    } else if count >= 4 {
        destination.storeBytes(of: source.loadUnaligned(as: UInt32.self), as: UInt32.self)
        destination.storeBytes(of: source.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self), toByteOffset: count &- 4, as: UInt32.self)
    } else if count > 0 {
        destination.storeBytes(of: source.load(as: UInt8.self), as: UInt8.self)
        destination.storeBytes(of: source.load(fromByteOffset: count &- 1, as: UInt8.self), toByteOffset: count &- 1, as: UInt8.self)
        if count == 3 { destination.storeBytes(of: source.load(fromByteOffset: 1, as: UInt8.self), toByteOffset: 1, as: UInt8.self) }
    }
}
