import CUKAtomics
import UKNetdev

/// What the driver asks of the device.
public struct VirtioNetOptions: Sendable {
    /// Features used when the device offers them.
    public var wanted: VirtioFeatures
    /// Features without which the driver refuses the device.
    public var required: VirtioFeatures
    /// Calls to `checkAlive` are made once per this many bursts (a power of two). An idle burst
    /// (an empty RX burst, a TX burst into a full ring) counts as `VirtioNetOptions.idleBurstWeight`
    /// bursts: a program that naps while it cannot make progress (50-100 us a nap) would
    /// otherwise take 65536 naps, 4-11 s, to notice that a vhost-user backend died.
    public var aliveCheckInterval: Int
    /// How many bursts an idle burst counts as towards `aliveCheckInterval` (1024 idle bursts
    /// per check with the default interval: one poll(2) per ~1024, and a dead backend is seen
    /// within ~0.1 s even by a program that sleeps between bursts).
    public static let idleBurstWeight = 64

    /// When the device goes away: wait for it to come back (the transport connects again, the
    /// queues are handed over afresh) instead of ending RX with `endOfInput`.
    public var reconnect: Bool

    public init(wanted: VirtioFeatures = VirtioNetOptions.defaultFeatures, required: VirtioFeatures = [.version1],
                aliveCheckInterval: Int = 1 << 16, reconnect: Bool = false) {
        self.wanted = wanted
        self.required = required
        self.aliveCheckInterval = aliveCheckInterval
        self.reconnect = reconnect
    }

    /// VERSION_1 (the 12-byte header, any layout: header and frame in one descriptor),
    /// MRG_RXBUF, MAC, STATUS, and checksum offload both ways.
    public static var defaultFeatures: VirtioFeatures { [.version1, .mrgRxbuf, .mac, .status, .csum, .guestCsum] }
}

/// Counters of one virtio queue pair beyond the core's `QueueStats`.
public struct VirtioQueueCounters: Equatable, Sendable {
    public var rxNotifies: UInt64 = 0
    public var txNotifies: UInt64 = 0
    /// RX entries shorter than the virtio-net header (dropped).
    public var rxRunts: UInt64 = 0
    /// RX packets spread over several buffers (MRG_RXBUF), delivered as chains.
    public var rxMerged: UInt64 = 0
    /// RX packets whose partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM) the driver completed.
    public var rxChecksumsCompleted: UInt64 = 0
    /// TX packets sent as a descriptor chain (header apart) rather than in one descriptor.
    public var txChained: UInt64 = 0
    /// TX packets in memory the device cannot reach: taken and dropped.
    public var txUnreachable: UInt64 = 0
    public var rxFault: VirtqueueFault = .none
    public var txFault: VirtqueueFault = .none
    public init() {}
}

/// A virtio-net device driven by polling, over any transport: split virtqueues, the 12-byte
/// header in each netbuf's headroom (zero copy both ways), bulk RX refill from the queue's
/// allocator, bulk TX reclaim, at most one notify per burst and none when the device says it
/// needs none. Queues come in pairs (RX n is virtqueue 2n, TX n is 2n+1).
///
/// Every buffer handed to the device is remembered in private memory; what the device writes
/// back (the used ring) is checked before it is believed (see `VirtqueueFault`).
public struct VirtioNetDevice<Transport: VirtioTransport & ~Copyable>: NetDevice, ~Copyable {
    /// The transport lives in memory of its own, so that `deinit` (where `self` cannot be
    /// mutated) can still reset the device and free the rings through it.
    @usableFromInline let transportStorage: UnsafeMutablePointer<Transport>
    public var transport: Transport {
        _read { yield transportStorage.pointee }
        nonmutating _modify { yield &transportStorage.pointee }
    }
    /// Features in use: what the driver wanted and the device offered.
    public let negotiated: VirtioFeatures
    @usableFromInline let options: VirtioNetOptions
    var deviceState: DeviceState = .unconfigured
    @usableFromInline var running = false
    @usableFromInline var pairs = 0
    @usableFromInline var rx: UnsafeMutablePointer<RxQueue>
    @usableFromInline var tx: UnsafeMutablePointer<TxQueue>
    @usableFromInline var rxSetUp: UnsafeMutablePointer<Bool>
    @usableFromInline var txSetUp: UnsafeMutablePointer<Bool>
    @usableFromInline var stats: UnsafeMutablePointer<QueueStatsTable>
    @usableFromInline var counters: UnsafeMutablePointer<VirtioQueueCounters>
    /// Bursts until the next liveness check of the transport.
    @usableFromInline var burstsUntilAliveCheck: Int
    /// The device went away (its backend died): bursts stop, RX reports the end of its input.
    public var deviceGone: Bool { gone }
    @usableFromInline var gone = false
    @usableFromInline var mergeable: Bool
    @usableFromInline var txChecksum: Bool
    @usableFromInline var rxChecksum: Bool

