import CUKLinux
import Glibc
import KVStore
import ToolSupport
import UKNetdev

/// `--stack linux-single|linux-batch`: the store behind a kernel UDP socket bound to
/// `address:port` (the comparison's Linux columns). Runs until SIGINT/SIGTERM; returns the report.
func runLinuxSocketStore(address: IPv4Address, prefixLength: Int, port: UInt16, memoryBytes: Int, sources: SourcePolicy,
                         buffers: Int, batch: Bool, live: Bool) throws -> String {
    let (socket, boundPort) = try openUDPSocket(address: address, port: port)
    defer { close(socket) }
    let pool = try NetBufPool(count: buffers, roomSize: 2048, headroom: 128)
    let title = "kvstore \(address):\(boundPort) ("
        + (batch ? "linux-batch: kernel UDP socket, recvmmsg/sendmmsg" : "linux-single: kernel UDP socket, recvfrom/sendto") + ")"
    var lines: [String]
    do {
        // Freed at the end of this block, before the pool is read.
        var server = try LinuxSocketServer(socket: socket, pool: pool, memoryBytes: memoryBytes, sources: sources,
                                           ownPrefix: IPv4Prefix(address, length: prefixLength))
        server.service.engine.environment.udpPort = boundPort
        server.service.engine.environment.interface = address
        var lastReport = monotonicSeconds()
        while stopRequested == 0 {
            if batch { server.receiveBatch() } else { server.receiveOne() }
            if live, monotonicSeconds() - lastReport >= 1 {
                lastReport = monotonicSeconds()
                print(server.liveLine(), terminator: "\r")
                fflush(nil)
            }
        }
        if live { print("") }
        lines = server.report(title: title, batch: batch)
    }
    lines.append("pool: \(pool.inUse) in use of \(pool.capacity) after stop, high water \(pool.highWater), allocation failures \(pool.allocationFailures)")
    if pool.inUse != 0 { lines.append("warning: \(pool.inUse) buffers still in use at exit") }
    return lines.joined(separator: "\n")
}

/// What goes wrong setting up the socket (printed by the argument parser as `Error: ...`, exit 1).
struct LinuxSocketError: Error, CustomStringConvertible {
    let description: String
}

func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }

/// An AF_INET datagram socket bound to `address:port` (close-on-exec; no SO_REUSEADDR, which for
/// UDP would let two servers share the port silently: a taken port is an error), whose
/// blocking receives give up after 100 ms so the loop sees SIGINT/SIGTERM. Returns it and the
/// port it got (`port` unless that was 0).
func openUDPSocket(address: IPv4Address, port: UInt16) throws -> (Int32, UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw LinuxSocketError(description: "cannot open a UDP socket: \(errnoText(errno))") }
    var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
    guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
        let e = errno
        close(fd)
        throw LinuxSocketError(description: "cannot set up the UDP socket: \(errnoText(e))")
    }
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_port = port.bigEndian
    sa.sin_addr.s_addr = address.value.bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let rc = withUnsafeMutablePointer(to: &sa) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard rc == 0 else {
        let e = errno
        close(fd)
        let hint = switch e {
        case EADDRNOTAVAIL: " (is --ip an address of this host/namespace?)"
        case EADDRINUSE: " (another program, memcached perhaps, has --port on this address)"
        case EACCES: " (ports below 1024 need CAP_NET_BIND_SERVICE)"
        default: ""
        }
        throw LinuxSocketError(description: "cannot bind UDP \(address):\(port): \(errnoText(e))\(hint)")
    }
    _ = withUnsafeMutablePointer(to: &sa) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, UInt16(bigEndian: sa.sin_port))
}

/// The memcached engine (`KVDatagramService`) behind one kernel UDP socket. Everything the loop
/// touches is allocated here once: receive buffers (64 KiB per datagram), their addresses and
/// message headers, and the reply batch.
struct LinuxSocketServer: ~Copyable {
    /// Datagrams one recvmmsg takes; reply datagrams one sendmmsg sends.
    static let receiveBatchSize = 32
    static let sendBatchSize = 64
    static let datagramRoom = 65536

