import CUKAtomics
import UKNetdev
import VirtioNet

/// The device side of a virtio-net device, in the same process: it reads the available rings
/// and descriptor tables the driver wrote and writes used rings, as a vhost-user backend or a
/// hypervisor would. For the ring logic's tests (including a device that misbehaves on purpose)
/// and for benchmarks that need no second process. Device addresses are plain virtual addresses.
///
/// `EmulatedVirtioNet` is the handle the test keeps; `transport` makes the driver's end. Both
/// point at one state block, freed by `deallocate()` once the driver is gone.
public struct EmulatedVirtioNet {
    public let state: UnsafeMutablePointer<EmulatedDeviceState>

    public init(features: VirtioFeatures = [.version1, .mrgRxbuf, .mac, .status, .csum, .guestCsum],
                queuePairs: Int = 1, maxQueueSize: Int = 1024, mac: MACAddress? = MACAddress(0x02, 0, 0, 0, 0, 0x42)) {
        state = .allocate(capacity: 1)
        let queues = UnsafeMutablePointer<EmulatedQueue>.allocate(capacity: 2 * queuePairs)
        queues.initialize(repeating: EmulatedQueue(), count: 2 * queuePairs)
        state.initialize(to: EmulatedDeviceState(offered: features, queuePairs: queuePairs, maxQueueSize: maxQueueSize,
                                                 mac: mac, queues: queues))
    }

    public func deallocate() {
        state.pointee.queues.deallocate()
        state.deallocate()
    }

    /// The driver's end.
    public var transport: EmulatedTransport { EmulatedTransport(state: state) }

    public var negotiated: VirtioFeatures { state.pointee.negotiated }
    public var driverOK: Bool { state.pointee.driverOK }
    public var resets: Int { state.pointee.resets }
    public func notifies(_ queue: Int) -> Int { state.pointee.queues[queue].notifies }
    public func queue(_ index: Int) -> EmulatedQueue { state.pointee.queues[index] }

    /// Whether the device asks for kicks on virtqueue `index` (VRING_USED_F_NO_NOTIFY clear).
    public func setNotificationsWanted(_ index: Int, _ wanted: Bool) {
        let q = state.pointee.queues[index]
        guard q.active else { return }
        uk_store_release_u16(q.used.assumingMemoryBound(to: UInt16.self), wanted ? 0 : 1)
    }

    /// Makes the transport report the device gone (a backend that died).
    public func disappear() { state.pointee.alive = false }

    /// The device is back, knowing nothing of the rings it had (a restarted backend): the driver
    /// may connect again (`VirtioTransport.reconnect`) and hand them over afresh.
    public func comeBack() {
        for i in 0..<(2 * state.pointee.queuePairs) { state.pointee.queues[i] = EmulatedQueue() }
        state.pointee.driverOK = false
        state.pointee.alive = true
    }
    public var reconnects: Int { state.pointee.reconnects }

    // MARK: Device side of the rings

    /// Entries the driver made available on virtqueue `index` and the device has not taken.
    public func availablePending(_ index: Int) -> Int {
        let q = state.pointee.queues[index]
        guard q.active else { return 0 }
        return Int(uk_load_acquire_u16((q.avail + 2).assumingMemoryBound(to: UInt16.self)) &- q.lastAvail)
    }

    /// Whether the driver asked for no calls on virtqueue `index`.
    public func callsSuppressed(_ index: Int) -> Bool {
        let q = state.pointee.queues[index]
        return q.active && uk_load_acquire_u16(q.avail.assumingMemoryBound(to: UInt16.self)) & 1 != 0
    }

    /// Takes the next available chain of virtqueue `index`: its head id and its descriptors
    /// (address, length, flags), following `next` links (at most the ring size).
    public func takeAvailable(_ index: Int, into descriptors: UnsafeMutablePointer<EmulatedDescriptor>, max: Int) -> (head: Int, count: Int)? {
        guard availablePending(index) > 0 else { return nil }
        let q = state.pointee.queues[index]
        let slot = Int(q.lastAvail) & (q.size - 1)
        let head = Int(q.avail.load(fromByteOffset: 4 + 2 * slot, as: UInt16.self))
        state.pointee.queues[index].lastAvail &+= 1
        var id = head
        var n = 0
        while n < max && n < q.size && id < q.size {
            let d = q.desc + 16 * id
            let flags = d.load(fromByteOffset: 12, as: UInt16.self)
            descriptors[n] = EmulatedDescriptor(address: d.load(as: UInt64.self), length: Int(d.load(fromByteOffset: 8, as: UInt32.self)),
                                                flags: flags)
            n += 1
            guard flags & 1 != 0 else { break }
            id = Int(d.load(fromByteOffset: 14, as: UInt16.self))
        }
        return (head, n)
    }

