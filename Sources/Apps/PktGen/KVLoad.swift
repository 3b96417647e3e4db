import HostStack
import UKNetdev

/// A memcached-UDP load: who talks to whom, how many requests in flight, which keys and values.
public struct KVLoadConfig: Sendable {
    public var clientMAC: MACAddress
    public var clientIP: IPv4Address
    public var clientPort: UInt16
    /// The server's MAC; nil: asked for with ARP before the first request.
    public var serverMAC: MACAddress?
    public var serverIP: IPv4Address
    public var serverPort: UInt16
    /// Requests in flight (closed loop): 1...1024.
    public var window: Int
    public var keys: Int
    /// Key length in bytes: "k" and the key number in decimal, zero-padded.
    public var keySize: Int
    public var valueSize: Int
    /// Share of GETs in per mille (the rest are SETs).
    public var getPerMille: Int
    /// A request unanswered for this long is sent again, at most `retries` times; then it counts
    /// as timed out.
    public var timeout: UInt64
    public var retries: Int
    public var seed: UInt64
    /// The server is an echo server (`kvstore --echo`): every reply must be its request, frame
    /// header and body, byte for byte, instead of memcached's answer to it.
    public var echo: Bool

    public init(clientMAC: MACAddress, clientIP: IPv4Address, clientPort: UInt16 = 40000, serverMAC: MACAddress? = nil,
                serverIP: IPv4Address, serverPort: UInt16 = 11211, window: Int = 32, keys: Int = 1000, keySize: Int = 10,
                valueSize: Int = 32, getPerMille: Int = 900, timeout: UInt64 = 200_000_000, retries: Int = 3, seed: UInt64 = 1,
                echo: Bool = false) {
        self.clientMAC = clientMAC
        self.clientIP = clientIP
        self.clientPort = clientPort
        self.serverMAC = serverMAC
        self.serverIP = serverIP
        self.serverPort = serverPort
        self.window = window
        self.keys = keys
        self.keySize = keySize
        self.valueSize = valueSize
        self.getPerMille = getPerMille
        self.timeout = timeout
        self.retries = retries
        self.seed = seed
        self.echo = echo
    }

    /// Checks the window, key space, key size and value size.
    public func validate() throws(PktGenError) {
        guard window >= 1, window <= 1024 else { throw .window(window) }
        guard keys >= 1 else { throw .keys(keys) }
        let digits = decimalLength(UInt64(keys - 1))
        guard keySize >= digits + 1, keySize <= 250 else { throw .keySize(needed: digits + 1, given: keySize) }
        guard valueSize >= 0, valueSize <= maxValueSize else { throw .valueSize(valueSize, max: maxValueSize) }
    }

    /// The largest value a SET can carry in one datagram (memcached drops requests that span
    /// datagrams) of a 1500-byte IP packet, for this key size.
    public var maxValueSize: Int {
        1500 - 20 - 8 - 8 - ("set ".utf8.count + keySize + " 65535 0 ".utf8.count + 4 + 2 + 2)
    }
}

/// What a load run saw. Nothing is hidden: every request ends as a completion (hit, miss or
/// stored) or as a timeout after its retries, and every unexpected reply is counted.
public struct KVLoadStats: Sendable {
    /// Requests answered (and validated), by kind (with `echo`, the kind of request echoed).
    public var completed: UInt64 = 0
    public var gets: UInt64 = 0
    public var sets: UInt64 = 0
    public var hits: UInt64 = 0
    public var misses: UInt64 = 0
    public var stored: UInt64 = 0
    /// With `echo`: replies that were their request, byte for byte (each one also a completion).
    public var echoes: UInt64 = 0
    /// Request datagrams sent (first attempts and retries).
    public var sent: UInt64 = 0
    public var retries: UInt64 = 0
    /// Requests given up after their retries.
    public var timeouts: UInt64 = 0
    /// Replies whose value, flags or length differ from what was stored, or any reply text other
    /// than the one expected (ERROR, SERVER_ERROR, NOT_STORED, ...); with `echo`, any reply that
    /// is not its request.
    public var wrongValues: UInt64 = 0
    public var badReplies: UInt64 = 0
    /// Replies to an earlier attempt of a request (after a retry) or to no request at all.
    public var lateReplies: UInt64 = 0
    public var badChecksums: UInt64 = 0
    /// Frames that were not for us or not from the server (counted, ignored).
    public var ignored: UInt64 = 0
    public var arpRequests: UInt64 = 0
    public var arpAnswered: UInt64 = 0
    /// Frames the device would not take (sent again next poll), and buffers the pool lacked.
    public var txDeferred: UInt64 = 0
    public var noBuffer: UInt64 = 0
    public init() {}