    let socket: Int32
    let pool: NetBufPool
    var service: KVDatagramService

    let rxData: UnsafeMutableRawPointer
    let rxAddresses: UnsafeMutablePointer<sockaddr_in>
    let rxVectors: UnsafeMutablePointer<iovec>
    let rxMessages: UnsafeMutablePointer<uk_mmsghdr>

    /// Replies waiting for sendmmsg (owned here until sent), each with its vector and header.
    let txBuffers: UnsafeMutablePointer<NetBuf>
    let txVectors: UnsafeMutablePointer<iovec>
    let txMessages: UnsafeMutablePointer<uk_mmsghdr>
    var txCount = 0

    let waitForOne = uk_msg_waitforone()

    var datagramsReceived: UInt64 = 0
    /// Receive calls that returned datagrams (not the idle timeouts).
    var receiveCalls: UInt64 = 0
    var receiveErrors: UInt64 = 0
    var lastReceiveError: Int32 = 0
    var sendCalls: UInt64 = 0
    var datagramsSent: UInt64 = 0
    var sendFailures: UInt64 = 0
    var lastSendError: Int32 = 0

    init(socket: Int32, pool: NetBufPool, memoryBytes: Int, sources: SourcePolicy, ownPrefix: IPv4Prefix) throws {
        self.socket = socket
        self.pool = pool
        service = try KVDatagramService(pool: pool, memoryBytes: memoryBytes, now: unixTime(), sources: sources, ownPrefix: ownPrefix)
        describeProcess(&service.engine.environment)
        let rx = Self.receiveBatchSize, tx = Self.sendBatchSize
        rxData = .allocate(byteCount: rx * Self.datagramRoom, alignment: 64)
        rxAddresses = .allocate(capacity: rx)
        rxAddresses.initialize(repeating: sockaddr_in(), count: rx)
        rxVectors = .allocate(capacity: rx)
        rxMessages = .allocate(capacity: rx)
        for i in 0..<rx {
            rxVectors[i] = iovec(iov_base: rxData + i * Self.datagramRoom, iov_len: Self.datagramRoom)
            var m = uk_mmsghdr()
            m.msg_hdr.msg_name = UnsafeMutableRawPointer(rxAddresses + i)
            m.msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
            m.msg_hdr.msg_iov = rxVectors + i
            m.msg_hdr.msg_iovlen = 1
            rxMessages[i] = m
        }
        txBuffers = .allocate(capacity: tx)
        txVectors = .allocate(capacity: tx)
        txVectors.initialize(repeating: iovec(), count: tx)
        txMessages = .allocate(capacity: tx)
        for i in 0..<tx {
            var m = uk_mmsghdr()
            m.msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
            m.msg_hdr.msg_iov = txVectors + i
            m.msg_hdr.msg_iovlen = 1
            txMessages[i] = m
        }
    }

    deinit {
        NetBuf.releaseBulk(UnsafeMutableBufferPointer(start: txBuffers, count: txCount))
        rxData.deallocate()
        rxAddresses.deallocate()
        rxVectors.deallocate()
        rxMessages.deallocate()
        txBuffers.deallocate()
        txVectors.deallocate()
        txMessages.deallocate()
    }

    /// A receive that failed: a timeout or a signal is no error (the loop checks for a stop).
    mutating func receiveFailed(_ code: Int32) {
        if code == EAGAIN || code == EWOULDBLOCK || code == EINTR { return }
        receiveErrors &+= 1
        lastReceiveError = code
    }

