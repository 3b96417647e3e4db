import ArgumentParser
import Glibc
import KVStore
import NetdevSpec
import PcapNet
import PktGen
import ToolSupport
import UKNetdev

struct KVCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv",
        abstract: "memcached UDP load: a closed loop of GETs and SETs, every reply matched and checked.",
        discussion: """
            Keeps --window requests in flight; each reply is matched to its request by memcached's \
            request id and checked byte for byte (a value is a function of its key, so every GET hit \
            is checked; a wrong value is an error, not a success). Unanswered requests are sent \
            again after --timeout-ms, at most --retries times, then counted as timed out. Without \
            --server-mac the server's MAC is asked for with ARP. With --netdev ring the store runs \
            in this process on the other end of an in-memory ring pair (store on CPU 1, load on CPU 0). \
            With --echo the server is an echo server (kvstore --echo; with --netdev ring the in-process \
            store runs in echo mode): the same requests, each reply checked to be its request byte for \
            byte, latency measured the same way. Exit status 0 when every request was answered \
            correctly, 1 when any timed out, 2 on a wrong or unexpected reply.
            """)

    @OptionGroup var device: DeviceOptions
    @OptionGroup var output: OutputOptions

    @Option(help: "Our IPv4 address.") var ip = "192.0.2.3"
    @Option(help: "Our MAC address.") var mac = "02:00:00:00:00:03"
    @Option(help: "Our UDP port.") var port: UInt16 = 40000
    @Option(help: "The store's IPv4 address.") var serverIp = "192.0.2.2"
    @Option(help: "The store's MAC (default: ask with ARP).") var serverMac: String?
    @Option(help: "The store's UDP port.") var serverPort: UInt16 = 11211
    @Option(help: "Requests in flight (1...1024).") var window = 32
    @Option(help: "Key space size.") var keys = 1000
    @Option(help: "Key length in bytes.") var keySize = 10
    @Option(help: "Value length in bytes (one-datagram SETs).") var valueSize = 32
    @Option(help: "Share of GETs, 0...1 (the rest are SETs).") var getRatio = 0.9
    @Option(help: "Key popularity: uniform or zipf.") var distribution = "uniform"
    @Option(help: "Zipf exponent.") var zipf = 0.99
    @Flag(help: "SET every key once before the measured load.") var preload = false
    @Option(help: "Milliseconds before a request is sent again.") var timeoutMs = 200.0
    @Option(help: "Retries before a request counts as timed out.") var retries = 3
    @Option(help: "Requests to complete (after the preload).") var requests: UInt64?
    @Option(help: "Seconds of load; default 5 when no --requests is given.") var duration: Double?
    @Option(help: "Random seed (keys and the GET/SET mix).") var seed: UInt64 = 1
    @Option(help: "Item memory of the in-process store (--netdev ring), MiB.") var storeMemory = 64
    @Option(help: "Seconds the device's link may stay down, without a break, before ARP or the preload gives up (no peer, or one that did not come back).")
    var linkWait = 30.0
    @Flag(help: "The server echoes (kvstore --echo): check that every reply is its request, byte for byte, instead of memcached's answer.")
    var echo = false

    mutating func validate() throws {
        try device.check()
        try checkRunLength(count: requests, duration: duration, countName: "--requests")
        _ = try config()
        guard ["uniform", "zipf"].contains(distribution) else { throw ValidationError("--distribution: uniform or zipf") }
        guard zipf > 0, zipf < 10 else { throw ValidationError("--zipf: an exponent above 0 (0.99 is YCSB's)") }
        guard keys >= 1 && keys <= 50_000_000 else { throw ValidationError("--keys: 1...50000000") }
        guard storeMemory >= 1 && storeMemory <= 65536 else { throw ValidationError("--store-memory: 1...65536 MiB") }
        guard linkWait > 0 && linkWait <= 3600 else { throw ValidationError("--link-wait: more than 0, at most 3600 seconds") }
    }

    func config() throws -> KVLoadConfig {
        guard getRatio >= 0, getRatio <= 1 else { throw ValidationError("--get-ratio: 0...1") }
        guard timeoutMs > 0, timeoutMs <= 60_000 else { throw ValidationError("--timeout-ms: more than 0, at most 60000") }
        guard retries >= 0, retries <= 63 else { throw ValidationError("--retries: 0...63") }
        var c = KVLoadConfig(clientMAC: try parseMAC(mac, "--mac"), clientIP: try parseIP(ip, "--ip"), clientPort: port,
                             serverMAC: try serverMac.map { try parseMAC($0, "--server-mac") }, serverIP: try parseIP(serverIp, "--server-ip"),
                             serverPort: serverPort, window: window, keys: keys, keySize: keySize, valueSize: valueSize,
                             getPerMille: Int((getRatio * 1000).rounded()), timeout: UInt64(timeoutMs * 1e6), retries: retries, seed: seed,
                             echo: echo)
        do {
            try c.validate()
        } catch {
            switch error {
            case .window: throw ValidationError("--window: 1...1024")
            case .keys: throw ValidationError("--keys: at least 1")
            case .keySize(let needed, _): throw ValidationError("--key-size: \(needed)...250 for \(keys) keys")
            case .valueSize(_, let max): throw ValidationError("--value-size: 0...\(max) (a SET must fit one datagram)")
            default: throw ValidationError("\(error)")
            }
        }
        if case .ring = try device.spec() { c.serverMAC = c.serverMAC ?? KVCommand.inProcessStoreMAC }
        return c
    }

    /// The in-process store's MAC (--netdev ring), unless --server-mac says otherwise.
    static let inProcessStoreMAC = MACAddress(0x02, 0, 0, 0, 0, 0x02)

    func run() throws {
        installStopSignals()
        let spec = try device.spec()
        // In-process store: buffers cross threads both ways, so the pool takes its lock.
        let inProcess = spec == .ring
        let pool = try device.pool(threadSafe: inProcess)
        var runner = KVRunner(pool: pool, config: try config(), zipf: distribution == "zipf" ? zipf : nil, preload: preload, requests: requests,
                              duration: requests == nil && duration == nil ? 5 : duration, live: !output.quiet,
                              linkWait: UInt64(linkWait * 1e9))
        let result: KVResult
        if inProcess {
            result = try runner.againstInProcessStore(memoryMiB: storeMemory, record: device.record)
        } else {
            result = try open(spec, pool: pool, record: device.record, options: device.openOptions, visitor: &runner)
        }
        print(output.json ? JSON.object([("command", .string("kv")), ("netdev", .string(device.netdev))] + result.fields).text : result.text)
        if pool.inUse != 0 { printError("warning: \(pool.inUse) buffers still in use at exit") }
        exitIfDeviceLost()
        if let failure = result.failure { printError("pktgen kv: \(failure)") }
        let all = [result.setup, result.stats]
        if all.contains(where: { $0.wrongValues + $0.badReplies > 0 }) { throw ExitCode(2) }
        if all.contains(where: { $0.timeouts > 0 }) || result.failure != nil { throw ExitCode(1) }
    }
}

