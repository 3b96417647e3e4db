import Foundation
#if canImport(Glibc)
import Glibc
#endif
import HostStack
import KVStore
import Synchronization
import Testing
import UKNetdev
import UKNetdevLinux
import TestSupport

// The key-value store on a real TAP interface, in a network namespace the test creates, spoken
// to by the Linux kernel: a plain UDP socket, the kernel's ARP, ping. Everything stays in the
// namespace on 192.0.2.0/24 (TEST-NET-1); nothing touches eth0. Every child process is started
// with posix_spawn and reaped with waitpid under a deadline (Foundation's Process hung in this
// test runner), and every step is bounded in time.

/// Child processes for the TAP tests.
enum TapHarness {
    static let ip = Tools.ip
    static let pythonPath = Processes.executable(["/usr/bin/python3", "/usr/local/bin/python3"])
    static let pingPath = Processes.executable(["/usr/bin/ping", "/bin/ping"])
    static let canRun = getuid() == 0 && access("/dev/net/tun", R_OK | W_OK) == 0 && ip != nil && pythonPath != nil
    static let skipReason: Comment = "needs root (CAP_NET_ADMIN), /dev/net/tun, ip (iproute2) and python3"

    @discardableResult
    static func ipCommand(_ arguments: String...) throws -> String { try Processes.check([ip!] + arguments) }


    /// Moves `ifname` into `namespace` and gives it 192.0.2.1/24 there, up, with `lo` up.
    static func configureNamespaceSide(_ ifname: String, _ namespace: String) throws {
        try ipCommand("link", "set", ifname, "netns", namespace)
        try ipCommand("-n", namespace, "link", "set", "lo", "up")
        try ipCommand("-n", namespace, "addr", "add", "192.0.2.1/24", "dev", ifname)
        try ipCommand("-n", namespace, "link", "set", ifname, "up")
    }

    // MARK: The memcached UDP client, in the namespace

    /// One request and what must come back: the reply groups (memcached gives each response
    /// object its own sequence 0..total-1), as datagram payload lengths, and all their bytes.
    struct Exchange: Codable {
        var name: String
        /// The datagram's payload after the frame header, or with `raw` the whole datagram.
        var hex: String
        var raw = false
        var groups: Int
        /// Filled in from memcached 1.6.18's own replies, not sent to the client.
        var expectedShape = ""
        var expected: [UInt8] = []
    }

    struct ClientReport: Codable {
        struct Result: Codable {
            var name: String
            var shape: String
            var hex: String
            var error: String?
        }
        var sent: Int
        var stray: Int
        var results: [Result]
    }