    /// linux-single: one datagram with recvfrom, each reply with its own sendto.
    mutating func receiveOne() {
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = rxAddresses.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            recvfrom(socket, rxData, Self.datagramRoom, 0, $0, &length)
        }
        guard n >= 0 else { return receiveFailed(errno) }
        receiveCalls &+= 1
        datagramsReceived &+= 1
        let replies = service.handle(rxData, count: n, from: IPv4Address(value: UInt32(bigEndian: rxAddresses[0].sin_addr.s_addr)),
                                     now: unixTime())
        rxAddresses.withMemoryRebound(to: sockaddr.self, capacity: 1) { peer in
            for reply in replies {
                while true {
                    sendCalls &+= 1
                    if sendto(socket, reply.data, reply.length, 0, peer, length) >= 0 {
                        datagramsSent &+= 1
                        break
                    }
                    let e = errno
                    if e == EINTR { continue }
                    sendFailures &+= 1
                    lastSendError = e
                    break
                }
            }
        }
        NetBuf.releaseBulk(replies)
    }

    /// linux-batch: up to 32 datagrams with one recvmmsg (blocking for the first only), every
    /// reply of them gathered for sendmmsg (sent when 64 are waiting, and at the end).
    mutating func receiveBatch() {
        for i in 0..<Self.receiveBatchSize {
            rxMessages[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        let n = uk_recvmmsg(socket, rxMessages, UInt32(Self.receiveBatchSize), waitForOne)
        guard n > 0 else {
            if n < 0 { receiveFailed(-n) }
            return
        }
        receiveCalls &+= 1
        datagramsReceived &+= UInt64(n)
        let now = unixTime()
        for i in 0..<Int(n) {
            let replies = service.handle(rxData + i * Self.datagramRoom, count: Int(rxMessages[i].msg_len),
                                         from: IPv4Address(value: UInt32(bigEndian: rxAddresses[i].sin_addr.s_addr)), now: now)
            for reply in replies {
                if txCount == Self.sendBatchSize { flush() }
                txBuffers[txCount] = reply
                txVectors[txCount] = iovec(iov_base: reply.data, iov_len: reply.length)
                txMessages[txCount].msg_hdr.msg_name = UnsafeMutableRawPointer(rxAddresses + i)
                txCount += 1
            }
        }
        flush()
    }

    /// Sends the waiting replies with sendmmsg, again from where a partial send stopped; a
    /// message the kernel refuses is counted and skipped. Then gives every buffer back.
    mutating func flush() {
        guard txCount > 0 else { return }
        var sent = 0
        while sent < txCount {
            sendCalls &+= 1
            let r = Int(uk_sendmmsg(socket, txMessages + sent, UInt32(txCount - sent), 0))
            if r > 0 {
                sent += r
                datagramsSent &+= UInt64(r)
            } else if r != -Int(EINTR) {
                // The first unsent message failed (r < 0; 0 does not happen for a non-empty batch).
                sendFailures &+= 1
                lastSendError = Int32(-r)
                sent += 1
            }
        }
        NetBuf.releaseBulk(UnsafeMutableBufferPointer(start: txBuffers, count: txCount))
        txCount = 0
    }

    func liveLine() -> String {
        let s = service.stats
        return "datagrams \(datagramsReceived)  requests \(s.requests)  replies \(s.replyDatagrams)  "
            + "hits \(service.engine.stats.hits)  misses \(service.engine.stats.misses)  drops \(s.totalDrops)  "
            + "send failures \(sendFailures)  pool \(pool.inUse)/\(pool.capacity)"
    }

    func report(title: String, batch: Bool) -> [String] {
        let s = service.stats
        var lines = [title]
        lines.append("datagrams received: \(datagramsReceived)" + (receiveErrors == 0 ? "" : ", receive errors: \(receiveErrors) (last: \(errnoText(lastReceiveError)))"))
        lines.append("memcached requests: \(s.requests), reply datagrams: \(s.replyDatagrams), sent: \(datagramsSent)")
        if batch {
            let perReceive = receiveCalls == 0 ? 0 : Double(datagramsReceived) / Double(receiveCalls)
            let perSend = sendCalls == 0 ? 0 : Double(datagramsSent) / Double(sendCalls)
            lines.append("system calls: \(receiveCalls) recvmmsg (\(oneDecimal(perReceive)) datagrams each), \(sendCalls) sendmmsg (\(oneDecimal(perSend)) each)")
        }
        lines += engineReportLines(service.engine)
        lines += dropReportLines(s)
        lines.append("send failures: \(sendFailures)" + (sendFailures == 0 ? "" : " (last: \(errnoText(lastSendError)))"))
        return lines
    }
}

/// `x` with one decimal (no Foundation in this tool).
func oneDecimal(_ x: Double) -> String {
    let tenths = Int((x * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)"
}
