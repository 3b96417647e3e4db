import HostStack
import UKNetdev

/// What the server answers on its port.
public enum KVServerMode: Sendable, Equatable {
    /// memcached's text protocol over UDP (the store).
    case memcached
    /// Every UDP datagram answered with itself (a baseline for benchmarks): the same poll loop,
    /// host stack and wire checks, no item store.
    case echo
}

public struct KVServerConfig: Sendable {
    public var mac: MACAddress
    public var ip: IPv4Address
    public var prefixLength: Int
    public var port: UInt16
    public var memoryBytes: Int
    public var reassemblySlots: Int
    public var reassemblyTimeout: UInt32
    /// memcached, or echo (then `memoryBytes` is not used: the item store gets its minimum).
    public var mode: KVServerMode
    /// memcached's -A: the `shutdown` command ends the store (`engine.shutdownRequested`).
    public var shutdownCommand = false
    /// What untrusted sources (outside `ip/prefixLength` and the allow list) may get.
    public var sources = SourcePolicy()
    public init(mac: MACAddress, ip: IPv4Address, prefixLength: Int = 24, port: UInt16 = 11211,
                memoryBytes: Int = 64 << 20, reassemblySlots: Int = 8, reassemblyTimeout: UInt32 = 30,
                mode: KVServerMode = .memcached) {
        self.mac = mac
        self.ip = ip
        self.prefixLength = prefixLength
        self.port = port
        self.memoryBytes = memoryBytes
        self.reassemblySlots = reassemblySlots
        self.reassemblyTimeout = reassemblyTimeout
        self.mode = mode
    }

    /// The host stack's part: who we are on the link, and the port memcached listens on.
    /// The store's own network: its sources are trusted.
    public var ownPrefix: IPv4Prefix { IPv4Prefix(ip, length: prefixLength) }

    public var host: HostConfig {
        HostConfig(mac: mac, ip: ip, prefixLength: prefixLength, udpPort: port, reassemblySlots: reassemblySlots,
                   reassemblyTimeout: reassemblyTimeout)
    }
}

public enum KVServerError: Error, Equatable {
    /// The pool's buffers cannot hold a full reply datagram.
    case buffersTooSmall(needed: Int, available: Int)
}

/// The key-value store: memcached's UDP protocol on one port, over the host stack (ARP, ICMP
/// echo, IPv4 checks and reassembly) and, for lone GETs, a fast path straight from the frame.
/// Call `poll` with the device in a loop (or after an RX event); it handles one RX burst and
/// sends what is ready. The device stays the caller's: the server holds no handle to it.
///
/// In `.echo` mode (Echo.swift) the same loop answers every datagram on the port with itself,
/// turned around in its own buffer where it can be.
///
/// `~Copyable`: the server owns its store, queues and scratch memory, and frees them (and any
/// frame still queued) when it goes away, exactly once; a copy would free them twice.
public struct KVServer: ~Copyable {
    public var engine: MemcachedEngine
    /// The server's own counters; `stats` adds the host stack's.
    var counters = KVServerStats()
    public let config: KVServerConfig
    public private(set) var host: HostStack
    let pool: NetBufPool
    var writer: DatagramWriter
    let burst: UnsafeMutablePointer<NetBuf>
    static var burstSize: Int { 32 }
    static var prefetchDistance: Int { 4 }
    /// Frames waiting to be sent, in order (a ring).
    let txQueue: UnsafeMutablePointer<NetBuf>
    /// A power of two, so ring positions wrap with `txQueueMask`.
    static var txQueueSize: Int { 4096 }
    static var txQueueMask: Int { txQueueSize - 1 }
    var txHead = 0
    var txCount = 0
    /// The request payload is parsed from here, so its buffer can carry the reply.
    let requestCopy: UnsafeMutableRawPointer
    /// One's-complement sum of "END\r\n" at an even offset.
    let endOfGetSum = InternetChecksum.sum(UnsafeRawPointer(("END\r\n" as StaticString).utf8Start), count: 5)
    let wire: WireAddresses
    /// `config.mode == .echo`, read once per frame.
    let echoes: Bool
    /// Trust and per-source budgets for memcached's replies (echo mode has none: an echo is
    /// its request's size).
    var sourceGuard: SourceGuard
    /// The store's own network (trusted), apart from the guard: the lone-GET path tests it
    /// without touching the guard's state.
    let ownPrefix: IPv4Prefix

