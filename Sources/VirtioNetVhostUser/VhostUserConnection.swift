#if canImport(Glibc)
import Glibc
#endif
import CUKLinux

public enum VhostUserError: Error, Equatable, CustomStringConvertible {
    /// Nothing at the path (or a directory on the way is missing).
    case noSocket(path: String)
    /// The socket file exists but nobody listens on it: a backend that died and left it behind.
    case connectionRefused(path: String)
    case notASocket(path: String)
    case pathTooLong(path: String, limit: Int)
    case permissionDenied(path: String)
    case connectFailed(path: String, errno: Int32)
    /// A system call failed (`call` names it).
    case system(path: String, call: String, errno: Int32)
    case disconnected(path: String)
    case timeout(request: VhostUserRequest, path: String, after: Duration)
    case malformedReply(request: VhostUserRequest, path: String, problem: VhostUserMalformedReply)
    /// The backend answered a need_reply acknowledgement with a non-zero status.
    case rejected(request: VhostUserRequest, path: String, status: UInt64)
    /// The call's own arguments cannot be sent (too many regions, a bad fd, ...).
    case invalidArgument(String)
    /// An earlier timeout or bad reply left the byte stream at an unknown point.
    case unusable(path: String, cause: String)

    public var description: String {
        switch self {
        case .noSocket(let path):
            "no vhost-user socket at \(path): start the backend first (e.g. dpdk-testpmd --vdev net_vhost0,iface=\(path))"
        case .connectionRefused(let path):
            "nothing accepts connections on the vhost-user socket \(path) (the file exists: a backend that exited and left it behind?): restart the backend"
        case .notASocket(let path):
            "\(path) is not a unix socket: give the path of the vhost-user backend's socket"
        case .pathTooLong(let path, let limit):
            "the vhost-user socket path \(path) is \(path.utf8.count) bytes; a unix socket path has at most \(limit): use a shorter one"
        case .permissionDenied(let path):
            "permission denied connecting to the vhost-user socket \(path): connecting needs write permission on it and search permission on its directories (run as the backend's user, or change its mode)"
        case .connectFailed(let path, let e):
            "could not connect to the vhost-user socket \(path): \(errorText(e))"
        case .system(let path, let call, let e):
            "vhost-user connection to \(path): \(call) failed: \(errorText(e))"
        case .disconnected(let path):
            "vhost-user backend at \(path) closed the connection"
        case .timeout(let request, let path, let after):
            "vhost-user backend at \(path) did not answer \(request) within \(after)"
        case .malformedReply(let request, let path, let problem):
            "vhost-user backend at \(path) sent a malformed reply to \(request): \(problem)"
        case .rejected(let request, let path, let status):
            "vhost-user backend at \(path) rejected \(request) (status \(status))"
        case .invalidArgument(let why):
            "vhost-user: \(why)"
        case .unusable(let path, let cause):
            "the vhost-user connection to \(path) is out of step after an earlier error (\(cause)): reconnect"
        }
    }
}

func errorText(_ e: Int32) -> String { String(cString: strerror(e)) }

/// The frontend end of a vhost-user connection (what QEMU or DPDK's virtio_user are toward a
/// backend such as DPDK's net_vhost): requests go out one at a time, each answered (GET_*, and
/// every other one once REPLY_ACK is negotiated) before the next. One live handle per socket.
public struct VhostUserConnection: ~Copyable, Sendable {
    public let path: String
    /// How long a reply may take (SO_RCVTIMEO; also SO_SNDTIMEO, for a backend that stops
    /// reading).
    public let replyTimeout: Duration
    private let fd: Int32
    /// What SET_PROTOCOL_FEATURES last set.
    public private(set) var protocolFeatures: UInt64 = 0
    /// The error that left the byte stream at an unknown point; later calls fail at once.
    private var broken: VhostUserError?

    public var socketFD: Int32 { fd }