    @usableFromInline static var headerSize: Int { VirtioNetHeader.size }

    /// Negotiates features with the device behind `transport`.
    public init(transport: consuming Transport, options: VirtioNetOptions = VirtioNetOptions()) throws(VirtioError) {
        let offered = transport.deviceFeatures
        let missing = options.required.subtracting(offered)
        guard missing.isEmpty else { throw .requiredFeatureMissing(missing) }
        let use = offered.intersection(options.wanted.union(options.required))
        try transport.negotiate(use)
        let maxPairs = max(transport.maxQueuePairs, 1)
        transportStorage = .allocate(capacity: 1)
        transportStorage.initialize(to: transport)
        negotiated = use
        self.options = options
        mergeable = use.contains(.mrgRxbuf)
        txChecksum = use.contains(.csum)
        rxChecksum = use.contains(.guestCsum)
        burstsUntilAliveCheck = options.aliveCheckInterval
        rx = .allocate(capacity: maxPairs)
        tx = .allocate(capacity: maxPairs)
        rxSetUp = .allocate(capacity: maxPairs)
        rxSetUp.initialize(repeating: false, count: maxPairs)
        txSetUp = .allocate(capacity: maxPairs)
        txSetUp.initialize(repeating: false, count: maxPairs)
        stats = .allocate(capacity: 2)
        stats.initialize(to: QueueStatsTable(count: maxPairs))
        (stats + 1).initialize(to: QueueStatsTable(count: maxPairs))
        counters = .allocate(capacity: maxPairs)
        counters.initialize(repeating: VirtioQueueCounters(), count: maxPairs)
    }

    deinit {
        if running { transport.reset() }
        tearDownQueues()
        let maxPairs = max(transport.maxQueuePairs, 1)
        transportStorage.deinitialize(count: 1)
        transportStorage.deallocate()
        rx.deallocate()
        tx.deallocate()
        rxSetUp.deallocate()
        txSetUp.deallocate()
        stats[0].deallocate()
        stats[1].deallocate()
        stats.deallocate()
        counters.deinitialize(count: maxPairs)
        counters.deallocate()
    }

    // MARK: NetDevice

    public var info: DeviceInfo {
        let pairs = max(transport.maxQueuePairs, 1)
        let ringMax = min(max(transport.maxQueueSize(0), 1), 32768)
        let limits = DescriptorLimits(min: transport.queueSizeFixed ? ringMax : 1, max: ringMax, powerOfTwo: true)
        var features: DeviceFeatures = [.scatterGather]
        if txChecksum { features.insert(.txChecksumOffload) }
        if rxChecksum { features.insert(.rxChecksumOffload) }
        if transport.eventSource(0) != .none { features.insert(.rxEvents) }
        return DeviceInfo(maxRxQueues: pairs, maxTxQueues: pairs, mac: transport.mac,
                          link: LinkStatus(up: transport.linkUp && !deviceGone),
                          nbEncapRx: Self.headerSize, nbEncapTx: Self.headerSize, ioAlign: 1, features: features,
                          rxDescriptors: limits, txDescriptors: limits)
    }

    public var state: DeviceState { deviceState }

    /// Virtio counters of queue pair `queue`, with each ring's fault.
    public func virtioCounters(_ queue: Int) -> VirtioQueueCounters {
        guard queue >= 0, queue < pairs else { return VirtioQueueCounters() }
        var c = counters[queue]
        if rxSetUp[queue] {
            c.rxFault = rx[queue].ring.fault
            c.rxNotifies = rx[queue].ring.notifies
        }
        if txSetUp[queue] {
            c.txFault = tx[queue].ring.fault
            c.txNotifies = tx[queue].ring.notifies
        }
        return c
    }