    public var errors: UInt64 { wrongValues &+ badReplies &+ timeouts }
}

/// The `kv` engine: a closed-loop memcached-UDP client over any device. Keeps `window`
/// requests in flight, each in a slot whose index and attempt number form the memcached request
/// id, so every reply is matched to its request and attempt; reassembles multi-datagram replies;
/// checks every reply byte against what the request implies (values are a function of the key,
/// so any GET hit can be checked); retries on timeout and counts what never came back. With
/// `config.echo` the same load drives an echo server (`kvstore --echo`): a reply must be its
/// request datagram, matched by the same request id, and latency is measured the same way.
///
/// `~Copyable`: the client owns its slots, queues and scratch memory and frees them (and any
/// frame still queued) once, when it goes away.
public struct KVLoadClient<Sampler: KeySampler, Latency: LatencyRecorder>: ~Copyable {
    public let config: KVLoadConfig
    public var sampler: Sampler
    public var latency: Latency
    public private(set) var stats = KVLoadStats()
    public private(set) var serverMAC: MACAddress?
    var random: SplitMix64
    let pool: NetBufPool
    /// ARP (resolving the server, answering for our address), IPv4 checks, ICMP echo,
    /// reassembly and chained frames: the layer the KV server uses too.
    public private(set) var host: HostStack

    struct Slot {
        var busy = false
        var isSet = false
        var attempt: UInt16 = 0
        var key = 0
        var firstSent: UInt64 = 0
        var lastSent: UInt64 = 0
        /// Datagrams of the reply received (bit per sequence number) and their total.
        var received: UInt64 = 0
        var total = 0
        var replyLength = 0
    }
    let slots: UnsafeMutablePointer<Slot>
    let freeSlots: UnsafeMutablePointer<Int>
    var freeCount: Int
    /// Reply reassembly, one area per slot.
    let replies: UnsafeMutableRawPointer
    let replyCapacity: Int
    static var maxReplyDatagrams: Int { 8 }
    static var slotBits: Int { 10 }

    let rxBurst: UnsafeMutablePointer<NetBuf>
    static var rxBurstSize: Int { 32 }
    /// Frames waiting for the device, in order.
    let txQueue: UnsafeMutablePointer<NetBuf>
    let txCapacity: Int
    var txCount = 0
    /// Scratch for the expected reply text (or, with `echo`, the request's body: up to 1472 bytes).
    let expected: UnsafeMutableRawPointer
    /// "ABC...Z" repeated, 26 + valueSize bytes: the values of all keys.
    let letters: UnsafeMutableRawPointer

    var ipIdentification: UInt16 = 0
    var nextTimeoutScan: UInt64 = 0
    var nextARP: UInt64 = 0
    /// Keys still to SET before the measured load (nil: no preload running).
    var preloadNext: Int?

