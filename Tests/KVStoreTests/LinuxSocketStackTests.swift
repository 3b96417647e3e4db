import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport

// `kvstore --stack linux-single|linux-batch`: the store behind a kernel UDP socket, run as a
// program on 127.0.0.1 next to a real memcached 1.6.18 on another port; the same requests go to
// both from a Linux UDP socket here, and every reply datagram must be the same bytes. Everything
// stays on loopback; both programs are started with posix_spawn, reaped under a deadline, and
// killed (by PID) if a test leaves them running.

enum LinuxSocketHarness {
    static let kvstore = Tools.executable("kvstore")
    static let canRun = kvstore != nil && Tools.memcached != nil
    static let skipReason: Comment = "needs the kvstore program (swift build) and memcached (make test installs it)"

    static func loopback(_ port: UInt16) -> sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        return sa
    }

    static func withSockaddr<R>(_ sa: inout sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    }

    /// `count` distinct UDP ports free on 127.0.0.1 just now (the kernel's picks, held together
    /// so they differ, then let go).
    static func freePorts(_ count: Int) throws -> [UInt16] {
        var sockets: [Int32] = []
        defer { for s in sockets { close(s) } }
        var ports: [UInt16] = []
        for _ in 0..<count {
            let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard s >= 0 else { throw Processes.Failed(description: "socket: \(errno)") }
            sockets.append(s)
            var sa = loopback(0)
            guard withSockaddr(&sa, { bind(s, $0, $1) }) == 0 else { throw Processes.Failed(description: "bind: \(errno)") }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &length) } }
            ports.append(UInt16(bigEndian: sa.sin_port))
        }
        return ports
    }

    /// Whether a socket holds 127.0.0.1:`port` (a bind without SO_REUSEADDR then fails): how
    /// the tests see a server ready without sending it anything.
    static func isBound(_ port: UInt16) -> Bool {
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard s >= 0 else { return false }
        defer { close(s) }
        var sa = loopback(port)
        return withSockaddr(&sa, { bind(s, $0, $1) }) != 0 && errno == EADDRINUSE
    }

    /// Waits (at most 10 s) for `program` to bind `port`; throws with its output if it exits or never does.
    static func waitUntilBound(_ port: UInt16, _ program: RunningProgram, name: String) throws {
        let deadline = Processes.monotonic() + 10
        while !isBound(port) {
            guard program.isRunning else { throw Processes.Failed(description: "\(name) exited (\(program.exit!)): \(program.output)") }
            guard Processes.monotonic() < deadline else { throw Processes.Failed(description: "\(name) did not bind UDP port \(port): \(program.output)") }
            usleep(20_000)
        }
    }

    static func header(id: UInt16, sequence: UInt16 = 0, total: UInt16 = 1) -> [UInt8] {
        [UInt8(id >> 8), UInt8(id & 0xFF), UInt8(sequence >> 8), UInt8(sequence & 0xFF), UInt8(total >> 8), UInt8(total & 0xFF), 0, 0]
    }

    /// Whether memcached (and the store) answer or count this datagram as a request.
    static func isRequest(_ d: [UInt8]) -> Bool { d.count > 8 && d[4] == 0 && d[5] == 1 }
}

/// A UDP socket connected to one server on 127.0.0.1, counting what it sends.
final class LoopbackUDPClient {
    let socket: Int32
    let port: UInt16
    private(set) var sent = 0
    private(set) var requests = 0
    private(set) var received = 0
    private var nextSentinel: UInt16 = 0xF000

    init(port: UInt16) throws {
        self.port = port
        socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard socket >= 0 else { throw Processes.Failed(description: "socket: \(errno)") }
        var tv = timeval(tv_sec: 3, tv_usec: 0)   // the debug build, and the store's 64 MiB set up
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var big: Int32 = 4 << 20
        setsockopt(socket, SOL_SOCKET, SO_RCVBUF, &big, socklen_t(4))
        var sa = LinuxSocketHarness.loopback(port)
        guard LinuxSocketHarness.withSockaddr(&sa, { connect(socket, $0, $1) }) == 0 else {
            let e = errno
            close(socket)
            throw Processes.Failed(description: "connect: \(e)")
        }
    }

