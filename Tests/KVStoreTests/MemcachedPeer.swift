import Foundation
import Synchronization
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A real memcached 1.6.18, started for a test on 127.0.0.1 with UDP only, and a UDP client
/// that speaks its frame header. Stopped (by PID) when the peer goes away.
final class MemcachedPeer {
    /// Started with posix_spawn and reaped with waitpid: simple, and no dependence on how a
    /// test runner delivers SIGCHLD.
    var pid: pid_t = 0
    let port: UInt16
    let socket: Int32
    private var nextRequestID: UInt16 = 1

    enum Failure: Error, CustomStringConvertible {
        case notInstalled, startFailed(String), socket(Int32), noEndMarker(Int32)
        var description: String {
            switch self {
            case .notInstalled: "memcached is not installed (make test installs it)"
            case .startFailed(let why): "memcached did not start: \(why)"
            case .socket(let e): "socket error \(e)"
            case .noEndMarker(let e): "memcached did not answer the end marker (errno \(e)): it is holding replies (waiting for data?)"
            }
        }
    }

    static var binary: String? { Tools.memcached }
    /// Peers started by this process so far: each gets a port of its own (suites run in parallel).
    static let started = Atomic<Int>(0)

    init() throws {
        guard let binary = MemcachedPeer.binary else { throw Failure.notInstalled }
        // A port in the dynamic range, from the PID and the peer's number, so parallel test runs
        // and parallel suites do not collide.
        let n = MemcachedPeer.started.add(1, ordering: .relaxed).newValue
        port = UInt16(20000 + (Int(getpid()) * 16 + n) % 20000)
        var args = [binary, "-U", String(port), "-p", "0", "-l", "127.0.0.1", "-t", "1", "-m", "64"]
        if getuid() == 0 { args += ["-u", "root"] }
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let rc0 = posix_spawn(&pid, binary, &actions, nil, &cargs, environ)
        posix_spawn_file_actions_destroy(&actions)
        guard rc0 == 0 else { throw Failure.startFailed("posix_spawn: \(rc0)") }
        socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard socket >= 0 else { throw Failure.socket(errno) }
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw Failure.socket(errno) }
        // Wait until it answers (bounded).
        for _ in 0..<50 {
            if let r = try? exchange(Array("version\r\n".utf8)), !r.isEmpty { return }
            usleep(100_000)
        }
        stop()
        throw Failure.startFailed("no answer on UDP port \(port)")
    }

    deinit { stop() }

    func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        pid = 0
        close(socket)
    }

    /// Sends one raw datagram (header included) and returns every datagram that answers it, in
    /// arrival order. A `version` request sent behind it marks the end: memcached handles one
    /// socket's datagrams in order.
    func exchangeRaw(_ datagram: [UInt8], requestID: UInt16) throws -> [[UInt8]] {
        let sentinelID = requestID &+ 0x8000
        let sentinel = header(id: sentinelID) + Array("version\r\n".utf8)
        _ = datagram.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, 0) }
        _ = sentinel.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, 0) }
        var replies: [[UInt8]] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        for _ in 0..<100_000 {
            let n = buf.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard n >= 0 else { throw Failure.noEndMarker(errno) }
            let d = Array(buf[0..<n])
            if n >= 2 && UInt16(d[0]) << 8 | UInt16(d[1]) == sentinelID { return replies }
            replies.append(d)
        }
        return replies
    }

    /// Sends `payload` with a fresh request id (total 1); returns the replies and the id used.
    func exchange(_ payload: [UInt8]) throws -> [[UInt8]] {
        let id = nextID()
        return try exchangeRaw(header(id: id) + payload, requestID: id)
    }

    func nextID() -> UInt16 {
        nextRequestID = nextRequestID % 0x7FFF + 1
        return nextRequestID
    }

    func header(id: UInt16, sequence: UInt16 = 0, total: UInt16 = 1, reserved: UInt16 = 0) -> [UInt8] {
        [UInt8(id >> 8), UInt8(id & 0xFF), UInt8(sequence >> 8), UInt8(sequence & 0xFF),
         UInt8(total >> 8), UInt8(total & 0xFF), UInt8(reserved >> 8), UInt8(reserved & 0xFF)]
    }
}
