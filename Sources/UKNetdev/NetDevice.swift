/// The device contract: what every backend (ring pair, null, pcap, TAP, vhost-user, DPDK,
/// virtio-pci in the unikernel) offers, and what apps and middleware are generic over.
///
/// Use it through generics only (`func run<D: NetDevice & ~Copyable>(_ dev: inout D)`), never as
/// `any NetDevice`: hot code then specializes for the concrete device and has no dynamic dispatch.
///
/// Devices are `~Copyable`: exactly one live handle owns a device's queues, lifecycle and stats.
/// A copy would share the rings (and, for virtio, rings shared with another party) while keeping
/// its own state, so two copies could corrupt them; the compiler now refuses such a copy. Code
/// borrows a device (`inout`, `borrowing`) or takes it over (`consuming`: a wrapper, an opener).
///
/// Life cycle: `configure` -> `setupRxQueue`/`setupTxQueue` for every queue -> `start` ->
/// bursts -> `stop` (and `start` again, or reconfigure).
///
/// Ownership (Unikraft's rule): `rxBurst` hands received buffers to the caller. `txBurst`
/// takes the first `count` buffers it reports; the device owns and later frees those (in bulk),
/// and the caller keeps the rest (retry, or release them).
public protocol NetDevice: ~Copyable {
    /// Limits and capabilities; valid before `configure`.
    var info: DeviceInfo { get }
    var state: DeviceState { get }

    mutating func configure(_ config: DeviceConfig) throws(NetDeviceError)
    mutating func setupRxQueue(_ queue: Int, _ config: RxQueueConfig) throws(NetDeviceError)
    mutating func setupTxQueue(_ queue: Int, _ config: TxQueueConfig) throws(NetDeviceError)
    mutating func start() throws(NetDeviceError)
    /// Stops the data path. Buffers the device still holds for RX refill go back to their pool.
    mutating func stop()

