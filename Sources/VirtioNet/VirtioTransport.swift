import UKNetdev

/// Memory that both the driver and the device reach (rings, header tables): where the driver
/// sees it and the address the device uses for it.
public struct DeviceMemory: Equatable {
    public var pointer: UnsafeMutableRawPointer
    public var deviceAddress: UInt64
    public var size: Int
    public init(pointer: UnsafeMutableRawPointer, deviceAddress: UInt64, size: Int) {
        self.pointer = pointer
        self.deviceAddress = deviceAddress
        self.size = size
    }
}

/// Where a split virtqueue's three parts are, as device addresses and as the driver sees them.
public struct SplitRingAddresses: Equatable {
    public var descriptors: UInt64
    public var available: UInt64
    public var used: UInt64
    /// The same three, as pointers in the driver's address space (vhost-user passes both).
    public var descriptorsPointer: UnsafeMutableRawPointer
    public var availablePointer: UnsafeMutableRawPointer
    public var usedPointer: UnsafeMutableRawPointer
}

/// What moves a virtio device's control plane: a vhost-user socket in a Linux process, PCI
/// (legacy I/O BAR or modern capabilities) or virtio-mmio registers in a kernel. The ring logic
/// and the net device logic are generic over it, so the same code serves every transport and
/// specializes (no existentials) for each.
///
/// Order of calls: `deviceFeatures` -> `negotiate` -> `allocateDeviceMemory` and
/// `activateQueue` for every queue -> `driverReady` -> data path (`notify`) -> `reset` (after
/// which the driver owns every buffer it had posted again) -> queues again.
public protocol VirtioTransport: ~Copyable {
    /// Features the device offers.
    var deviceFeatures: VirtioFeatures { get }
    /// Queue pairs the device serves (1 without MQ).
    var maxQueuePairs: Int { get }
    /// Largest ring the device accepts for virtqueue `index` (a power of two); 0 when absent.
    func maxQueueSize(_ index: Int) -> Int
    /// True when the device takes rings of exactly `maxQueueSize` entries (legacy virtio-pci).
    var queueSizeFixed: Bool { get }
    /// The device's MAC address, when it has one (VIRTIO_NET_F_MAC or the transport's own).
    var mac: MACAddress? { get }
    /// Whether the link (or the connection to the backend) is up.
    var linkUp: Bool { get }

    /// Writes the driver's features and completes negotiation (FEATURES_OK, read back).
    mutating func negotiate(_ features: VirtioFeatures) throws(VirtioError)
    /// Zeroed memory of `bytes` bytes at `alignment`, reachable by the device.
    mutating func allocateDeviceMemory(bytes: Int, alignment: Int) throws(VirtioError) -> DeviceMemory
    mutating func freeDeviceMemory(_ memory: DeviceMemory)
    /// Gives the device virtqueue `index` of `size` entries at `rings` and enables it. `callSuppressed`:
    /// the driver polls this queue and wants no call (interrupt) from it.
    mutating func activateQueue(_ index: Int, size: Int, rings: SplitRingAddresses) throws(VirtioError)
    /// Every queue is set up: the device may start (DRIVER_OK).
    mutating func driverReady() throws(VirtioError)
    /// Stops the device from using any queue; afterwards every buffer the driver had posted is the
    /// driver's again. Harmless when nothing runs.
    mutating func reset()

    /// Tells the device that virtqueue `index` has new available buffers.
    func notify(_ index: Int)
    /// Whether the device can reach `length` bytes at device address `address` (a vhost-user
    /// backend reaches only the regions it was given).
    func canReach(_ address: UInt64, length: Int) -> Bool
    /// What to wait on for used buffers of virtqueue `index` in event mode.
    func eventSource(_ index: Int) -> RxEventSource
    /// Whether the device is still there (a vhost-user backend's process); polled now and then,
    /// not per burst.
    mutating func checkAlive() -> Bool
    /// After the device went away: connects to it again if it came back (a restarted vhost-user
    /// backend) and the transport was asked to, ready for `negotiate` and the queues; throws
    /// (cheaply, it is called from idle polls) when not now or never.
    mutating func reconnect() throws(VirtioError)
}

extension VirtioTransport where Self: ~Copyable {
    public func eventSource(_ index: Int) -> RxEventSource { .none }
    public var queueSizeFixed: Bool { false }
    public mutating func checkAlive() -> Bool { true }
    public mutating func reconnect() throws(VirtioError) { throw .deviceGone }
}

/// Why the virtio driver or its transport stopped.
public enum VirtioError: Error, Equatable {
    /// The device does not offer a feature the driver cannot work without.
    case requiredFeatureMissing(VirtioFeatures)
    /// The device did not accept the features (FEATURES_OK cleared).
    case featuresRejected(VirtioFeatures)
    case queueUnavailable(index: Int)
    case queueTooSmall(index: Int, size: Int)
    case tooManyQueuePairs(requested: Int, max: Int)
    case deviceMemoryExhausted(bytes: Int)
    /// The transport failed; `code` is its own (an errno, a status register value).
    case transport(code: Int32)
    /// The device (backend) went away.
    case deviceGone
}

extension VirtioError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .requiredFeatureMissing(let f): "the device does not offer \(f), which this driver requires"
        case .featuresRejected(let f): "the device rejected the features \(f)"
        case .queueUnavailable(let i): "the device has no virtqueue \(i)"
        case .queueTooSmall(let i, let size): "virtqueue \(i) takes at most \(size) entries"
        case .tooManyQueuePairs(let requested, let max): "\(requested) queue pairs asked, the device has \(max)"
        case .deviceMemoryExhausted(let bytes): "no device memory left for \(bytes) bytes"
        case .transport(let code): "transport error \(code)"
        case .deviceGone: "the device (its backend) went away"
        }
    }
}