    /// Writes a used entry {id, length} at the device's used index of virtqueue `index`;
    /// `publish` moves the used index past it (a device may write several, then publish).
    public func putUsed(_ index: Int, id: UInt32, length: UInt32, publish: Bool = true) {
        let q = state.pointee.queues[index]
        let slot = Int(q.usedIdx) & (q.size - 1)
        (q.used + 4 + 8 * slot).storeBytes(of: UInt64(id) | UInt64(length) << 32, as: UInt64.self)
        state.pointee.queues[index].usedIdx &+= 1
        if publish { publishUsed(index) }
    }

    /// Stores the device's used index of virtqueue `index` (or `value`, for a device that lies).
    public func publishUsed(_ index: Int, value: UInt16? = nil) {
        let q = state.pointee.queues[index]
        uk_store_release_u16((q.used + 2).assumingMemoryBound(to: UInt16.self), value ?? q.usedIdx)
    }

    /// Delivers one frame into RX virtqueue `2 * pair`: the next posted buffer gets a virtio-net
    /// header (`headerFlags`, num_buffers 1) and the frame. False when no buffer is posted or the
    /// frame does not fit (a well-behaved device then drops it).
    @discardableResult
    public func receive(_ frame: UnsafeRawBufferPointer, pair: Int = 0, headerFlags: UInt8 = 0,
                        csumStart: UInt16 = 0, csumOffset: UInt16 = 0, publish: Bool = true) -> Bool {
        var d = EmulatedDescriptor(address: 0, length: 0, flags: 0)
        let index = 2 * pair
        guard let (head, n) = takeAvailable(index, into: &d, max: 1), n == 1 else { return false }
        guard d.length >= VirtioNetHeader.size + frame.count else {
            putUsed(index, id: UInt32(head), length: 0, publish: publish)
            return false
        }
        let p = UnsafeMutableRawPointer(bitPattern: UInt(d.address))!
        p.storeBytes(of: UInt64(headerFlags) | UInt64(csumStart) << 48, as: UInt64.self)
        p.storeBytes(of: UInt32(csumOffset) | UInt32(1) << 16, toByteOffset: 8, as: UInt32.self)
        if let base = frame.baseAddress { (p + VirtioNetHeader.size).copyMemory(from: base, byteCount: frame.count) }
        putUsed(index, id: UInt32(head), length: UInt32(VirtioNetHeader.size + frame.count), publish: publish)
        return true
    }

    /// Takes every frame the driver queued on TX virtqueue `2 * pair + 1`, hands each (without
    /// its virtio-net header) to `body`, and returns the buffers as used. Returns how many.
    @discardableResult
    public func transmitted(pair: Int = 0, max: Int = Int.max, _ body: (UnsafeRawBufferPointer, _ headerFlags: UInt8) -> Void) -> Int {
        let index = 2 * pair + 1
        let descriptors = UnsafeMutablePointer<EmulatedDescriptor>.allocate(capacity: 64)
        defer { descriptors.deallocate() }
        let frame = UnsafeMutableRawPointer.allocate(byteCount: 65536 + 64, alignment: 8)
        defer { frame.deallocate() }
        var count = 0
        while count < max, let (head, n) = takeAvailable(index, into: descriptors, max: 64) {
            var length = 0
            for i in 0..<n {
                let d = descriptors[i]
                guard length + d.length <= 65536 + 64 else { break }
                frame.advanced(by: length).copyMemory(from: UnsafeRawPointer(bitPattern: UInt(d.address))!, byteCount: d.length)
                length += d.length
            }
            let flags = frame.load(as: UInt8.self)
            body(UnsafeRawBufferPointer(start: frame + VirtioNetHeader.size, count: Swift.max(0, length - VirtioNetHeader.size)), flags)
            putUsed(index, id: UInt32(head), length: 0, publish: false)
            count += 1
        }
        if count > 0 { publishUsed(index) }
        return count
    }

    /// Loopback: every frame queued on TX of `pair` goes to RX of the same pair (dropped when
    /// no RX buffer is posted). Single-descriptor frames only, no allocation: the benchmark path.
    @discardableResult
    public func loopback(pair: Int = 0, max: Int) -> Int {
        let tx = 2 * pair + 1, rx = 2 * pair
        var moved = 0
        var d = EmulatedDescriptor(address: 0, length: 0, flags: 0)
        var r = EmulatedDescriptor(address: 0, length: 0, flags: 0)
        while moved < max, let (head, n) = takeAvailable(tx, into: &d, max: 1) {
            if n == 1 && d.flags & 1 == 0, let (rxHead, m) = takeAvailable(rx, into: &r, max: 1), m == 1 {
                let length = Swift.min(d.length, r.length)
                UnsafeMutableRawPointer(bitPattern: UInt(r.address))!.copyMemory(
                    from: UnsafeRawPointer(bitPattern: UInt(d.address))!, byteCount: length)
                UnsafeMutableRawPointer(bitPattern: UInt(r.address))!.storeBytes(of: UInt16(1), toByteOffset: 10, as: UInt16.self)
                putUsed(rx, id: UInt32(rxHead), length: UInt32(length), publish: false)
            }
            putUsed(tx, id: UInt32(head), length: 0, publish: false)
            moved += 1
        }
        if moved > 0 {
            publishUsed(tx)
            publishUsed(rx)
        }
        return moved
    }
}

