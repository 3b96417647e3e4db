import ArgumentParser
import Glibc
import KVStore
import NetdevSpec
import ToolSupport
import UKNetdev

/// `kvstore`: the memcached-UDP key-value store on any UKNetdev device.
///
///   kvstore --netdev pcap:rx=IN,tx=OUT --ip 192.0.2.2 --mac 02:00:00:00:00:02
///   kvstore --netdev tap:ifname=kv0 --ip 192.0.2.2/24 --mac 02:00:00:00:00:02
///   kvstore --netdev tap:ifname=kv0 --ip 192.0.2.2/24 --mac 02:00:00:00:00:02 --echo
///   kvstore --netdev vhost-user:path=/tmp/kv.sock --ip 198.51.100.2/24 --mac 02:00:00:00:00:02
@main
struct KVStoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvstore",
        abstract: "A memcached-compatible UDP key-value store on a UKNetdev device.",
        discussion: """
            With a pcap device the store answers every frame of the input file, writes the replies \
            in order, prints its statistics and exits. On other devices it runs until SIGINT or \
            SIGTERM, printing statistics once per second on a terminal and once at exit.
            """)

    @Option(help: "The network stack under the store: netdev (our own host stack straight on the device: the fast path), lwip (real lwIP as a netif on the device), linux-single (a kernel UDP socket, recvfrom/sendto) or linux-batch (recvmmsg/sendmmsg). The linux stacks bind --ip and --port and take no --netdev or --mac.")
    var stack: KVStack = .netdev

    @Option(help: "The device: pcap:rx=FILE,tx=FILE | tap:ifname=NAME | vhost-user:path=SOCK[,queues=N] | \"dpdk:[--port=N] EAL-ARGUMENTS\" | null | ring.")
    var netdev: String?

    @Option(help: "The store's IPv4 address, A.B.C.D[/prefix] (default prefix 24).")
    var ip: String

    @Option(help: "The store's MAC address, XX:XX:XX:XX:XX:XX (netdev and lwip stacks).")
    var mac: String?

    @Option(help: "UDP port.")
    var port: UInt16 = 11211

    @Option(help: "Item memory in MiB, allocated at start.")
    var memory: Int = 64

    @Option(help: "Also record every frame received and sent into this pcap file.")
    var record: String?

    @Option(help: "Buffers in the packet pool.")
    var buffers: Int = 8192

    @Option(help: ArgumentHelp("Inject faults between the device and the store: drop=P,duplicate=P,corrupt=P,reorder=P,stall=P"
                               + "[,seed=N][,on=rx|tx|both] (probabilities 0...1).", valueName: "faults"))
    var faults: String?

    @Flag(help: "Answer every UDP datagram on --port with itself (a baseline for benchmarks) instead of speaking memcached.")
    var echo = false

    @Option(help: ArgumentHelp("A prefix whose sources are trusted like the store's own (A.B.C.D/N; repeatable). With an allow list, "
                               + "writes (set, delete, incr, touch, ...) from other sources are refused.", valueName: "prefix"))
    var allow: [String] = []

    @Option(help: ArgumentHelp("To an untrusted source, no request's replies exceed this many times its bytes (larger: one short "
                               + "SERVER_ERROR); 0: no limit."))
    var maxReplyRatio: Int = SourcePolicy().maxReplyRatio

    @Option(help: "Reply bytes per second to one untrusted source; beyond, its requests are dropped and counted. 0: no budget.")
    var sourceBudget: Int = SourcePolicy().budgetBytesPerSecond

    mutating func validate() throws {
        guard parseAddress(ip) != nil else { throw ValidationError("--ip: expected A.B.C.D or A.B.C.D/prefix, got '\(ip)'") }
        if echo && stack != .netdev { throw ValidationError("--echo runs on the netdev stack only") }
        if stack.isLinux {
            guard netdev == nil, mac == nil, record == nil else {
                throw ValidationError("--stack \(stack.rawValue) uses the kernel's UDP socket on --ip: drop --netdev, --mac and --record")
            }
        } else {
            guard let netdev else { throw ValidationError("--stack \(stack.rawValue) needs --netdev") }
            do { _ = try NetdevSpec(parsing: netdev) } catch { throw ValidationError("--netdev: \(error)") }
            guard let mac, MACAddress(mac) != nil else { throw ValidationError("--mac: expected XX:XX:XX:XX:XX:XX, got '\(mac ?? "")'") }
        }
        guard memory >= 1 && memory <= 65536 else { throw ValidationError("--memory: 1...65536 MiB") }
        guard buffers >= 64 else { throw ValidationError("--buffers: at least 64") }
        if let faults {
            do { _ = try FaultConfig(parsing: faults) } catch { throw ValidationError("--faults: \(error)") }
            guard !stack.isLinux else { throw ValidationError("--faults works on a device: not with --stack \(stack.rawValue)") }
        }
        for a in allow where IPv4Prefix(a) == nil { throw ValidationError("--allow: expected A.B.C.D/N, got '\(a)'") }
        guard maxReplyRatio >= 0 else { throw ValidationError("--max-reply-ratio: 0 (no limit) or more") }
        guard (0...Int(UInt32.max)).contains(sourceBudget) else { throw ValidationError("--source-budget: 0 (no budget) ... \(UInt32.max) bytes per second") }
    }

    var openOptions: NetdevOpenOptions { NetdevOpenOptions(faults: faults.flatMap { try? FaultConfig(parsing: $0) }) }

    var sourcePolicy: SourcePolicy {
        SourcePolicy(maxReplyRatio: maxReplyRatio, budgetBytesPerSecond: sourceBudget, allow: allow.map { IPv4Prefix($0)! })
    }

    func run() throws {
        let (address, prefix) = parseAddress(ip)!
        installStopSignals()
        if stack.isLinux {
            let report = try runLinuxSocketStore(address: address, prefixLength: prefix, port: port, memoryBytes: memory << 20,
                                                 sources: sourcePolicy, buffers: buffers,
                                                 batch: stack == .linuxBatch, live: isatty(1) != 0)
            print(report)
            return
        }
        let spec = try NetdevSpec(parsing: netdev!)
        var config = KVServerConfig(mac: MACAddress(mac!)!, ip: address, prefixLength: prefix, port: port,
                                    memoryBytes: memory << 20, mode: echo ? .echo : .memcached)
        config.sources = sourcePolicy
        let pool = try spec.makePool(count: buffers, roomSize: 2048, headroom: 128, threading: .singleThread)
        let stats: String
        if stack == .lwip {
            var runner = LwIPServerRunner(config: config, pool: pool, live: isatty(1) != 0)
            stats = try open(spec, pool: pool, record: record, options: openOptions, visitor: &runner)
        } else {
            var runner = ServerRunner(config: config, pool: pool, live: isatty(1) != 0)
            stats = try open(spec, pool: pool, record: record, options: openOptions, visitor: &runner)
        }
        // Read after the device stopped and gave back the buffers it held for RX.
        print(stats)
        print("pool: \(pool.inUse) in use of \(pool.capacity) after stop, high water \(pool.highWater), allocation failures \(pool.allocationFailures)")
        if pool.inUse != 0 { print("warning: \(pool.inUse) buffers still in use at exit") }
        exitIfDeviceLost()
    }
}