    /// Sends each request with its own id (1, 2, ...), reassembles the reply groups by
    /// sequence and total, and reports them as JSON. Every wait is bounded.
    static let clientScript = #"""
    import json, socket, struct, sys, time
    cfg = json.load(open(sys.argv[1]))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((cfg["server"], cfg["port"]))
    report = {"sent": 0, "stray": 0, "results": []}
    for i, req in enumerate(cfg["requests"]):
        rid = i + 1
        payload = bytes.fromhex(req["hex"])
        s.send(payload if req["raw"] else struct.pack(">HHHH", rid, 0, 1, 0) + payload)
        report["sent"] += 1
        groups, current, error = [], None, None
        # The first request also waits for the kernel's ARP resolution.
        deadline = time.monotonic() + (cfg["first_timeout"] if i == 0 else cfg["timeout"])
        while len(groups) < req["groups"]:
            left = deadline - time.monotonic()
            if left <= 0:
                error = "timed out"
                break
            s.settimeout(left)
            try:
                d = s.recv(65536)
            except socket.timeout:
                error = "timed out"
                break
            if len(d) < 8:
                error = "datagram of %d bytes" % len(d)
                break
            r, seq, total, reserved = struct.unpack(">HHHH", d[:8])
            if r != rid:
                report["stray"] += 1
                continue
            if reserved != 0 or total == 0 or seq >= total:
                error = "bad frame header seq %d total %d reserved %d" % (seq, total, reserved)
                break
            if current is None:
                current = {"total": total, "parts": {}}
            if total != current["total"] or seq in current["parts"]:
                error = "inconsistent group: seq %d total %d" % (seq, total)
                break
            current["parts"][seq] = d[8:]
            if len(current["parts"]) == total:
                groups.append(current)
                current = None
        if current is not None and error is None:
            error = "incomplete group"
        parts = [[g["parts"][k] for k in sorted(g["parts"])] for g in groups]
        report["results"].append({
            "name": req["name"],
            "shape": " ".join("%d:%s" % (len(p), ",".join(str(len(x)) for x in p)) for p in parts),
            "hex": b"".join(b"".join(p) for p in parts).hex(),
            "error": error})
    # Nothing more may come.
    s.settimeout(0.3)
    try:
        while True:
            s.recv(65536)
            report["stray"] += 1
    except socket.timeout:
        pass
    print(json.dumps(report))
    """#

    /// Three ICMP echo requests from a raw socket, for a machine without ping(8); prints
    /// ping's summary line.
    static let pingScript = #"""
    import os, socket, struct, sys, time
    def checksum(b):
        if len(b) % 2: b += b"\0"
        s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        s = (s >> 16) + (s & 0xFFFF); s += s >> 16
        return ~s & 0xFFFF
    dst, ident, got = sys.argv[1], os.getpid() & 0xFFFF, 0
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    for seq in range(1, 4):
        body = b"uknet-kvstore-ping" + bytes(38)
        head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        s.sendto(struct.pack("!BBHHH", 8, 0, checksum(head + body), ident, seq) + body, (dst, 0))
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d, peer = s.recvfrom(2048)
            except socket.timeout:
                break
            icmp = d[(d[0] & 15) * 4:]
            if peer[0] == dst and len(icmp) >= 8 and icmp[0] == 0 and struct.unpack("!HH", icmp[4:8]) == (ident, seq) \
                    and icmp[8:] == body and checksum(icmp) == 0:
                got += 1
                break
    print("3 packets transmitted, %d received" % got)
    sys.exit(0 if got == 3 else 1)
    """#

    /// Runs `script` with `arguments` under python3 inside `namespace`.
    static func python(_ script: String, in namespace: String, arguments: [String] = [],
                       seconds: Double) throws -> (exit: Processes.Exit, output: String) {
        let path = Processes.outputPath() + ".py"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        return try Processes.run([ip!, "netns", "exec", namespace, pythonPath!, path] + arguments, seconds: seconds)
    }

    /// Runs the exchanges against 192.0.2.2:11211 from inside `namespace`.
    static func memcachedClient(_ exchanges: [Exchange], in namespace: String) throws -> ClientReport {
        struct Config: Codable {
            var server = "192.0.2.2"
            var port = 11211
            var timeout = 1.0
            var first_timeout = 3.0
            var requests: [Exchange]
        }
        var stripped = exchanges
        for i in stripped.indices { stripped[i].expected = [] }
        let path = Processes.outputPath() + ".json"
        try JSONEncoder().encode(Config(requests: stripped)).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let (exit, output) = try python(clientScript, in: namespace, arguments: [path], seconds: 10 + Double(exchanges.count))
        guard exit == .code(0), let line = output.split(separator: "\n").last else {
            throw Processes.Failed(description: "the UDP client: \(exit): \(output)")
        }
        do {
            return try JSONDecoder().decode(ClientReport.self, from: Data(line.utf8))
        } catch {
            throw Processes.Failed(description: "the UDP client's report: \(error): \(output)")
        }
    }

    /// Compares what the client heard with what memcached 1.6.18 answers.
    static func expectReplies(_ report: ClientReport, _ exchanges: [Exchange]) {
        #expect(report.sent == exchanges.count)
        #expect(report.stray == 0, "datagrams that answered no request (or came late)")
        #expect(report.results.count == exchanges.count)
        for (result, exchange) in zip(report.results, exchanges) {
            #expect(result.error == nil, "\(exchange.name): \(result.error ?? "")")
            #expect(result.shape == exchange.expectedShape, "\(exchange.name): reply datagrams")
            let heard = bytes(hex: result.hex)
            #expect(heard == exchange.expected,
                    "\(exchange.name): heard \(printable(heard)), memcached answers \(printable(exchange.expected))")
        }
    }

    static func exchange(_ name: String, _ request: [UInt8], raw: Bool = false, reply: [[[UInt8]]]) -> Exchange {
        // `reply`: groups of datagram payloads.
        let shape = reply.map { g in "\(g.count):" + g.map { String($0.count) }.joined(separator: ",") }.joined(separator: " ")
        return Exchange(name: name, hex: hex(request), raw: raw, groups: reply.count, expectedShape: shape,
                        expected: reply.flatMap { $0.flatMap { $0 } })
    }

    static func hex(_ b: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(b.count * 2)
        for x in b { out.append(digits[Int(x >> 4)]); out.append(digits[Int(x & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func bytes(hex: String) -> [UInt8] {
        func v(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : c - 87 }
        let u = Array(hex.utf8)
        return stride(from: 0, to: u.count - 1, by: 2).map { v(u[$0]) << 4 | v(u[$0 + 1]) }
    }

    static func printable(_ b: [UInt8]) -> String {
        let s = String(decoding: b.prefix(120), as: UTF8.self)
            .replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
        return "\"\(s)\"" + (b.count > 120 ? "...(\(b.count) bytes)" : "")
    }

    /// Three echo requests to 192.0.2.2 from `namespace`: ping(8) if installed, else the same
    /// from a raw socket in Python. Returns the exit and output.
    static func ping3(in namespace: String) throws -> (exit: Processes.Exit, output: String) {
        if let pingPath {
            return try Processes.run([ip!, "netns", "exec", namespace, pingPath, "-n", "-c", "3", "-i", "0.2", "-W", "1", "192.0.2.2"],
                           seconds: 6)
        }
        return try python(pingScript, in: namespace, arguments: ["192.0.2.2"], seconds: 6)
    }
}

/// A KVServer on a TAP device, polled on a thread of its own until told to stop or 30 s pass.
final class TapServerThread: @unchecked Sendable {
    var side: KVServerOnDevice<TapDevice>
    private(set) var isShutDown = false
    private let stopFlag = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private var running = false
    private(set) var hitDeadline = false

    init(_ server: consuming KVServer, on device: consuming TapDevice) {
        side = KVServerOnDevice(server: server, device: device)
    }


    func start() {
        running = true
        let thread = Thread { [self] in loop() }
        thread.name = "kvstore-tap"
        thread.start()
    }

    /// This thread has `side` alone until `stop` returns; one mutating call per access keeps the
    /// class's exclusivity checks from seeing two at once.
    private func loop() {
        defer { done.signal() }
        let deadline = time(nil) + 30
        guard let fd = side.device.rxEventSource(queue: 0).fileDescriptor else { return }
        while !stopFlag.load(ordering: .acquiring) {
            if time(nil) >= deadline {
                hitDeadline = true
                break
            }
            let n = side.poll(now: UInt32(truncatingIfNeeded: time(nil)))
            if n == 0 && side.server.pendingTransmit == 0 {
                // Idle: wait for the TAP file to become readable (bounded, so the flag is seen).
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = Glibc.poll(&pfd, 1, 20)
            }
        }
        side.flush()
    }

    /// Stops the loop and waits for the thread (at most 5 s); false if it did not end.
    func stop() -> Bool {
        guard running else { return true }
        stopFlag.store(true, ordering: .releasing)
        guard done.wait(timeout: .now() + 5) == .success else { return false }
        running = false
        return true
    }

    /// After `stop`: stops the device (its RX buffers go home). The server's queue is empty after
    /// its last flush (TAP TX takes every frame); the server itself goes with this object.
    func shutdown() {
        guard !running, !isShutDown else { return }
        side.device.stop()
        isShutDown = true
    }
}

@Suite(.serialized) struct TapTests {
    /// memcached 1.6.18's replies (taken from the real one over UDP) to a short session.
    static func session() -> [TapHarness.Exchange] {
        func s(_ t: String) -> [UInt8] { Array(t.utf8) }
        // A value that is not one byte repeated, so reassembly order shows.
        let big = (0..<3000).map { UInt8(ascii: "a") + UInt8($0 % 26) }
        let bigReply = s("VALUE big 0 3000\r\n") + big + s("\r\nEND\r\n")   // 3025 bytes: 1392 + 1392 + 241
        let e = TapHarness.exchange
        return [
            e("set", s("set k 0 0 5\r\nhello\r\n"), false, [[s("STORED\r\n")]]),
            e("get", s("get k\r\n"), false, [[s("VALUE k 0 5\r\nhello\r\nEND\r\n")]]),
            e("set with flags", s("set k2 3 0 2\r\nhi\r\n"), false, [[s("STORED\r\n")]]),
            // One response object per hit, then END: three groups, each sequence 0 of 1.
            e("multi-key get", s("get k k2 missing\r\n"), false,
              [[s("VALUE k 0 5\r\nhello\r\n")], [s("VALUE k2 3 2\r\nhi\r\n")], [s("END\r\n")]]),
            e("set 3000 bytes", s("set big 0 0 3000\r\n") + big + s("\r\n"), false, [[s("STORED\r\n")]]),
            e("get 3000 bytes", s("get big\r\n"), false,
              [[Array(bigReply[0..<1392]), Array(bigReply[1392..<2784]), Array(bigReply[2784...])]]),
            e("set number", s("set n 0 0 2\r\n10\r\n"), false, [[s("STORED\r\n")]]),
            e("incr", s("incr n 5\r\n"), false, [[s("15\r\n")]]),
            e("delete", s("delete k\r\n"), false, [[s("DELETED\r\n")]]),
            e("get deleted", s("get k\r\n"), false, [[s("END\r\n")]]),
            e("incr non-numeric", s("incr k2 1\r\n"), false,
              [[s("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")]]),
            e("unknown command", s("bogus\r\n"), false, [[s("ERROR\r\n")]]),
            // A bare frame header: memcached ignores it (and the store counts a drop).
            e("header only", [0x7F, 0x00, 0, 0, 0, 1, 0, 0], true, []),
            e("get after incr", s("get n\r\n"), false, [[s("VALUE n 0 2\r\n15\r\nEND\r\n")]]),
            // The meta protocol.
            e("mn", s("mn\r\n"), false, [[s("MN\r\n")]]),
            e("mg with flags", s("mg n v f s k\r\n"), false, [[s("VA 2 f0 s2 kn\r\n15\r\n")]]),
            e("ms", s("ms m 2 F7 T0\r\nhi\r\n"), false, [[s("HD\r\n")]]),
            e("md", s("md m O42\r\n"), false, [[s("HD O42\r\n")]]),
            e("ma", s("ma n D5 v\r\n"), false, [[s("VA 2\r\n20\r\n")]]),
        ]
    }

    /// The store inside this process on a TAP device in a namespace: the kernel resolves
    /// 192.0.2.2 by ARP, a UDP socket runs a memcached session against it, ping gets echo
    /// replies, and the kernel's neighbour table holds the store's MAC.
    @Test(.enabled(if: TapHarness.canRun, TapHarness.skipReason))
    func memcachedSessionOverTAP() throws {
        let pid = getpid()
        let namespace = "uknet-kv-\(pid)"
        let ifname = "kvt\(pid % 10_000)"
        let mac = MACAddress("02:00:00:00:00:02")!
        _ = try? Processes.run([TapHarness.ip!, "netns", "del", namespace])   // a leftover from a killed run
        try TapHarness.ipCommand("netns", "add", namespace)
        defer { _ = try? Processes.run([TapHarness.ip!, "netns", "del", namespace]) }

        let pool = try NetBufPool(count: 1024, roomSize: 2048, headroom: 128)
        defer {
            #expect(pool.inUse == 0, "the pool is not full again after shutdown")
            try? pool.destroy()
        }
        let runner: TapServerThread
        do {
            var tap = try TapDevice(name: ifname)
            #expect(tap.interfaceName == ifname)
            try tap.bringUp(rx: RxQueueConfig(descriptors: 64, allocator: pool.rxAllocator), tx: TxQueueConfig(descriptors: 64))
            let config = KVServerConfig(mac: mac, ip: IPv4Address("192.0.2.2")!, prefixLength: 24, port: 11211,
                                        memoryBytes: 8 << 20)
            runner = TapServerThread(try KVServer(pool: pool, config: config, now: UInt32(truncatingIfNeeded: time(nil))),
                                     on: tap)
        }
        // The server's device is the only reference to the TAP file from here on.
        defer {
            let stopped = runner.stop()
            #expect(stopped, "the server thread did not stop")
            if stopped { runner.shutdown() }
        }
        try TapHarness.configureNamespaceSide(ifname, namespace)
        runner.start()

        // memcached over UDP from the kernel's socket (the first datagram waits for ARP).
        let exchanges = TapTests.session()
        let report = try TapHarness.memcachedClient(exchanges, in: namespace)
        TapHarness.expectReplies(report, exchanges)

        // ICMP echo.
        let ping = try TapHarness.ping3(in: namespace)
        #expect(ping.exit == .code(0), "ping: \(ping.exit): \(ping.output)")
        #expect(ping.output.contains("3 packets transmitted, 3 received"), "ping: \(ping.output)")

        // The kernel learnt the store's MAC from its ARP reply.
        let neighbour = try TapHarness.ipCommand("-n", namespace, "neigh", "show", "192.0.2.2")
        #expect(neighbour.contains("lladdr 02:00:00:00:00:02"), "neighbour entry: \(neighbour)")

        #expect(runner.stop(), "the server thread did not stop")
        #expect(!runner.hitDeadline, "the server thread ran into its 30 s deadline")
        let stats = runner.side.server.stats
        var dropped: [String] = []
        stats.forEachDrop { name, count in if count > 0 { dropped.append("\(name) \(count)") } }
        let summary = "frames \(stats.framesReceived), requests \(stats.requests), replies \(stats.replyDatagrams), "
            + "ARP \(stats.arpReplies), ICMP \(stats.icmpReplies), drops: " + dropped.joined(separator: ", ")
        #expect(stats.arpReplies >= 1, "\(summary)")
        #expect(stats.icmpReplies >= 3, "\(summary)")
        let requests = exchanges.filter { !$0.raw }.count
        #expect(stats.requests == UInt64(requests), "\(summary)")
        let datagrams = exchanges.reduce(0) { n, e in
            n + e.expectedShape.split(separator: " ").reduce(0) { $0 + Int($1.split(separator: ":")[0])! }
        }
        #expect(stats.replyDatagrams == UInt64(datagrams), "\(summary)")
        #expect(stats[.memcachedTooShort] == 1, "\(summary)")
        // The kernel also sends IPv6 neighbour/router solicitations, IGMP/MLD reports and the
        // like: dropped as not for us. Anything else dropped is a fault.
        let expectedHostDrops: Set<HostDropReason> = [.notForUs, .unsupportedEtherType, .arpNotForUs]
        for reason in HostDropReason.allCases where !expectedHostDrops.contains(reason) {
            #expect(stats[reason] == 0, "\(reason.name): \(summary)")
        }
        for reason in KVDropReason.allCases where reason != .memcachedTooShort {
            #expect(stats[reason] == 0, "\(reason.name): \(summary)")
        }
        let engineErrors = runner.side.server.engine.stats.errors
        #expect(engineErrors >= 1, "the error cases were counted")
        let tx = runner.side.device.txQueueStats(0)
        #expect(tx.errors == 0, "the TAP refused frames: \(tx)")
        #expect(tx.packets == stats.replyDatagrams + stats.arpReplies + stats.icmpReplies, "\(tx) \(summary)")
        print("kvstore on TAP: \(summary)")
    }

    /// The real `kvstore` command on a TAP interface it creates itself, moved into a namespace:
    /// one set/get round trip, then SIGINT ends it cleanly with its final statistics.
    @Test(.enabled(if: TapHarness.canRun, TapHarness.skipReason),
          .enabled(if: Tools.executable("kvstore") != nil, "no kvstore executable beside the test binary (swift build builds it)"))
    func kvstoreCommandOverTAP() throws {
        let binary = try #require(Tools.executable("kvstore"))
        let pid = getpid()
        let namespace = "uknet-kvcmd-\(pid)"
        let ifname = "kvc\(pid % 10_000)"
        _ = try? Processes.run([TapHarness.ip!, "netns", "del", namespace])
        try TapHarness.ipCommand("netns", "add", namespace)
        defer { _ = try? Processes.run([TapHarness.ip!, "netns", "del", namespace]) }

        let outputPath = Processes.outputPath()
        defer { unlink(outputPath) }
        var child = try Processes.spawn([binary, "--netdev", "tap:ifname=\(ifname)", "--ip", "192.0.2.2/24",
                                          "--mac", "02:00:00:00:00:02", "--memory", "8", "--buffers", "512"],
                                         output: outputPath)
        defer {
            // Any failure above: the child must not outlive the test.
            if child > 0 {
                kill(child, SIGKILL)
                _ = Processes.wait(child, seconds: 2)
            }
        }

        // kvstore creates the interface in this (the root) namespace: wait for it, then move it.
        var appeared = false
        let deadline = Processes.monotonic() + 2
        while Processes.monotonic() < deadline {
            if (try? Processes.run([TapHarness.ip!, "link", "show", ifname], seconds: 2))?.exit == .code(0) {
                appeared = true
                break
            }
            usleep(20_000)
        }
        try #require(appeared, "kvstore did not create \(ifname) within 2 s: \(Processes.read(outputPath))")
        try TapHarness.configureNamespaceSide(ifname, namespace)

        func s(_ t: String) -> [UInt8] { Array(t.utf8) }
        let exchanges = [
            TapHarness.exchange("set", s("set greeting 0 0 5\r\nhello\r\n"), reply: [[s("STORED\r\n")]]),
            TapHarness.exchange("get", s("get greeting\r\n"), reply: [[s("VALUE greeting 0 5\r\nhello\r\nEND\r\n")]]),
        ]
        let report = try TapHarness.memcachedClient(exchanges, in: namespace)
        TapHarness.expectReplies(report, exchanges)

        #expect(kill(child, SIGINT) == 0)
        let exit = Processes.wait(child, seconds: 5)
        child = 0
        let output = Processes.read(outputPath)
        #expect(exit == .code(0), "kvstore: \(exit): \(output)")
        #expect(output.contains("memcached requests: 2"), "kvstore's final statistics: \(output)")
        #expect(output.contains("kvstore 192.0.2.2/24 02:00:00:00:00:02 port 11211"), "\(output)")
        #expect(!output.contains("warning:"), "\(output)")
    }
}
