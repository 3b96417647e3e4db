import CUKHardware
import UKNetdev
import VirtioNet

/// A transport inside the guest kernel: memory is the kernel's own and mapped 1:1, so device
/// memory is any zeroed allocation and its device address is its address; the device reaches all
/// of it. The PCI and MMIO transports take these from here.
public protocol KernelMemoryTransport: VirtioTransport, ~Copyable {}

extension KernelMemoryTransport where Self: ~Copyable {
    public mutating func allocateDeviceMemory(bytes: Int, alignment: Int) throws(VirtioError) -> DeviceMemory {
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: max(alignment, 16))
        p.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return DeviceMemory(pointer: p, deviceAddress: UInt64(UInt(bitPattern: p)), size: bytes)
    }

    public mutating func freeDeviceMemory(_ memory: DeviceMemory) { memory.pointer.deallocate() }

    @inline(__always)
    public func canReach(_ address: UInt64, length: Int) -> Bool { true }

    /// What every guest transport checks before activating a queue: one of the first pair (the
    /// control queue is not used), and no larger than the device allows.
    func requireQueue(_ index: Int, size: Int) throws(VirtioError) {
        guard index < 2 else { throw .queueUnavailable(index: index) }
        guard size <= maxQueueSize(index) else { throw .queueTooSmall(index: index, size: maxQueueSize(index)) }
    }
}

/// A 64-bit device register written as two 32-bit MMIO writes, low half first (virtio 1.x: ring
/// addresses in the common configuration and the MMIO register block).
func mmioWrite64(_ at: UInt, _ value: UInt64) {
    uk_mmio_write32(at, UInt32(truncatingIfNeeded: value))
    uk_mmio_write32(at + 4, UInt32(truncatingIfNeeded: value >> 32))
}

/// The 64 feature bits behind a select register (virtio 1.x, PCI common configuration and MMIO
/// alike): word 0, then word 1.
func mmioReadFeatures(select: UInt, value: UInt) -> VirtioFeatures {
    uk_mmio_write32(select, 0)
    let low = UInt64(uk_mmio_read32(value))
    uk_mmio_write32(select, 1)
    return VirtioFeatures(rawValue: UInt64(uk_mmio_read32(value)) << 32 | low)
}

func mmioWriteFeatures(_ features: VirtioFeatures, select: UInt, value: UInt) {
    uk_mmio_write32(select, 0)
    uk_mmio_write32(value, UInt32(truncatingIfNeeded: features.rawValue))
    uk_mmio_write32(select, 1)
    uk_mmio_write32(value, UInt32(truncatingIfNeeded: features.rawValue >> 32))
}

/// The MAC address at the start of a virtio-net device configuration in memory space.
func mmioReadMAC(at config: UInt) -> MACAddress {
    MACAddress(uk_mmio_read8(config), uk_mmio_read8(config + 1), uk_mmio_read8(config + 2),
               uk_mmio_read8(config + 3), uk_mmio_read8(config + 4), uk_mmio_read8(config + 5))
}

/// A guest transport's ring size limit for queue `index` of its one pair (RX 0, TX 1), 0 beyond it.
func pairQueueSize<Size: BinaryInteger>(_ sizes: (Size, Size), _ index: Int) -> Int {
    switch index {
    case 0: Int(sizes.0)
    case 1: Int(sizes.1)
    default: 0
    }
}