/// The store's loop on a device, whatever the stack: `poll` until SIGINT/SIGTERM, or until an
/// idle poll finds the store `finished` (the input ended and every reply went out, or none can:
/// the device's backend went away); busy-poll briefly, then nap while idle (a TAP or pcap device);
/// `liveLine` once per second when `live`.
/// Returns the time spent in polls that received frames.
func pollUntilDone(live: Bool, poll: () -> Int, finished: () -> Bool, liveLine: () -> String) -> BusyTime {
    var lastReport = monotonicSeconds()
    var busy = BusyTime()
    // One clock read per poll: a poll's end is the next one's start (the loop's own work counted
    // with the poll it follows).
    var start = monotonicNanoseconds()
    // Busy-polls 100 us after the last frame (as long as ~1,000 empty polls), then naps 100 us a poll.
    var nap = IdleNap(after: 100_000, sleep: 100, now: start)
    while stopRequested == 0 {
        let received = poll()
        let end = monotonicNanoseconds()
        if received == 0 {
            if finished() { break }
        } else {
            busy.add(poll: end &- start)
        }
        start = nap.after(packets: received, now: end) ? monotonicNanoseconds() : end
        if live, monotonicSeconds() - lastReport >= 1 {
            lastReport = monotonicSeconds()
            print(liveLine(), terminator: "\r")
            fflush(nil)
        }
    }
    return busy
}

/// The network stack under the store (`--stack`).
enum KVStack: String, ExpressibleByArgument, CaseIterable {
    case netdev, lwip
    case linuxSingle = "linux-single"
    case linuxBatch = "linux-batch"
    var isLinux: Bool { self == .linuxSingle || self == .linuxBatch }
}

/// A.B.C.D or A.B.C.D/prefix.
func parseAddress(_ text: String) -> (IPv4Address, Int)? {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count <= 2, let address = IPv4Address(String(parts[0])) else { return nil }
    guard parts.count == 2 else { return (address, 24) }
    guard let prefix = Int(parts[1]), (0...32).contains(prefix) else { return nil }
    return (address, prefix)
}

