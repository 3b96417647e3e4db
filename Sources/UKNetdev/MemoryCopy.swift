/// Copies `count` bytes between non-overlapping buffers. 16...128 bytes (template frames,
/// headers) are copied inline with straight-line 16-byte moves, front and back halves
/// overlapping, as DPDK's rte_memcpy does; anything else goes to memcpy. Saves the call and
/// its size dispatch on every small packet.
@inlinable @inline(__always)
public func copyPacketBytes(to destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, count: Int) {
    typealias Chunk = SIMD16<UInt8>
    @inline(__always) func move(_ offset: Int) {
        destination.storeBytes(of: source.loadUnaligned(fromByteOffset: offset, as: Chunk.self), toByteOffset: offset, as: Chunk.self)
    }
    switch count {
    case 16...32:
        move(0)
        move(count &- 16)
    case 33...64:
        move(0)
        move(16)
        move(count &- 32)
        move(count &- 16)
    case 65...128:
        move(0)
        move(16)
        move(32)
        move(48)
        move(count &- 64)
        move(count &- 48)
        move(count &- 32)
        move(count &- 16)
    default:
        destination.copyMemory(from: source, byteCount: count)
    }
}