    /// Per queue pair: kicks sent, packets dropped or handled apart, and each ring's fault
    /// (a `VirtqueueFault` raw value; 0: none).
    public func extendedStats(_ body: (_ name: StaticString, _ queue: Int, _ value: UInt64) -> Void) {
        for q in 0..<pairs {
            let c = virtioCounters(q)
            body("rx_notifies", q, c.rxNotifies)
            body("tx_notifies", q, c.txNotifies)
            body("rx_runts", q, c.rxRunts)
            body("rx_merged", q, c.rxMerged)
            body("rx_checksums_completed", q, c.rxChecksumsCompleted)
            body("tx_chained", q, c.txChained)
            body("tx_unreachable", q, c.txUnreachable)
            body("rx_ring_fault", q, UInt64(c.rxFault.rawValue))
            body("tx_ring_fault", q, UInt64(c.txFault.rawValue))
        }
        body("reconnections", -1, UInt64(reconnectCount))
    }

    /// One line: what was negotiated.
    public var negotiationSummary: String {
        "virtio features: " + negotiated.description + " (offered 0x" + String(transport.deviceFeatures.rawValue, radix: 16)
            + ", using 0x" + String(negotiated.rawValue, radix: 16) + ")"
    }

    /// Virtio-net queues come in pairs: as many RX as TX queues.
    public mutating func configure(_ config: DeviceConfig) throws(NetDeviceError) {
        guard !running else { throw .invalidState(deviceState) }
        let maxPairs = max(transport.maxQueuePairs, 1)
        guard config.rxQueues >= 1, config.rxQueues <= maxPairs else {
            throw .invalidQueueCount(requested: config.rxQueues, max: maxPairs)
        }
        guard config.txQueues == config.rxQueues else {
            throw .invalidQueueCount(requested: config.txQueues, max: config.rxQueues)
        }
        tearDownQueues()
        pairs = config.rxQueues
        stats[0].reset()
        stats[1].reset()
        counters.update(repeating: VirtioQueueCounters(), count: maxPairs)
        deviceState = .configured(rxQueues: pairs, txQueues: pairs)
    }

    public mutating func setupRxQueue(_ queue: Int, _ config: RxQueueConfig) throws(NetDeviceError) {
        guard case .configured = deviceState else { throw .invalidState(deviceState) }
        guard queue >= 0, queue < pairs else { throw .invalidQueue(queue) }
        try info.rxDescriptors.check(config.descriptors)
        guard let allocator = config.allocator else { throw .missingAllocator }
        let memory = try ringMemory(config.descriptors)
        if rxSetUp[queue] { freeRx(queue) }
        (rx + queue).initialize(to: RxQueue(ring: SplitVirtqueue(size: config.descriptors, memory: memory),
                                            allocator: allocator))
        rxSetUp[queue] = true
    }

    public mutating func setupTxQueue(_ queue: Int, _ config: TxQueueConfig) throws(NetDeviceError) {
        guard case .configured = deviceState else { throw .invalidState(deviceState) }
        guard queue >= 0, queue < pairs else { throw .invalidQueue(queue) }
        try info.txDescriptors.check(config.descriptors)
        let memory = try ringMemory(config.descriptors)
        let headers: DeviceMemory
        do { headers = try transport.allocateDeviceMemory(bytes: config.descriptors * 16, alignment: 64) } catch {
            transport.freeDeviceMemory(memory)
            throw .backend(code: Self.code(error))
        }
        if txSetUp[queue] { freeTx(queue) }
        (tx + queue).initialize(to: TxQueue(ring: SplitVirtqueue(size: config.descriptors, memory: memory), headers: headers))
        txSetUp[queue] = true
    }

    func ringMemory(_ size: Int) throws(NetDeviceError) -> DeviceMemory {
        do {
            return try transport.allocateDeviceMemory(bytes: SplitRingLayout(size: size).totalBytes,
                                                      alignment: SplitRingLayout.alignment)
        } catch { throw .backend(code: Self.code(error)) }
    }

    static func code(_ error: VirtioError) -> Int32 {
        switch error {
        case .transport(let code): code
        case .deviceGone: 32   // EPIPE
        case .deviceMemoryExhausted: 12   // ENOMEM
        default: 22   // EINVAL
        }
    }