    /// A server replying with buffers from `pool` (on a device the caller starts and passes to `poll`).
    public init(pool: NetBufPool, config: KVServerConfig, now: UInt32) throws(KVServerError) {
        let needed = 18 + 20 + 8 + MemcachedUDP.headerLength + MemcachedUDP.maxPayload
        guard pool.roomSize >= needed else { throw .buffersTooSmall(needed: needed, available: pool.roomSize) }
        self.pool = pool
        self.config = config
        host = HostStack(config: config.host, pool: pool)
        wire = WireAddresses(config)
        echoes = config.mode == .echo
        // An echo server keeps no items: the store's minimum (one page), not the configured memory.
        engine = MemcachedEngine(memoryBytes: echoes ? 0 : config.memoryBytes, startTime: now)
        engine.shutdownEnabled = config.shutdownCommand
        engine.environment.udpPort = config.port
        engine.environment.interface = config.ip
        sourceGuard = SourceGuard(policy: config.sources, ownPrefix: config.ownPrefix)
        ownPrefix = config.ownPrefix
        writer = DatagramWriter(pool: pool, mac: config.mac, ip: config.ip, port: config.port, frameCapacity: 1024)
        burst = .allocate(capacity: KVServer.burstSize)
        txQueue = .allocate(capacity: KVServer.txQueueSize)
        requestCopy = .allocate(byteCount: 65536, alignment: 64)
    }

    /// Ends the server now (its `deinit` frees everything); for callers that check their pool
    /// right after. The device is the caller's.
    public consuming func shutdown() {}

    deinit {
        var head = txHead
        for _ in 0..<txCount {
            txQueue[head].release()
            head = (head + 1) & KVServer.txQueueMask
        }
        writer.deallocate()
        host.deallocate()
        burst.deallocate()
        txQueue.deallocate()
        requestCopy.deallocate()
        engine.deallocate()
        sourceGuard.deallocate()
    }

    /// Back to the state `init` left, allocating nothing, for a caller that reuses one server
    /// (a fuzzer's inputs): frames still queued released, no items, no peers, no reassembly,
    /// every counter and budget from zero, the input not ended.
    public mutating func reset() {
        var head = txHead
        for _ in 0..<txCount {
            txQueue[head].release()
            head = (head + 1) & KVServer.txQueueMask
        }
        txHead = 0
        txCount = 0
        counters = KVServerStats()
        inputEnded = false
        host.reset()
        engine.removeAll()
        sourceGuard.reset()
        writer.ipIdentification = 0
    }

    /// True once the device said its input is all delivered (`BurstStatus.endOfInput`).
    public private(set) var inputEnded = false
    /// The server's counters and the host stack's.
    public var stats: KVServerStats {
        var s = counters
        s.host = host.stats
        // The lone-GET path counts its requests (one reply datagram each) in the engine only.
        s.requests &+= engine.stats.loneGets
        s.replyDatagrams &+= engine.stats.loneGets
        return s
    }

    /// Reply frames queued and not yet taken by the device.
    public var pendingTransmit: Int { txCount }

    /// Handles one RX burst from `device` and transmits what is ready; returns the frames received.
    @discardableResult
    public mutating func poll<Device: NetDevice & ~Copyable>(_ device: inout Device, now: UInt32) -> Int {
        host.expire(now: now)
        let result = device.rxBurst(queue: 0, into: UnsafeMutableBufferPointer(start: burst, count: KVServer.burstSize))
        let n = result.count
        if result.status.contains(.endOfInput) { inputEnded = true }
        counters.framesReceived &+= UInt64(n)
        // The mode decided once per burst: each loop has its fast path inlined alone.
        if echoes {
            for i in 0..<n { prefetch(before: i, of: n); handleEcho(burst[i], now: now) }
        } else {
            for i in 0..<n { prefetch(before: i, of: n); handle(burst[i], now: now) }
        }
        flush(&device)
        return n
    }

    /// Before frame `i` of the burst's `n`: the first lines of a frame `prefetchDistance` ahead
    /// (of the first ones, at the start) asked for, for writing, as replies are written over
    /// requests: the device wrote them from another core, and a frame fetched while earlier ones
    /// are handled costs no wait (busy time per request over vhost-user, medians of paired runs:
    /// 3-12 % less, BENCHMARKS.md). The virtio-net header's 12 bytes in front of the frame are in
    /// those lines.
    @inline(__always)
    func prefetch(before i: Int, of n: Int) {
        let ahead = KVServer.prefetchDistance
        if i == 0 {
            for j in 0..<min(n, ahead) { burst[j].prefetchForWriting(headroomBytes: 12, bytes: 96) }
        }
        if i &+ ahead < n { burst[i &+ ahead].prefetchForWriting(headroomBytes: 12, bytes: 96) }
    }

