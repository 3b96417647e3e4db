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
public struct Tracer<Inner: NetDevice & ~Copyable, Observer: PacketObserver>: NetDeviceWrapper, ~Copyable {
    public var inner: Inner
    public var observer: Observer

    public init(inner: consuming Inner, observer: Observer) {
        self.inner = inner
        self.observer = observer
    }


    @inlinable
    public mutating func rxBurst(queue: Int, into packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        let result = inner.rxBurst(queue: queue, into: packets)
        for i in 0..<result.count { observer.observe(packets[i], direction: .rx, queue: queue) }
        return result
    }

    @inlinable
    public mutating func txBurst(queue: Int, from packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        txBurstHolding(queue: queue, from: packets) { tracer, taken in
            for p in taken { tracer.observer.observe(p, direction: .tx, queue: queue) }
        }
    }
}