    public mutating func start() throws(NetDeviceError) {
        guard case .configured = deviceState else { throw .invalidState(deviceState) }
        guard !deviceGone else { throw .backend(code: 32) }
        for q in 0..<pairs {
            guard rxSetUp[q] else { throw .queueNotSetUp(rx: true, queue: q) }
            guard txSetUp[q] else { throw .queueNotSetUp(rx: false, queue: q) }
        }
        do {
            try handOverQueues()
        } catch {
            transport.reset()
            for q in 0..<pairs { rx[q].ring.reset(); tx[q].ring.reset() }
            throw .backend(code: Self.code(error))
        }
        running = true
        deviceState = .running(rxQueues: pairs, txQueues: pairs)
    }

    /// Fills every RX ring and gives the device every queue, then DRIVER_OK. No kicks: the
    /// device reads the rings when it gets them.
    mutating func handOverQueues() throws(VirtioError) {
        for q in 0..<pairs {
            refill(q)
            try transport.activateQueue(VirtioNetQueue.rx(q), size: rx[q].ring.size, rings: rx[q].ring.addresses)
            try transport.activateQueue(VirtioNetQueue.tx(q), size: tx[q].ring.size, rings: tx[q].ring.addresses)
        }
        try transport.driverReady()
    }

    /// Times the device went away and came back (`VirtioNetOptions.reconnect`).
    public var reconnections: Int { reconnectCount }
    @usableFromInline var reconnectCount = 0

    /// RX while the device is gone: the end of the input, or (`reconnect`) an empty burst and,
    /// when the transport can connect again, the queues handed over afresh.
    @usableFromInline @inline(never)
    mutating func whileGone() -> BurstResult {
        guard options.reconnect else { return BurstResult(count: 0, status: [.success, .endOfInput]) }
        do { try transport.reconnect() } catch { return BurstResult(count: 0, status: .success) }
        // The device that held our buffers is gone: every one of them is ours again.
        for q in 0..<pairs {
            rx[q].ring.reset()
            tx[q].ring.reset()
        }
        running = false
        defer { running = true }
        do {
            try transport.negotiate(negotiated)
            try handOverQueues()
        } catch {
            for q in 0..<pairs {
                rx[q].ring.reset()
                tx[q].ring.reset()
            }
            return BurstResult(count: 0, status: .success)
        }
        gone = false
        burstsUntilAliveCheck = options.aliveCheckInterval
        reconnectCount += 1
        return BurstResult(count: 0, status: .success)
    }

    /// Resets the device (it lets go of every ring) and takes back every buffer it held.
    public mutating func stop() {
        guard running else { return }
        running = false
        transport.reset()
        for q in 0..<pairs {
            rx[q].ring.reset()
            tx[q].ring.reset()
        }
        deviceState = .configured(rxQueues: pairs, txQueues: pairs)
    }

    func tearDownQueues() {
        for q in 0..<max(transport.maxQueuePairs, 1) {
            if rxSetUp[q] { freeRx(q) }
            if txSetUp[q] { freeTx(q) }
        }
    }

    func freeRx(_ q: Int) {
        let memory = rx[q].ring.memory
        (rx + q).deinitialize(count: 1)
        rxSetUp[q] = false
        transport.freeDeviceMemory(memory)
    }

    func freeTx(_ q: Int) {
        let memory = tx[q].ring.memory
        let headers = tx[q].headers
        (tx + q).deinitialize(count: 1)
        txSetUp[q] = false
        transport.freeDeviceMemory(memory)
        transport.freeDeviceMemory(headers)
    }

    public func rxQueueStats(_ queue: Int) -> QueueStats { stats[0][queue] }
    public func txQueueStats(_ queue: Int) -> QueueStats { stats[1][queue] }

    public mutating func setRxEvents(queue: Int, enabled: Bool) throws(NetDeviceError) {
        guard queue >= 0, queue < pairs, rxSetUp[queue] else { throw .invalidQueue(queue) }
        guard transport.eventSource(VirtioNetQueue.rx(queue)) != .none else { throw .notSupported }
        rx[queue].armed = enabled
        rx[queue].burstsSinceArmed = 0
        rx[queue].ring.setCallsWanted(enabled)
    }

    public func rxEventSource(queue: Int) -> RxEventSource {
        guard queue >= 0, queue < pairs else { return .none }
        return transport.eventSource(VirtioNetQueue.rx(queue))
    }

    // MARK: Data path

