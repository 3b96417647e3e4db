import CUKLinux
import Glibc
import UKNetdev
import UKNetdevLinux
import VirtioNet

/// The virtio transport of a Linux process: we are the vhost-user frontend (what QEMU or DPDK's
/// virtio_user is), the backend (e.g. `dpdk-testpmd --vdev net_vhost0,iface=SOCK`) is the device.
/// Control goes over the Unix socket; rings and buffers live in the process's `PacketMemory`,
/// which the backend maps; kicks and calls are eventfds.
///
/// Like QEMU, the frontend supplies the device's config space itself: the MAC address (when
/// one is given), and the link is up while the backend's socket is.
public struct VhostUserTransport: VirtioTransport, ~Copyable {
    var connection: VhostUserConnection
    public let memory: PacketMemory
    /// What the backend offered (GET_FEATURES), and its protocol features as negotiated.
    public let backendFeatures: UInt64
    public let protocolFeatures: UInt64
    let queuePairs: Int
    let configuredMAC: MACAddress?
    /// Per virtqueue: kick (we write) and call (the backend writes) eventfds, and whether the
    /// backend has the ring.
    @usableFromInline let kickFDs: UnsafeMutablePointer<Int32>
    let callFDs: UnsafeMutablePointer<Int32>
    let active: UnsafeMutablePointer<Bool>
    @usableFromInline let reachBase: UInt64
    @usableFromInline let reachEnd: UInt64

    /// Connects to the backend at `path` and agrees on the protocol (SET_OWNER, protocol
    /// features, the number of queues). Throws, with a message naming the path and what to do,
    /// when there is no backend or it cannot serve `queuePairs` pairs.
    /// - reconnectInterval: seconds between attempts to connect again after the backend went away
    ///   (`reconnect`); 0: never (the device then stays gone).
    public init(path: String, queuePairs: Int = 1, memory: PacketMemory, mac: MACAddress? = nil,
                reconnectInterval: Double = 0) throws(VhostUserError) {
        guard queuePairs >= 1 else { throw .invalidArgument("queue pairs must be at least 1, got \(queuePairs)") }
        var connection = try VhostUserConnection(path: path)
        let (features, negotiatedProtocol) = try Self.handshake(&connection, queuePairs: queuePairs)
        let vqs = 2 * queuePairs
        let kicks = UnsafeMutablePointer<Int32>.allocate(capacity: vqs)
        let calls = UnsafeMutablePointer<Int32>.allocate(capacity: vqs)
        var failed: Int32 = 0
        for i in 0..<vqs {
            kicks[i] = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
            calls[i] = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
            if kicks[i] < 0 || calls[i] < 0 { failed = errno }
        }
        guard failed == 0 else {
            for i in 0..<vqs {
                if kicks[i] >= 0 { close(kicks[i]) }
                if calls[i] >= 0 { close(calls[i]) }
            }
            kicks.deallocate()
            calls.deallocate()
            throw .system(path: path, call: "eventfd", errno: failed)
        }
        kickFDs = kicks
        callFDs = calls
        active = .allocate(capacity: vqs)
        active.initialize(repeating: false, count: vqs)
        self.connection = connection
        self.reconnectInterval = reconnectInterval
        self.memory = memory
        backendFeatures = features
        protocolFeatures = negotiatedProtocol
        self.queuePairs = queuePairs
        configuredMAC = mac
        reachBase = UInt64(UInt(bitPattern: memory.shared.base))
        reachEnd = reachBase + UInt64(memory.shared.size)
    }

