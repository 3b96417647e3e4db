import CUKHardware
import UKNetdev
import VirtioNet

/// Virtio over MMIO (virtio 1.x, 4.2): one register block per device, as QEMU's `-M microvm`
/// gives them (`-device virtio-net-device`). Both register layouts: version 2 (modern: 64-bit
/// ring addresses, QueueReady, FEATURES_OK) and version 1 (legacy, QEMU's default unless
/// `-global virtio-mmio.force-legacy=false`: page-numbered rings, GuestPageSize, no
/// FEATURES_OK; the 12-byte header then needs MRG_RXBUF, see `driverOptions`).
public struct VirtioMMIOTransport: KernelMemoryTransport, ~Copyable {
    public let base: UInt
    public let version: UInt32
    let offered: VirtioFeatures
    var negotiated: VirtioFeatures = []
    let maxSizes: (UInt32, UInt32)
    let macAddress: MACAddress?

    static var magic: UInt { 0x000 }
    static var versionRegister: UInt { 0x004 }
    static var deviceID: UInt { 0x008 }
    static var deviceFeatures: UInt { 0x010 }
    static var deviceFeaturesSelect: UInt { 0x014 }
    static var driverFeatures: UInt { 0x020 }
    static var driverFeaturesSelect: UInt { 0x024 }
    static var guestPageSize: UInt { 0x028 }
    static var queueSelect: UInt { 0x030 }
    static var queueNumMax: UInt { 0x034 }
    static var queueNum: UInt { 0x038 }
    static var queueAlign: UInt { 0x03C }
    static var queuePFN: UInt { 0x040 }
    static var queueReady: UInt { 0x044 }
    static var queueNotify: UInt { 0x050 }
    static var status: UInt { 0x070 }
    static var queueDescLow: UInt { 0x080 }
    static var queueDriverLow: UInt { 0x090 }
    static var queueDeviceLow: UInt { 0x0A0 }
    static var config: UInt { 0x100 }

    /// The register block of the first virtio-net device: from the kernel command line's
    /// `virtio_mmio.device=SIZE@BASE:IRQ` words (QEMU's microvm adds one per device for Linux
    /// kernels), else by probing microvm's 24 slots (0xFEB00000, every 0x200) for the magic
    /// value, from the last: QEMU fills them from there down, so the first probe usually hits
    /// (each probe is a VM exit).
    public static func find(commandLineBases: [UInt] = []) -> UInt? {
        let candidates = commandLineBases.isEmpty ? (0..<24).reversed().map { UInt(0xFEB0_0000) + UInt($0) * 0x200 } : commandLineBases
        for base in candidates where uk_mmio_read32(base + magic) == 0x7472_6976 && uk_mmio_read32(base + deviceID) == 1 {
            return base
        }
        return nil
    }

    /// The bases in `virtio_mmio.device=SIZE@0xBASE:IRQ` values.
    public static func bases(fromCommandLineValues values: [String]) -> [UInt] {
        var result: [UInt] = []
        for v in values {
            let bytes = Array(v.utf8)
            guard let at = bytes.firstIndex(of: UInt8(ascii: "@")) else { continue }
            var i = at + 1
            if i + 1 < bytes.count && bytes[i] == UInt8(ascii: "0") && (bytes[i + 1] | 0x20) == UInt8(ascii: "x") { i += 2 }
            var n: UInt = 0
            var digits = 0
            while i < bytes.count, let d = hexValue(bytes[i]) {
                n = n << 4 | UInt(d)
                i += 1
                digits += 1
            }
            if digits > 0 && digits <= 16 { result.append(n) }
        }
        return result
    }


