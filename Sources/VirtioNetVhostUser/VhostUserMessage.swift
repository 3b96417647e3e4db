// The vhost-user wire format (https://qemu-project.gitlab.io/qemu/interop/vhost-user.html):
// a 12-byte header (request, flags, payload size; u32 each, little-endian) and a payload whose
// layout the request decides. Everything is encoded and decoded byte by byte, bounds-checked:
// what the backend sends is untrusted input.

/// A vhost-user request code ("front-end message" in the spec).
public struct VhostUserRequest: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let getFeatures = VhostUserRequest(rawValue: 1)
    public static let setFeatures = VhostUserRequest(rawValue: 2)
    public static let setOwner = VhostUserRequest(rawValue: 3)
    public static let resetOwner = VhostUserRequest(rawValue: 4)
    public static let setMemTable = VhostUserRequest(rawValue: 5)
    public static let setLogBase = VhostUserRequest(rawValue: 6)
    public static let setLogFD = VhostUserRequest(rawValue: 7)
    public static let setVringNum = VhostUserRequest(rawValue: 8)
    public static let setVringAddr = VhostUserRequest(rawValue: 9)
    public static let setVringBase = VhostUserRequest(rawValue: 10)
    public static let getVringBase = VhostUserRequest(rawValue: 11)
    public static let setVringKick = VhostUserRequest(rawValue: 12)
    public static let setVringCall = VhostUserRequest(rawValue: 13)
    public static let setVringErr = VhostUserRequest(rawValue: 14)
    public static let getProtocolFeatures = VhostUserRequest(rawValue: 15)
    public static let setProtocolFeatures = VhostUserRequest(rawValue: 16)
    public static let getQueueNum = VhostUserRequest(rawValue: 17)
    public static let setVringEnable = VhostUserRequest(rawValue: 18)
    public static let sendRARP = VhostUserRequest(rawValue: 19)
    public static let netSetMTU = VhostUserRequest(rawValue: 20)
    public static let setBackendReqFD = VhostUserRequest(rawValue: 21)
    public static let iotlbMessage = VhostUserRequest(rawValue: 22)
    public static let setVringEndian = VhostUserRequest(rawValue: 23)
    public static let getConfig = VhostUserRequest(rawValue: 24)
    public static let setConfig = VhostUserRequest(rawValue: 25)
    public static let getInflightFD = VhostUserRequest(rawValue: 31)
    public static let setInflightFD = VhostUserRequest(rawValue: 32)
    public static let resetDevice = VhostUserRequest(rawValue: 34)
    public static let getMaxMemSlots = VhostUserRequest(rawValue: 36)
    public static let addMemRegion = VhostUserRequest(rawValue: 37)
    public static let removeMemRegion = VhostUserRequest(rawValue: 38)
    public static let setStatus = VhostUserRequest(rawValue: 39)
    public static let getStatus = VhostUserRequest(rawValue: 40)

    static let names: [UInt32: String] = [
        1: "GET_FEATURES", 2: "SET_FEATURES", 3: "SET_OWNER", 4: "RESET_OWNER", 5: "SET_MEM_TABLE",
        6: "SET_LOG_BASE", 7: "SET_LOG_FD", 8: "SET_VRING_NUM", 9: "SET_VRING_ADDR", 10: "SET_VRING_BASE",
        11: "GET_VRING_BASE", 12: "SET_VRING_KICK", 13: "SET_VRING_CALL", 14: "SET_VRING_ERR",
        15: "GET_PROTOCOL_FEATURES", 16: "SET_PROTOCOL_FEATURES", 17: "GET_QUEUE_NUM",
        18: "SET_VRING_ENABLE", 19: "SEND_RARP", 20: "NET_SET_MTU", 21: "SET_BACKEND_REQ_FD",
        22: "IOTLB_MSG", 23: "SET_VRING_ENDIAN", 24: "GET_CONFIG", 25: "SET_CONFIG",
        31: "GET_INFLIGHT_FD", 32: "SET_INFLIGHT_FD", 34: "RESET_DEVICE", 36: "GET_MAX_MEM_SLOTS",
        37: "ADD_MEM_REG", 38: "REM_MEM_REG", 39: "SET_STATUS", 40: "GET_STATUS",
    ]

    /// The spec's name, as backends log it: "VHOST_USER_GET_FEATURES".
    public var description: String {
        if let name = Self.names[rawValue] { return "VHOST_USER_" + name }
        return "vhost-user request \(rawValue)"
    }
}

/// The header's flags word.
public enum VhostUserHeaderFlags {
    /// The protocol version lives in the low two bits; this is version 1, the only one.
    public static let version1: UInt32 = 0x1
    public static let versionMask: UInt32 = 0x3
    /// Set on every message from the backend that answers one of ours.
    public static let reply: UInt32 = 0x4
    /// Asks for an acknowledgement (REPLY_ACK protocol feature).
    public static let needReply: UInt32 = 0x8
}

