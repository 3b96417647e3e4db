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

    /// Names of the bits this driver knows, for the negotiated-features line.
    public var description: String {
        let names: [(VirtioFeatures, String)] = [
            (.csum, "CSUM"), (.guestCsum, "GUEST_CSUM"), (.mtu, "MTU"), (.mac, "MAC"), (.mrgRxbuf, "MRG_RXBUF"),
            (.status, "STATUS"), (.ctrlVq, "CTRL_VQ"), (.mq, "MQ"), (.indirectDesc, "INDIRECT_DESC"),
            (.eventIdx, "EVENT_IDX"), (.vhostUserProtocolFeatures, "PROTOCOL_FEATURES"), (.version1, "VERSION_1"),
            (.accessPlatform, "ACCESS_PLATFORM"), (.ringPacked, "RING_PACKED"), (.inOrder, "IN_ORDER"),
        ]
        var parts: [String] = []
        var rest = rawValue
        for (f, name) in names where contains(f) {
            parts.append(name)
            rest &= ~f.rawValue
        }
        if rest != 0 { parts.append("0x" + String(rest, radix: 16)) }
        return parts.isEmpty ? "none" : parts.joined(separator: " ")
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
