import Glibc
import UKNetdev
import VirtioNet

/// The memory a vhost-user backend can reach: one shared mapping (memfd) for the whole process,
/// handed to every backend in SET_MEM_TABLE, out of which packet pools and virtqueue rings are
/// carved. This is what DPDK's EAL memory is to its mempools: a buffer outside it cannot be
/// given to a vhost-user device (the backend could not translate its address).
///
/// Size: `UKNET_PACKET_MEMORY_MB` (default 128). The mapping is sparse (only the pages pools and
/// rings touch are allocated), but DPDK's vhost backend takes time per page of it at
/// SET_MEM_TABLE (measured here: 0.26 s for 128 MiB, 0.9 s for 512 MiB), so it is not made
/// bigger than the programs need.
public final class PacketMemory {
    public let shared: SharedMemory
    /// Freed blocks, by size, for reuse (rings of a queue set up again, pools destroyed and made
    /// again); the bump allocator behind them never moves back.
    var freeBlocks: [Int: [UnsafeMutableRawPointer]] = [:]
    /// Blocks handed out and not freed.
    public private(set) var blocksInUse = 0

    public init(size: Int) throws(SharedMemoryError) {
        shared = try SharedMemory(size: size, name: "uknet-packet-memory")
    }

    nonisolated(unsafe) static var processMemory: PacketMemory?

    /// The process's packet memory, made on first use.
    public static func process() throws(SharedMemoryError) -> PacketMemory {
        if let m = processMemory { return m }
        var megabytes = 128
        if let text = getenv("UKNET_PACKET_MEMORY_MB").map({ String(cString: $0) }), let n = Int(text), n > 0 { megabytes = n }
        let m = try PacketMemory(size: megabytes << 20)
        processMemory = m
        return m
    }

    /// `bytes` zeroed bytes at `alignment`, or nil when the memory is full.
    public func allocate(bytes: Int, alignment: Int) -> DeviceMemory? {
        let key = bytes
        if var list = freeBlocks[key], let p = list.popLast(), UInt(bitPattern: p) % UInt(alignment) == 0 {
            freeBlocks[key] = list
            p.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            blocksInUse += 1
            return DeviceMemory(pointer: p, deviceAddress: shared.deviceAddress(of: p), size: bytes)
        }
        guard let block = shared.allocate(bytes: bytes, alignment: alignment), let p = block.baseAddress else { return nil }
        blocksInUse += 1
        return DeviceMemory(pointer: p, deviceAddress: shared.deviceAddress(of: p), size: bytes)
    }

    public func free(_ memory: DeviceMemory) {
        freeBlocks[memory.size, default: []].append(memory.pointer)
        blocksInUse -= 1
    }

    /// Whether a device given this memory can reach `length` bytes at device address `address`.
    @inlinable @inline(__always)
    public func canReach(_ address: UInt64, length: Int) -> Bool {
        address >= base && address &+ UInt64(truncatingIfNeeded: length) <= end
    }
    @usableFromInline var base: UInt64 { UInt64(UInt(bitPattern: shared.base)) }
    @usableFromInline var end: UInt64 { base + UInt64(shared.size) }

    /// A packet pool whose slab lives in this memory, so a vhost-user device can carry its
    /// buffers without a copy.
    public func makePool(count: Int, roomSize: Int = 2048, headroom: Int = 128,
                         threading: NetBufPool.Threading = .singleThread) throws -> NetBufPool {
        let bytes = NetBufPool.regionSize(count: count, roomSize: roomSize)
        guard let block = allocate(bytes: bytes, alignment: 64) else {
            throw PacketMemoryError.full(requested: bytes, size: shared.size)
        }
        do {
            return try NetBufPool(count: count, region: UnsafeMutableRawBufferPointer(start: block.pointer, count: bytes),
                                  deviceAddress: block.deviceAddress, roomSize: roomSize, headroom: headroom, threading: threading)
        } catch {
            free(block)
            throw error
        }
    }
}

extension PacketMemory {
    /// Destroys a pool `makePool` made (refused while buffers are out) and frees its slab.
    public func destroy(_ pool: NetBufPool) throws {
        let slab = pool.state.pointee.slab
        let bytes = NetBufPool.regionSize(count: pool.capacity, roomSize: pool.roomSize)
        guard shared.contains(slab, length: bytes) else { throw PacketMemoryError.poolOutsidePacketMemory }
        try pool.destroy()
        free(DeviceMemory(pointer: slab, deviceAddress: shared.deviceAddress(of: slab), size: bytes))
    }
}

public enum PacketMemoryError: Error, Equatable, CustomStringConvertible {
    case full(requested: Int, size: Int)
    /// A pool given to a vhost-user device lies outside the packet memory.
    case poolOutsidePacketMemory

    public var description: String {
        switch self {
        case .full(let requested, let size):
            "packet memory full: \(requested) more bytes asked of \(size >> 20) MiB (set UKNET_PACKET_MEMORY_MB higher)"
        case .poolOutsidePacketMemory:
            "the packet pool is not in the shared packet memory a vhost-user backend maps (make it with PacketMemory.makePool)"
        }
    }
}
