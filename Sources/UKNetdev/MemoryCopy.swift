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
    switch count {
    case 0:
        return
    case 1...3:
        destination.storeBytes(of: source.load(as: UInt8.self), as: UInt8.self)
        destination.storeBytes(of: source.load(fromByteOffset: count &- 1, as: UInt8.self), toByteOffset: count &- 1, as: UInt8.self)
        if count == 3 { destination.storeBytes(of: source.load(fromByteOffset: 1, as: UInt8.self), toByteOffset: 1, as: UInt8.self) }
    case 4...7:
        destination.storeBytes(of: source.loadUnaligned(as: UInt32.self), as: UInt32.self)
        destination.storeBytes(of: source.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self), toByteOffset: count &- 4, as: UInt32.self)
    case 8...15:
        destination.storeBytes(of: source.loadUnaligned(as: UInt64.self), as: UInt64.self)
        destination.storeBytes(of: source.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self), toByteOffset: count &- 8, as: UInt64.self)
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
