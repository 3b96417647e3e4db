import CUKHardware
import UKNetdev
import VirtioNet

/// Legacy ("transitional") virtio over PCI: the device's registers in I/O BAR 0, rings given by
/// page frame number, a queue size the device fixes. QEMU's `virtio-net-pci` offers it unless
/// `disable-legacy=on`. Without VERSION_1 the virtio-net header is 12 bytes only with
/// MRG_RXBUF, so the driver must require MRG_RXBUF over this transport (`driverOptions`).
///
/// Memory is the kernel's own, identity-mapped: a ring's device address is its address.
public struct VirtioPCILegacyTransport: KernelMemoryTransport, ~Copyable {
    public let pci: PCIFunction
    /// I/O port base of the register block.
    let io: UInt16
    let offered: VirtioFeatures
    var negotiated: VirtioFeatures = []
    let ringSizes: (UInt16, UInt16)
    let queuePairsValue: Int
    let macAddress: MACAddress?

    // Register offsets in the legacy block (no MSI-X enabled: the device config starts at 0x14).
    static var deviceFeatures: UInt16 { 0x00 }
    static var driverFeatures: UInt16 { 0x04 }
    static var queueAddress: UInt16 { 0x08 }
    static var queueSize: UInt16 { 0x0C }
    static var queueSelect: UInt16 { 0x0E }
    static var queueNotify: UInt16 { 0x10 }
    static var status: UInt16 { 0x12 }
    static var config: UInt16 { 0x14 }

    /// Takes over the device at `pci`: BAR 0 assigned and I/O decoding and bus mastering on
    /// when firmware left them off, the device reset, acknowledged, its features read.
    /// `ioBase`: the port to give BAR 0 when it has none (aligned for any I/O BAR's size, which
    /// is at most 256 ports: no sizing needed). Nil if BAR 0 is not an I/O BAR or does not
    /// take the port.
    public init?(pci: PCIFunction, ioBase: UInt16 = 0xC000) {
        var bar = pci.barRegister(0)
        guard bar & 1 != 0 else { return nil }
        if bar & 0xFFFC == 0 {
            pci.assignIOBar(0, base: ioBase)
            bar = pci.barRegister(0)
            guard bar & 0xFFFC == UInt32(ioBase) else { return nil }
        }
        pci.enable(PCIFunction.ioSpace | PCIFunction.busMaster)
        self.pci = pci
        let io = UInt16(truncatingIfNeeded: bar & 0xFFFC)
        self.io = io
        uk_outb(io + Self.status, 0)   // reset
        uk_outb(io + Self.status, VirtioStatus.acknowledge | VirtioStatus.driver)
        let features = VirtioFeatures(rawValue: UInt64(uk_inl(io + Self.deviceFeatures)))
        offered = features
        uk_outw(io + Self.queueSelect, 0)
        let rxSize = uk_inw(io + Self.queueSize)
        uk_outw(io + Self.queueSelect, 1)
        let txSize = uk_inw(io + Self.queueSize)
        ringSizes = (rxSize, txSize)
        queuePairsValue = 1   // MQ needs the control queue; one pair here
        if features.contains(.mac) {
            // Two reads, not six: each is an exit (the legacy config space takes any width).
            let low = uk_inl(io + Self.config), high = uk_inw(io + Self.config + 4)
            macAddress = MACAddress(UInt8(truncatingIfNeeded: low), UInt8(truncatingIfNeeded: low >> 8),
                                    UInt8(truncatingIfNeeded: low >> 16), UInt8(truncatingIfNeeded: low >> 24),
                                    UInt8(truncatingIfNeeded: high), UInt8(truncatingIfNeeded: high >> 8))
        } else {
            macAddress = nil
        }
    }

    /// What the driver needs over a legacy transport: MRG_RXBUF for the 12-byte header.
    public static var driverOptions: VirtioNetOptions {
        VirtioNetOptions(wanted: [.mrgRxbuf, .mac, .status, .csum, .guestCsum], required: [.mrgRxbuf])
    }

    public var deviceFeatures: VirtioFeatures { offered }
    public var maxQueuePairs: Int { queuePairsValue }
    public func maxQueueSize(_ index: Int) -> Int { pairQueueSize(ringSizes, index) }
    public var queueSizeFixed: Bool { true }
    public var mac: MACAddress? { macAddress }
    public var linkUp: Bool {
        guard negotiated.contains(.status) else { return true }
        return uk_inw(io + Self.config + 6) & 1 != 0
    }

    public mutating func negotiate(_ features: VirtioFeatures) throws(VirtioError) {
        guard features.rawValue >> 32 == 0 else { throw .featuresRejected(features) }
        uk_outl(io + Self.driverFeatures, UInt32(truncatingIfNeeded: features.rawValue))
        negotiated = features
    }

    public mutating func activateQueue(_ index: Int, size: Int, rings: SplitRingAddresses) throws(VirtioError) {
        guard index < 2 else { throw .queueUnavailable(index: index) }
        guard size == maxQueueSize(index) else { throw .queueTooSmall(index: index, size: maxQueueSize(index)) }
        // The legacy layout: the used ring on the 4 KiB boundary after the available ring, the
        // whole given by its page number (SplitRingLayout lays rings out exactly so).
        guard rings.descriptors & 4095 == 0, rings.descriptors >> 12 <= UInt64(UInt32.max) else { throw .queueUnavailable(index: index) }
        uk_outw(io + Self.queueSelect, UInt16(index))
        uk_outl(io + Self.queueAddress, UInt32(truncatingIfNeeded: rings.descriptors >> 12))
    }

    public mutating func driverReady() throws(VirtioError) {
        uk_outb(io + Self.status, VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.driverOK)
        guard uk_inb(io + Self.status) & VirtioStatus.failed == 0 else { throw .transport(code: 5) }
    }

    /// A legacy reset forgets the features too: they are written again, ready for the queues.
    public mutating func reset() {
        uk_outb(io + Self.status, 0)
        uk_outb(io + Self.status, VirtioStatus.acknowledge | VirtioStatus.driver)
        uk_outl(io + Self.driverFeatures, UInt32(truncatingIfNeeded: negotiated.rawValue))
    }

    @inline(__always)
    public func notify(_ index: Int) {
        uk_outw(io + Self.queueNotify, UInt16(truncatingIfNeeded: index))
    }

}