    public init(path: String, replyTimeout: Duration = .seconds(5)) throws(VhostUserError) {
        guard replyTimeout > .zero else { throw .invalidArgument("a reply timeout must be positive, not \(replyTimeout)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let limit = MemoryLayout.size(ofValue: address.sun_path) - 1   // room for the NUL
        let pathBytes = Array(path.utf8)
        guard !pathBytes.contains(0) else { throw .noSocket(path: path) }
        guard pathBytes.count <= limit else { throw .pathTooLong(path: path, limit: limit) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }

        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(path: path, call: "socket", errno: errno) }
        var rc: Int32
        repeat {
            rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        } while rc != 0 && errno == EINTR
        // EISCONN: a connect interrupted above completed in the background.
        if rc != 0 && errno != EISCONN {
            let e = errno
            close(fd)
            switch e {
            case ENOENT, ENOTDIR: throw .noSocket(path: path)
            case EACCES, EPERM: throw .permissionDenied(path: path)
            case ECONNREFUSED:
                // Linux refuses a connect to a non-socket file the same way.
                var info = stat()
                if stat(path, &info) == 0 && info.st_mode & S_IFMT != S_IFSOCK { throw .notASocket(path: path) }
                throw .connectionRefused(path: path)
            default: throw .connectFailed(path: path, errno: e)
            }
        }

        let seconds = replyTimeout.components.seconds
        let microseconds = replyTimeout.components.attoseconds / 1_000_000_000_000
        var limitTime = timeval(tv_sec: Int(clamping: seconds), tv_usec: Int(max(microseconds, seconds == 0 ? 1 : 0)))
        for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
            guard setsockopt(fd, SOL_SOCKET, option, &limitTime, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                let e = errno
                close(fd)
                throw .system(path: path, call: "setsockopt(SO_RCVTIMEO/SO_SNDTIMEO)", errno: e)
            }
        }
        self.fd = fd
        self.path = path
        self.replyTimeout = replyTimeout
    }

    deinit { close(fd) }