    public init(config: KVLoadConfig, pool: NetBufPool, sampler: Sampler, latency: Latency) throws(PktGenError) {
        try config.validate()
        guard pool.roomSize - pool.headroom >= 1514 - NetBuf.udpHeadersLength, pool.headroom >= NetBuf.udpHeadersLength else {
            throw .buffersTooSmall(needed: 1514, available: pool.roomSize)
        }
        self.config = config
        self.sampler = sampler
        self.latency = latency
        self.pool = pool
        serverMAC = config.serverMAC
        host = HostStack(config: HostConfig(mac: config.clientMAC, ip: config.clientIP, udpPort: config.clientPort,
                                            reassemblySlots: 2), pool: pool)
        random = SplitMix64(seed: config.seed)
        slots = .allocate(capacity: config.window)
        slots.initialize(repeating: Slot(), count: config.window)
        freeSlots = .allocate(capacity: config.window)
        for i in 0..<config.window { freeSlots[i] = config.window - 1 - i }
        freeCount = config.window
        replyCapacity = MemcachedFrame.maxPayload * KVLoadClient.maxReplyDatagrams
        replies = .allocate(byteCount: replyCapacity * config.window, alignment: 64)
        rxBurst = .allocate(capacity: KVLoadClient.rxBurstSize)
        txCapacity = config.window + KVLoadClient.rxBurstSize + 8
        txQueue = .allocate(capacity: txCapacity)
        expected = .allocate(byteCount: 2048, alignment: 64)
        // Every key's value is a window of this run of letters (see `valueStart`).
        letters = .allocate(byteCount: 26 + config.valueSize, alignment: 64)
        for i in 0..<(26 + config.valueSize) { letters.storeBytes(of: UInt8(65 + i % 26), toByteOffset: i, as: UInt8.self) }
    }

    /// Ends the client now (its `deinit` frees everything), for callers that check their pool
    /// right after; the pool and device are the caller's.
    public consuming func deallocate() {}

    deinit {
        for i in 0..<txCount { txQueue[i].release() }
        host.deallocate()
        slots.deallocate()
        freeSlots.deallocate()
        replies.deallocate()
        rxBurst.deallocate()
        txQueue.deallocate()
        expected.deallocate()
        letters.deallocate()
    }

    /// Zeroes the counters (after a preload, so a report shows the measured load only).
    public mutating func resetStats() { stats = KVLoadStats() }

    public var inFlight: Int { config.window - freeCount }
    public var isPreloading: Bool { preloadNext != nil }
    public var isResolved: Bool { serverMAC != nil }
    /// True once the device said its input is all delivered (`BurstStatus.endOfInput`: a capture
    /// file read to its end, a vhost-user backend gone for good): no reply can come any more.
    public private(set) var inputEnded = false

    /// SETs every key once (0..<keys, in order) before anything else is issued.
    public mutating func startPreload() { preloadNext = 0 }

    /// Requests of the measured load started so far (first attempts; not the preload, not retries).
    public private(set) var started: UInt64 = 0

    /// One round: RX burst (replies, ARP), timeouts, at most `issue` new requests (as slots
    /// allow; a running preload goes first), TX. Returns the requests completed in this round.
    public mutating func poll<Device: NetDevice & ~Copyable>(_ device: inout Device, now: UInt64, issue: Int) -> Int {
        let before = stats.completed
        host.expire(now: KVLoadClient.seconds(now))
        let result = device.rxBurst(queue: 0, into: UnsafeMutableBufferPointer(start: rxBurst, count: KVLoadClient.rxBurstSize))
        if result.status.contains(.endOfInput) { inputEnded = true }
        let n = result.count
        for i in 0..<n { receive(rxBurst[i], now: now) }
        if serverMAC == nil { serverMAC = host.peerMAC(config.serverIP) }
        if now >= nextTimeoutScan {
            expireSlots(now: now)
            nextTimeoutScan = now + max(1, config.timeout / 8)
        }
        if serverMAC == nil {
            if now >= nextARP {
                if let request = host.arpRequest(for: config.serverIP) {
                    if enqueue(request) { stats.arpRequests &+= 1 }
                } else {
                    stats.noBuffer &+= 1
                }
                nextARP = now + 100_000_000
            }
        } else if issue > 0 || preloadNext != nil {
            var budget = issue
            while freeCount > 0 && txCount < txCapacity && (preloadNext != nil || budget > 0) {
                let preloading = preloadNext != nil
                guard let (key, isSet) = nextOperation() else { break }
                freeCount -= 1
                let s = freeSlots[freeCount]
                slots[s] = Slot(busy: true, isSet: isSet, attempt: 0, key: key, firstSent: now, lastSent: now)
                guard transmit(slot: s) else {
                    slots[s].busy = false
                    freeSlots[freeCount] = s
                    freeCount += 1
                    if preloading { preloadNext! -= 1 }
                    break
                }
                if !preloading {
                    budget -= 1
                    started &+= 1
                }
            }
        }
        flush(&device)
        return Int(stats.completed - before)
    }

