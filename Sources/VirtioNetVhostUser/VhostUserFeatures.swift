// Feature bits a vhost-user net frontend negotiates, as masks. The virtio ones are here because
// GET/SET_FEATURES carries them; VHOST_USER_F_PROTOCOL_FEATURES and the protocol features are
// vhost-user's own.

/// Device feature bits (GET_FEATURES / SET_FEATURES).
public enum VhostUserFeatures {
    /// VIRTIO_NET_F_CSUM: the device takes packets with partial checksums.
    public static let checksum: UInt64 = 1 << 0
    /// VIRTIO_NET_F_GUEST_CSUM: the driver takes packets with partial checksums.
    public static let guestChecksum: UInt64 = 1 << 1
    /// VIRTIO_NET_F_MAC: the device has a MAC address in its config space.
    public static let mac: UInt64 = 1 << 5
    /// VIRTIO_NET_F_MRG_RXBUF: a received frame may span several RX buffers.
    public static let mergeableRxBuffers: UInt64 = 1 << 15
    /// VIRTIO_NET_F_STATUS: link status in the config space.
    public static let status: UInt64 = 1 << 16
    /// VIRTIO_NET_F_CTRL_VQ: a control virtqueue.
    public static let controlQueue: UInt64 = 1 << 17
    /// VIRTIO_NET_F_MQ: several RX/TX queue pairs.
    public static let multiqueue: UInt64 = 1 << 22
    /// VIRTIO_RING_F_INDIRECT_DESC.
    public static let indirectDescriptors: UInt64 = 1 << 28
    /// VIRTIO_RING_F_EVENT_IDX.
    public static let eventIndex: UInt64 = 1 << 29
    /// VHOST_USER_F_PROTOCOL_FEATURES: GET/SET_PROTOCOL_FEATURES exist, and rings start disabled
    /// until SET_VRING_ENABLE.
    public static let protocolFeatures: UInt64 = 1 << 30
    /// VIRTIO_F_VERSION_1: modern (little-endian, 12-byte net header) virtio.
    public static let version1: UInt64 = 1 << 32
    /// VIRTIO_F_IN_ORDER: buffers are used in the order they were made available.
    public static let inOrder: UInt64 = 1 << 35

    static let names: [(UInt64, String)] = [
        (checksum, "CSUM"), (guestChecksum, "GUEST_CSUM"), (1 << 2, "CTRL_GUEST_OFFLOADS"), (1 << 3, "MTU"),
        (mac, "MAC"), (1 << 6, "GSO"), (1 << 7, "GUEST_TSO4"), (1 << 8, "GUEST_TSO6"), (1 << 9, "GUEST_ECN"), (1 << 10, "GUEST_UFO"),
        (1 << 11, "HOST_TSO4"), (1 << 12, "HOST_TSO6"), (1 << 13, "HOST_ECN"), (1 << 14, "HOST_UFO"),
        (mergeableRxBuffers, "MRG_RXBUF"), (status, "STATUS"), (controlQueue, "CTRL_VQ"), (1 << 18, "CTRL_RX"),
        (1 << 19, "CTRL_VLAN"), (1 << 20, "CTRL_RX_EXTRA"), (1 << 21, "GUEST_ANNOUNCE"), (multiqueue, "MQ"), (1 << 23, "CTRL_MAC_ADDR"),
        (1 << 24, "NOTIFY_ON_EMPTY"), (1 << 26, "LOG_ALL"), (1 << 27, "ANY_LAYOUT"), (indirectDescriptors, "INDIRECT_DESC"),
        (eventIndex, "EVENT_IDX"), (protocolFeatures, "PROTOCOL_FEATURES"), (version1, "VERSION_1"),
        (1 << 33, "ACCESS_PLATFORM"), (1 << 34, "RING_PACKED"), (inOrder, "IN_ORDER"),
        (1 << 36, "ORDER_PLATFORM"), (1 << 37, "SR_IOV"), (1 << 38, "NOTIFICATION_DATA"), (1 << 40, "RING_RESET"),
    ]

    /// The bits of `mask` by name ("MRG_RXBUF|VERSION_1"), unknown ones as "bit N".
    public static func describe(_ mask: UInt64) -> String {
        describeBits(mask, names)
    }
}

/// Protocol feature bits (GET_PROTOCOL_FEATURES / SET_PROTOCOL_FEATURES).
public enum VhostUserProtocolFeatures {
    public static let multiqueue: UInt64 = 1 << 0
    public static let logSharedMemoryFD: UInt64 = 1 << 1
    public static let rarp: UInt64 = 1 << 2
    /// REPLY_ACK: a message flagged need_reply is answered with a u64 status (0: success).
    public static let replyAck: UInt64 = 1 << 3
    public static let mtu: UInt64 = 1 << 4
    public static let backendRequest: UInt64 = 1 << 5
    public static let crossEndian: UInt64 = 1 << 6
    public static let cryptoSession: UInt64 = 1 << 7
    public static let pagefault: UInt64 = 1 << 8
    public static let config: UInt64 = 1 << 9
    public static let backendSendFD: UInt64 = 1 << 10
    public static let hostNotifier: UInt64 = 1 << 11
    public static let inflightSharedMemoryFD: UInt64 = 1 << 12
    public static let resetDevice: UInt64 = 1 << 13
    public static let inbandNotifications: UInt64 = 1 << 14
    public static let configureMemSlots: UInt64 = 1 << 15
    public static let status: UInt64 = 1 << 16

    static let names: [(UInt64, String)] = [
        (multiqueue, "MQ"), (logSharedMemoryFD, "LOG_SHMFD"), (rarp, "RARP"), (replyAck, "REPLY_ACK"),
        (mtu, "NET_MTU"), (backendRequest, "BACKEND_REQ"), (crossEndian, "CROSS_ENDIAN"),
        (cryptoSession, "CRYPTO_SESSION"), (pagefault, "PAGEFAULT"), (config, "CONFIG"),
        (backendSendFD, "BACKEND_SEND_FD"), (hostNotifier, "HOST_NOTIFIER"),
        (inflightSharedMemoryFD, "INFLIGHT_SHMFD"), (resetDevice, "RESET_DEVICE"),
        (inbandNotifications, "INBAND_NOTIFICATIONS"), (configureMemSlots, "CONFIGURE_MEM_SLOTS"),
        (status, "STATUS"),
    ]

    public static func describe(_ mask: UInt64) -> String {
        describeBits(mask, names)
    }
}

func describeBits(_ mask: UInt64, _ names: [(UInt64, String)]) -> String {
    var parts: [String] = []
    for bit in 0..<64 where mask & (1 << UInt64(bit)) != 0 {
        let m: UInt64 = 1 << UInt64(bit)
        parts.append(names.first { $0.0 == m }?.1 ?? "bit \(bit)")
    }
    return parts.isEmpty ? "none" : parts.joined(separator: "|")
}