struct KVResult {
    /// The measured load only.
    let stats: KVLoadStats
    /// What came before it: ARP and the preload.
    let setup: KVLoadStats
    let latency: HdrLatency
    let seconds: Double
    let failure: String?
    /// Against an echo server (`--echo`).
    let echo: Bool

    var rps: Double { seconds > 0 ? Double(stats.completed) / seconds : 0 }

    var fields: [(String, JSON)] {
        let s = stats
        return [("requests", .int(s.completed)), ("seconds", .number(seconds)), ("replies_per_second", .number(rps)),
                ("gets", .int(s.gets)), ("sets", .int(s.sets)), ("hits", .int(s.hits)), ("misses", .int(s.misses)),
                ("stored", .int(s.stored)), ("echoes", .int(s.echoes)), ("sent", .int(s.sent)), ("retries", .int(s.retries)), ("timeouts", .int(s.timeouts)),
                ("wrong_values", .int(s.wrongValues)), ("bad_replies", .int(s.badReplies)), ("late_replies", .int(s.lateReplies)),
                ("bad_checksums", .int(s.badChecksums)), ("ignored_frames", .int(s.ignored)), ("tx_deferred", .int(s.txDeferred)),
                ("no_buffer", .int(s.noBuffer)), ("arp_answered", .int(s.arpAnswered)),
                ("preloaded", .int(setup.stored)), ("setup", .object([("arp_requests", .int(setup.arpRequests)),
                    ("requests", .int(setup.completed)), ("timeouts", .int(setup.timeouts)),
                    ("errors", .int(setup.wrongValues + setup.badReplies))])),
                ("latency", latencyJSON(latency)), ("failure", failure.map { .string($0) } ?? .string(""))]
    }