    deinit { close(socket) }

    func send(_ datagram: [UInt8]) {
        _ = datagram.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, 0) }
        sent += 1
        if LinuxSocketHarness.isRequest(datagram) { requests += 1 }
    }

    /// Sends `datagrams` back to back, then a `version` request behind them, and returns every
    /// datagram that came back before that one's answer, in arrival order (a server handles
    /// one socket's datagrams in order, and loopback keeps it).
    func exchange(_ datagrams: [[UInt8]]) throws -> [[UInt8]] {
        let sentinel = nextSentinel
        nextSentinel = nextSentinel == 0xFFFF ? 0xF000 : nextSentinel + 1
        for d in datagrams { send(d) }
        send(LinuxSocketHarness.header(id: sentinel) + Array("version\r\n".utf8))
        var replies: [[UInt8]] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while replies.count < 100_000 {
            let n = buf.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard n >= 0 else {
                throw Processes.Failed(description: "port \(port): no answer to the end marker (errno \(errno)) after \(replies.count) datagrams")
            }
            received += 1
            if n >= 2 && UInt16(buf[0]) << 8 | UInt16(buf[1]) == sentinel { return replies }
            replies.append(Array(buf[0..<n]))
        }
        return replies
    }
}

@Suite(.serialized) struct LinuxSocketStackTests {
    /// Each request, in order (later ones read what earlier ones stored), as a whole datagram.
    static func requests() -> [(name: String, datagram: [UInt8])] {
        func r(_ id: UInt16, _ text: String) -> [UInt8] { LinuxSocketHarness.header(id: id) + Array(text.utf8) }
        let big = String(repeating: "0123456789", count: 300)   // 3000 bytes: three reply datagrams
        return [
            ("set", r(1, "set k 0 0 5\r\nhello\r\n")),
            ("get hit", r(2, "get k\r\n")),
            ("get miss", r(3, "get nothing\r\n")),
            ("set with flags", r(4, "set k2 42 0 3\r\nabc\r\n")),
            ("multi-get", r(5, "get k nothing k2 k\r\n")),
            ("gets", r(6, "gets k2\r\n")),
            ("set a big value", r(7, "set big 7 0 3000\r\n" + big + "\r\n")),
            ("get the big value (3 datagrams)", r(8, "get big\r\n")),
            ("get it twice with a miss between", r(9, "get big nothing big\r\n")),
            ("set a number", r(10, "set n 0 0 2\r\n10\r\n")),
            ("incr", r(11, "incr n 5\r\n")),
            ("decr below zero", r(12, "decr n 100\r\n")),
            ("incr a missing key", r(13, "incr missing 1\r\n")),
            ("incr a non-number", r(14, "incr k 1\r\n")),
            ("delete", r(15, "delete k\r\n")),
            ("delete again", r(16, "delete k\r\n")),
            ("get the deleted key", r(17, "get k\r\n")),
            ("malformed: unknown command", r(18, "bogus\r\n")),
            ("malformed: bad length", r(19, "set f 0 0 abc\r\nf\r\n")),
            ("malformed: data too long", r(20, "set f 0 0 1\r\nff\r\n")),
            ("malformed: no line end", r(21, "get k2")),
            ("noreply set", r(22, "set q 0 0 1 noreply\r\nq\r\n")),
            ("get what noreply stored", r(23, "get q\r\n")),
            ("noreply delete", r(24, "delete q noreply\r\n")),
            ("8 bytes", LinuxSocketHarness.header(id: 25)),
            ("5 bytes", Array(LinuxSocketHarness.header(id: 26).prefix(5))),
            ("multi-datagram request (total 2)", LinuxSocketHarness.header(id: 27, total: 2) + Array("get k2\r\n".utf8)),
            ("sequence 3 (processed)", LinuxSocketHarness.header(id: 28, sequence: 3) + Array("get k2\r\n".utf8)),
            ("several commands", r(29, "set m 0 0 1\r\nx\r\nget m k2\r\nversion\r\n")),
            ("version", r(30, "version\r\n")),
        ]
    }