    /// Receives up to `packets.count` packets into the front of `packets`.
    mutating func rxBurst(queue: Int, into packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult
    /// Transmits from the front of `packets`; `count` of the result says how many the device took.
    /// A device that frees sent buffers only later, in bulk (virtio: when the other side returns
    /// them), takes back everything already sent on a burst of no packets: callers that want
    /// their pool whole again (before destroying it) send empty bursts until it is.
    mutating func txBurst(queue: Int, from packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult

    func rxQueueStats(_ queue: Int) -> QueueStats
    func txQueueStats(_ queue: Int) -> QueueStats
    /// Counters beyond `QueueStats` (DPDK's xstats): each handed to `body` as a name, the queue
    /// it counts (-1: the whole device) and its value. No allocation: for a report, not a loop.
    func extendedStats(_ body: (_ name: StaticString, _ queue: Int, _ value: UInt64) -> Void)

    /// Event mode: arm (or disarm) the RX event of `queue`. While armed, the device signals its
    /// `rxEventSource` once when packets arrive, then disarms. Arm, then poll once more before
    /// waiting, or a packet that arrived in between waits for the next one.
    mutating func setRxEvents(queue: Int, enabled: Bool) throws(NetDeviceError)
    /// What to wait on for RX events of `queue` (a platform handle such as a Linux file
    /// descriptor, an interrupt vector in a kernel), or `.none` if the queue only polls.
    func rxEventSource(queue: Int) -> RxEventSource
}

extension NetDevice where Self: ~Copyable {
    /// Totals over all configured queues.
    public var stats: DeviceStats {
        var total = DeviceStats()
        for q in 0..<state.rxQueues { total.rx.add(rxQueueStats(q)) }
        for q in 0..<state.txQueues { total.tx.add(txQueueStats(q)) }
        return total
    }

    /// Default for devices without an event mode.
    public mutating func setRxEvents(queue: Int, enabled: Bool) throws(NetDeviceError) {
        throw .notSupported
    }
    public func rxEventSource(queue: Int) -> RxEventSource { .none }
    /// Default: a device with no counters beyond its queue stats.
    public func extendedStats(_ body: (_ name: StaticString, _ queue: Int, _ value: UInt64) -> Void) {}

    /// Configures `rxQueues`/`txQueues` queues with the same settings each and starts the device.
    public mutating func bringUp(rxQueues: Int = 1, txQueues: Int = 1, rx: RxQueueConfig, tx: TxQueueConfig) throws(NetDeviceError) {
        try configure(DeviceConfig(rxQueues: rxQueues, txQueues: txQueues))
        for q in 0..<rxQueues { try setupRxQueue(q, rx) }
        for q in 0..<txQueues { try setupTxQueue(q, tx) }
        try start()
    }
}

/// Result of a burst: how many packets moved, and Unikraft's status flags.
@frozen
public struct BurstResult: Equatable, Sendable {
    public var count: Int
    public var status: BurstStatus
    @inlinable @inline(__always)
    public init(count: Int, status: BurstStatus) {
        self.count = count
        self.status = status
    }
    /// The call was refused (queue not set up, device not started): nothing moved.
    @inlinable public static var refused: BurstResult { BurstResult(count: 0, status: []) }
}

/// Unikraft's uknetdev status flags.
public struct BurstStatus: OptionSet, Equatable, Sendable {
    public let rawValue: UInt8
    @inlinable @inline(__always) public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The call did its work (possibly on zero packets). Absent: the call was refused.
    @inlinable public static var success: BurstStatus { BurstStatus(rawValue: 1 << 0) }
    /// RX: more packets are waiting. TX: the queue has room for more.
    @inlinable public static var more: BurstStatus { BurstStatus(rawValue: 1 << 1) }
    /// RX: the queue could not be refilled because the allocator ran dry.
    @inlinable public static var underrun: BurstStatus { BurstStatus(rawValue: 1 << 2) }
    /// RX: the device's input is finite (a capture file) and all of it has now been delivered;
    /// later bursts bring nothing. Devices on a wire never say it. A program that reads to the
    /// end stops when it sees this flag.
    @inlinable public static var endOfInput: BurstStatus { BurstStatus(rawValue: 1 << 3) }
}

public enum DeviceState: Equatable, Sendable {
    case unconfigured
    case configured(rxQueues: Int, txQueues: Int)
    case running(rxQueues: Int, txQueues: Int)

    public var rxQueues: Int {
        switch self {
        case .unconfigured: 0
        case .configured(let r, _), .running(let r, _): r
        }
    }
    public var txQueues: Int {
        switch self {
        case .unconfigured: 0
        case .configured(_, let t), .running(_, let t): t
        }
    }
    public var isRunning: Bool { if case .running = self { true } else { false } }
}

public struct DeviceConfig: Equatable, Sendable {
    public var rxQueues: Int
    public var txQueues: Int
    public init(rxQueues: Int = 1, txQueues: Int = 1) {
        self.rxQueues = rxQueues
        self.txQueues = txQueues
    }
}

public struct RxQueueConfig {
    /// Ring slots for this queue; must satisfy the device's `rxDescriptors` limits.
    public var descriptors: Int
    /// Where the device gets buffers to receive into (devices that hand over buffers they
    /// already own, like the ring pair, need none).
    public var allocator: RxBufferAllocator?
    /// For event mode: how the device signals arrivals (see `setRxEvents`).
    public var notifier: RxNotifier?
    public init(descriptors: Int, allocator: RxBufferAllocator? = nil, notifier: RxNotifier? = nil) {
        self.descriptors = descriptors
        self.allocator = allocator
        self.notifier = notifier
    }
}

public struct TxQueueConfig: Equatable, Sendable {
    public var descriptors: Int
    public init(descriptors: Int) { self.descriptors = descriptors }
}

/// Descriptor-count rules of a queue (as in DPDK's rte_eth_desc_lim).
public struct DescriptorLimits: Equatable, Sendable {
    public var min: Int
    public var max: Int
    /// Counts must be a multiple of this.
    public var alignment: Int
    public var powerOfTwo: Bool
    public init(min: Int, max: Int, alignment: Int = 1, powerOfTwo: Bool = false) {
        self.min = min
        self.max = max
        self.alignment = alignment
        self.powerOfTwo = powerOfTwo
    }
    public func check(_ count: Int) throws(NetDeviceError) {
        guard count >= min, count <= max, count % alignment == 0,
              !powerOfTwo || count & (count - 1) == 0 else {
            throw .invalidDescriptorCount(requested: count, limits: self)
        }
    }
}

public struct DeviceFeatures: OptionSet, Equatable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The device computes checksums requested with `OffloadFlags.needsChecksum`.
    @inlinable public static var txChecksumOffload: DeviceFeatures { DeviceFeatures(rawValue: 1 << 0) }
    /// The device reports checksum results in `OffloadFlags`.
    @inlinable public static var rxChecksumOffload: DeviceFeatures { DeviceFeatures(rawValue: 1 << 1) }
    /// The device can signal RX through `rxEventSource` (event mode).
    @inlinable public static var rxEvents: DeviceFeatures { DeviceFeatures(rawValue: 1 << 2) }
    /// The device accepts and delivers chained (multi-segment) packets.
    @inlinable public static var scatterGather: DeviceFeatures { DeviceFeatures(rawValue: 1 << 3) }
}

/// A device's link, as of the moment its info was read.
public struct LinkStatus: Equatable, Sendable {
    public var up: Bool
    /// Megabits per second; 0 when the device cannot tell (software devices, virtio without
    /// VIRTIO_NET_F_SPEED_DUPLEX).
    public var speedMbps: UInt32
    public var fullDuplex: Bool
    public init(up: Bool, speedMbps: UInt32 = 0, fullDuplex: Bool = true) {
        self.up = up
        self.speedMbps = speedMbps
        self.fullDuplex = fullDuplex
    }
    /// Up, speed unknown: what in-memory and file devices report.
    public static var up: LinkStatus { LinkStatus(up: true) }
}

/// What the device can do, before configuration (Unikraft's uk_netdev_info), and its address
/// and link as of the read.
public struct DeviceInfo: Equatable, Sendable {
    public var maxRxQueues: Int
    public var maxTxQueues: Int
    /// The device's own MAC address (a virtio-net config's, a DPDK port's), or nil when it has
    /// none (rings, files, a TAP's far side): programs then use the address they are given.
    public var mac: MACAddress?
    public var link: LinkStatus
    /// Largest IP packet, without the Ethernet header.
    public var mtu: Int
    /// Headroom the device needs in front of RX data (e.g. virtio's net header).
    public var nbEncapRx: Int
    /// Headroom the device needs in front of TX data.
    public var nbEncapTx: Int
    /// Required alignment of buffer data, in bytes.
    public var ioAlign: Int
    public var features: DeviceFeatures
    public var rxDescriptors: DescriptorLimits
    public var txDescriptors: DescriptorLimits
    public init(maxRxQueues: Int, maxTxQueues: Int, mac: MACAddress? = nil, link: LinkStatus = .up, mtu: Int = 1500,
                nbEncapRx: Int = 0, nbEncapTx: Int = 0, ioAlign: Int = 1, features: DeviceFeatures = [],
                rxDescriptors: DescriptorLimits, txDescriptors: DescriptorLimits) {
        self.maxRxQueues = maxRxQueues
        self.maxTxQueues = maxTxQueues
        self.mac = mac
        self.link = link
        self.mtu = mtu
        self.nbEncapRx = nbEncapRx
        self.nbEncapTx = nbEncapTx
        self.ioAlign = ioAlign
        self.features = features
        self.rxDescriptors = rxDescriptors
        self.txDescriptors = txDescriptors
    }
}

public enum NetDeviceError: Error, Equatable {
    /// The call is not valid in this state (e.g. a burst-queue setup before `configure`).
    case invalidState(DeviceState)
    case invalidQueueCount(requested: Int, max: Int)
    case invalidQueue(Int)
    case invalidDescriptorCount(requested: Int, limits: DescriptorLimits)
    /// A queue was left without setup when `start` was called.
    case queueNotSetUp(rx: Bool, queue: Int)
    /// The RX queue needs an allocator and got none.
    case missingAllocator
    case notSupported
    /// The backend failed; `code` is its own (an errno, a DPDK return value).
    case backend(code: Int32)
    /// The backend refused, saying why and what to change (a DPDK PMD's queue setup).
    case refused(String)