    var text: String {
        let s = stats
        let kinds = echo ? "echoes \(s.echoes) of gets \(s.gets) and sets \(s.sets)"
                         : "gets \(s.gets) (hits \(s.hits), misses \(s.misses)), sets \(s.sets) (stored \(s.stored))"
        return """
            kv: \(s.completed) requests in \(fixed(seconds, 3)) s: \(fixed(rps, 0)) replies/s\(echo ? " (echo server)" : "")
            \(kinds)
            sent \(s.sent) datagrams, retries \(s.retries), timeouts \(s.timeouts); wrong values \(s.wrongValues), bad replies \(s.badReplies), late replies \(s.lateReplies), bad checksums \(s.badChecksums), other frames \(s.ignored)
            deferred by the device \(s.txDeferred), no buffer \(s.noBuffer), ARP requests answered \(s.arpAnswered)
            setup: ARP requests \(setup.arpRequests), preloaded \(setup.stored) keys\(echo ? " (\(setup.echoes) SETs echoed)" : ""), timeouts \(setup.timeouts), errors \(setup.wrongValues + setup.badReplies)
            \(latency.text())
            """
    }
}

/// A setup phase's limits (ARP, the preload): `upLimit` counts only time the device's link was up,
/// so a backend that goes away and comes back (vhost-user with reconnect) delays the phase instead
/// of failing it; a link down for `downLimit` without a break (no peer, or one that did not come
/// back) ends it.
struct LinkUpClock {
    var last: UInt64
    var elapsed: UInt64 = 0
    var downFor: UInt64 = 0
    let upLimit: UInt64
    let downLimit: UInt64
    init(now: UInt64, upLimit: UInt64, downLimit: UInt64) {
        last = now
        self.upLimit = upLimit
        self.downLimit = downLimit
    }
    /// Time moves on to `now`; the reason the phase gives up, if it must (`upFailure` when the
    /// link-up time ran out).
    mutating func expired(at now: UInt64, linkUp: Bool, upFailure: @autoclosure () -> String) -> String? {
        if linkUp {
            elapsed &+= now &- last
            downFor = 0
        } else {
            downFor &+= now &- last
        }
        last = now
        if elapsed > upLimit { return upFailure() }
        if downFor > downLimit {
            return "the device's link stayed down for \(Double(downLimit) / 1e9) s (--link-wait): no peer, or it did not come back"
        }
        return nil
    }
}

/// No reply for 10 ms (a twentieth of the request timeout): the backend is gone or restarting,
/// and the closed loop naps (`IdleNap`). Healthy replies come in microseconds.
let quietBeforeNap: UInt64 = 10_000_000

struct KVRunner: NetDeviceVisitor {
    /// The device's RX pool too: the client allocates its requests from it.
    let pool: NetBufPool
    let config: KVLoadConfig
    let zipf: Double?
    let preload: Bool
    let requests: UInt64?
    let duration: Double?
    let live: Bool
    /// Nanoseconds the link may stay down, without a break, before setup gives up (`--link-wait`).
    let linkWait: UInt64

    mutating func visit<D: NetDevice & ~Copyable>(_ device: inout D) throws -> KVResult { try run(on: &device) }

    func run<D: NetDevice & ~Copyable>(on device: inout D) throws -> KVResult {
        if let zipf {
            let sampler = ZipfKeys(keys: config.keys, exponent: zipf, power: Glibc.pow)
            defer { sampler.deallocate() }
            return try load(&device, pool: pool, sampler: sampler)
        }
        return try load(&device, pool: pool, sampler: UniformKeys(keys: config.keys))
    }

