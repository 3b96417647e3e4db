import CUKHardware
import UKNetdev
import VirtioNet

/// Modern virtio over PCI (virtio 1.x, 4.1.4): the registers in memory BARs, found through the
/// vendor capabilities (common, notify, device config); 64-bit ring addresses; FEATURES_OK.
/// QEMU's `virtio-net-pci,disable-legacy=on` (and every virtio device on PCIe) is this.
///
/// Memory is the kernel's own, identity-mapped: a ring's device address is its address, and
/// the BARs must lie in mapped (uncached) memory below 4 GiB.
public struct VirtioPCIModernTransport: KernelMemoryTransport, ~Copyable {
    public let pci: PCIFunction
    let common: UInt
    let notifyBase: UInt
    let notifyMultiplier: UInt32
    let deviceConfig: UInt
    let offered: VirtioFeatures
    var negotiated: VirtioFeatures = []
    let pairs: Int
    let maxSizes: (UInt16, UInt16)
    /// Where each queue's notify register is (set when the queue is activated).
    var notifyAddress: (UInt, UInt) = (0, 0)
    let macAddress: MACAddress?

    // Common configuration structure offsets.
    static var deviceFeatureSelect: UInt { 0x00 }
    static var deviceFeature: UInt { 0x04 }
    static var driverFeatureSelect: UInt { 0x08 }
    static var driverFeature: UInt { 0x0C }
    static var numQueues: UInt { 0x12 }
    static var deviceStatus: UInt { 0x14 }
    static var queueSelect: UInt { 0x16 }
    static var queueSize: UInt { 0x18 }
    static var queueMSIXVector: UInt { 0x1A }
    static var queueEnable: UInt { 0x1C }
    static var queueNotifyOff: UInt { 0x1E }
    static var queueDesc: UInt { 0x20 }
    static var queueDriver: UInt { 0x28 }
    static var queueDevice: UInt { 0x30 }


    /// Takes over the device: memory decoding and bus mastering on, unassigned memory BARs
    /// placed from `memoryWindow` (qboot assigns none), the capabilities read, the device reset
    /// and acknowledged, its features read. Nil when it lacks the modern capabilities.
    public init?(pci: PCIFunction, memoryWindow: UInt32 = 0xE000_0000) {
        var bars: [UInt] = [0, 0, 0, 0, 0, 0]
        var nextWindow = memoryWindow
        var commonAt: (bar: Int, offset: UInt)?
        var notifyAt: (bar: Int, offset: UInt, multiplier: UInt32)?
        var deviceAt: (bar: Int, offset: UInt)?
        pci.capabilities { id, cap in
            guard id == 0x09 else { return }   // vendor-specific: a virtio structure
            let type = PCIConfig.read8(pci.address, cap + 3)
            let bar = Int(PCIConfig.read8(pci.address, cap + 4))
            let offset = UInt(PCIConfig.read32(pci.address, cap + 8))
            guard bar < 6 else { return }
            switch type {
            case 1: if commonAt == nil { commonAt = (bar, offset) }
            case 2: if notifyAt == nil { notifyAt = (bar, offset, PCIConfig.read32(pci.address, cap + 16)) }
            case 4: if deviceAt == nil { deviceAt = (bar, offset) }
            default: break
            }
        }
        guard let commonAt, let notifyAt else { return nil }
        var used: [Int] = []
        for index in [commonAt.bar, notifyAt.bar, deviceAt?.bar ?? commonAt.bar] where !used.contains(index) { used.append(index) }
        for index in used {
            var b = pci.bar(index)
            guard !b.isIO, b.size > 0 else { return nil }
            if b.base == 0 {
                // Naturally aligned, in the 32-bit hole (a 64-bit BAR's high half stays 0).
                let size = UInt32(truncatingIfNeeded: b.size)
                nextWindow = (nextWindow + size - 1) & ~(size - 1)
                pci.assignMemoryBar(index, base: nextWindow)
                if b.is64Bit { PCIConfig.write32(pci.address, UInt8(0x14 + 4 * index), 0) }
                nextWindow += size
                b = pci.bar(index)
            }
            guard b.base < 0x1_0000_0000 else { return nil }   // the boot maps 4 GiB
            bars[index] = UInt(b.base)
        }
        pci.enable(PCIFunction.memorySpace | PCIFunction.busMaster)
        self.pci = pci
        common = bars[commonAt.bar] + commonAt.offset
        notifyBase = bars[notifyAt.bar] + notifyAt.offset
        notifyMultiplier = notifyAt.multiplier
        deviceConfig = deviceAt.map { bars[$0.bar] + $0.offset } ?? 0
        uk_mmio_write8(common + Self.deviceStatus, 0)
        var spins = 0
        while uk_mmio_read8(common + Self.deviceStatus) != 0 && spins < 1000 { spins += 1 }   // reset takes effect
        uk_mmio_write8(common + Self.deviceStatus, VirtioStatus.acknowledge | VirtioStatus.driver)
        offered = mmioReadFeatures(select: common + Self.deviceFeatureSelect, value: common + Self.deviceFeature)
        pairs = 1   // MQ needs the control queue; one pair here
        uk_mmio_write16(common + Self.queueSelect, 0)
        let rx = uk_mmio_read16(common + Self.queueSize)
        uk_mmio_write16(common + Self.queueSelect, 1)
        let tx = uk_mmio_read16(common + Self.queueSize)
        maxSizes = (rx, tx)
        if offered.contains(.mac) && deviceConfig != 0 {
            let d = deviceConfig
            macAddress = mmioReadMAC(at: d)
        } else {
            macAddress = nil
        }
    }