    /// Written out: the synthesized one would compare `refused`'s text with String's `==`, which
    /// pulls Unicode normalization tables into the Embedded image; bytes compare the same here.
    public static func == (a: NetDeviceError, b: NetDeviceError) -> Bool {
        switch (a, b) {
        case (.invalidState(let x), .invalidState(let y)): x == y
        case (.invalidQueueCount(let r1, let m1), .invalidQueueCount(let r2, let m2)): r1 == r2 && m1 == m2
        case (.invalidQueue(let x), .invalidQueue(let y)): x == y
        case (.invalidDescriptorCount(let r1, let l1), .invalidDescriptorCount(let r2, let l2)): r1 == r2 && l1 == l2
        case (.queueNotSetUp(let r1, let q1), .queueNotSetUp(let r2, let q2)): r1 == r2 && q1 == q2
        case (.missingAllocator, .missingAllocator), (.notSupported, .notSupported): true
        case (.backend(let x), .backend(let y)): x == y
        case (.refused(let x), .refused(let y)): x.utf8.elementsEqual(y.utf8)
        default: false
        }
    }
}


/// How a device signals RX in event mode.
public enum RxEventSource: Equatable, Sendable {
    case none
    /// Something the platform waits on, such as a Linux file descriptor (readable when packets
    /// arrived: poll it, then read to clear). The hosted module spells it `.fileDescriptor(fd)`;
    /// the contract itself knows no operating system.
    case platformHandle(Int)
    /// An interrupt vector (kernels).
    case interrupt(vector: Int)
}

/// A device's way to signal RX: a C function pointer and a context (so it works in a kernel and
/// costs no reference counting), plus what a waiter should wait on.
public struct RxNotifier {
    public typealias Function = @convention(c) (_ context: UnsafeMutableRawPointer?) -> Void
    public let context: UnsafeMutableRawPointer?
    public let function: Function
    public let source: RxEventSource
    public init(context: UnsafeMutableRawPointer?, source: RxEventSource, function: Function) {
        self.context = context
        self.function = function
        self.source = source
    }
    @inlinable @inline(__always)
    public func signal() { function(context) }
}
