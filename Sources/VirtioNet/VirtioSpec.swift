/// Constants of the virtio 1.x specification that the driver uses (split virtqueues, net device).

/// Feature bits (a 64-bit set; bits 0-23 are device-specific, 24-40 transport and ring).
public struct VirtioFeatures: OptionSet, Equatable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable static func bit(_ n: UInt64) -> VirtioFeatures { VirtioFeatures(rawValue: 1 << n) }

    /// The device handles packets with a partial checksum (our TX checksum offload).
    public static var csum: VirtioFeatures { bit(0) }
    /// The driver handles packets with a partial checksum (RX: the device may deliver them).
    public static var guestCsum: VirtioFeatures { bit(1) }
    public static var mtu: VirtioFeatures { bit(3) }
    public static var mac: VirtioFeatures { bit(5) }
    /// RX buffers may be merged: one packet over several descriptors, counted in `num_buffers`.
    public static var mrgRxbuf: VirtioFeatures { bit(15) }
    public static var status: VirtioFeatures { bit(16) }
    public static var ctrlVq: VirtioFeatures { bit(17) }
    public static var mq: VirtioFeatures { bit(22) }
    public static var indirectDesc: VirtioFeatures { bit(28) }
    public static var eventIdx: VirtioFeatures { bit(29) }
    /// vhost-user's: the backend speaks protocol-feature negotiation (not a virtio device bit).
    public static var vhostUserProtocolFeatures: VirtioFeatures { bit(30) }
    public static var version1: VirtioFeatures { bit(32) }
    public static var accessPlatform: VirtioFeatures { bit(33) }
    public static var ringPacked: VirtioFeatures { bit(34) }
    public static var inOrder: VirtioFeatures { bit(35) }

    /// The bits by name, as the virtio spec and vhost-user spell them ("CSUM MRG_RXBUF VERSION_1"),
    /// unknown ones as "bit N".
    public var description: String {
        var parts: [String] = []
        for bit in 0..<64 where rawValue & (1 << UInt64(bit)) != 0 {
            parts.append(Self.name(ofBit: bit) ?? "bit \(bit)")
        }
        return parts.isEmpty ? "none" : parts.joined(separator: " ")
    }

    static func name(ofBit bit: Int) -> String? {
        switch bit {
        case 0: "CSUM"
        case 1: "GUEST_CSUM"
        case 2: "CTRL_GUEST_OFFLOADS"
        case 3: "MTU"
        case 5: "MAC"
        case 6: "GSO"
        case 7: "GUEST_TSO4"
        case 8: "GUEST_TSO6"
        case 9: "GUEST_ECN"
        case 10: "GUEST_UFO"
        case 11: "HOST_TSO4"
        case 12: "HOST_TSO6"
        case 13: "HOST_ECN"
        case 14: "HOST_UFO"
        case 15: "MRG_RXBUF"
        case 16: "STATUS"
        case 17: "CTRL_VQ"
        case 18: "CTRL_RX"
        case 19: "CTRL_VLAN"
        case 20: "CTRL_RX_EXTRA"
        case 21: "GUEST_ANNOUNCE"
        case 22: "MQ"
        case 23: "CTRL_MAC_ADDR"
        case 24: "NOTIFY_ON_EMPTY"
        case 26: "LOG_ALL"
        case 27: "ANY_LAYOUT"
        case 28: "INDIRECT_DESC"
        case 29: "EVENT_IDX"
        case 30: "PROTOCOL_FEATURES"
        case 32: "VERSION_1"
        case 33: "ACCESS_PLATFORM"
        case 34: "RING_PACKED"
        case 35: "IN_ORDER"
        case 36: "ORDER_PLATFORM"
        case 37: "SR_IOV"
        case 38: "NOTIFICATION_DATA"
        case 40: "RING_RESET"
        default: nil
        }
    }
}

/// Device status bits (virtio 1.x 2.1).
public enum VirtioStatus {
    public static var acknowledge: UInt8 { 1 }
    public static var driver: UInt8 { 2 }
    public static var driverOK: UInt8 { 4 }
    public static var featuresOK: UInt8 { 8 }
    public static var needsReset: UInt8 { 64 }
    public static var failed: UInt8 { 128 }
}

/// The 12-byte header in front of every frame (virtio 1.x: `num_buffers` is always present).
public enum VirtioNetHeader {
    @inlinable public static var size: Int { 12 }
    // Byte offsets.
    @inlinable public static var flags: Int { 0 }
    @inlinable public static var gsoType: Int { 1 }
    @inlinable public static var csumStart: Int { 6 }
    @inlinable public static var csumOffset: Int { 8 }
    @inlinable public static var numBuffers: Int { 10 }
    /// flags: the checksum from csum_start to the end is still to be computed, into csum_start + csum_offset.
    @inlinable public static var needsCsum: UInt8 { 1 }
    /// flags: the device checked the checksums.
    @inlinable public static var dataValid: UInt8 { 2 }
}

/// Split virtqueue ring flags.
@usableFromInline enum VirtqFlag {
    /// Descriptor: continues in `next`.
    @inlinable static var next: UInt16 { 1 }
    /// Descriptor: the device writes this buffer (RX).
    @inlinable static var write: UInt16 { 2 }
    /// Available ring: the driver does not want an interrupt (call) on used buffers.
    @inlinable static var availNoInterrupt: UInt16 { 1 }
    /// Used ring: the device does not need a notify (kick) on new available buffers.
    @inlinable static var usedNoNotify: UInt16 { 1 }
}

/// Virtio-net queue numbering: RX of pair `n` is virtqueue 2n, its TX 2n+1.
public enum VirtioNetQueue {
    @inlinable public static func rx(_ pair: Int) -> Int { 2 * pair }
    @inlinable public static func tx(_ pair: Int) -> Int { 2 * pair + 1 }
}