    @Test(.enabled(if: LinuxSocketHarness.canRun, LinuxSocketHarness.skipReason), arguments: ["linux-single", "linux-batch"])
    func sameRepliesAsMemcached(stack: String) throws {
        let ports = try LinuxSocketHarness.freePorts(2)
        let storeOutput = Processes.outputPath(), memcachedOutput = Processes.outputPath()
        defer { unlink(storeOutput); unlink(memcachedOutput) }
        let store = try RunningProgram([LinuxSocketHarness.kvstore!, "--stack", stack, "--ip", "127.0.0.1", "--port", "\(ports[0])"],
                                       cpu: 1, output: storeOutput)
        var memcachedArguments = [Tools.memcached!, "-U", "\(ports[1])", "-p", "0", "-l", "127.0.0.1", "-t", "1", "-m", "64"]
        if getuid() == 0 { memcachedArguments += ["-u", "root"] }
        let memcached = try RunningProgram(memcachedArguments, cpu: 0, output: memcachedOutput)
        defer { memcached.interrupt(seconds: 5) }
        try LinuxSocketHarness.waitUntilBound(ports[0], store, name: "kvstore --stack \(stack)")
        try LinuxSocketHarness.waitUntilBound(ports[1], memcached, name: "memcached")
        let ours = try LoopbackUDPClient(port: ports[0]), theirs = try LoopbackUDPClient(port: ports[1])

        // One request at a time.
        var mismatches: [String] = []
        var replies = 0
        for (name, datagram) in Self.requests() {
            let expected = try theirs.exchange([datagram])
            let got = try ours.exchange([datagram])
            replies += expected.count
            if got != expected { mismatches.append("\(name):\n  memcached: \(show(expected))\n  kvstore:   \(show(got))") }
        }
        // The big value really took three datagrams, and noreply none.
        let bigReplies = try theirs.exchange([LinuxSocketHarness.header(id: 40) + Array("get big\r\n".utf8)])
        #expect(bigReplies.count == 3 && bigReplies.allSatisfy { $0[4] == 0 && $0[5] == 3 }, "memcached: \(show(bigReplies))")
        #expect(try ours.exchange([LinuxSocketHarness.header(id: 40) + Array("get big\r\n".utf8)]) == bigReplies)
        let noreply = try theirs.exchange([LinuxSocketHarness.header(id: 42) + Array("set q 0 0 1 noreply\r\nq\r\n".utf8)])
        #expect(noreply.isEmpty)
        #expect(try ours.exchange([LinuxSocketHarness.header(id: 42) + Array("set q 0 0 1 noreply\r\nq\r\n".utf8)]) == noreply)

        // Back to back, without waiting: many datagrams per receive, and more than 64 replies
        // (one sendmmsg's worth) in a row for linux-batch.
        var burst: [[UInt8]] = []
        for i in 0..<40 {
            let id = UInt16(100 + i)
            burst.append(LinuxSocketHarness.header(id: id) + Array((i % 4 == 3 ? "get nothing k2\r\n" : "get big\r\n").utf8))
            if i % 10 == 5 { burst.append(LinuxSocketHarness.header(id: id)) }   // short: dropped by both
        }
        let expectedBurst = try theirs.exchange(burst)
        let gotBurst = try ours.exchange(burst)
        #expect(expectedBurst.count > 64)
        if gotBurst != expectedBurst {
            let first = (0..<min(gotBurst.count, expectedBurst.count)).first { gotBurst[$0] != expectedBurst[$0] }
                ?? min(gotBurst.count, expectedBurst.count)
            mismatches.append("burst: memcached \(expectedBurst.count) datagrams, kvstore \(gotBurst.count); first difference at \(first)")
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches:\n\(mismatches.joined(separator: "\n"))")
        #expect(replies > 30)
        #expect(ours.received == theirs.received, "reply datagrams: kvstore \(ours.received), memcached \(theirs.received)")

        // SIGINT: a clean exit with the report.
        let exit = store.interrupt(seconds: 5)
        let output = store.output
        #expect(exit == .code(0), "kvstore: \(exit): \(output)")
        let mode = stack == "linux-batch" ? "linux-batch: kernel UDP socket, recvmmsg/sendmmsg" : "linux-single: kernel UDP socket, recvfrom/sendto"
        #expect(output.contains("kvstore 127.0.0.1:\(ports[0]) (\(mode))"), "\(output)")
        #expect(output.contains("datagrams received: \(ours.sent)\n"), "sent \(ours.sent): \(output)")
        #expect(output.contains("memcached requests: \(ours.requests), reply datagrams: \(ours.received), sent: \(ours.received)\n"),
                "\(ours.requests) requests, \(ours.received) replies: \(output)")
        #expect(output.contains("  memcached datagram of 8 bytes or fewer: 6\n"), "\(output)")
        #expect(output.contains("  memcached multi-datagram request: 1\n"), "\(output)")
        #expect(output.contains("send failures: 0\n"), "\(output)")
        #expect(output.contains("pool: 0 in use of 8192 after stop"), "\(output)")
        #expect(!output.contains("warning"), "\(output)")
        print("\(stack): \(ours.requests) requests, \(ours.received) reply datagrams, \(mismatches.count) mismatches; report:\n\(output)")
    }

