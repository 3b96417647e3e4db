import Foundation
import KVStore
import PktGen
import Testing
import TestSupport
import UKNetdev

let storeMAC = MACAddress(0x02, 0, 0, 0, 0, 0x02), clientMAC = MACAddress(0x02, 0, 0, 0, 0, 0x03)
let storeIP = IPv4Address(192, 0, 2, 2), clientIP = IPv4Address(192, 0, 2, 3)

/// The load client on one ring endpoint (behind middleware: a fault injector, a segmenter), the
/// real KV store on the other, polled in turn on one thread with a virtual clock.
struct LoadRun<Sampler: KeySampler, ClientDevice: NetDevice & ~Copyable>: ~Copyable {
    var client: KVLoadClient<Sampler, LatencySummary>
    var clientDevice: ClientDevice
    var serverDevice: RingDevice
    var server: KVServer
    var now: UInt64 = 1_000_000_000

    init(pool: NetBufPool, config: KVLoadConfig, sampler: Sampler, serverMode: KVServerMode = .memcached,
         clientDevice wrap: (consuming RingDevice) -> ClientDevice) throws {
        let ring = try ringPair(slots: 1024)
        // Everything that can throw first: a noncopyable field is never half set up.
        let server = try KVServer(pool: pool, config: KVServerConfig(mac: storeMAC, ip: storeIP, memoryBytes: 8 << 20, mode: serverMode),
                                  now: 1_800_000_000)
        client = try KVLoadClient(config: config, pool: pool, sampler: sampler, latency: LatencySummary())
        self.server = server
        clientDevice = wrap(ring.a)
        serverDevice = ring.b
    }

    /// Polls both sides until `done` or a virtual minute passed.
    mutating func run(issue: (borrowing KVLoadClient<Sampler, LatencySummary>) -> Int, until done: (borrowing KVLoadClient<Sampler, LatencySummary>) -> Bool) {
        let deadline = now + 60_000_000_000
        while !done(client) && now < deadline {
            now += 10_000
            _ = client.poll(&clientDevice, now: now, issue: issue(client))
            server.poll(&serverDevice, now: 1_800_000_000)
        }
    }

    /// Preloads every key, then issues `requests` more and waits for all of them.
    mutating func preloadThenRun(requests: UInt64) {
        client.startPreload()
        run(issue: { _ in 0 }, until: { !$0.isPreloading && $0.inFlight == 0 })
        let start = client.stats.completed &+ client.stats.timeouts
        run(issue: { Int(requests - $0.started) }, until: { $0.started == requests && $0.inFlight == 0 })
        #expect(client.stats.completed &+ client.stats.timeouts &+ client.stats.wrongValues &+ client.stats.badReplies == start + requests,
                "every request started ends exactly once")
    }

    consuming func finish() {
        client.deallocate()
        server.poll(&serverDevice, now: 1_800_000_000)
        server.shutdown()
        let burst = Burst(64)
        while true {
            let n = clientDevice.rxBurst(queue: 0, into: burst.storage).count
            if n == 0 { break }
            NetBuf.releaseBulk(burst.prefix(n))
        }
    }
}

extension LoadRun where ClientDevice == FaultInjector<RingDevice> {
    init(pool: NetBufPool, config: KVLoadConfig, sampler: Sampler, serverMode: KVServerMode = .memcached,
         faults: FaultConfig = FaultConfig(seed: 1)) throws {
        try self.init(pool: pool, config: config, sampler: sampler, serverMode: serverMode) { FaultInjector(inner: $0, config: faults) }
    }
}

@Suite struct KVLoadTests {
    /// Against the real store over a ring pair: ARP first, then a preload and a GET/SET mix over
    /// Zipf keys; every request matched and validated, nothing lost, no error.
    @Test func everyReplyMatchedAndValidated() throws {
        try withPool(count: 2048) { pool in
            let config = KVLoadConfig(clientMAC: clientMAC, clientIP: clientIP, serverMAC: nil, serverIP: storeIP,
                                      window: 64, keys: 500, keySize: 12, valueSize: 100, getPerMille: 800)
            let zipf = ZipfKeys(keys: 500, exponent: 0.99, power: pow)
            defer { zipf.deallocate() }
            var run = try LoadRun(pool: pool, config: config, sampler: zipf)
            run.preloadThenRun(requests: 20_000)
            let s = run.client.stats
            #expect(run.client.isResolved && s.arpRequests >= 1)
            #expect(s.stored >= 500 && s.completed >= 20_500 && s.completed == s.gets + s.sets)
            #expect(s.hits == s.gets && s.misses == 0, "every key was preloaded")
            #expect(s.errors == 0 && s.lateReplies == 0 && s.badChecksums == 0 && s.retries == 0, "\(s)")
            #expect(run.server.engine.stats.hits == s.hits)
            #expect(run.client.latency.count == s.completed)
            run.finish()
        }
    }

