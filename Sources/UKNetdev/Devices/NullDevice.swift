/// A device with no wire, for tests and benchmarks (DPDK's net_null): TX frees what it is given
/// (in bulk) and counts it; RX returns nothing, or, given a template frame, fills every slot of
/// the burst with a fresh copy of it in a buffer from the queue's allocator.
public struct NullDevice: NetDevice, ~Copyable {
    @usableFromInline final class Storage {
        let template: UnsafeMutableRawBufferPointer
        let rxStats: QueueStatsTable
        let txStats: QueueStatsTable
        let allocators: UnsafeMutablePointer<RxBufferAllocator?>
        init(template: UnsafeRawBufferPointer?, queues: Int) {
            let t = UnsafeMutableRawBufferPointer.allocate(byteCount: template?.count ?? 0, alignment: 64)
            if let template, template.count > 0 { t.copyMemory(from: template) }
            self.template = t
            rxStats = QueueStatsTable(count: queues)
            txStats = QueueStatsTable(count: queues)
            allocators = .allocate(capacity: queues)
            allocators.initialize(repeating: nil, count: queues)
        }
        deinit {
            template.deallocate()
            rxStats.deallocate()
            txStats.deallocate()
            allocators.deallocate()
        }
    }

    @usableFromInline let storage: Storage
    @usableFromInline let template: UnsafeMutableRawBufferPointer
    @usableFromInline let rxStats: QueueStatsTable
    @usableFromInline let txStats: QueueStatsTable
    @usableFromInline let allocators: UnsafeMutablePointer<RxBufferAllocator?>
    @usableFromInline var lifecycle = DeviceLifecycle()
    public var state: DeviceState { lifecycle.state }
    public let info: DeviceInfo

    /// A null device with `queues` queue pairs; with a template, RX produces copies of it.
    public init(queues: Int = 1, rxTemplate: UnsafeRawBufferPointer? = nil, mtu: Int = 9000) {
        precondition(queues >= 1 && queues <= 64, "1...64 queues")
        storage = Storage(template: rxTemplate, queues: queues)
        template = storage.template
        rxStats = storage.rxStats
        txStats = storage.txStats
        allocators = storage.allocators
        let limits = DescriptorLimits(min: 1, max: 1 << 16)
        info = DeviceInfo(maxRxQueues: queues, maxTxQueues: queues, mtu: mtu, features: [.scatterGather],
                          rxDescriptors: limits, txDescriptors: limits)
    }

    /// The same, with the template given as bytes.
    public init(queues: Int = 1, rxTemplate bytes: [UInt8], mtu: Int = 9000) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        defer { copy.deallocate() }   // the device keeps its own copy
        copy.copyBytes(from: bytes)
        self.init(queues: queues, rxTemplate: UnsafeRawBufferPointer(copy), mtu: mtu)
    }

    public mutating func configure(_ config: DeviceConfig) throws(NetDeviceError) {
        try lifecycle.configure(config, info: info)
    }

    public mutating func setupRxQueue(_ queue: Int, _ config: RxQueueConfig) throws(NetDeviceError) {
        if template.count > 0 && config.allocator == nil { throw .missingAllocator }
        try lifecycle.setupRx(queue, descriptors: config.descriptors, info: info)
        allocators[queue] = config.allocator
    }

    public mutating func setupTxQueue(_ queue: Int, _ config: TxQueueConfig) throws(NetDeviceError) {
        try lifecycle.setupTx(queue, descriptors: config.descriptors, info: info)
    }

    public mutating func start() throws(NetDeviceError) { try lifecycle.start() }
    public mutating func stop() { lifecycle.stop() }

    @inlinable
    public mutating func rxBurst(queue: Int, into packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard lifecycle.canReceive(on: queue), let out = packets.baseAddress else {
            return .refused
        }
        let size = template.count
        guard size > 0, let allocator = allocators[queue] else { return BurstResult(count: 0, status: .success) }
        let source = UnsafeRawPointer(template.baseAddress!)
        let got = allocator.allocate(into: packets)
        var n = 0
        var i = 0
        while i < got {
            let buf = out[i]
            i &+= 1
            // A buffer too small for the template (another allocator's) is an error, not an overflow.
            guard size <= buf.capacity &- buf.dataOffset else {
                buf.release()
                rxStats.recordErrors(queue, 1)
                continue
            }
            copyPacketBytes(to: buf.data, from: source, count: size)
            buf.setLengths(segment: size, packet: size)
            out[n] = buf
            n &+= 1
        }
        rxStats.record(queue, packets: n, bytes: n &* size)
        if got < packets.count {
            return BurstResult(count: n, status: [.success, .underrun])
        }
        return BurstResult(count: n, status: [.success, .more])
    }

    @inlinable
    public mutating func txBurst(queue: Int, from packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard lifecycle.canTransmit(on: queue), let src = packets.baseAddress else {
            return .refused
        }
        let n = packets.count
        txStats.record(queue, packets: n, bytes: NetBuf.totalLength(src, count: n))
        NetBuf.releaseBulk(packets)
        return BurstResult(count: n, status: [.success, .more])
    }

    public func rxQueueStats(_ queue: Int) -> QueueStats { rxStats[queue] }
    public func txQueueStats(_ queue: Int) -> QueueStats { txStats[queue] }
}