/// One descriptor as the device read it.
public struct EmulatedDescriptor: Equatable {
    public var address: UInt64
    public var length: Int
    public var flags: UInt16
    public init(address: UInt64, length: Int, flags: UInt16) {
        self.address = address
        self.length = length
        self.flags = flags
    }
}

/// The device's view of one virtqueue.
public struct EmulatedQueue {
    public var active = false
    public var size = 0
    public var desc = UnsafeMutableRawPointer(bitPattern: 8)!
    public var avail = UnsafeMutableRawPointer(bitPattern: 8)!
    public var used = UnsafeMutableRawPointer(bitPattern: 8)!
    public var lastAvail: UInt16 = 0
    public var usedIdx: UInt16 = 0
    public var notifies = 0
    public init() {}
}

public struct EmulatedDeviceState {
    public var offered: VirtioFeatures
    public var negotiated: VirtioFeatures = []
    public var queuePairs: Int
    public var maxQueueSize: Int
    public var mac: MACAddress?
    public var queues: UnsafeMutablePointer<EmulatedQueue>
    public var driverOK = false
    public var alive = true
    public var resets = 0
    public var reconnects = 0
    /// Device memory handed out and not freed (for leak checks).
    public var memoryBlocks = 0
    init(offered: VirtioFeatures, queuePairs: Int, maxQueueSize: Int, mac: MACAddress?, queues: UnsafeMutablePointer<EmulatedQueue>) {
        self.offered = offered
        self.queuePairs = queuePairs
        self.maxQueueSize = maxQueueSize
        self.mac = mac
        self.queues = queues
    }
}

/// The driver's end of an `EmulatedVirtioNet`.
public struct EmulatedTransport: VirtioTransport, ~Copyable {
    public let state: UnsafeMutablePointer<EmulatedDeviceState>

    public var deviceFeatures: VirtioFeatures { state.pointee.offered }
    public var maxQueuePairs: Int { state.pointee.queuePairs }
    public func maxQueueSize(_ index: Int) -> Int { index < 2 * state.pointee.queuePairs ? state.pointee.maxQueueSize : 0 }
    public var mac: MACAddress? { state.pointee.negotiated.contains(.mac) ? state.pointee.mac : nil }
    public var linkUp: Bool { state.pointee.alive }

    public mutating func negotiate(_ features: VirtioFeatures) throws(VirtioError) {
        guard state.pointee.offered.isSuperset(of: features) else { throw .featuresRejected(features) }
        state.pointee.negotiated = features
    }

    public mutating func allocateDeviceMemory(bytes: Int, alignment: Int) throws(VirtioError) -> DeviceMemory {
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: alignment)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        state.pointee.memoryBlocks += 1
        return DeviceMemory(pointer: p, deviceAddress: UInt64(UInt(bitPattern: p)), size: bytes)
    }

    public mutating func freeDeviceMemory(_ memory: DeviceMemory) {
        memory.pointer.deallocate()
        state.pointee.memoryBlocks -= 1
    }

    public mutating func activateQueue(_ index: Int, size: Int, rings: SplitRingAddresses) throws(VirtioError) {
        guard index < 2 * state.pointee.queuePairs else { throw .queueUnavailable(index: index) }
        guard state.pointee.alive else { throw .deviceGone }
        var q = EmulatedQueue()
        q.active = true
        q.size = size
        q.desc = rings.descriptorsPointer
        q.avail = rings.availablePointer
        q.used = rings.usedPointer
        // A polling device, as DPDK's vhost backend: it wants no kicks.
        q.used.storeBytes(of: UInt16(1), as: UInt16.self)
        state.pointee.queues[index] = q
    }

    public mutating func driverReady() throws(VirtioError) {
        guard state.pointee.alive else { throw .deviceGone }
        state.pointee.driverOK = true
    }

    public mutating func reset() {
        for i in 0..<(2 * state.pointee.queuePairs) { state.pointee.queues[i] = EmulatedQueue() }
        state.pointee.driverOK = false
        state.pointee.resets += 1
    }

    @inlinable
    public func notify(_ index: Int) {
        if index < 2 * state.pointee.queuePairs { state.pointee.queues[index].notifies += 1 }
    }

    @inlinable
    public func canReach(_ address: UInt64, length: Int) -> Bool { true }

    public mutating func checkAlive() -> Bool { state.pointee.alive }

    public mutating func reconnect() throws(VirtioError) {
        guard state.pointee.alive else { throw .deviceGone }
        state.pointee.reconnects += 1
    }
}