    public var deviceFeatures: VirtioFeatures { offered }
    public var maxQueuePairs: Int { pairs }
    public func maxQueueSize(_ index: Int) -> Int { pairQueueSize(maxSizes, index) }
    public var mac: MACAddress? { macAddress }
    public var linkUp: Bool {
        guard negotiated.contains(.status), deviceConfig != 0 else { return true }
        return uk_mmio_read16(deviceConfig + 6) & 1 != 0
    }

    public mutating func negotiate(_ features: VirtioFeatures) throws(VirtioError) {
        mmioWriteFeatures(features, select: common + Self.driverFeatureSelect, value: common + Self.driverFeature)
        let status = VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK
        uk_mmio_write8(common + Self.deviceStatus, status)
        guard uk_mmio_read8(common + Self.deviceStatus) & VirtioStatus.featuresOK != 0 else { throw .featuresRejected(features) }
        negotiated = features
    }

    public mutating func activateQueue(_ index: Int, size: Int, rings: SplitRingAddresses) throws(VirtioError) {
        try requireQueue(index, size: size)
        uk_mmio_write16(common + Self.queueSelect, UInt16(index))
        uk_mmio_write16(common + Self.queueSize, UInt16(size))
        uk_mmio_write16(common + Self.queueMSIXVector, 0xFFFF)   // no interrupts: we poll
        mmioWrite64(common + Self.queueDesc, rings.descriptors)
        mmioWrite64(common + Self.queueDriver, rings.available)
        mmioWrite64(common + Self.queueDevice, rings.used)
        let off = UInt(uk_mmio_read16(common + Self.queueNotifyOff))
        let address = notifyBase + off * UInt(notifyMultiplier)
        if index == 0 { notifyAddress.0 = address } else { notifyAddress.1 = address }
        uk_mmio_write16(common + Self.queueEnable, 1)
    }

    public mutating func driverReady() throws(VirtioError) {
        uk_mmio_write8(common + Self.deviceStatus,
                       VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK | VirtioStatus.driverOK)
        guard uk_mmio_read8(common + Self.deviceStatus) & (VirtioStatus.failed | VirtioStatus.needsReset) == 0 else {
            throw .transport(code: 5)
        }
    }

    /// Reset, then acknowledged and the same features agreed again, ready for the queues.
    public mutating func reset() {
        uk_mmio_write8(common + Self.deviceStatus, 0)
        var spins = 0
        while uk_mmio_read8(common + Self.deviceStatus) != 0 && spins < 1000 { spins += 1 }
        uk_mmio_write8(common + Self.deviceStatus, VirtioStatus.acknowledge | VirtioStatus.driver)
        try? negotiate(negotiated)
    }

    @inline(__always)
    public func notify(_ index: Int) {
        uk_mmio_write16(index == 0 ? notifyAddress.0 : notifyAddress.1, UInt16(truncatingIfNeeded: index))
    }

}