    /// Sends queued frames until the device refuses more.
    public mutating func flush<Device: NetDevice & ~Copyable>(_ device: inout Device) {
        while txCount > 0 {
            let run = min(txCount, KVServer.txQueueSize - txHead)
            let sent = device.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: txQueue + txHead, count: run)).count
            txHead = (txHead + sent) & KVServer.txQueueMask
            txCount -= sent
            if sent < run { return }
        }
    }

    @inline(__always)
    mutating func enqueue(_ buf: NetBuf) {
        guard txCount < KVServer.txQueueSize else {
            drop(buf, .txQueueFull)
            return
        }
        txQueue[(txHead &+ txCount) & KVServer.txQueueMask] = buf
        txCount += 1
    }

    mutating func drop(_ buf: NetBuf?, _ reason: KVDropReason) {
        buf?.release()
        counters.drops.add(reason)
    }

    /// One frame for memcached: the lone-GET path straight from the frame, else the host stack.
    mutating func handle(_ buf: NetBuf, now: UInt32) {
        if answerLoneGet(buf, now: now) { return }
        receiveThroughHostStack(buf, now: now)
    }

    /// One frame in echo mode: turned around in place, else the host stack.
    mutating func handleEcho(_ buf: NetBuf, now: UInt32) {
        if echoInPlace(buf) { return }
        receiveThroughHostStack(buf, now: now)
    }

    /// The host stack's part, either mode: its replies sent, its datagrams to memcached or back
    /// as echoes.
    mutating func receiveThroughHostStack(_ buf: NetBuf, now: UInt32) {
        switch host.receive(buf, now: now) {
        case .reply(let frame, _): enqueue(frame)
        case .datagram(let datagram): if echoes { echo(datagram) } else { serve(datagram, now: now) }
        case .absorbed, .dropped: break
        }
    }

    // MARK: memcached over UDP

    mutating func serve(_ datagram: ReceivedDatagram, now: UInt32) {
        let data = datagram.payload
        guard let base = data.baseAddress else { return drop(datagram.frame, .memcachedTooShort) }
        if data.count > MemcachedUDP.headerLength { engine.stats.generalBytesRead &+= UInt64(data.count) }
        let (requestID, dropReason) = MemcachedUDP.requestID(of: base, count: data.count)
        if let dropReason { return drop(datagram.frame, dropReason) }
        counters.requests &+= 1
        let bodyLength = data.count - MemcachedUDP.headerLength
        let peer = DatagramWriter.Peer(mac: datagram.senderMAC, ip: datagram.source, port: datagram.sourcePort,
                                       vlan: datagram.vlan, requestID: requestID)
        let trusted = sourceGuard.trusts(datagram.source)
        engine.writesAllowed = trusted || sourceGuard.untrustedMayWrite
        // Parse from a copy, so the request's buffer can carry the reply.
        copyPacketBytes(to: requestCopy, from: base + MemcachedUDP.headerLength, count: bodyLength)
        writer.begin(peer: peer, spare: reusableForReply(datagram.frame))
        engine.execute(UnsafeRawPointer(requestCopy), count: bodyLength, now: now, into: &writer)
        let replies = writer.end()
        replies.unused?.release()
        counters.drops.add(.noBufferForReply, replies.dropped)
        var frames = replies.frames
        if !trusted {
            frames = sourceGuard.screen(frames, requestBytes: data.count, source: datagram.source, now: now, writer: &writer, stats: &counters)
        }
        for frame in frames {
            engine.stats.generalBytesWritten &+= UInt64(writer.udpPayloadBytes(of: frame))
            enqueue(frame)
        }
        counters.replyDatagrams &+= UInt64(frames.count)
    }

    /// The request's buffer when a reply may be written over it; a shared one (a clone, or held
    /// by someone else too, e.g. a tracer) is released instead, its bytes already copied.
    func reusableForReply(_ request: NetBuf?) -> NetBuf? {
        guard let request else { return nil }
        if request.isWritable { return request }
        request.release()
        return nil
    }
}

/// A server and the device it serves, owned together: what a thread of its own polls (the
/// in-process store, a benchmark's store side, a test's TAP server). One mutating call per poll,
/// so a class holding this sees one access at a time.
public struct KVServerOnDevice<Device: NetDevice & ~Copyable>: ~Copyable {
    public var server: KVServer
    public var device: Device
    public init(server: consuming KVServer, device: consuming Device) {
        self.server = server
        self.device = device
    }
    @discardableResult
    public mutating func poll(now: UInt32) -> Int { server.poll(&device, now: now) }
    public mutating func flush() { server.flush(&device) }
}