/// What was wrong with a reply from the backend.
public enum VhostUserMalformedReply: Error, Equatable, Sendable, CustomStringConvertible {
    /// The reply names another request than the one sent.
    case wrongRequest(received: UInt32)
    /// The reply flag (0x4) is missing.
    case notMarkedAsReply(flags: UInt32)
    case unsupportedVersion(flags: UInt32)
    case wrongPayloadSize(received: UInt32, expected: Int)
    /// A reply to one of our requests never carries descriptors.
    case unexpectedFileDescriptors(count: Int)
    /// The payload is shorter than its layout needs.
    case truncated(needed: Int, available: Int)
    /// GET_VRING_BASE answered for another ring.
    case wrongVringIndex(received: UInt32, expected: UInt32)
    /// A memory table of more regions than the protocol allows.
    case tooManyRegions(UInt32)

    public var description: String {
        switch self {
        case .wrongRequest(let r):
            "it answers \(VhostUserRequest(rawValue: r)) instead"
        case .notMarkedAsReply(let flags):
            "its flags 0x\(String(flags, radix: 16)) lack the reply bit 0x4"
        case .unsupportedVersion(let flags):
            "protocol version \(flags & VhostUserHeaderFlags.versionMask) in flags 0x\(String(flags, radix: 16)); only version 1 exists"
        case .wrongPayloadSize(let received, let expected):
            "its payload is \(received) bytes, expected \(expected)"
        case .unexpectedFileDescriptors(let count):
            "it carries \(count) file descriptor(s), which no reply to this request has"
        case .truncated(let needed, let available):
            "its payload has \(available) bytes where \(needed) are needed"
        case .wrongVringIndex(let received, let expected):
            "it is for vring \(received), not vring \(expected)"
        case .tooManyRegions(let count):
            "its memory table has \(count) regions, more than \(VhostUserMemoryTable.maxRegions)"
        }
    }
}

/// One message: header fields and the encoded payload.
public struct VhostUserMessage: Equatable, Sendable {
    public static let headerSize = 12
    /// Larger than any payload we send or expect back (a full memory table is 264 bytes, a
    /// config space 268): a header announcing more is refused before anything is allocated.
    public static let maxPayloadSize = 4096

    public var request: VhostUserRequest
    public var flags: UInt32
    public var payload: [UInt8]

    public init(request: VhostUserRequest, flags: UInt32 = VhostUserHeaderFlags.version1, payload: [UInt8] = []) {
        self.request = request
        self.flags = flags
        self.payload = payload
    }

    /// Header and payload, ready for the socket.
    public func encoded() -> [UInt8] {
        var w = LittleEndianWriter(capacity: Self.headerSize + payload.count)
        w.u32(request.rawValue)
        w.u32(flags)
        w.u32(UInt32(payload.count))
        w.bytes.append(contentsOf: payload)
        return w.bytes
    }

    /// The header's three fields (`bytes` must hold at least `headerSize` bytes).
    public static func decodeHeader(_ bytes: [UInt8]) throws(VhostUserMalformedReply) -> (request: UInt32, flags: UInt32, size: UInt32) {
        var r = LittleEndianReader(bytes)
        return (try r.u32(), try r.u32(), try r.u32())
    }
}

// MARK: - Payloads

public enum VhostUserU64 {
    public static let size = 8
    public static func encode(_ value: UInt64) -> [UInt8] {
        var w = LittleEndianWriter(capacity: size)
        w.u64(value)
        return w.bytes
    }
    public static func decode(_ bytes: [UInt8]) throws(VhostUserMalformedReply) -> UInt64 {
        var r = LittleEndianReader(bytes)
        return try r.u64()
    }
}

/// SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE, SET_VRING_ENABLE.
public struct VhostUserVringState: Equatable, Sendable {
    public static let size = 8
    public var index: UInt32
    public var num: UInt32
    public init(index: UInt32, num: UInt32) {
        self.index = index
        self.num = num
    }
    public func encoded() -> [UInt8] {
        var w = LittleEndianWriter(capacity: Self.size)
        w.u32(index)
        w.u32(num)
        return w.bytes
    }
    public static func decode(_ bytes: [UInt8]) throws(VhostUserMalformedReply) -> VhostUserVringState {
        var r = LittleEndianReader(bytes)
        return VhostUserVringState(index: try r.u32(), num: try r.u32())
    }
}

/// SET_VRING_ADDR: where a split ring's three parts are, as addresses in the frontend's
/// address space (the memory table maps them for the backend).
public struct VhostUserVringAddress: Equatable, Sendable {
    public static let size = 40
    /// `flags` bit: log writes to the used ring at `log` (live migration).
    public static let logFlag: UInt32 = 0x1
    public var index: UInt32
    public var flags: UInt32
    public var descriptorTable: UInt64
    public var usedRing: UInt64
    public var availableRing: UInt64
    public var log: UInt64