    /// Takes over the device at `base`: reset, acknowledged, its features read.
    public init?(base: UInt) {
        guard uk_mmio_read32(base + Self.magic) == 0x7472_6976, uk_mmio_read32(base + Self.deviceID) == 1 else { return nil }
        let version = uk_mmio_read32(base + Self.versionRegister)
        guard version == 1 || version == 2 else { return nil }
        self.base = base
        self.version = version
        uk_mmio_write32(base + Self.status, 0)
        uk_mmio_write32(base + Self.status, UInt32(VirtioStatus.acknowledge | VirtioStatus.driver))
        offered = mmioReadFeatures(select: base + Self.deviceFeaturesSelect, value: base + Self.deviceFeatures)
        uk_mmio_write32(base + Self.queueSelect, 0)
        let rx = uk_mmio_read32(base + Self.queueNumMax)
        uk_mmio_write32(base + Self.queueSelect, 1)
        let tx = uk_mmio_read32(base + Self.queueNumMax)
        maxSizes = (rx, tx)
        if offered.contains(.mac) {
            let c = base + Self.config
            macAddress = mmioReadMAC(at: c)
        } else {
            macAddress = nil
        }
    }

    /// VERSION_1 over version 2; over legacy version 1, MRG_RXBUF for the 12-byte header.
    public var driverOptions: VirtioNetOptions {
        version == 2 ? VirtioNetOptions() : VirtioNetOptions(wanted: [.mrgRxbuf, .mac, .status, .csum, .guestCsum], required: [.mrgRxbuf])
    }

    public var deviceFeatures: VirtioFeatures { offered }
    public var maxQueuePairs: Int { 1 }
    public func maxQueueSize(_ index: Int) -> Int { pairQueueSize(maxSizes, index) }
    public var mac: MACAddress? { macAddress }
    public var linkUp: Bool {
        guard negotiated.contains(.status) else { return true }
        return uk_mmio_read16(base + Self.config + 6) & 1 != 0
    }

    public mutating func negotiate(_ features: VirtioFeatures) throws(VirtioError) {
        mmioWriteFeatures(features, select: base + Self.driverFeaturesSelect, value: base + Self.driverFeatures)
        if version == 2 {
            uk_mmio_write32(base + Self.status, UInt32(VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK))
            guard uk_mmio_read32(base + Self.status) & UInt32(VirtioStatus.featuresOK) != 0 else { throw .featuresRejected(features) }
        } else {
            uk_mmio_write32(base + Self.guestPageSize, 4096)
        }
        negotiated = features
    }

    public mutating func activateQueue(_ index: Int, size: Int, rings: SplitRingAddresses) throws(VirtioError) {
        try requireQueue(index, size: size)
        uk_mmio_write32(base + Self.queueSelect, UInt32(index))
        uk_mmio_write32(base + Self.queueNum, UInt32(size))
        if version == 2 {
            mmioWrite64(base + Self.queueDescLow, rings.descriptors)
            mmioWrite64(base + Self.queueDriverLow, rings.available)
            mmioWrite64(base + Self.queueDeviceLow, rings.used)
            uk_mmio_write32(base + Self.queueReady, 1)
        } else {
            // The legacy layout (SplitRingLayout's): the used ring on the next 4 KiB boundary.
            guard rings.descriptors & 4095 == 0 else { throw .queueUnavailable(index: index) }
            uk_mmio_write32(base + Self.queueAlign, 4096)
            uk_mmio_write32(base + Self.queuePFN, UInt32(truncatingIfNeeded: rings.descriptors >> 12))
        }
    }

    public mutating func driverReady() throws(VirtioError) {
        var status = VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.driverOK
        if version == 2 { status |= VirtioStatus.featuresOK }
        uk_mmio_write32(base + Self.status, UInt32(status))
        guard uk_mmio_read32(base + Self.status) & UInt32(VirtioStatus.failed | VirtioStatus.needsReset) == 0 else {
            throw .transport(code: 5)
        }
    }

    public mutating func reset() {
        uk_mmio_write32(base + Self.status, 0)
        uk_mmio_write32(base + Self.status, UInt32(VirtioStatus.acknowledge | VirtioStatus.driver))
        try? negotiate(negotiated)
    }

    @inline(__always)
    public func notify(_ index: Int) { uk_mmio_write32(base + Self.queueNotify, UInt32(truncatingIfNeeded: index)) }

}
