// vhost-user's own feature bits (the protocol features). The device features that GET/SET_FEATURES
// carry are virtio's: VirtioFeatures in VirtioNet.

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