    /// Options that do not go with a kernel socket, and an address the host does not have: one
    /// clear line, a non-zero exit, at once.
    @Test(.enabled(if: LinuxSocketHarness.kvstore != nil, "needs the kvstore program (swift build)"))
    func badOptionsFailClearly() throws {
        let kvstore = LinuxSocketHarness.kvstore!
        let withNetdev = try Processes.run([kvstore, "--stack", "linux-batch", "--netdev", "null", "--ip", "127.0.0.1"], seconds: 5)
        #expect(withNetdev.exit != .code(0) && withNetdev.exit != .timedOut, "\(withNetdev.exit)")
        #expect(withNetdev.output.contains("--stack linux-batch uses the kernel's UDP socket on --ip: drop --netdev"), "\(withNetdev.output)")
        let withMAC = try Processes.run([kvstore, "--stack", "linux-single", "--mac", "02:00:00:00:00:02", "--ip", "127.0.0.1"], seconds: 5)
        #expect(withMAC.exit != .code(0) && withMAC.exit != .timedOut, "\(withMAC.exit)")
        #expect(withMAC.output.contains("drop --netdev, --mac and --record"), "\(withMAC.output)")

        // 192.0.2.9 (TEST-NET-1) is no address of this host: bind fails, the message says so.
        let port = try LinuxSocketHarness.freePorts(1)[0]
        for stack in ["linux-single", "linux-batch"] {
            let started = Processes.monotonic()
            let notHere = try Processes.run([kvstore, "--stack", stack, "--ip", "192.0.2.9/24", "--port", "\(port)"], seconds: 5)
            #expect(notHere.exit == .code(1), "\(notHere.exit): \(notHere.output)")
            #expect(notHere.output.contains("cannot bind UDP 192.0.2.9:\(port): Cannot assign requested address (is --ip an address of this host/namespace?)"),
                    "\(notHere.output)")
            #expect(Processes.monotonic() - started < 3, "took \(Processes.monotonic() - started) s")
        }
    }
}