    /// Checks on the transport now and then (a vhost-user backend may have died); true while
    /// the device is there.
    @inlinable @inline(__always)
    mutating func deviceStillThere(weight: Int = 1) -> Bool {
        if gone { return false }
        burstsUntilAliveCheck &-= weight
        if burstsUntilAliveCheck > 0 { return true }
        return checkAliveNow()
    }

    @usableFromInline @inline(never)
    mutating func checkAliveNow() -> Bool {
        burstsUntilAliveCheck = options.aliveCheckInterval
        if !transport.checkAlive() { gone = true }
        return !gone
    }

    @inlinable
    public mutating func rxBurst(queue: Int, into packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard running, queue >= 0, queue < pairs, let out = packets.baseAddress else { return .refused }
        let q = rx + queue
        let waiting = q.pointee.ring.usedAvailable()
        // A device that went away: what it returned before is ours to deliver, then the input
        // ended (or, asked to, we wait for it to come back). An empty poll counts for more in
        // the liveness countdown: idle pollers nap between polls.
        guard deviceStillThere(weight: waiting == 0 ? VirtioNetOptions.idleBurstWeight : 1) || waiting > 0 else { return whileGone() }
        var taken = 0
        var n = 0
        var bytes = 0
        var runts = 0
        let max = packets.count
        while n < max && taken < waiting {
            guard let (buf, written) = q.pointee.ring.takeUsed() else { break }
            taken &+= 1
            guard written >= Self.headerSize else {
                buf.release()
                runts &+= 1
                continue
            }
            let header = buf.data - Self.headerSize
            let length = written &- Self.headerSize
            buf.unsafeSetLength(length)
            if mergeable {
                let extra = Int(header.load(fromByteOffset: VirtioNetHeader.numBuffers, as: UInt16.self)) &- 1
                if extra != 0 {
                    guard gatherMerged(buf, extra: extra, queue: queue, taken: &taken, waiting: waiting) else {
                        buf.release()
                        break
                    }
                }
            }
            let hdrFlags = header.load(as: UInt8.self)
            if hdrFlags != 0 && rxChecksum { applyReceivedChecksumFlags(buf, flags: hdrFlags, header: header, queue: queue) }
            out[n] = buf
            n &+= 1
            bytes &+= buf.packetLength
        }
        if runts != 0 {
            counters[queue].rxRunts &+= UInt64(runts)
            stats[0].recordErrors(queue, runts)
        }
        var status: BurstStatus = .success
        if !gone && refill(queue) { status.insert(.underrun) }
        if taken < waiting && n == max { status.insert(.more) }
        if n != 0 { stats[0].record(queue, packets: n, bytes: bytes) }
        if q.pointee.armed { disarmIfWoken(queue, delivered: n) }
        return BurstResult(count: n, status: status)
    }

    /// Armed: the first burst after arming is the caller's "poll once more"; packets on a later
    /// one mean the call woke it, and calls are suppressed again until it arms again. (With
    /// flags-based suppression the device may call more than once meanwhile: the eventfd adds
    /// the calls up and one read clears them.)
    @usableFromInline
    mutating func disarmIfWoken(_ queue: Int, delivered: Int) {
        let q = rx + queue
        if delivered != 0 && q.pointee.burstsSinceArmed > 0 {
            q.pointee.armed = false
            q.pointee.ring.setCallsWanted(false)
        }
        q.pointee.burstsSinceArmed &+= 1
    }

    /// Tops the RX ring up from the queue's allocator, in one bulk allocation, and kicks the
    /// device if it asks. Returns true when the ring is empty and nothing could be allocated.
    @inlinable
    @discardableResult
    mutating func refill(_ queue: Int) -> Bool {
        let q = rx + queue
        let free = q.pointee.ring.freeDescriptors
        // Refill in batches (a quarter ring at least), not a few descriptors per burst.
        guard free >= q.pointee.refillThreshold else { return false }
        let got = q.pointee.allocator.allocate(into: UnsafeMutableBufferPointer(start: q.pointee.scratch, count: free))
        // Buffers without headroom for the header (a wrong allocator) are released and counted.
        let (posted, refused) = q.pointee.ring.postReceiveBatch(q.pointee.scratch, count: got, headerSize: Self.headerSize)
        if refused != 0 { stats[0].recordErrors(queue, refused) }
        // Before start the queue is not the device's yet: it reads the ring when it is given it.
        if posted != 0 && q.pointee.ring.publish() && running {
            q.pointee.ring.countNotify()
            transport.notify(VirtioNetQueue.rx(queue))
        }
        return q.pointee.ring.inFlight == 0
    }

