/// Which way a packet went through a device.
public enum PacketDirection: Equatable, Sendable {
    case rx, tx
}

/// Sees each packet that passes a `Tracer`. A struct conforming to this is specialized into the
/// burst loop: no existential, no closure context, no reference counting.
public protocol PacketObserver {
    /// `buffer` is only borrowed: do not keep it past the call (copy what you need).
    mutating func observe(_ buffer: NetBuf, direction: PacketDirection, queue: Int)
}

/// Middleware that shows every received and every transmitted packet of any device to an
/// observer (smoltcp's `phy::Tracer`, generic instead of boxed). Stacks with other middleware:
/// `Tracer(inner: FaultInjector(inner: dev, ...), observer: ...)`.
///
/// TX packets are observed only once the inner device has taken them, so a packet refused and
/// offered again is seen once; to make that safe the tracer holds an extra reference on each
/// offered packet for the duration of the inner call.
public struct Tracer<Inner: NetDevice, Observer: PacketObserver>: NetDevice {
    public var inner: Inner
    public var observer: Observer

    public init(inner: Inner, observer: Observer) {
        self.inner = inner
        self.observer = observer
    }

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

    @inlinable
    public mutating func rxBurst(queue: Int, into packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        let result = inner.rxBurst(queue: queue, into: packets)
        for i in 0..<result.count { observer.observe(packets[i], direction: .rx, queue: queue) }
        return result
    }

    @inlinable
    public mutating func txBurst(queue: Int, from packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        for p in packets { p.retain() }
        let result = inner.txBurst(queue: queue, from: packets)
        for i in 0..<result.count { observer.observe(packets[i], direction: .tx, queue: queue) }
        for p in packets { p.release() }
        return result
    }
}