    /// GET_FEATURES, SET_OWNER, the protocol features we use (MQ, REPLY_ACK) and the number of
    /// queue pairs: what a new connection agrees on before any memory or ring is given.
    static func handshake(_ connection: inout VhostUserConnection, queuePairs: Int) throws(VhostUserError) -> (UInt64, UInt64) {
        let features = try connection.getFeatures()
        try connection.setOwner()
        var negotiatedProtocol: UInt64 = 0
        var backendPairs = 1
        if features & VirtioFeatures.vhostUserProtocolFeatures.rawValue != 0 {
            let offered = try connection.getProtocolFeatures()
            negotiatedProtocol = offered & (VhostUserProtocolFeatures.multiqueue | VhostUserProtocolFeatures.replyAck)
            try connection.setProtocolFeatures(negotiatedProtocol)
            if negotiatedProtocol & VhostUserProtocolFeatures.multiqueue != 0 {
                backendPairs = Int(clamping: try connection.getQueueNum())
            }
        }
        guard queuePairs <= backendPairs else {
            throw .invalidArgument("the vhost-user backend at \(connection.path) serves \(backendPairs) queue pair(s), \(queuePairs) asked: "
                                   + "lower queues= or start the backend with more (net_vhost: queues=N)")
        }
        return (features, negotiatedProtocol)
    }

    let reconnectInterval: Double
    /// When the last attempt to connect again was made (CLOCK_MONOTONIC seconds).
    var lastReconnectAttempt = 0.0
    /// Connections made again after the backend went away.
    public private(set) var reconnects = 0

    /// Connects again, at most once per `reconnectInterval`, to a backend that came back at the
    /// same path, and agrees on the same features (a backend now offering fewer is refused);
    /// the driver then gives it memory and rings again (`negotiate`, `activateQueue`).
    public mutating func reconnect() throws(VirtioError) {
        guard reconnectInterval > 0 else { throw .deviceGone }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let seconds = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
        guard seconds - lastReconnectAttempt >= reconnectInterval else { throw .deviceGone }
        lastReconnectAttempt = seconds
        do {
            var fresh = try VhostUserConnection(path: connection.path)
            let (features, _) = try Self.handshake(&fresh, queuePairs: queuePairs)
            guard features & backendFeatures == backendFeatures else { throw VirtioError.deviceGone }
            connection = fresh
        } catch {
            throw .deviceGone
        }
        for index in 0..<(2 * queuePairs) { active[index] = false }
        reconnects += 1
    }

    deinit {
        for i in 0..<(2 * queuePairs) {
            close(kickFDs[i])
            close(callFDs[i])
        }
        kickFDs.deallocate()
        callFDs.deallocate()
        active.deallocate()
    }

    public var path: String { connection.path }

    /// Features only the frontend provides (its config space), never sent to the backend.
    static var frontendOnly: VirtioFeatures { [.mac, .status] }

    public var deviceFeatures: VirtioFeatures {
        var offered = VirtioFeatures(rawValue: backendFeatures).subtracting(Self.frontendOnly)
        offered.remove(.vhostUserProtocolFeatures)
        if configuredMAC != nil { offered.insert(.mac) }
        return offered
    }
    public var maxQueuePairs: Int { queuePairs }
    public func maxQueueSize(_ index: Int) -> Int { index < 2 * queuePairs ? 32768 : 0 }
    public var mac: MACAddress? { configuredMAC }
    public var linkUp: Bool { connection.isAlive() }

    public mutating func negotiate(_ features: VirtioFeatures) throws(VirtioError) {
        var toBackend = features.subtracting(Self.frontendOnly).rawValue
        toBackend |= backendFeatures & VirtioFeatures.vhostUserProtocolFeatures.rawValue
        do {
            try connection.setFeatures(toBackend)
            try connection.setMemTable([memory.shared.vhostUserRegion])
        } catch { throw Self.virtioError(error) }
    }

    public mutating func allocateDeviceMemory(bytes: Int, alignment: Int) throws(VirtioError) -> DeviceMemory {
        guard let m = memory.allocate(bytes: bytes, alignment: alignment) else { throw .deviceMemoryExhausted(bytes: bytes) }
        return m
    }

    public mutating func freeDeviceMemory(_ block: DeviceMemory) { memory.free(block) }