    mutating func nextOperation() -> (Int, Bool)? {
        if let k = preloadNext {
            guard k < config.keys else {
                if freeCount == config.window { preloadNext = nil }   // all preload answered
                return nil
            }
            preloadNext = k + 1
            return (k, true)
        }
        let key = sampler.next(&random)
        let isSet = random.below(1000) >= config.getPerMille
        return (key, isSet)
    }

    mutating func flush<Device: NetDevice & ~Copyable>(_ device: inout Device) {
        guard txCount > 0 else { return }
        let sent = device.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: txQueue, count: txCount)).count
        if sent < txCount {
            stats.txDeferred &+= UInt64(txCount - sent)
            for i in 0..<(txCount - sent) { txQueue[i] = txQueue[sent + i] }
        }
        txCount -= sent
    }

    mutating func enqueue(_ buf: NetBuf) -> Bool {
        guard txCount < txCapacity else { buf.release(); return false }
        txQueue[txCount] = buf
        txCount += 1
        return true
    }

    // MARK: Requests

    /// Builds and queues the request of slot `s` (attempt number from the slot).
    mutating func transmit(slot s: Int) -> Bool {
        guard let mac = serverMAC, let buf = pool.allocate() else { stats.noBuffer &+= 1; return false }
        let slot = slots[s]
        // The memcached datagram first, then the Ethernet/IPv4/UDP headers in front of it.
        let mc = buf.data
        let id = UInt16(truncatingIfNeeded: Int(slot.attempt & 0x3F) << KVLoadClient.slotBits | s)
        mc.storeBytes(of: id.bigEndian, as: UInt16.self)
        mc.storeBytes(of: UInt16(0), toByteOffset: 2, as: UInt16.self)
        mc.storeBytes(of: UInt16(1).bigEndian, toByteOffset: 4, as: UInt16.self)
        mc.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
        let p = writeRequestBody(key: slot.key, isSet: slot.isSet, at: mc + 8)
        ipIdentification &+= 1
        let flow = UDPFlow(sourceMAC: config.clientMAC, destinationMAC: mac, source: config.clientIP, destination: config.serverIP,
                           sourcePort: config.clientPort, destinationPort: config.serverPort)
        // Room and headroom were checked against the pool at init.
        buf.unsafeSetLength(p - mc)
        try? buf.prependUDPHeaders(flow, identification: ipIdentification)
        if buf.length < 60 {   // Ethernet minimum: pad with zeros (not counted by IPv4 or UDP)
            let short = 60 - buf.length
            if let pad = try? buf.append(short) { pad.initializeMemory(as: UInt8.self, repeating: 0, count: short) }
        }
        guard enqueue(buf) else { stats.txDeferred &+= 1; return false }
        stats.sent &+= 1
        return true
    }

    /// A request's body after the frame header: `set <key> <flags> 0 <length>\r\n<value>\r\n`
    /// or `get <key>\r\n`; returns its end. The same bytes every attempt: an echo is checked
    /// against them.
    func writeRequestBody(key: Int, isSet: Bool, at start: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        if isSet {
            let p = writeItemLine(putText("set ", at: start), key: key, beforeLength: " 0 ")
            writeValue(key, p)
            return putText("\r\n", at: p + config.valueSize)
        }
        return putText("\r\n", at: writeKey(key, putText("get ", at: start)))
    }

    mutating func expireSlots(now: UInt64) {
        for s in 0..<config.window where slots[s].busy && now &- slots[s].lastSent >= config.timeout {
            if Int(slots[s].attempt) < config.retries {
                slots[s].attempt &+= 1
                slots[s].lastSent = now
                slots[s].received = 0
                slots[s].total = 0
                slots[s].replyLength = 0
                stats.retries &+= 1
                _ = transmit(slot: s)
            } else {
                stats.timeouts &+= 1
                release(slot: s)
            }
        }
    }

    mutating func release(slot s: Int) {
        slots[s].busy = false
        freeSlots[freeCount] = s
        freeCount += 1
    }

    // MARK: Replies

    /// The host stack's clock: whole seconds (reassembly timeouts).
    static func seconds(_ nanoseconds: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: nanoseconds / 1_000_000_000) }

    /// One received frame through the host stack: its ARP and ICMP replies sent, server replies
    /// matched, everything else counted.
    mutating func receive(_ buf: NetBuf, now: UInt64) {
        switch host.receive(buf, now: KVLoadClient.seconds(now)) {
        case .reply(let frame, let kind):
            if enqueue(frame), kind == .arp { stats.arpAnswered &+= 1 }
        case .datagram(let datagram):
            receiveReply(datagram, now: now)
            datagram.frame?.release()
        case .absorbed:
            break
        case .dropped(.udpBadChecksum):
            stats.badChecksums &+= 1
        case .dropped:
            stats.ignored &+= 1
        }
    }

    mutating func receiveReply(_ datagram: ReceivedDatagram, now: UInt64) {
        guard datagram.source == config.serverIP, datagram.sourcePort == config.serverPort else { stats.ignored &+= 1; return }
        let data = datagram.payload
        guard data.count >= 8 else { stats.badReplies &+= 1; return }
        let mc = UnsafeRawPointer(data.baseAddress!)
        let id = Int(UInt16(bigEndian: mc.loadUnaligned(as: UInt16.self)))
        let sequence = Int(UInt16(bigEndian: mc.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        let total = Int(UInt16(bigEndian: mc.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
        let s = id & ((1 << KVLoadClient.slotBits) - 1)
        guard s < config.window, slots[s].busy, Int(slots[s].attempt & 0x3F) == id >> KVLoadClient.slotBits else {
            stats.lateReplies &+= 1
            return
        }
        let count = data.count - 8
        if config.echo {
            // The request datagram itself: our frame header (this attempt's id, sequence 0, total
            // 1, reserved 0), then the body we sent.
            guard sequence == 0, total == 1, mc.loadUnaligned(fromByteOffset: 6, as: UInt16.self) == 0 else {
                stats.badReplies &+= 1
                release(slot: s)
                return
            }
            completeEcho(slot: s, body: mc + 8, length: count, now: now)
            return
        }
        guard total >= 1, total <= KVLoadClient.maxReplyDatagrams, sequence < total, count <= MemcachedFrame.maxPayload,
              slots[s].total == 0 || slots[s].total == total else {
            stats.badReplies &+= 1
            release(slot: s)
            return
        }
        let bit = UInt64(1) << UInt64(sequence)
        guard slots[s].received & bit == 0 else { stats.lateReplies &+= 1; return }   // a duplicate datagram
        slots[s].total = total
        slots[s].received |= bit
        let area = replies + s * replyCapacity
        (area + sequence * MemcachedFrame.maxPayload).copyMemory(from: mc + 8, byteCount: count)
        if sequence == total - 1 { slots[s].replyLength = sequence * MemcachedFrame.maxPayload + count }
        guard slots[s].received == (UInt64(1) << UInt64(total)) - 1 else { return }
        complete(slot: s, reply: UnsafeRawPointer(area), length: slots[s].replyLength, now: now)
    }

    mutating func complete(slot s: Int, reply: UnsafeRawPointer, length: Int, now: UInt64) {
        let slot = slots[s]
        release(slot: s)
        if slot.isSet {
            guard matches(reply, length, "STORED\r\n") else { stats.badReplies &+= 1; return }
            stats.sets &+= 1
            stats.stored &+= 1
        } else if matches(reply, length, "END\r\n") {
            stats.gets &+= 1
            stats.misses &+= 1
        } else {
            // "VALUE <key> <flags> <bytes>\r\n<value>\r\nEND\r\n", every byte as stored.
            let head = writeItemLine(putText("VALUE ", at: expected), key: slot.key, beforeLength: " ") - expected
            let total = head + config.valueSize + 7
            guard length == total, memoryEqual(reply, UnsafeRawPointer(expected), head),
                  valueMatches(slot.key, reply + head), matches(reply + head + config.valueSize, 7, "\r\nEND\r\n") else {
                if length >= 6 && memoryEqual(reply, UnsafeRawPointer(expected), 6) { stats.wrongValues &+= 1 } else { stats.badReplies &+= 1 }
                return
            }
            stats.gets &+= 1
            stats.hits &+= 1
        }
        stats.completed &+= 1
        latency.record(nanoseconds: now &- slot.firstSent)
    }

    /// An echo: complete when it is the request's body, byte for byte.
    mutating func completeEcho(slot s: Int, body: UnsafeRawPointer, length: Int, now: UInt64) {
        let slot = slots[s]
        release(slot: s)
        let sent = writeRequestBody(key: slot.key, isSet: slot.isSet, at: expected) - expected
        guard length == sent, memoryEqual(body, UnsafeRawPointer(expected), length) else {
            stats.badReplies &+= 1
            return
        }
        if slot.isSet { stats.sets &+= 1 } else { stats.gets &+= 1 }
        stats.echoes &+= 1
        stats.completed &+= 1
        latency.record(nanoseconds: now &- slot.firstSent)
    }

    // MARK: Keys and values

    /// "k" and the key number, zero-padded to the key size.
    func writeKey(_ key: Int, _ p: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        p.storeBytes(of: UInt8(ascii: "k"), as: UInt8.self)
        var k = key
        var i = config.keySize - 1
        while i >= 1 {
            p.storeBytes(of: UInt8(48 + k % 10), toByteOffset: i, as: UInt8.self)
            k /= 10
            i -= 1
        }
        return p + config.keySize
    }

    /// "<key> <flags><beforeLength><value length>\r\n": the rest of a SET's command line
    /// (exptime " 0 " before the length) and of a GET hit's VALUE line (" ").
    func writeItemLine(_ p: UnsafeMutableRawPointer, key: Int, beforeLength: StaticString) -> UnsafeMutableRawPointer {
        var p = writeKey(key, p)
        p = putText(" ", at: p)
        p += writeDecimal(UInt64(flags(of: key)), to: p)
        p = putText(beforeLength, at: p)
        p += writeDecimal(UInt64(config.valueSize), to: p)
        return putText("\r\n", at: p)
    }

    func flags(of key: Int) -> UInt32 { UInt32(truncatingIfNeeded: key & 0xFFFF) }

    /// Key k's value: the letters from (7k mod 26) on, so a value from another key or an offset
    /// copy does not pass.
    @inline(__always) func value(of key: Int) -> UnsafeRawPointer { UnsafeRawPointer(letters + (key &* 7) % 26) }

    func writeValue(_ key: Int, _ p: UnsafeMutableRawPointer) {
        copyPacketBytes(to: p, from: value(of: key), count: config.valueSize)
    }

    func valueMatches(_ key: Int, _ p: UnsafeRawPointer) -> Bool { memoryEqual(p, value(of: key), config.valueSize) }
}

/// memcached's UDP frame: 8-byte header, at most 1392 payload bytes per datagram.
enum MemcachedFrame {
    static var maxPayload: Int { 1392 }
}

func matches(_ p: UnsafeRawPointer, _ length: Int, _ text: StaticString) -> Bool {
    length == text.utf8CodeUnitCount && memoryEqual(p, UnsafeRawPointer(text.utf8Start), length)
}
