// kv-bench: GET hits (10-byte keys, 32-byte values) against the KV store, and the same load
// against a real memcached over loopback UDP, so the two are measured in one run.
//
//   kv-bench ring REQUESTS          store on CPU 1 (KVServer over a ring pair), client on CPU 0
//   kv-bench single REQUESTS        one thread: client bursts of 32 GETs, one server poll each;
//                                   the server's poll is the function callgrind counts
//   kv-bench memcached PORT REQUESTS   client on CPU 0 against memcached -U PORT on 127.0.0.1
//   kv-bench echo REQUESTS          as `single`, the server in echo mode (`kvstore --echo`): the
//                                   same GET datagrams, each answered with itself; the baseline
//   kv-bench echo-ring REQUESTS     as `ring`, the server in echo mode
//   kv-bench untrusted REQUESTS     as `single`, the GETs from a source outside the store's prefix:
//                                   the general path, and the amplification guard's screening
//
// Prints `kv MODE requests=N seconds=S rps=R mallocs=K` (K: mallocs in the measured loop).
import BenchSupport
import Glibc
import KVStore
import UKNetdev

let keys = 1000
let window = 64
let storeMAC = MACAddress(0x02, 0, 0, 0, 0, 2), clientMAC = MACAddress(0x02, 0, 0, 0, 0, 1)
let storeIP = IPv4Address(192, 0, 2, 2), clientIP = IPv4Address(192, 0, 2, 1)

func key(_ i: Int) -> String {
    let digits = String(i)
    return "key" + String(repeating: "0", count: 7 - digits.count) + digits   // 10 bytes
}
let value32 = String(repeating: "v", count: 32)
/// Bytes between request templates in the client's storage (the largest frame, a set, is 115).
let templateStride = 128

func report(_ mode: String, requests: Int, seconds: Double, mallocs: UInt64) {
    let rps = Double(requests) / seconds
    print("kv \(mode) requests=\(requests) seconds=\(fixed3(seconds)) rps=\(Int(rps)) mallocs=\(mallocs)")
}

/// Request frames for the client, built once; sending one is a buffer alloc and a copy.
struct RequestTemplates {
    let frames: [[UInt8]]
    init(payloads: [String], source: IPv4Address = clientIP) {
        let pool = try! NetBufPool(count: 4, roomSize: 2048, threading: .threadSafe)
        var built: [[UInt8]] = []
        for (i, p) in payloads.enumerated() {
            let buf = pool.allocate()!
            let id = UInt16(truncatingIfNeeded: i)
            let bytes = MemcachedUDP.header(requestID: id, sequence: 0, total: 1) + Array(p.utf8)
            bytes.withUnsafeBytes { try! buf.copyIn($0) }
            try! buf.prependUDPHeaders(UDPFlow(sourceMAC: clientMAC, destinationMAC: storeMAC, source: source,
                                               destination: storeIP, sourcePort: 40000, destinationPort: 11211))
            built.append(Array(UnsafeRawBufferPointer(buf.unsafeBytes)))
            buf.release()
        }
        frames = built
        try! pool.destroy()
    }
}

/// The client side of a ring pair: keeps `window` GETs in flight, counts replies.
struct Client {
    let pool: NetBufPool
    let storage: UnsafeMutableRawPointer   // all templates, `templateStride` bytes apart
    let lengths: [Int]
    let burst = UnsafeMutableBufferPointer<NetBuf>.allocate(capacity: 32)
    var sent = 0, received = 0, next = 0

    init(pool: NetBufPool, templates: RequestTemplates) {
        self.pool = pool
        let area = UnsafeMutableRawPointer.allocate(byteCount: templates.frames.count * templateStride, alignment: 64)
        for (i, f) in templates.frames.enumerated() {
            f.withUnsafeBytes { (area + i * templateStride).copyMemory(from: $0.baseAddress!, byteCount: f.count) }
        }
        storage = area
        lengths = templates.frames.map(\.count)
    }