    /// Chains the further buffers of a merged packet behind `head`; false (queue broken, the
    /// segments taken so far released with the head) when the used ring lacks them.
    @usableFromInline
    mutating func gatherMerged(_ head: NetBuf, extra: Int, queue: Int, taken: inout Int, waiting: Int) -> Bool {
        let q = rx + queue
        guard extra > 0, extra <= waiting &- taken else {
            q.pointee.ring.markBroken(.mergedBuffersMissing)
            return false
        }
        for _ in 0..<extra {
            guard let (seg, written) = q.pointee.ring.takeUsed() else { return false }
            taken &+= 1
            // The device wrote from the descriptor's start: the header's place in the headroom.
            do {
                try seg.reset(headroom: seg.headroom - Self.headerSize)
                try seg.setLength(written)
                try head.chain(seg)
            } catch {
                seg.release()
                q.pointee.ring.markBroken(.lengthBeyondBuffer)
                return false
            }
        }
        counters[queue].rxMerged &+= 1
        return true
    }

    /// RX checksum flags: DATA_VALID becomes `checksumValid`; a partial checksum (NEEDS_CSUM,
    /// from a peer that offloads it) is completed here, in software.
    @usableFromInline
    func applyReceivedChecksumFlags(_ buf: NetBuf, flags: UInt8, header: UnsafeMutableRawPointer, queue: Int) {
        if flags & VirtioNetHeader.needsCsum != 0 {
            let start = Int(header.load(fromByteOffset: VirtioNetHeader.csumStart, as: UInt16.self))
            let offset = Int(header.load(fromByteOffset: VirtioNetHeader.csumOffset, as: UInt16.self))
            if buf.completePartialChecksum(start: start, offset: offset) { counters[queue].rxChecksumsCompleted &+= 1 }
        } else if flags & VirtioNetHeader.dataValid != 0 {
            buf.flags.insert(.checksumValid)
        }
    }

    @inlinable
    public mutating func txBurst(queue: Int, from packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard running, !gone, queue >= 0, queue < pairs, !tx[queue].ring.isBroken else { return .refused }
        // A full ring is an idle burst: a sender that naps until the device catches up would
        // otherwise take seconds to see that the device is gone.
        guard deviceStillThere(weight: tx[queue].ring.freeDescriptors == 0 ? VirtioNetOptions.idleBurstWeight : 1) else { return .refused }
        let q = tx + queue
        let count = packets.count
        guard count > 0, let src = packets.baseAddress else {
            // An empty burst: the caller asks for what the device has finished sending back.
            reclaim(queue)
            return BurstResult(count: 0, status: .success)
        }
        if q.pointee.ring.freeDescriptors < count { reclaim(queue) }
        var i = 0
        var bytes = 0
        while i < count {
            let buf = src[i]
            let length = buf.length &+ Self.headerSize
            if buf.next == nil && buf.headroom >= Self.headerSize && buf.isWritable,
               case let address = buf.deviceAddress &- UInt64(Self.headerSize), transport.canReach(address, length: length) {
                guard q.pointee.ring.freeDescriptors > 0 else { break }
                writeHeader(buf.data - Self.headerSize, for: buf)
                q.pointee.ring.postTransmit(buf, address: address, length: length)
            } else {
                guard q.pointee.ring.freeDescriptors > buf.segmentCount else { break }
                guard reachable(buf) else {
                    buf.release()
                    counters[queue].txUnreachable &+= 1
                    stats[1].recordErrors(queue, 1)
                    i &+= 1
                    continue
                }
                let header = q.pointee.ring.postTransmitChain(buf, headerSize: Self.headerSize, headerTable: q.pointee.headers)
                writeHeader(header, for: buf)
                counters[queue].txChained &+= 1
            }
            bytes &+= buf.packetLength
            i &+= 1
        }
        if i != 0 && q.pointee.ring.publish() {
            q.pointee.ring.countNotify()
            transport.notify(VirtioNetQueue.tx(queue))
        }
        stats[1].record(queue, packets: i, bytes: bytes)
        return BurstResult(count: i, status: q.pointee.ring.freeDescriptors > 0 ? [.success, .more] : .success)
    }

