/// Middleware over a device: everything but the bursts passes straight to `inner`, so a
/// wrapper (tracer, fault injector, pcap writer...) implements only what it changes.
public protocol NetDeviceWrapper: NetDevice, ~Copyable {
    associatedtype Inner: NetDevice & ~Copyable
    var inner: Inner { get set }
}

extension NetDeviceWrapper where Self: ~Copyable {
    public var info: DeviceInfo { inner.info }
    public var state: DeviceState { inner.state }
    public mutating func configure(_ config: DeviceConfig) throws(NetDeviceError) { try inner.configure(config) }
    public mutating func setupRxQueue(_ queue: Int, _ config: RxQueueConfig) throws(NetDeviceError) { try inner.setupRxQueue(queue, config) }
    public mutating func setupTxQueue(_ queue: Int, _ config: TxQueueConfig) throws(NetDeviceError) { try inner.setupTxQueue(queue, config) }
    public mutating func start() throws(NetDeviceError) { try inner.start() }
    public mutating func stop() { inner.stop() }
    public func rxQueueStats(_ queue: Int) -> QueueStats { inner.rxQueueStats(queue) }
    public func txQueueStats(_ queue: Int) -> QueueStats { inner.txQueueStats(queue) }
    public mutating func setRxEvents(queue: Int, enabled: Bool) throws(NetDeviceError) { try inner.setRxEvents(queue: queue, enabled: enabled) }
    public func rxEventSource(queue: Int) -> RxEventSource { inner.rxEventSource(queue: queue) }
    public func extendedStats(_ body: (_ name: StaticString, _ queue: Int, _ value: UInt64) -> Void) { inner.extendedStats(body) }
    public mutating func rxBurst(queue: Int, into packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        inner.rxBurst(queue: queue, into: packets)
    }
    public mutating func txBurst(queue: Int, from packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        inner.txBurst(queue: queue, from: packets)
    }

    /// Offers `packets` to `inner` while holding an extra reference on each, so a wrapper can
    /// still read the ones the device took (and may already have freed): `taken` gets the wrapper
    /// itself and that prefix of `packets`, then the extra references are dropped in bulk.
    /// Returns the inner device's result unchanged.
    @inlinable
    public mutating func txBurstHolding(
        queue: Int, from packets: UnsafeMutableBufferPointer<NetBuf>,
        _ taken: (inout Self, UnsafeMutableBufferPointer<NetBuf>) -> Void
    ) -> BurstResult {
        for p in packets { p.retain() }
        let result = inner.txBurst(queue: queue, from: packets)
        taken(&self, UnsafeMutableBufferPointer(rebasing: packets[..<result.count]))
        NetBuf.releaseBulk(packets)
        return result
    }
}