    public mutating func activateQueue(_ index: Int, size: Int, rings: SplitRingAddresses) throws(VirtioError) {
        guard index >= 0, index < 2 * queuePairs else { throw .queueUnavailable(index: index) }
        let i = UInt32(index)
        do {
            try connection.setVringNum(index: i, num: UInt32(size))
            try connection.setVringBase(index: i, base: 0)
            // Ring addresses in SET_VRING_ADDR are the frontend's virtual addresses; identity
            // addressing makes them equal to the device addresses.
            try connection.setVringAddr(index: i, desc: UInt64(UInt(bitPattern: rings.descriptorsPointer)),
                                        used: UInt64(UInt(bitPattern: rings.usedPointer)),
                                        avail: UInt64(UInt(bitPattern: rings.availablePointer)))
            try connection.setVringKick(index: i, fd: kickFDs[index])
            try connection.setVringCall(index: i, fd: callFDs[index])
            if backendFeatures & VirtioFeatures.vhostUserProtocolFeatures.rawValue != 0 {
                try connection.setVringEnable(index: i, enabled: true)
            }
        } catch { throw Self.virtioError(error) }
        active[index] = true
    }

    public mutating func driverReady() throws(VirtioError) {
        guard connection.isAlive() else { throw .deviceGone }
    }

    /// GET_VRING_BASE stops the backend's processing of a ring (vhost-user spec): after it, the
    /// backend touches none of our buffers. A backend already gone touches nothing either.
    public mutating func reset() {
        for index in 0..<(2 * queuePairs) where active[index] {
            active[index] = false
            if backendFeatures & VirtioFeatures.vhostUserProtocolFeatures.rawValue != 0 {
                try? connection.setVringEnable(index: UInt32(index), enabled: false)
            }
            _ = try? connection.getVringBase(index: UInt32(index))
        }
    }

    @inlinable @inline(__always)
    public func notify(_ index: Int) {
        var one: UInt64 = 1
        _ = write(kickFDs[index], &one, 8)
    }

    @inlinable @inline(__always)
    public func canReach(_ address: UInt64, length: Int) -> Bool {
        address >= reachBase && address &+ UInt64(truncatingIfNeeded: length) <= reachEnd
    }

    public func eventSource(_ index: Int) -> RxEventSource {
        index >= 0 && index < 2 * queuePairs ? .fileDescriptor(callFDs[index]) : .none
    }

    public mutating func checkAlive() -> Bool { connection.isAlive() }

    static func virtioError(_ error: VhostUserError) -> VirtioError {
        switch error {
        case .disconnected, .unusable: .deviceGone
        case .system(_, _, let e), .connectFailed(_, let e): .transport(code: e)
        default: .transport(code: 5)   // EIO
        }
    }
}

/// A virtio-net device behind a vhost-user socket.
public typealias VhostUserNetDevice = VirtioNetDevice<VhostUserTransport>

extension VirtioNetDevice where Transport == VhostUserTransport {
    /// Connects to the vhost-user backend at `path` and negotiates virtio-net features with it.
    /// Buffers the device carries must come from `memory` (`PacketMemory.makePool`).
    /// `reconnectInterval` > 0: when the backend goes away, connect again every that many seconds
    /// until it is back (and turns `options.reconnect` on).
    public static func vhostUser(path: String, queuePairs: Int = 1, memory: PacketMemory, mac: MACAddress? = nil,
                                 reconnectInterval: Double = 0,
                                 options: VirtioNetOptions = VirtioNetOptions()) throws -> VhostUserNetDevice {
        var options = options
        if reconnectInterval > 0 { options.reconnect = true }
        let transport = try VhostUserTransport(path: path, queuePairs: queuePairs, memory: memory, mac: mac,
                                               reconnectInterval: reconnectInterval)
        do {
            return try VirtioNetDevice(transport: transport, options: options)
        } catch {
            throw VhostUserDeviceError.negotiation(path: path, error)
        }
    }
}

public enum VhostUserDeviceError: Error, CustomStringConvertible {
    case negotiation(path: String, VirtioError)
    public var description: String {
        switch self {
        case .negotiation(let path, let e): "vhost-user backend at \(path): \(e)"
        }
    }
}