    /// Sends up to `limit` more requests, keeping at most `window` outstanding.
    mutating func send(_ device: inout RingDevice, limit: Int) {
        let want = min(32, window - (sent - received), limit - sent)
        guard want > 0 else { return }
        let n = pool.allocateBulk(into: UnsafeMutableBufferPointer(rebasing: burst[0..<want]))
        for i in 0..<n {
            let t = next
            next = next + 1 == lengths.count ? 0 : next + 1
            copyPacketBytes(to: burst[i].data, from: storage + t * templateStride, count: lengths[t])
            try! burst[i].setLength(lengths[t])
        }
        let accepted = device.txBurst(queue: 0, from: UnsafeMutableBufferPointer(rebasing: burst[0..<n])).count
        NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[accepted..<n]))
        sent += accepted
    }

    /// Takes replies off the ring; returns how many.
    mutating func receive(_ device: inout RingDevice) -> Int {
        let n = device.rxBurst(queue: 0, into: burst).count
        NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[0..<n]))
        received += n
        return n
    }
}

/// The store preloaded on one end of a ring pair, the client's end, and the GET requests.
struct Setup: ~Copyable {
    let pool: NetBufPool
    var clientDevice: RingDevice
    var server: KVServer
    var serverDevice: RingDevice
    let gets: RequestTemplates
}

/// The store preloaded, or in `.echo` mode the echo server (nothing to preload).
func setUp(_ mode: KVServerMode = .memcached, getsFrom source: IPv4Address = clientIP) -> Setup {
    let pool = try! NetBufPool(count: 4096, roomSize: 2048, threading: .threadSafe)
    var ring = RingDevice.pair(slots: 1024)
    try! ring.a.bringUp(rx: RxQueueConfig(descriptors: 1024), tx: TxQueueConfig(descriptors: 1024))
    try! ring.b.bringUp(rx: RxQueueConfig(descriptors: 1024), tx: TxQueueConfig(descriptors: 1024))
    var config = KVServerConfig(mac: storeMAC, ip: storeIP, memoryBytes: 64 << 20, mode: mode)
    // The guard's full work for an untrusted source (ratio check, budget charged), with a budget
    // this load cannot use up: a dropped reply would stall the closed loop.
    config.sources.budgetBytesPerSecond = Int(UInt32.max)
    var server = try! KVServer(pool: pool, config: config, now: UInt32(time(nil)))
    let gets = RequestTemplates(payloads: (0..<keys).map { "get \(key($0))\r\n" }, source: source)
    if mode == .echo { return Setup(pool: pool, clientDevice: ring.a, server: server, serverDevice: ring.b, gets: gets) }
    // Preload every key through the protocol itself.
    let sets = RequestTemplates(payloads: (0..<keys).map { "set \(key($0)) 0 0 32 noreply\r\n\(value32)\r\n" })
    var loader = Client(pool: pool, templates: sets)
    while loader.sent < keys {
        loader.send(&ring.a, limit: keys)
        loader.received = loader.sent   // noreply: nothing comes back
        server.poll(&ring.b, now: UInt32(time(nil)))
    }
    guard server.engine.store.items == keys else { fail("preload stored \(server.engine.store.items) of \(keys)") }
    return Setup(pool: pool, clientDevice: ring.a, server: server, serverDevice: ring.b, gets: gets)
}

/// One thread, lock step: a burst of GETs in, one server poll, the replies out.
func single(requests: Int, mode: KVServerMode = .memcached, getsFrom source: IPv4Address = clientIP) {
    var s = setUp(mode, getsFrom: source)
    var client = Client(pool: s.pool, templates: s.gets)
    let t = UInt32(time(nil))
    let m0 = malloc_counter_calls()
    let t0 = now()
    var idle = 0
    while client.received < requests {
        client.send(&s.clientDevice, limit: requests)
        s.server.poll(&s.serverDevice, now: t)
        if client.receive(&s.clientDevice) == 0 {
            idle += 1
            if idle == 1_000_000 { fail("no reply in a million polls: \(client.received) of \(requests) answered") }
        } else {
            idle = 0
        }
    }
    let t1 = now()
    let m1 = malloc_counter_calls()
    if mode == .echo {
        let fast = s.server.stats.echoFastPath
        guard fast >= UInt64(requests) else { fail("only \(fast) echoes on the one-pass path") }
    } else {
        guard s.server.engine.stats.hits >= UInt64(requests) else { fail("only \(s.server.engine.stats.hits) hits") }
    }
    report(mode == .echo ? "echo" : source == clientIP ? "single" : "untrusted", requests: client.received, seconds: t1 - t0, mallocs: m1 - m0)
    s.server.shutdown()
}

