// The Swift half of the link test: enough of the core, the KV engine and the generator that the
// linker keeps real code (--gc-sections drops whatever _start cannot reach), checked when the test
// binary runs. Returns 0, or the number of the first check that failed (printed too).
import KVStore
import PktGen
import UKNetdev
import VirtioNet
import VirtioNetEmulator

@_cdecl("uknet_link_test_main")
public func linkTestMain() -> Int32 {
    guard let pool = try? NetBufPool(count: 512, threading: .singleThread) else { return fail(1, "pool") }
    let loop = loopback(pool)
    if loop != 0 { return loop }
    let kv = keyValue(pool)
    if kv != 0 { return kv }
    let virtio = virtioLoopback(pool)
    if virtio != 0 { return virtio }
    // The first hash draws the Hasher seed: the one path into arc4random_buf. (Not a Set: its
    // table sizing also needs libm's ceil, which no core object does, so the runtime has none.)
    let a = IPv4Address(192, 0, 2, 2), b = IPv4Address(192, 0, 2, 3)
    if a.hashValue != IPv4Address(192, 0, 2, 2).hashValue || a.hashValue == b.hashValue { return fail(30, "hashing") }
    guard (try? pool.destroy()) != nil else { return fail(31, "pool destroy: buffers still out") }
    print("link-test: ok")
    return 0
}

func fail(_ code: Int32, _ what: StaticString) -> Int32 {
    print("link-test: FAIL \(code): \(what)")
    return code
}

/// UDP frames built in the headroom, through a RingDevice loopback, parsed on the way back.
func loopback(_ pool: NetBufPool) -> Int32 {
    var dev = RingDevice.loopback(slots: 64)
    guard (try? dev.bringUp(rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 64))) != nil else {
        return fail(10, "loopback bring-up")
    }
    let flow = UDPFlow(sourceMAC: MACAddress(2, 0, 0, 0, 0, 1), destinationMAC: MACAddress(2, 0, 0, 0, 0, 2),
                       source: IPv4Address(192, 0, 2, 1), destination: IPv4Address(192, 0, 2, 2),
                       sourcePort: 1234, destinationPort: 11211)
    let burst = UnsafeMutableBufferPointer<NetBuf>.allocate(capacity: 8)
    defer { burst.deallocate(); dev.stop() }
    guard pool.allocateBulk(into: burst) == 8 else { return fail(11, "allocateBulk") }
    for (i, buf) in burst.enumerated() {
        guard (try? buf.setLength(18 + i)) != nil, (try? buf.prependUDPHeaders(flow)) != nil else {
            return fail(12, "frame build")
        }
    }
    guard dev.txBurst(queue: 0, from: burst).count == 8 else { return fail(13, "txBurst") }
    guard dev.rxBurst(queue: 0, into: burst).count == 8 else { return fail(14, "rxBurst") }
    for (i, buf) in burst.enumerated() {
        guard let eth = try? EthernetFrame(buf.unsafeBytes), eth.source == flow.sourceMAC,
              let ip = try? IPv4Packet(UnsafeMutableRawBufferPointer(rebasing: buf.unsafeBytes[eth.headerLength...])),
              let udp = try? UDPDatagram(UnsafeMutableRawBufferPointer(rebasing: buf.unsafeBytes[(eth.headerLength + ip.headerLength)...])),
              udp.destinationPort == 11211, udp.length == 8 + 18 + i
        else { return fail(15, "frame parse") }
    }
    NetBuf.releaseBulk(burst)
    return pool.inUse == 0 ? 0 : fail(16, "buffers leaked")
}