    /// The virtio-net header in front of a frame: all zeros unless the frame asks for a
    /// checksum (one compare on the common path; the rest out of line).
    @inlinable @inline(__always)
    func writeHeader(_ header: UnsafeMutableRawPointer, for buf: NetBuf) {
        if _fastPath(buf.flags.rawValue & (OffloadFlags.needsChecksum.rawValue | OffloadFlags.needsIPv4Checksum.rawValue) == 0) {
            header.storeBytes(of: UInt64(0), as: UInt64.self)
            header.storeBytes(of: UInt32(0), toByteOffset: 8, as: UInt32.self)
        } else {
            Self.writeChecksumHeader(header, for: buf, deviceComputes: txChecksum)
        }
    }

    /// A frame asking for checksums: NEEDS_CSUM with its offsets when the device took CSUM, the
    /// L4 checksum in software when it did not; the IPv4 header checksum always in software
    /// (virtio-net has no such offload). A frame never leaves with a checksum left undone, but for
    /// one whose data may not be written (a clone's view of a shared room, read-only memory): the
    /// software checksums write nothing there, and the frame goes out as its sender left it.
    @usableFromInline @inline(never)
    static func writeChecksumHeader(_ header: UnsafeMutableRawPointer, for buf: NetBuf, deviceComputes txChecksum: Bool) {
        let flags = buf.flags
        if flags.contains(.needsIPv4Checksum) { _ = buf.fillIPv4HeaderChecksum() }
        let request = buf.checksumRequest
        if flags.contains(.needsChecksum) && txChecksum {
            header.storeBytes(of: UInt64(VirtioNetHeader.needsCsum) | UInt64(UInt16(truncatingIfNeeded: request.start)) << 48,
                              as: UInt64.self)
            header.storeBytes(of: UInt32(UInt16(truncatingIfNeeded: request.offset)), toByteOffset: 8, as: UInt32.self)
            return
        }
        if flags.contains(.needsChecksum) { _ = buf.completePartialChecksum(start: request.start, offset: request.offset) }
        header.storeBytes(of: UInt64(0), as: UInt64.self)
        header.storeBytes(of: UInt32(0), toByteOffset: 8, as: UInt32.self)
    }

    @usableFromInline
    func reachable(_ buf: NetBuf) -> Bool {
        var seg: NetBuf? = buf
        while let s = seg {
            guard transport.canReach(s.deviceAddress, length: s.length) else { return false }
            seg = s.next
        }
        return true
    }

    /// Takes back what the device has sent and frees it in bulk.
    @inlinable
    mutating func reclaim(_ queue: Int) {
        let q = tx + queue
        let waiting = q.pointee.ring.usedAvailable()
        var n = 0
        while n < waiting {
            guard let (buf, _) = q.pointee.ring.takeUsed() else { break }
            q.pointee.scratch[n] = buf
            n &+= 1
        }
        if n != 0 { NetBuf.releaseBulk(UnsafeMutableBufferPointer(start: q.pointee.scratch, count: n)) }
    }
}

/// One RX queue: its ring, where it gets buffers, and scratch space for one bulk refill.
@usableFromInline
struct RxQueue: ~Copyable {
    @usableFromInline var ring: SplitVirtqueue
    @usableFromInline let allocator: RxBufferAllocator
    @usableFromInline let scratch: UnsafeMutablePointer<NetBuf>
    @usableFromInline let refillThreshold: Int
    @usableFromInline var armed = false
    @usableFromInline var burstsSinceArmed = 0
    init(ring: consuming SplitVirtqueue, allocator: RxBufferAllocator) {
        let size = ring.size
        self.ring = ring
        self.allocator = allocator
        scratch = .allocate(capacity: size)
        refillThreshold = Swift.max(1, Swift.min(32, size / 4))
    }
    deinit { scratch.deallocate() }
}

/// One TX queue: its ring, a 16-byte header slot per descriptor for chained sends, and scratch
/// space for one bulk reclaim.
@usableFromInline
struct TxQueue: ~Copyable {
    @usableFromInline var ring: SplitVirtqueue
    @usableFromInline let headers: DeviceMemory
    @usableFromInline let scratch: UnsafeMutablePointer<NetBuf>
    init(ring: consuming SplitVirtqueue, headers: DeviceMemory) {
        let size = ring.size
        self.ring = ring
        self.headers = headers
        scratch = .allocate(capacity: size)
    }
    deinit { scratch.deallocate() }
}