    /// A store that answers with a value other than the one stored is caught: the key's value
    /// is changed behind the client's back.
    @Test func wrongValueIsDetected() throws {
        try withPool(count: 1024) { pool in
            let config = KVLoadConfig(clientMAC: clientMAC, clientIP: clientIP, serverMAC: storeMAC, serverIP: storeIP,
                                      window: 8, keys: 4, keySize: 10, valueSize: 16, getPerMille: 1000)
            var run = try LoadRun(pool: pool, config: config, sampler: UniformKeys(keys: 4))
            run.client.startPreload()
            run.run(issue: { _ in 0 }, until: { !$0.isPreloading && $0.inFlight == 0 })
            // Same length, flags and key; one letter different.
            var sink = CollectingSink()
            let tamper = Array("set k000000002 2 0 16 noreply\r\nXXXXXXXXXXXXXXXX\r\n".utf8)
            tamper.withUnsafeBytes { run.server.engine.execute($0.baseAddress!, count: $0.count, now: 1_800_000_000, into: &sink) }
            run.run(issue: { 300 - Int($0.started) }, until: { $0.started == 300 && $0.inFlight == 0 })
            let s = run.client.stats
            #expect(s.wrongValues > 0 && s.wrongValues < s.gets, "\(s)")
            #expect(s.misses == 0 && s.hits == s.gets && s.badReplies == 0)
            run.finish()
        }
    }

    /// Requests lost on the way are retried and, when they never get through, counted as
    /// timeouts; corrupted replies are caught by their checksum. Nothing hangs, nothing leaks.
    @Test func dropsAndCorruptionAreCountedNotHidden() throws {
        try withPool(count: 2048) { pool in
            let config = KVLoadConfig(clientMAC: clientMAC, clientIP: clientIP, serverMAC: storeMAC, serverIP: storeIP,
                                      window: 32, keys: 100, keySize: 10, valueSize: 32, getPerMille: 900,
                                      timeout: 1_000_000, retries: 2)
            // 20 % of requests dropped on TX, 10 % of replies corrupted on RX.
            let faults = FaultConfig(seed: 7, dropRate: 0.2, corruptRate: 0.1, onRx: true, onTx: true)
            var run = try LoadRun(pool: pool, config: config, sampler: UniformKeys(keys: 100), faults: faults)
            run.preloadThenRun(requests: 3_000)
            let s = run.client.stats
            #expect(s.retries > 0, "\(s)")
            #expect(s.badChecksums + s.ignored > 0, "corrupted replies were not noticed: \(s)")
            #expect(s.wrongValues == 0, "a corrupted reply passed as a value: \(s)")
            #expect(run.clientDevice.faults.dropped > 0 && run.clientDevice.faults.corrupted > 0)
            run.finish()
        }
        // Everything dropped: every request times out after its retries.
        try withPool(count: 1024) { pool in
            let config = KVLoadConfig(clientMAC: clientMAC, clientIP: clientIP, serverMAC: storeMAC, serverIP: storeIP,
                                      window: 4, keys: 10, keySize: 10, valueSize: 8, timeout: 1_000_000, retries: 1)
            var run = try LoadRun(pool: pool, config: config, sampler: UniformKeys(keys: 10),
                                  faults: FaultConfig(seed: 3, dropRate: 1.0, onRx: false, onTx: true))
            run.run(issue: { 20 - Int($0.started) }, until: { $0.started == 20 && $0.inFlight == 0 })
            let s = run.client.stats
            #expect(s.timeouts == 20 && s.retries == 20 && s.completed == 0, "\(s)")
            run.finish()
        }
    }