/// Store (or echo server) on CPU 1, client on CPU 0.
func twoCores(requests: Int, mode: KVServerMode = .memcached) {
    let s = setUp(mode)
    let pool = s.pool, gets = s.gets
    let stop = StopFlag()
    let serverBox = Shared(KVServerOnDevice(server: s.server, device: s.serverDevice))
    let clientDevice = Shared(s.clientDevice)
    let deadline = now() + 60
    let serverThread = PinnedThread(cpu: 1) {
        let t = UInt32(time(nil))
        var polls = 0
        while !stop.isRaised {
            serverBox.value.poll(now: t)
            polls &+= 1
            if polls & 0xFFFF == 0 && now() > deadline { break }
        }
    }
    var result = (0, 0.0, UInt64(0))
    let clientThread = PinnedThread(cpu: 0) {
        var client = Client(pool: pool, templates: gets)
        let m0 = malloc_counter_calls()
        let t0 = now()
        var spins = 0
        while client.received < requests {
            client.send(&clientDevice.value, limit: requests)
            if client.receive(&clientDevice.value) == 0 {
                spins += 1
                if spins & 0xFFFF == 0 && now() > deadline { break }
            }
        }
        result = (client.received, now() - t0, malloc_counter_calls() - m0)
        stop.raise()
    }
    clientThread.join()
    serverThread.join()
    report(mode == .echo ? "echo-ring" : "ring", requests: result.0, seconds: result.1, mallocs: result.2)
}

/// The same GETs against memcached on 127.0.0.1:PORT, `window` in flight.
func memcached(port: UInt16, requests: Int) {
    pin(toCPU: 0)
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard fd >= 0, rc == 0 else { fail("socket/connect failed") }
    var tv = timeval(tv_sec: 0, tv_usec: 100_000)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    func datagram(_ id: Int, _ text: String) -> [UInt8] {
        MemcachedUDP.header(requestID: UInt16(id & 0x7FFF), sequence: 0, total: 1) + Array(text.utf8)
    }
    var buf = [UInt8](repeating: 0, count: 2048)
    // Preload, each set acknowledged.
    for i in 0..<keys {
        let d = datagram(i, "set \(key(i)) 0 0 32\r\n\(value32)\r\n")
        _ = d.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard buf.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, 0) }) > 0 else { fail("memcached did not answer a set") }
    }
    let gets = (0..<keys).map { datagram($0, "get \(key($0))\r\n") }
    var sent = 0, received = 0, lost = 0, bad = 0
    let m0 = malloc_counter_calls()
    let t0 = now()
    let deadline = t0 + 60
    while received + lost < requests && now() < deadline {
        while sent - received - lost < window && sent < requests {
            let d = gets[sent % keys]
            _ = d.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            sent += 1
        }
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 {
            lost += sent - received - lost   // a timeout: count what is outstanding as lost
            continue
        }
        if n < 8 + 5 || buf[8] != UInt8(ascii: "V") { bad += 1 }
        received += 1
    }
    let t1 = now()
    guard bad == 0 else { fail("\(bad) replies from memcached were not hits") }
    if lost > 0 { print("kv memcached: \(lost) requests timed out (counted, not in the rate)") }
    report("memcached", requests: received, seconds: t1 - t0, mallocs: malloc_counter_calls() - m0)
    close(fd)
}

let args = CommandLine.arguments
switch (args.count, args.count > 1 ? args[1] : "") {
case (3, "ring"): twoCores(requests: Int(args[2]) ?? 1_000_000)
case (3, "single"): single(requests: Int(args[2]) ?? 1_000_000)
case (3, "echo"): single(requests: Int(args[2]) ?? 1_000_000, mode: .echo)
case (3, "untrusted"): single(requests: Int(args[2]) ?? 1_000_000, getsFrom: IPv4Address(198, 51, 100, 1))
case (3, "echo-ring"): twoCores(requests: Int(args[2]) ?? 1_000_000, mode: .echo)
case (4, "memcached"): memcached(port: UInt16(args[2]) ?? 22122, requests: Int(args[3]) ?? 1_000_000)
default: fail("usage: kv-bench ring|single|echo|echo-ring|untrusted REQUESTS | kv-bench memcached PORT REQUESTS")
}