/// Runs the server on whatever device `open` built (specialized per device type).
struct ServerRunner: NetDeviceVisitor {
    let config: KVServerConfig
    let pool: NetBufPool
    let live: Bool

    mutating func visit<D: NetDevice & ~Copyable>(_ device: inout D) throws -> String {
        var server = try KVServer(pool: pool, config: config, now: unixTime())   // freed when this returns
        describeProcess(&server.engine.environment)
        let busy = pollUntilDone(live: live,
                                 poll: { server.poll(&device, now: unixTime()) },
                                 finished: { server.inputEnded && (server.pendingTransmit == 0 || !device.info.link.up) },
                                 liveLine: { liveLine(server) })
        server.flush(&device)
        if live { print("") }
        let requests = config.mode == .echo ? server.stats.echoed : server.stats.requests
        return report(server) + "\n" + busy.reportLine(requests: requests)
    }

    func liveLine(_ s: borrowing KVServer) -> String {
        if config.mode == .echo {
            return "frames \(s.stats.framesReceived)  echoed \(s.stats.echoed)  drops \(s.stats.totalDrops)  pool \(pool.inUse)/\(pool.capacity)"
        }
        return "frames \(s.stats.framesReceived)  requests \(s.stats.requests)  replies \(s.stats.replyDatagrams)  "
            + "hits \(s.engine.stats.hits)  misses \(s.engine.stats.misses)  drops \(s.stats.totalDrops)  pool \(pool.inUse)/\(pool.capacity)"
    }

    func report(_ s: borrowing KVServer) -> String {
        var lines: [String] = []
        let echo = config.mode == .echo
        lines.append("kvstore \(config.ip)/\(config.prefixLength) \(config.mac) port \(config.port)" + (echo ? " (echo)" : ""))
        lines.append("frames received: \(s.stats.framesReceived)")
        if echo {
            lines.append("echoed datagrams: \(s.stats.echoed) (\(s.stats.echoFastPath) on the fast path, \(s.stats.echoGeneralPath) after the host stack, "
                         + "\(s.stats.echoCopies) of them copied into a fresh buffer)")
        } else {
            lines.append("memcached requests: \(s.stats.requests), reply datagrams: \(s.stats.replyDatagrams)")
        }
        let host = s.stats.host
        lines.append("ARP replies: \(host.arpReplies), ICMP echo replies: \(host.icmpReplies), reassembled datagrams: \(host.reassembled), "
                     + "chained frames: \(host.linearised)" + (echo ? "" : ", lone GETs on the fast path: \(s.engine.stats.loneGets)"))
        if echo { return (lines + dropLines(s)).joined(separator: "\n") }
        return (lines + engineReportLines(s.engine) + dropLines(s)).joined(separator: "\n")
    }

    func dropLines(_ s: borrowing KVServer) -> [String] { dropReportLines(s.stats) }
}

/// What memcached's `stats` says about the process: its id and CPU time.
func describeProcess(_ environment: inout MemcachedEngine.StatsEnvironment) {
    environment.processID = UInt32(truncatingIfNeeded: getpid())
    environment.cpuTime = { out in
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        out[0] = UInt64(usage.ru_utime.tv_sec) * 1_000_000 + UInt64(usage.ru_utime.tv_usec)
        out[1] = UInt64(usage.ru_stime.tv_sec) * 1_000_000 + UInt64(usage.ru_stime.tv_usec)
    }
}

/// The engine's part of a report (commands, hits, items), the same for every stack.
func engineReportLines(_ engine: borrowing MemcachedEngine) -> [String] {
    let e = engine.stats
    var commands: [String] = []
    for c in KVCommandStats.Command.allCases where e[c] > 0 { commands.append("\(c) \(e[c])") }
    return [
        "commands: \(e.allCommands)" + (commands.isEmpty ? "" : " (" + commands.joined(separator: ", ") + ")"),
        "get hits: \(e.hits), get misses: \(e.misses), errors: \(e.errors), unsupported: \(e.unsupported), writes refused (untrusted source): \(e.refusedWrites)",
        "incomplete lines: \(e.incompleteLines), values beyond their datagram: \(e.dataBeyondDatagram)",
        "items: \(engine.store.items), evictions: \(engine.store.evictions), memory pages: \(engine.store.pagesInUse)/\(engine.store.pageLimitCount)",
    ]
}

/// Drops in total and by reason (those that happened), the same for every stack.
func dropReportLines(_ stats: KVServerStats) -> [String] {
    var drops: [String] = []
    stats.forEachDrop { name, count in if count > 0 { drops.append("  \(name): \(count)") } }
    return ["replies to untrusted sources limited to one SERVER_ERROR: \(stats.repliesLimited)",
            "drops: \(stats.totalDrops)" + (drops.isEmpty ? "" : "\n" + drops.joined(separator: "\n"))]
}