    /// The largest value a one-datagram SET carries comes back in a GET reply of two datagrams:
    /// reassembled by sequence number and checked whole.
    @Test func multiDatagramRepliesAreReassembled() throws {
        try withPool(count: 2048) { pool in
            var config = KVLoadConfig(clientMAC: clientMAC, clientIP: clientIP, serverMAC: storeMAC, serverIP: storeIP,
                                      window: 16, keys: 50, keySize: 10, valueSize: 0, getPerMille: 700)
            config.valueSize = config.maxValueSize
            var run = try LoadRun(pool: pool, config: config, sampler: UniformKeys(keys: 50))
            run.preloadThenRun(requests: 2_000)
            let s = run.client.stats
            #expect(config.valueSize > 1392 && s.hits > 1000 && s.hits == s.gets && s.errors == 0, "\(s)")
            #expect(run.server.stats.replyDatagrams > run.server.stats.requests, "replies did span datagrams")
            run.finish()
        }
    }

    /// Replies that arrive as chains (virtio's mergeable RX buffers), ARP included, are made
    /// contiguous by the host stack and checked like any other; nothing leaks.
    @Test func chainedRepliesAreReadWhole() throws {
        try withPool(count: 2048) { pool in
            let config = KVLoadConfig(clientMAC: clientMAC, clientIP: clientIP, serverMAC: nil, serverIP: storeIP,
                                      window: 16, keys: 50, keySize: 10, valueSize: 1000, getPerMille: 800)
            var run = try LoadRun(pool: pool, config: config, sampler: UniformKeys(keys: 50)) {
                SegmentingDevice(inner: $0, pool: pool, segment: 48)   // ARP replies (60 bytes) too
            }
            run.preloadThenRun(requests: 1_000)
            let s = run.client.stats
            #expect(run.client.isResolved && s.arpRequests >= 1)
            #expect(s.hits == s.gets && s.hits > 0 && s.errors == 0 && s.badChecksums == 0 && s.ignored == 0, "\(s)")
            #expect(run.clientDevice.chained > 1_000 && run.clientDevice.dropped == 0)
            #expect(run.client.host.stats.linearised == run.clientDevice.chained)
            run.finish()
        }
    }

    /// The client answers ARP for its own address (a peer that asks before replying gets an
    /// answer) and ignores ARP for others.
    @Test func answersARPForItsAddress() throws {
        try withPool(count: 64) { pool in
            let ring = try ringPair(slots: 64)
            var a = ring.a, b = ring.b
            let config = KVLoadConfig(clientMAC: clientMAC, clientIP: clientIP, serverMAC: storeMAC, serverIP: storeIP)
            var client = try KVLoadClient(config: config, pool: pool, sampler: UniformKeys(keys: 1), latency: LatencySummary())
            for target in [clientIP, IPv4Address(192, 0, 2, 99)] {
                var buf = try #require(pool.allocate())
                buf.data.initializeMemory(as: UInt8.self, repeating: 0, count: 60)
                EthernetFrame.writeHeader(at: buf.data, destination: .broadcast, source: storeMAC, etherType: EtherType.arp)
                ARPPacket.write(at: buf.data + 14, operation: ARPPacket.Operation.request, senderHardware: storeMAC,
                                senderProtocol: storeIP, targetHardware: .zero, targetProtocol: target)
                try buf.setLength(60)
                #expect(withUnsafeMutablePointer(to: &buf) { b.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: $0, count: 1)).count } == 1)
                _ = client.poll(&a, now: 1, issue: 0)
            }
            let burst = Burst(8)
            let n = b.rxBurst(queue: 0, into: burst.storage).count
            #expect(n == 1 && client.stats.arpAnswered == 1 && client.stats.ignored == 1)
            if n == 1 {
                let eth = try EthernetFrame(burst[0].unsafeBytes)
                let arp = try ARPPacket(eth.payload)
                #expect(eth.destination == storeMAC && arp.operation == ARPPacket.Operation.reply)
                #expect(arp.senderHardware == clientMAC && arp.senderProtocol == clientIP && arp.targetProtocol == storeIP)
            }
            NetBuf.releaseBulk(burst.prefix(n))
            client.deallocate()
        }
    }

