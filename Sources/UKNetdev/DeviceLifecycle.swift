/// The life cycle every device shares: configure -> set up each queue -> start -> stop, with
/// the same checks and errors everywhere. A backend keeps one of these and asks it; the burst
/// paths read `activeRxQueues`/`activeTxQueues`, which are 0 unless running, so one unsigned
/// compare checks both the state and the queue index.
@frozen
public struct DeviceLifecycle: Sendable {
    public private(set) var state: DeviceState = .unconfigured
    public private(set) var activeRxQueues = 0
    public private(set) var activeTxQueues = 0
    @usableFromInline var rxSetUp: UInt64 = 0
    @usableFromInline var txSetUp: UInt64 = 0

    public init() {}

    /// Queue counts beyond 64 are refused: the set-up masks are 64 bits.
    public static let maxQueues = 64

    public mutating func configure(_ config: DeviceConfig, info: DeviceInfo) throws(NetDeviceError) {
        guard !state.isRunning else { throw .invalidState(state) }
        let maxRx = min(info.maxRxQueues, Self.maxQueues), maxTx = min(info.maxTxQueues, Self.maxQueues)
        guard config.rxQueues >= 1, config.rxQueues <= maxRx else {
            throw .invalidQueueCount(requested: config.rxQueues, max: maxRx)
        }
        guard config.txQueues >= 1, config.txQueues <= maxTx else {
            throw .invalidQueueCount(requested: config.txQueues, max: maxTx)
        }
        state = .configured(rxQueues: config.rxQueues, txQueues: config.txQueues)
        rxSetUp = 0
        txSetUp = 0
    }

    /// Checks an RX queue setup (state, index, descriptor count) and records it as done.
    /// Call it first; apply the device's own setup only if it does not throw.
    public mutating func setupRx(_ queue: Int, descriptors: Int, info: DeviceInfo) throws(NetDeviceError) {
        guard case .configured(let rxQueues, _) = state else { throw .invalidState(state) }
        guard queue >= 0, queue < rxQueues else { throw .invalidQueue(queue) }
        try info.rxDescriptors.check(descriptors)
        rxSetUp |= 1 << UInt64(queue)
    }

    public mutating func setupTx(_ queue: Int, descriptors: Int, info: DeviceInfo) throws(NetDeviceError) {
        guard case .configured(_, let txQueues) = state else { throw .invalidState(state) }
        guard queue >= 0, queue < txQueues else { throw .invalidQueue(queue) }
        try info.txDescriptors.check(descriptors)
        txSetUp |= 1 << UInt64(queue)
    }

    public mutating func start() throws(NetDeviceError) {
        guard case .configured(let rxQueues, let txQueues) = state else { throw .invalidState(state) }
        for q in 0..<rxQueues where rxSetUp & (1 << UInt64(q)) == 0 { throw .queueNotSetUp(rx: true, queue: q) }
        for q in 0..<txQueues where txSetUp & (1 << UInt64(q)) == 0 { throw .queueNotSetUp(rx: false, queue: q) }
        state = .running(rxQueues: rxQueues, txQueues: txQueues)
        activeRxQueues = rxQueues
        activeTxQueues = txQueues
    }

    /// Returns false if the device was not running.
    @discardableResult
    public mutating func stop() -> Bool {
        guard case .running(let r, let t) = state else { return false }
        state = .configured(rxQueues: r, txQueues: t)
        activeRxQueues = 0
        activeTxQueues = 0
        return true
    }

    /// True if bursts on RX queue `queue` may run now.
    @inlinable @inline(__always)
    public func canReceive(on queue: Int) -> Bool { UInt(bitPattern: queue) < UInt(bitPattern: activeRxQueues) }
    @inlinable @inline(__always)
    public func canTransmit(on queue: Int) -> Bool { UInt(bitPattern: queue) < UInt(bitPattern: activeTxQueues) }
    /// True if `queue` is a configured RX queue (running or not).
    public func isRxQueue(_ queue: Int) -> Bool { queue >= 0 && queue < state.rxQueues }
}