    func load<D: NetDevice & ~Copyable, S: KeySampler>(_ device: inout D, pool: NetBufPool, sampler: S) throws -> KVResult {
        var client = try KVLoadClient(config: config, pool: pool, sampler: sampler, latency: HdrLatency())
        var failure: String?
        // The server's MAC first (ARP, sent every 100 ms), at most 3 s of link-up time.
        var setupClock = LinkUpClock(now: monotonicNanoseconds(), upLimit: 3_000_000_000, downLimit: linkWait)
        while !client.isResolved && stopRequested == 0 {
            let now = monotonicNanoseconds()
            failure = setupClock.expired(at: now, linkUp: device.info.link.up, upFailure: "no ARP reply from \(config.serverIP) in 3 s")
            if failure != nil { break }
            if client.poll(&device, now: now, issue: 0) == 0 { usleep(200) }
        }
        if failure == nil && preload {
            client.startPreload()
            setupClock = LinkUpClock(now: monotonicNanoseconds(), upLimit: 60_000_000_000, downLimit: linkWait)
            var nap = IdleNap(after: quietBeforeNap, sleep: 200, now: monotonicNanoseconds())
            while (client.isPreloading || client.inFlight > 0) && stopRequested == 0 {
                let now = monotonicNanoseconds()
                failure = setupClock.expired(at: now, linkUp: device.info.link.up, upFailure: "preload did not finish in 60 s")
                if failure != nil { break }
                nap.after(packets: client.poll(&device, now: now, issue: 0), now: now)
            }
        }
        let setup = client.stats
        client.resetStats()
        client.latency = HdrLatency()
        let loadStart = monotonicNanoseconds()
        let deadline = duration.map { loadStart + UInt64($0 * 1e9) } ?? .max
        var line = LiveLine(enabled: live, start: loadStart, duration: duration.map { UInt64($0 * 1e9) })
        var lastCompleted: UInt64 = 0
        var now = loadStart
        if failure == nil {
            var nap = IdleNap(after: quietBeforeNap, sleep: 200, now: now)
            while now < deadline && stopRequested == 0 {
                let left = requests.map { Int($0 - client.started) } ?? Int.max
                if left == 0 && client.inFlight == 0 { break }
                let completed = client.poll(&device, now: now, issue: left)
                nap.after(packets: completed, now: now)
                now = monotonicNanoseconds()
                if client.inputEnded {   // a backend gone for good (one that may come back never says so)
                    failure = "the device's input ended (its backend went away)"
                    break
                }
                if line.due(now) {
                    let s = client.stats
                    let done = s.completed
                    line.show(now, "kv \(done - lastCompleted) replies/s  total \(done)  timeouts \(s.timeouts)  errors \(s.wrongValues + s.badReplies)",
                              progress: requests.map { Double(done) / Double($0) })
                    lastCompleted = client.stats.completed
                }
            }
        }
        let loadEnd = monotonicNanoseconds()
        // Requests still out: wait for their replies or timeouts (bounded by the retry schedule).
        let drainLimit = loadEnd + config.timeout * UInt64(config.retries + 1) + 1_000_000_000
        while client.inFlight > 0 && monotonicNanoseconds() < drainLimit {
            _ = client.poll(&device, now: monotonicNanoseconds(), issue: 0)
        }
        line.finish()
        return KVResult(stats: client.stats, setup: setup, latency: client.latency,
                        seconds: Double(loadEnd - loadStart) / 1e9, failure: failure, echo: config.echo)
    }

    /// The store in this process, on the other end of a ring pair, polled on CPU 1.
    func againstInProcessStore(memoryMiB: Int, record: String?) throws -> KVResult {
        var ring = RingDevice.pair(slots: 1024)
        try ring.a.bringUp(rx: RxQueueConfig(descriptors: 1024), tx: TxQueueConfig(descriptors: 1024))
        try ring.b.bringUp(rx: RxQueueConfig(descriptors: 1024), tx: TxQueueConfig(descriptors: 1024))
        if let record {
            return try againstInProcessStore(client: PcapWriter(inner: ring.a, path: record), store: ring.b, memoryMiB: memoryMiB)
        }
        return try againstInProcessStore(client: ring.a, store: ring.b, memoryMiB: memoryMiB)
    }

    func againstInProcessStore<D: NetDevice & ~Copyable>(client: consuming D, store device: consuming RingDevice,
                                                       memoryMiB: Int) throws -> KVResult {
        var client = client
        // Each side allocates from its own pool: the store's thread and ours never share one.
        let storePool = try NetBufPool(count: 8192, roomSize: 2048, headroom: 128, threading: .threadSafe)
        let storeConfig = KVServerConfig(mac: config.serverMAC ?? KVCommand.inProcessStoreMAC, ip: config.serverIP,
                                         port: config.serverPort, memoryBytes: memoryMiB << 20,
                                         mode: config.echo ? .echo : .memcached)
        // The store's thread has it alone until it is joined; then it comes back for the shutdown.
        let store = Shared(KVServerOnDevice(server: try KVServer(pool: storePool, config: storeConfig, now: unixTime()),
                                            device: device))
        let stop = StopFlag()
        let thread = PinnedThread(cpu: 1) {
            while !stop.isRaised { store.value.poll(now: unixTime()) }
            store.value.flush()
        }
        pin(toCPU: 0)
        defer {
            stop.raise()
            thread.join()
            // (The store itself goes with `store`, its frames back to `storePool`.)
            // Frames still in the rings go back to their pools before the pools are checked.
            var drain = RxDrain()
            drain.drain(&client)
            drain.drain(&store.value.device)
            drain.deallocate()
            client.stop()   // flushes a record file
        }
        return try run(on: &client)
    }
}