    public init(index: UInt32, flags: UInt32, descriptorTable: UInt64, usedRing: UInt64, availableRing: UInt64, log: UInt64) {
        self.index = index
        self.flags = flags
        self.descriptorTable = descriptorTable
        self.usedRing = usedRing
        self.availableRing = availableRing
        self.log = log
    }
    public func encoded() -> [UInt8] {
        var w = LittleEndianWriter(capacity: Self.size)
        w.u32(index)
        w.u32(flags)
        w.u64(descriptorTable)
        w.u64(usedRing)
        w.u64(availableRing)
        w.u64(log)
        return w.bytes
    }
    public static func decode(_ bytes: [UInt8]) throws(VhostUserMalformedReply) -> VhostUserVringAddress {
        var r = LittleEndianReader(bytes)
        return VhostUserVringAddress(index: try r.u32(), flags: try r.u32(), descriptorTable: try r.u64(),
                                     usedRing: try r.u64(), availableRing: try r.u64(), log: try r.u64())
    }
}

/// One SET_MEM_TABLE region and the file descriptor that backs it (sent alongside, not in the
/// payload). The region borrows `fd`: the caller keeps it open until the message is sent.
public struct VhostUserMemoryRegion: Equatable, Sendable {
    public static let size = 32
    public var guestPhysicalAddress: UInt64
    public var size: UInt64
    public var userspaceAddress: UInt64
    /// Where the region starts in `fd`'s file.
    public var mmapOffset: UInt64
    public var fd: Int32

    public init(guestPhysicalAddress: UInt64, size: UInt64, userspaceAddress: UInt64, mmapOffset: UInt64, fd: Int32) {
        self.guestPhysicalAddress = guestPhysicalAddress
        self.size = size
        self.userspaceAddress = userspaceAddress
        self.mmapOffset = mmapOffset
        self.fd = fd
    }
}

/// SET_MEM_TABLE's payload: u32 region count, u32 padding, then the regions.
public enum VhostUserMemoryTable {
    /// The spec's limit without CONFIGURE_MEM_SLOTS (one descriptor per region per message).
    public static let maxRegions = 8

    public static func encode(_ regions: [VhostUserMemoryRegion]) -> [UInt8] {
        precondition(regions.count <= maxRegions)
        // Only the regions present go on the wire, as QEMU and DPDK's virtio_user send it.
        var w = LittleEndianWriter(capacity: 8 + regions.count * VhostUserMemoryRegion.size)
        w.u32(UInt32(regions.count))
        w.u32(0)
        for region in regions {
            w.u64(region.guestPhysicalAddress)
            w.u64(region.size)
            w.u64(region.userspaceAddress)
            w.u64(region.mmapOffset)
        }
        return w.bytes
    }

    /// The regions of an encoded table, `fd` -1 (descriptors travel outside the payload); for
    /// tests and tools that play the backend.
    public static func decode(_ bytes: [UInt8]) throws(VhostUserMalformedReply) -> [VhostUserMemoryRegion] {
        var r = LittleEndianReader(bytes)
        let count = try r.u32()
        _ = try r.u32()
        guard count <= maxRegions else { throw .tooManyRegions(count) }
        var regions: [VhostUserMemoryRegion] = []
        for _ in 0..<count {
            regions.append(VhostUserMemoryRegion(guestPhysicalAddress: try r.u64(), size: try r.u64(),
                                                 userspaceAddress: try r.u64(), mmapOffset: try r.u64(), fd: -1))
        }
        return regions
    }
}

/// SET_VRING_KICK / SET_VRING_CALL / SET_VRING_ERR: the ring index in the low byte of a u64,
/// and bit 8 when no descriptor comes along (the ring is then polled).
public enum VhostUserVringFile {
    public static let indexMask: UInt64 = 0xFF
    public static let noFileDescriptor: UInt64 = 0x100

    public static func encode(index: UInt32, hasFileDescriptor: Bool) -> [UInt8] {
        VhostUserU64.encode(UInt64(index) & indexMask | (hasFileDescriptor ? 0 : noFileDescriptor))
    }
}

// MARK: - Little-endian bytes

struct LittleEndianWriter {
    var bytes: [UInt8]
    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }
    mutating func u32(_ v: UInt32) {
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
    }
    mutating func u64(_ v: UInt64) {
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }
}

struct LittleEndianReader {
    let bytes: [UInt8]
    var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func take(_ n: Int) throws(VhostUserMalformedReply) -> ArraySlice<UInt8> {
        guard bytes.count - offset >= n else { throw .truncated(needed: offset + n, available: bytes.count) }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }
    mutating func u32() throws(VhostUserMalformedReply) -> UInt32 {
        var v: UInt32 = 0
        for (i, b) in try take(4).enumerated() { v |= UInt32(b) << (8 * UInt32(i)) }
        return v
    }
    mutating func u64() throws(VhostUserMalformedReply) -> UInt64 {
        var v: UInt64 = 0
        for (i, b) in try take(8).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }
}