/// The virtio-net driver over the in-process device: frames through the TX ring, looped back by
/// the device into the RX ring, every one back whole, every buffer back after stop.
func virtioLoopback(_ pool: NetBufPool) -> Int32 {
    let emu = EmulatedVirtioNet(maxQueueSize: 64)
    defer { emu.deallocate() }
    guard var dev = try? VirtioNetDevice(transport: emu.transport) else { return fail(40, "virtio negotiation") }
    guard (try? dev.bringUp(rx: RxQueueConfig(descriptors: 64, allocator: pool.rxAllocator), tx: TxQueueConfig(descriptors: 64))) != nil
    else { return fail(41, "virtio bring-up") }
    let burst = UnsafeMutableBufferPointer<NetBuf>.allocate(capacity: 16)
    defer { burst.deallocate() }
    var moved = 0
    for round in 0..<100 {
        guard pool.allocateBulk(into: burst, length: 60) == 16 else { return fail(42, "allocateBulk") }
        for (i, buf) in burst.enumerated() { buf.data.storeBytes(of: UInt32(round * 16 + i), as: UInt32.self) }
        guard dev.txBurst(queue: 0, from: burst).count == 16 else { return fail(43, "virtio txBurst") }
        guard emu.loopback(max: 16) == 16 else { return fail(44, "device loopback") }
        let r = dev.rxBurst(queue: 0, into: burst)
        guard r.count == 16 else { return fail(45, "virtio rxBurst") }
        for (i, buf) in burst.enumerated() where buf.length != 60 || buf.data.load(as: UInt32.self) != UInt32(round * 16 + i) {
            return fail(46, "virtio frame content")
        }
        NetBuf.releaseBulk(burst)
        moved += r.count
    }
    dev.stop()
    guard moved == 1600, dev.virtioCounters(0).rxFault == .none else { return fail(47, "virtio counts") }
    return pool.inUse == 0 ? 0 : fail(48, "virtio buffers leaked")
}

/// The generator's memcached client against the real KV server over a ring pair: ARP, a
/// preload, then GETs and SETs, every reply validated by the client.
func keyValue(_ pool: NetBufPool) -> Int32 {
    let storeMAC = MACAddress(2, 0, 0, 0, 0, 2), storeIP = IPv4Address(192, 0, 2, 2)
    let ring = RingDevice.pair(slots: 256)
    var a = ring.a, b = ring.b
    guard (try? a.bringUp(rx: RxQueueConfig(descriptors: 256), tx: TxQueueConfig(descriptors: 256))) != nil,
          (try? b.bringUp(rx: RxQueueConfig(descriptors: 256), tx: TxQueueConfig(descriptors: 256))) != nil
    else { return fail(20, "ring pair bring-up") }
    let now: UInt32 = 1_800_000_000
    guard var server = try? KVServer(pool: pool,
                                     config: KVServerConfig(mac: storeMAC, ip: storeIP, memoryBytes: 2 << 20), now: now)
    else { return fail(21, "KV server") }
    let config = KVLoadConfig(clientMAC: MACAddress(2, 0, 0, 0, 0, 3), clientIP: IPv4Address(192, 0, 2, 3),
                              serverIP: storeIP, window: 8, keys: 32, keySize: 10, valueSize: 40, getPerMille: 700)
    guard var client = try? KVLoadClient(config: config, pool: pool, sampler: UniformKeys(keys: 32), latency: LatencySummary())
    else { return fail(22, "KV client") }
    defer { a.stop() }   // the client and server free themselves when they go

    var clock: UInt64 = 1_000_000_000
    func run(_ issue: (borrowing KVLoadClient<UniformKeys, LatencySummary>) -> Int,
             until done: (borrowing KVLoadClient<UniformKeys, LatencySummary>) -> Bool) {
        while !done(client) && clock < 10_000_000_000 {
            clock += 10_000
            _ = client.poll(&a, now: clock, issue: issue(client))
            _ = server.poll(&b, now: now)
        }
    }
    client.startPreload()
    run({ _ in 0 }, until: { !$0.isPreloading && $0.inFlight == 0 })
    run({ Int(200 - $0.started) }, until: { $0.started == 200 && $0.inFlight == 0 })
    let s = client.stats
    guard client.isResolved, s.stored >= 32, s.completed >= 232, s.errors == 0, s.misses == 0,
          server.engine.stats.hits == s.hits
    else { return fail(23, "KV run: requests lost or replies wrong") }
    print("link-test: \(s.completed) memcached requests answered, \(s.hits) hits")
    return 0
}