    /// `--echo` against the KV server in echo mode: ARP, a preload and a GET/SET mix (values up
    /// to the largest one-datagram SET), every reply checked to be its request byte for byte and
    /// timed; the server echoed every datagram on its one-pass path.
    @Test func echoServerEveryReplyValidated() throws {
        for valueSize in [32, -1] {
            try withPool(count: 2048) { pool in
                var config = KVLoadConfig(clientMAC: clientMAC, clientIP: clientIP, serverMAC: nil, serverIP: storeIP,
                                          window: 64, keys: 300, keySize: 12, valueSize: 0, getPerMille: 700, echo: true)
                config.valueSize = valueSize < 0 ? config.maxValueSize : valueSize
                var run = try LoadRun(pool: pool, config: config, sampler: UniformKeys(keys: 300), serverMode: .echo)
                run.preloadThenRun(requests: 10_000)
                let s = run.client.stats
                #expect(run.client.isResolved && s.arpRequests >= 1, "the echo server answers ARP")
                #expect(s.completed == 10_300 && s.echoes == s.completed && s.gets + s.sets == s.completed && s.gets > 6_000, "\(s)")
                #expect(s.errors == 0 && s.lateReplies == 0 && s.badChecksums == 0 && s.retries == 0 && s.ignored == 0, "\(s)")
                #expect(s.hits == 0 && s.misses == 0 && s.stored == 0, "nothing counted as memcached's")
                #expect(run.client.latency.count == s.completed)
                let server = run.server.stats
                #expect(server.echoed == s.sent && server.echoFastPath == s.sent && server.totalDrops == 0, "\(server)")
                #expect(run.server.engine.stats.commands == 0)
                run.finish()
            }
        }
    }

    /// Without `--echo` the client does not take an echo server's replies (a GET's echo is its
    /// own request, not memcached's answer), and with it, not memcached's: every reply is counted
    /// bad, none completes.
    @Test func echoAndMemcachedRepliesAreNotMistakenForEachOther() throws {
        for (echo, mode) in [(false, KVServerMode.echo), (true, KVServerMode.memcached)] {
            try withPool(count: 1024) { pool in
                let config = KVLoadConfig(clientMAC: clientMAC, clientIP: clientIP, serverMAC: storeMAC, serverIP: storeIP,
                                          window: 8, keys: 10, keySize: 10, valueSize: 8, getPerMille: 500, echo: echo)
                var run = try LoadRun(pool: pool, config: config, sampler: UniformKeys(keys: 10), serverMode: mode)
                run.run(issue: { 200 - Int($0.started) }, until: { $0.started == 200 && $0.inFlight == 0 })
                let s = run.client.stats
                #expect(s.badReplies == 200 && s.completed == 0 && s.echoes == 0 && s.timeouts == 0, "echo \(echo), server \(mode): \(s)")
                run.finish()
            }
        }
    }

    @Test func zipfFavoursTheFirstKeys() {
        let zipf = ZipfKeys(keys: 1000, exponent: 1.0, power: pow)
        defer { zipf.deallocate() }
        var sampler = zipf
        var random = SplitMix64(seed: 5)
        var counts = [Int](repeating: 0, count: 1000)
        for _ in 0..<200_000 { counts[sampler.next(&random)] += 1 }
        // P(rank 0) = 1 / H(1000) = 0.1336.
        #expect(abs(zipf.probability(of: 0) - 0.1336) < 0.001)
        #expect(abs(Double(counts[0]) / 200_000 - 0.1336) < 0.005)
        #expect(counts[0] > counts[1] && counts[1] > counts[9] && counts[9] > counts[999])
    }

    @Test func badConfigurationsAreErrors() throws {
        try withPool(count: 8) { pool in
            func make(_ c: KVLoadConfig) throws { let k = try KVLoadClient(config: c, pool: pool, sampler: UniformKeys(keys: 1), latency: LatencySummary()); k.deallocate() }
            let base = KVLoadConfig(clientMAC: clientMAC, clientIP: clientIP, serverIP: storeIP)
            var c = base; c.window = 0
            #expect(throws: PktGenError.window(0)) { try make(c) }
            c = base; c.keys = 100_000; c.keySize = 5
            #expect(throws: PktGenError.keySize(needed: 6, given: 5)) { try make(c) }
            c = base; c.valueSize = 2000
            #expect(throws: PktGenError.valueSize(2000, max: base.maxValueSize)) { try make(c) }
        }
    }
}