    /// Whether the backend still has its end open: a non-blocking look, for a device that polls
    /// its rings and would otherwise never notice that the backend died.
    public func isAlive() -> Bool {
        if case .disconnected = broken { return false }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN) | uk_pollrdhup(), revents: 0)
        var ready: Int32
        repeat { ready = poll(&pfd, 1, 0) } while ready < 0 && errno == EINTR
        guard ready > 0 else { return ready == 0 }
        if pfd.revents & (Int16(POLLHUP) | Int16(POLLERR) | Int16(POLLNVAL) | uk_pollrdhup()) != 0 { return false }
        if pfd.revents & Int16(POLLIN) != 0 {
            // Readable: either unsolicited bytes (alive) or end of file (closed).
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            return n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))
        }
        return true
    }

    // MARK: - Requests

    public mutating func getFeatures() throws(VhostUserError) -> UInt64 {
        try getU64(.getFeatures)
    }

    public mutating func setFeatures(_ features: UInt64) throws(VhostUserError) {
        try send(.setFeatures, payload: VhostUserU64.encode(features))
    }

    public mutating func getProtocolFeatures() throws(VhostUserError) -> UInt64 {
        try getU64(.getProtocolFeatures)
    }

    /// Also turns on acknowledgements for the messages that follow, if `features` has
    /// REPLY_ACK.
    public mutating func setProtocolFeatures(_ features: UInt64) throws(VhostUserError) {
        try send(.setProtocolFeatures, payload: VhostUserU64.encode(features))
        protocolFeatures = features
    }

    public mutating func setOwner() throws(VhostUserError) {
        try send(.setOwner)
    }

    public mutating func resetOwner() throws(VhostUserError) {
        try send(.resetOwner)
    }

    /// The number of queues the backend supports (needs the MQ protocol feature offered).
    public mutating func getQueueNum() throws(VhostUserError) -> UInt64 {
        try getU64(.getQueueNum)
    }

    /// Every region's `fd` goes along as SCM_RIGHTS, in region order; the backend maps them.
    public mutating func setMemTable(_ regions: [VhostUserMemoryRegion]) throws(VhostUserError) {
        guard !regions.isEmpty, regions.count <= VhostUserMemoryTable.maxRegions else {
            throw .invalidArgument("a memory table has 1 to \(VhostUserMemoryTable.maxRegions) regions, not \(regions.count)")
        }
        for region in regions where region.fd < 0 || region.size == 0 {
            throw .invalidArgument("memory region at 0x\(String(region.userspaceAddress, radix: 16)) has fd \(region.fd) and size \(region.size)")
        }
        try send(.setMemTable, payload: VhostUserMemoryTable.encode(regions), fds: regions.map(\.fd))
    }

    /// The ring's size in descriptors.
    public mutating func setVringNum(index: UInt32, num: UInt32) throws(VhostUserError) {
        try send(.setVringNum, payload: VhostUserVringState(index: index, num: num).encoded())
    }

    /// Where the backend starts reading the available ring.
    public mutating func setVringBase(index: UInt32, base: UInt32) throws(VhostUserError) {
        try send(.setVringBase, payload: VhostUserVringState(index: index, num: base).encoded())
    }

    /// Stops the ring and returns the backend's next available-ring index.
    public mutating func getVringBase(index: UInt32) throws(VhostUserError) -> UInt32 {
        let request = VhostUserRequest.getVringBase
        let reply = try exchange(request, payload: VhostUserVringState(index: index, num: 0).encoded(),
                                 replySize: VhostUserVringState.size)
        let state = try decoded(request) { () throws(VhostUserMalformedReply) in try VhostUserVringState.decode(reply) }
        guard state.index == index else {
            throw fail(.malformedReply(request: request, path: path, problem: .wrongVringIndex(received: state.index, expected: index)))
        }
        return state.num
    }

    /// The ring's three parts, as addresses in our address space (identity addressing: the
    /// memory table maps them one to one).
    public mutating func setVringAddr(index: UInt32, flags: UInt32 = 0, desc: UInt64, used: UInt64, avail: UInt64, log: UInt64 = 0) throws(VhostUserError) {
        let address = VhostUserVringAddress(index: index, flags: flags, descriptorTable: desc,
                                            usedRing: used, availableRing: avail, log: log)
        try send(.setVringAddr, payload: address.encoded())
    }

    /// The eventfd we write to tell the backend there is work on the ring; nil: the backend
    /// polls the ring.
    public mutating func setVringKick(index: UInt32, fd: Int32?) throws(VhostUserError) {
        try sendVringFile(.setVringKick, index: index, fd: fd)
    }

    /// The eventfd the backend writes after using buffers; nil: we poll the used ring.
    public mutating func setVringCall(index: UInt32, fd: Int32?) throws(VhostUserError) {
        try sendVringFile(.setVringCall, index: index, fd: fd)
    }

    /// Rings start disabled once PROTOCOL_FEATURES is negotiated; the backend processes a ring
    /// only after it is enabled.
    public mutating func setVringEnable(index: UInt32, enabled: Bool) throws(VhostUserError) {
        try send(.setVringEnable, payload: VhostUserVringState(index: index, num: enabled ? 1 : 0).encoded())
    }

    // MARK: - Messages on the socket

    private mutating func sendVringFile(_ request: VhostUserRequest, index: UInt32, fd: Int32?) throws(VhostUserError) {
        guard index <= UInt32(VhostUserVringFile.indexMask) else {
            throw .invalidArgument("\(request): vring index \(index) does not fit the message's 8 bits")
        }
        if let fd, fd < 0 { throw .invalidArgument("\(request): fd \(fd) for vring \(index)") }
        try send(request, payload: VhostUserVringFile.encode(index: index, hasFileDescriptor: fd != nil), fds: fd.map { [$0] } ?? [])
    }

    private mutating func getU64(_ request: VhostUserRequest) throws(VhostUserError) -> UInt64 {
        let reply = try exchange(request, payload: [], replySize: VhostUserU64.size)
        return try decoded(request) { () throws(VhostUserMalformedReply) in try VhostUserU64.decode(reply) }
    }

    private mutating func decoded<T>(_ request: VhostUserRequest, _ body: () throws(VhostUserMalformedReply) -> T) throws(VhostUserError) -> T {
        do {
            return try body()
        } catch {
            throw fail(.malformedReply(request: request, path: path, problem: error))
        }
    }

    /// A message the backend answers only when asked to: with REPLY_ACK negotiated it is asked,
    /// and a non-zero status is an error.
    private mutating func send(_ request: VhostUserRequest, payload: [UInt8] = [], fds: [Int32] = []) throws(VhostUserError) {
        guard protocolFeatures & VhostUserProtocolFeatures.replyAck != 0 else {
            try checkUsable()
            try write(VhostUserMessage(request: request, payload: payload), fds: fds)
            return
        }
        let ack = try exchange(request, payload: payload, fds: fds, replySize: VhostUserU64.size,
                               flags: VhostUserHeaderFlags.version1 | VhostUserHeaderFlags.needReply)
        let status = try decoded(request) { () throws(VhostUserMalformedReply) in try VhostUserU64.decode(ack) }
        guard status == 0 else { throw .rejected(request: request, path: path, status: status) }
    }

    /// Sends a request and returns its reply's payload, checked: same request, reply flag,
    /// version 1, exactly `replySize` bytes, no descriptors.
    private mutating func exchange(_ request: VhostUserRequest, payload: [UInt8], fds: [Int32] = [], replySize: Int,
                                   flags: UInt32 = VhostUserHeaderFlags.version1) throws(VhostUserError) -> [UInt8] {
        try checkUsable()
        try write(VhostUserMessage(request: request, flags: flags, payload: payload), fds: fds)
        var received: [Int32] = []
        defer { for fd in received { close(fd) } }
        let header = try read(VhostUserMessage.headerSize, for: request, fds: &received)
        let fields = try decoded(request) { () throws(VhostUserMalformedReply) in try VhostUserMessage.decodeHeader(header) }
        func malformed(_ problem: VhostUserMalformedReply) -> VhostUserError {
            fail(.malformedReply(request: request, path: path, problem: problem))
        }
        guard fields.request == request.rawValue else { throw malformed(.wrongRequest(received: fields.request)) }
        guard fields.flags & VhostUserHeaderFlags.versionMask == VhostUserHeaderFlags.version1 else {
            throw malformed(.unsupportedVersion(flags: fields.flags))
        }
        guard fields.flags & VhostUserHeaderFlags.reply != 0 else { throw malformed(.notMarkedAsReply(flags: fields.flags)) }
        guard fields.size == replySize else { throw malformed(.wrongPayloadSize(received: fields.size, expected: replySize)) }
        let reply = try read(replySize, for: request, fds: &received)
        guard received.isEmpty else { throw malformed(.unexpectedFileDescriptors(count: received.count)) }
        return reply
    }

    private func checkUsable() throws(VhostUserError) {
        guard let broken else { return }
        if case .disconnected = broken { throw broken }
        throw .unusable(path: path, cause: broken.description)
    }

    /// Records an error after which the stream cannot be trusted, and returns it to throw.
    private mutating func fail(_ error: VhostUserError) -> VhostUserError {
        broken = error
        return error
    }

    /// The whole message, over as many sendmsg calls as it takes; the descriptors go with the
    /// first byte.
    private mutating func write(_ message: VhostUserMessage, fds: [Int32]) throws(VhostUserError) {
        precondition(fds.count <= Int(UK_MAX_PASSED_FDS))
        let bytes = message.encoded()
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                fds.withUnsafeBufferPointer { f in
                    uk_send_with_fds(fd, raw.baseAddress! + sent, raw.count - sent, f.baseAddress, sent == 0 ? Int32(f.count) : 0)
                }
            }
            if n >= 0 {
                sent += n
                continue
            }
            switch Int32(-n) {
            case EINTR: continue
            case EPIPE, ECONNRESET: throw fail(.disconnected(path: path))
            case EAGAIN: throw fail(.timeout(request: message.request, path: path, after: replyTimeout))
            case let e: throw fail(.system(path: path, call: "sendmsg", errno: e))
            }
        }
    }

    /// Exactly `count` bytes of a reply to `request`; descriptors that come along are added to
    /// `fds` for the caller to close.
    private mutating func read(_ count: Int, for request: VhostUserRequest, fds: inout [Int32]) throws(VhostUserError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            var passed = [Int32](repeating: -1, count: Int(UK_MAX_PASSED_FDS))
            var passedCount: Int32 = 0
            let n = bytes.withUnsafeMutableBytes { raw in
                uk_recv_with_fds(fd, raw.baseAddress! + got, count - got, 0, &passed, &passedCount)
            }
            fds.append(contentsOf: passed.prefix(Int(passedCount)))
            if n > 0 {
                got += n
                continue
            }
            if n == 0 { throw fail(.disconnected(path: path)) }
            switch Int32(-n) {
            case EINTR: continue
            case ECONNRESET: throw fail(.disconnected(path: path))
            case EAGAIN: throw fail(.timeout(request: request, path: path, after: replyTimeout))
            case EMSGSIZE: throw fail(.malformedReply(request: request, path: path, problem: .unexpectedFileDescriptors(count: fds.count + 1)))
            case let e: throw fail(.system(path: path, call: "recvmsg", errno: e))
            }
        }
        return bytes
    }
}
