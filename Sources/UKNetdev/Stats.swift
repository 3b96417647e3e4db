/// Counters of one queue. Written only by the thread that polls the queue; readers on other
/// threads may see a slightly stale value, never a torn one on x86_64.
@frozen
public struct QueueStats: Equatable, Sendable {
    public var packets: UInt64 = 0
    public var bytes: UInt64 = 0
    /// Packets the device could not handle (bad descriptors, backend errors).
    public var errors: UInt64 = 0
    /// Packets lost for want of room or buffers, or dropped on purpose (e.g. by a fault injector).
    public var drops: UInt64 = 0

    @inlinable public init() {}
    @inlinable public init(packets: UInt64, bytes: UInt64, errors: UInt64 = 0, drops: UInt64 = 0) {
        self.packets = packets
        self.bytes = bytes
        self.errors = errors
        self.drops = drops
    }
    @inlinable public mutating func add(_ other: QueueStats) {
        packets &+= other.packets
        bytes &+= other.bytes
        errors &+= other.errors
        drops &+= other.drops
    }
}

/// Totals of a device over its queues.
public struct DeviceStats: Equatable, Sendable {
    public var rx = QueueStats()
    public var tx = QueueStats()
    public init() {}
}

/// Per-queue counters in memory allocated once (no reference counting in bursts).
@frozen
public struct QueueStatsTable {
    public let entries: UnsafeMutablePointer<QueueStats>
    public let count: Int
    public init(count: Int) {
        self.count = count
        entries = .allocate(capacity: max(count, 1))
        entries.initialize(repeating: QueueStats(), count: max(count, 1))
    }
    public func deallocate() { entries.deallocate() }
    @inlinable public subscript(queue: Int) -> QueueStats {
        queue >= 0 && queue < count ? entries[queue] : QueueStats()
    }
    public func reset() { entries.update(repeating: QueueStats(), count: max(count, 1)) }

    /// Adds one burst's packets and bytes.
    @inlinable @inline(__always)
    public func record(_ queue: Int, packets: Int, bytes: Int) {
        entries[queue].packets &+= UInt64(truncatingIfNeeded: packets)
        entries[queue].bytes &+= UInt64(truncatingIfNeeded: bytes)
    }
    @inlinable @inline(__always)
    public func recordDrops(_ queue: Int, _ n: Int) { entries[queue].drops &+= UInt64(truncatingIfNeeded: n) }
    @inlinable @inline(__always)
    public func recordErrors(_ queue: Int, _ n: Int) { entries[queue].errors &+= UInt64(truncatingIfNeeded: n) }
}
