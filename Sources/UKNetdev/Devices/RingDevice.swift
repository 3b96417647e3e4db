/// Two in-memory endpoints joined by SPSC rings, one ring per queue and direction: what one
/// endpoint transmits on queue q, the other receives on queue q. Zero-copy (buffer handles move,
/// the bytes stay), safe with each endpoint polled by its own thread.
///
/// `RingDevice.loopback` gives one endpoint whose TX feeds its own RX.
///
/// The ring from A's TX queue q to B's RX queue q is `slots` deep; A's TX descriptor count limits
/// how much of it A uses. RX descriptor counts are checked against the limits but use no memory:
/// the peer's TX ring is the RX queue. Event mode: arm a queue with `setRxEvents` after setting
/// it up with an `RxNotifier`; the peer's next TX on that queue signals it once.
public struct RingDevice: NetDevice, ~Copyable {
    /// Owns the rings and counters; they are freed (and buffers still in flight released) when the
    /// last endpoint goes away.
    @usableFromInline final class Storage {
        let rings: [SPSCRing]
        let stats: [QueueStatsTable]
        var handleArrays: [UnsafeMutablePointer<SPSCRing>] = []
        init(rings: [SPSCRing], stats: [QueueStatsTable]) {
            self.rings = rings
            self.stats = stats
        }
        /// A fixed copy of some (trivial) ring handles for an endpoint's hot path; an array's
        /// buffer could not be read without reference counting.
        func fixedCopy(of some: [SPSCRing]) -> UnsafeMutablePointer<SPSCRing> {
            let p = UnsafeMutablePointer<SPSCRing>.allocate(capacity: some.count)
            p.initialize(from: some, count: some.count)
            handleArrays.append(p)
            return p
        }
        deinit {
            for r in rings { r.destroy() }
            for s in stats { s.deallocate() }
            for p in handleArrays { p.deallocate() }
        }
    }

    @usableFromInline let storage: Storage
    /// Rings this endpoint produces into and consumes from, one per queue.
    @usableFromInline let txRings: UnsafeMutablePointer<SPSCRing>
    @usableFromInline let rxRings: UnsafeMutablePointer<SPSCRing>
    @usableFromInline let rxStats: QueueStatsTable
    @usableFromInline let txStats: QueueStatsTable
    @usableFromInline var lifecycle = DeviceLifecycle()
    public var state: DeviceState { lifecycle.state }
    public let info: DeviceInfo

    /// Two joined endpoints with `queues` queue pairs of `slots` ring slots each (a power of two).
    /// (A struct, not a tuple: tuples cannot hold noncopyable devices. Take the endpoints out
    /// with `var a = pair.a, b = pair.b`.)
    public static func pair(queues: Int = 1, slots: Int = 1024, mtu: Int = 9000) -> Pair {
        precondition(queues >= 1 && queues <= 64, "1...64 queues")
        let aToB = (0..<queues).map { _ in SPSCRing(capacity: slots) }
        let bToA = (0..<queues).map { _ in SPSCRing(capacity: slots) }
        let stats = (0..<4).map { _ in QueueStatsTable(count: queues) }
        let storage = Storage(rings: aToB + bToA, stats: stats)
        let a = RingDevice(storage: storage, tx: aToB, rx: bToA, rxStats: stats[0], txStats: stats[1], slots: slots, mtu: mtu)
        let b = RingDevice(storage: storage, tx: bToA, rx: aToB, rxStats: stats[2], txStats: stats[3], slots: slots, mtu: mtu)
        return Pair(a: a, b: b)
    }

    /// The two endpoints of `pair`: what `a` transmits `b` receives, and the other way round.
    @frozen public struct Pair: ~Copyable {
        public var a: RingDevice
        public var b: RingDevice
    }

    /// One endpoint whose TX queue q feeds its own RX queue q.
    public static func loopback(queues: Int = 1, slots: Int = 1024, mtu: Int = 9000) -> RingDevice {
        precondition(queues >= 1 && queues <= 64, "1...64 queues")
        let rings = (0..<queues).map { _ in SPSCRing(capacity: slots) }
        let stats = (0..<2).map { _ in QueueStatsTable(count: queues) }
        let storage = Storage(rings: rings, stats: stats)
        return RingDevice(storage: storage, tx: rings, rx: rings, rxStats: stats[0], txStats: stats[1], slots: slots, mtu: mtu)
    }

    init(storage: Storage, tx: [SPSCRing], rx: [SPSCRing], rxStats: QueueStatsTable, txStats: QueueStatsTable, slots: Int, mtu: Int) {
        self.storage = storage
        txRings = storage.fixedCopy(of: tx)
        rxRings = storage.fixedCopy(of: rx)
        self.rxStats = rxStats
        self.txStats = txStats
        let limits = DescriptorLimits(min: 1, max: slots)
        info = DeviceInfo(maxRxQueues: rx.count, maxTxQueues: tx.count, mtu: mtu,
                          features: [.rxEvents, .scatterGather], rxDescriptors: limits, txDescriptors: limits)
    }

    public mutating func configure(_ config: DeviceConfig) throws(NetDeviceError) {
        try lifecycle.configure(config, info: info)
    }

    public mutating func setupRxQueue(_ queue: Int, _ config: RxQueueConfig) throws(NetDeviceError) {
        try lifecycle.setupRx(queue, descriptors: config.descriptors, info: info)
        rxRings[queue].setNotifier(config.notifier)
    }

    public mutating func setupTxQueue(_ queue: Int, _ config: TxQueueConfig) throws(NetDeviceError) {
        try lifecycle.setupTx(queue, descriptors: config.descriptors, info: info)
        txRings[queue].setDepth(config.descriptors)
    }

    public mutating func start() throws(NetDeviceError) { try lifecycle.start() }
    public mutating func stop() { lifecycle.stop() }

    @inlinable
    public mutating func rxBurst(queue: Int, into packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard lifecycle.canReceive(on: queue), let out = packets.baseAddress else {
            return .refused
        }
        let (n, more) = rxRings[queue].dequeue(into: out, count: packets.count)
        rxStats.record(queue, packets: n, bytes: NetBuf.totalLength(out, count: n))
        return BurstResult(count: n, status: more ? [.success, .more] : .success)
    }

    @inlinable
    public mutating func txBurst(queue: Int, from packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard lifecycle.canTransmit(on: queue), let src = packets.baseAddress else {
            return .refused
        }
        let (n, bytes, roomLeft) = txRings[queue].enqueue(from: src, count: packets.count)
        txStats.record(queue, packets: n, bytes: bytes)
        return BurstResult(count: n, status: roomLeft ? [.success, .more] : .success)
    }

    public func rxQueueStats(_ queue: Int) -> QueueStats { rxStats[queue] }
    public func txQueueStats(_ queue: Int) -> QueueStats { txStats[queue] }

    public mutating func setRxEvents(queue: Int, enabled: Bool) throws(NetDeviceError) {
        guard lifecycle.isRxQueue(queue) else { throw .invalidQueue(queue) }
        guard rxRings[queue].notifierPointer.pointee != nil else { throw .notSupported }
        rxRings[queue].setArmed(enabled)
    }

    public func rxEventSource(queue: Int) -> RxEventSource {
        guard lifecycle.isRxQueue(queue) else { return .none }
        return rxRings[queue].notifierPointer.pointee?.source ?? .none
    }

    /// Packets waiting in RX queue `queue` (approximate while the peer transmits).
    public func rxPending(queue: Int) -> Int { rxRings[queue].count }
}
