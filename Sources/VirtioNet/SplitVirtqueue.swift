import CUKAtomics
import UKNetdev

/// Why a queue stopped trusting its device. The used ring is written by another party (a
/// vhost-user backend process, a hypervisor): everything read from it is checked, and the first
/// violation breaks the queue for good: it is counted, the queue stops, nothing out of bounds is
/// read or written, and the buffers it held come back on `stop`.
public enum VirtqueueFault: UInt8, Equatable, Sendable, CustomStringConvertible {
    case none = 0
    /// The used index ran more than the ring size ahead of what the driver consumed.
    case usedIndexAhead
    /// A used id outside the descriptor table.
    case idOutOfRange
    /// A used id that is not the head of a chain in flight (never posted, or returned twice).
    case idNotInFlight
    /// A used length beyond what the posted buffer holds.
    case lengthBeyondBuffer
    /// A merged RX packet announced more buffers than the used ring holds.
    case mergedBuffersMissing

    public var description: String {
        switch self {
        case .none: "none"
        case .usedIndexAhead: "used index ahead of the ring"
        case .idOutOfRange: "used id out of range"
        case .idNotInFlight: "used id not in flight"
        case .lengthBeyondBuffer: "used length beyond the buffer"
        case .mergedBuffersMissing: "merged buffers missing"
        }
    }
}

/// Byte layout of a split virtqueue of `size` entries, one block of device memory: descriptor
/// table, available ring, then the used ring on the next 4 KiB boundary (the legacy PCI layout,
/// so one allocation suits every transport).
public struct SplitRingLayout: Equatable, Sendable {
    public let size: Int
    public init(size: Int) { self.size = size }
    public var descriptorsOffset: Int { 0 }
    public var availableOffset: Int { 16 * size }
    /// flags, idx, ring[size], used_event
    public var availableBytes: Int { 6 + 2 * size }
    public var usedOffset: Int { (availableOffset + availableBytes + 4095) & ~4095 }
    /// flags, idx, ring[size] of {id, len}, avail_event
    public var usedBytes: Int { 6 + 8 * size }
    public var totalBytes: Int { (usedOffset + usedBytes + 4095) & ~4095 }
    public static var alignment: Int { 4096 }
}

/// The driver's side of one split virtqueue: the three rings in device memory, and in private
/// memory everything the driver must not trust the device with: which buffer each descriptor
/// carries, how long it is, how chains link, which descriptors are free. Nothing is ever read
/// back from the descriptor table.
///
/// `~Copyable`: it owns its private arrays and the buffers in flight, exactly once.
public struct SplitVirtqueue: ~Copyable {
    public let size: Int
    @usableFromInline let mask: UInt16
    public let memory: DeviceMemory
    @usableFromInline let desc: UnsafeMutableRawPointer
    @usableFromInline let avail: UnsafeMutableRawPointer
    @usableFromInline let used: UnsafeMutableRawPointer
    /// Per descriptor id, what the driver knows about it (16 bytes: four to a cache line).
    @usableFromInline let slots: UnsafeMutablePointer<DescriptorSlot>
    /// Free descriptor ids (a stack).
    @usableFromInline let freeIds: UnsafeMutablePointer<UInt16>
    @usableFromInline var freeCount: Int
    /// Next available-ring position (the driver's copy of avail->idx).
    @usableFromInline var availIdx: UInt16
    /// Next used-ring position to consume.
    @usableFromInline var lastUsed: UInt16
    /// Chains posted and not yet returned.
    @usableFromInline var inFlightCount: Int
    @usableFromInline var faultState: VirtqueueFault
    @usableFromInline var notifyCount: UInt64
    public var inFlight: Int { inFlightCount }
    public var fault: VirtqueueFault { faultState }
    /// Kicks sent to the device.
    public var notifies: UInt64 { notifyCount }

    /// A queue over `memory` (at least `SplitRingLayout(size:).totalBytes`, zeroed). `polling`:
    /// ask the device for no calls (interrupts) on used buffers.
    public init(size: Int, memory: DeviceMemory, polling: Bool = true) {
        precondition(size > 0 && size <= 32768 && size & (size - 1) == 0, "virtqueue size must be a power of two up to 32768")
        let layout = SplitRingLayout(size: size)
        precondition(memory.size >= layout.totalBytes, "virtqueue memory too small")
        self.size = size
        mask = UInt16(size - 1)
        self.memory = memory
        desc = memory.pointer + layout.descriptorsOffset
        avail = memory.pointer + layout.availableOffset
        used = memory.pointer + layout.usedOffset
        memory.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: layout.totalBytes)
        slots = .allocate(capacity: size)
        slots.initialize(repeating: DescriptorSlot(), count: size)
        freeIds = .allocate(capacity: size)
        for i in 0..<size { freeIds[i] = UInt16(size - 1 - i) }   // id 0 on top
        freeCount = size
        availIdx = 0
        lastUsed = 0
        inFlightCount = 0
        faultState = .none
        notifyCount = 0
        if polling { avail.storeBytes(of: VirtqFlag.availNoInterrupt, as: UInt16.self) }
    }

    deinit {
        // The device was reset before this (the owner's stop): what it still held is ours again.
        releaseHeldBuffers()
        slots.deallocate()
        freeIds.deallocate()
    }

    func releaseHeldBuffers() {
        for id in 0..<size {
            if let buf = slots[id].buf {
                slots[id].buf = nil
                buf.release()
            }
        }
    }

    /// Back to the state of a new queue after the device was reset: every buffer in flight
    /// released, the rings zeroed, indices at 0, no fault. Calls stay suppressed.
    public mutating func reset() {
        releaseAllInFlight()
        memory.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: SplitRingLayout(size: size).totalBytes)
        avail.storeBytes(of: VirtqFlag.availNoInterrupt, as: UInt16.self)
        availIdx = 0
        lastUsed = 0
        faultState = .none
    }

    /// The rings' addresses, for the transport.
    public var addresses: SplitRingAddresses {
        let layout = SplitRingLayout(size: size)
        return SplitRingAddresses(
            descriptors: memory.deviceAddress + UInt64(layout.descriptorsOffset),
            available: memory.deviceAddress + UInt64(layout.availableOffset),
            used: memory.deviceAddress + UInt64(layout.usedOffset),
            descriptorsPointer: desc, availablePointer: avail, usedPointer: used)
    }

    /// Free descriptors.
    @inlinable public var freeDescriptors: Int { freeCount }
    @inlinable public var isBroken: Bool { faultState != .none }

    /// Gives back every buffer still in flight and empties the rings' private state: after the
    /// device was reset (it touches none of them any more), or when a broken queue is torn down.
    public mutating func releaseAllInFlight() {
        releaseHeldBuffers()
        for i in 0..<size { freeIds[i] = UInt16(size - 1 - i) }
        freeCount = size
        inFlightCount = 0
    }

    // MARK: Driver -> device

    @inlinable @inline(__always)
    func writeDescriptor(_ id: Int, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        let d = desc + id &* 16
        let high: UInt64 = UInt64(flags) << 32 | UInt64(next) << 48
        let word: UInt64 = UInt64(length) | high
        d.storeBytes(of: address, as: UInt64.self)
        d.storeBytes(of: word, toByteOffset: 8, as: UInt64.self)
    }

    @inlinable @inline(__always)
    mutating func popFreeId() -> Int {
        freeCount &-= 1
        return Int(freeIds[freeCount])
    }

    @inlinable @inline(__always)
    mutating func makeAvailable(_ id: Int) {
        let slot = Int(availIdx & mask)
        let entry = avail + (4 &+ slot &* 2)
        entry.storeBytes(of: UInt16(truncatingIfNeeded: id), as: UInt16.self)
        availIdx &+= 1
    }

    /// Posts `count` buffers at `buffers` for the device to write into: per buffer one descriptor
    /// over the virtio-net header (in the headroom, `headerSize` bytes) and the rest of the room,
    /// with the ring's indices kept in registers for the batch. Buffers without room for the
    /// header in front (or chained) are not posted: they are released and counted in the result's
    /// `refused`. The caller checked `freeDescriptors >= count`.
    @inlinable
    public mutating func postReceiveBatch(_ buffers: UnsafePointer<NetBuf>, count: Int, headerSize: Int) -> (posted: Int, refused: Int) {
        var free = freeCount
        var idx = availIdx
        var refused = 0
        let ids = freeIds, slots = self.slots, ring = avail + 4, m = mask
        var i = 0
        while i < count {
            let buf = buffers[i]
            i &+= 1
            let offset = buf.headroom
            guard offset >= headerSize, buf.next == nil else {
                buf.release()
                refused &+= 1
                continue
            }
            free &-= 1
            let id = Int(ids[free])
            let room = UInt32(truncatingIfNeeded: buf.capacity &- offset &+ headerSize)
            writeDescriptor(id, address: buf.deviceAddress &- UInt64(headerSize), length: room, flags: VirtqFlag.write, next: 0)
            slots[id] = DescriptorSlot(buf: buf, posted: room, chainCount: 1)
            (ring + Int(idx & m) &* 2).storeBytes(of: UInt16(truncatingIfNeeded: id), as: UInt16.self)
            idx &+= 1
        }
        let posted = count &- refused
        freeCount = free
        availIdx = idx
        inFlightCount &+= posted
        return (posted, refused)
    }

    /// Posts one packet to send as a single descriptor of `length` bytes at device address
    /// `address`: the header (already written there) and the frame behind it. The caller checked
    /// `freeDescriptors > 0`.
    @inlinable @inline(__always)
    public mutating func postTransmit(_ buf: NetBuf, address: UInt64, length: Int) {
        let id = popFreeId()
        let length = UInt32(truncatingIfNeeded: length)
        writeDescriptor(id, address: address, length: length, flags: 0, next: 0)
        slots[id] = DescriptorSlot(buf: buf, posted: length, chainCount: 1)
        makeAvailable(id)
        inFlightCount &+= 1
    }

    /// Posts one packet to send as a chain: a header from `headerTable` (one 16-byte slot per
    /// descriptor id, in device memory), then every segment. For what cannot carry its header in
    /// place: clones, read-only memory, chains, a headroom too small. The caller checked that
    /// `freeDescriptors` covers `1 + buf.segmentCount`. Returns where to write the header.
    @inlinable
    public mutating func postTransmitChain(_ buf: NetBuf, headerSize: Int, headerTable: DeviceMemory) -> UnsafeMutableRawPointer {
        let head = popFreeId()
        let header = headerTable.pointer + head &* 16
        var previous = head
        var address = headerTable.deviceAddress &+ UInt64(head &* 16)
        var length = UInt32(headerSize)
        var count: UInt16 = 1
        var seg: NetBuf? = buf
        while let s = seg {
            let id = popFreeId()
            writeDescriptor(previous, address: address, length: length, flags: VirtqFlag.next, next: UInt16(truncatingIfNeeded: id))
            slots[previous].chainNext = UInt16(truncatingIfNeeded: id)
            previous = id
            address = s.deviceAddress
            length = UInt32(truncatingIfNeeded: s.length)
            count &+= 1
            seg = s.next
        }
        writeDescriptor(previous, address: address, length: length, flags: 0, next: 0)
        slots[head].buf = buf
        slots[head].posted = UInt32(truncatingIfNeeded: buf.packetLength &+ headerSize)
        slots[head].chainCount = count
        makeAvailable(head)
        inFlightCount &+= 1
        return header
    }

    /// Makes everything posted since the last call visible to the device; returns whether the
    /// device asked to be notified (flags-based suppression: VRING_USED_F_NO_NOTIFY).
    @inlinable @inline(__always)
    public mutating func publish() -> Bool {
        uk_store_release_u16((avail + 2).assumingMemoryBound(to: UInt16.self), availIdx)
        // The index store must be visible before the device's flag is read (a store-load order).
        uk_fence_seq_cst()
        return uk_load_relaxed_u16(used.assumingMemoryBound(to: UInt16.self)) & VirtqFlag.usedNoNotify == 0
    }

    @inlinable @inline(__always)
    public mutating func countNotify() { notifyCount &+= 1 }

    /// Asks for calls (interrupts) on used buffers, or for none (polling).
    public func setCallsWanted(_ wanted: Bool) {
        uk_store_release_u16(avail.assumingMemoryBound(to: UInt16.self), wanted ? 0 : VirtqFlag.availNoInterrupt)
        uk_fence_seq_cst()
    }

    // MARK: Device -> driver (untrusted)

    /// Used entries waiting, checked: never more than the ring holds. Breaks the queue (and
    /// returns 0) when the device's index ran ahead.
    @inlinable @inline(__always)
    public mutating func usedAvailable() -> Int {
        guard faultState == .none else { return 0 }
        let usedIdx = uk_load_acquire_u16((used + 2).assumingMemoryBound(to: UInt16.self))
        let pending = Int(usedIdx &- lastUsed)
        guard pending <= inFlightCount else {
            // More returned than posted: at most `size` is the spec's bound, in-flight is ours.
            breakQueue(.usedIndexAhead)
            return 0
        }
        return pending
    }

    /// Takes the next used entry (the caller checked `usedAvailable() > 0`): the buffer that
    /// chain carried and the bytes the device wrote, both checked; nil after breaking the queue
    /// on a violation. The chain's descriptors are free again.
    @inlinable @inline(__always)
    public mutating func takeUsed() -> (buf: NetBuf, length: Int)? {
        // One 8-byte load: id and length are read exactly once, whatever the device does next.
        let position = Int(lastUsed & mask)
        let element = (used + (4 &+ position &* 8)).assumingMemoryBound(to: UInt64.self)
        let entry = uk_load_relaxed_u64(element)
        let id = Int(UInt32(truncatingIfNeeded: entry))
        let length = UInt32(truncatingIfNeeded: entry >> 32)
        guard id < size else { breakQueue(.idOutOfRange); return nil }
        let slot = slots + id
        guard let buf = slot.pointee.buf else { breakQueue(.idNotInFlight); return nil }
        guard length <= slot.pointee.posted else { breakQueue(.lengthBeyondBuffer); return nil }
        slot.pointee.buf = nil
        lastUsed &+= 1
        inFlightCount &-= 1
        // Free the chain, following the driver's own links.
        var n = Int(slot.pointee.chainCount)
        var d = id
        while true {
            freeIds[freeCount] = UInt16(truncatingIfNeeded: d)
            freeCount &+= 1
            n &-= 1
            if n == 0 { break }
            d = Int(slots[d].chainNext)
        }
        return (buf, Int(length))
    }

    @usableFromInline @inline(never)
    mutating func breakQueue(_ why: VirtqueueFault) {
        if faultState == .none { faultState = why }
    }

    /// Marks the queue broken for a reason found above the ring (e.g. a merged packet short of
    /// buffers).
    public mutating func markBroken(_ why: VirtqueueFault) { breakQueue(why) }
}

/// What the driver keeps, in its own memory, about one descriptor id.
@usableFromInline
struct DescriptorSlot {
    /// The buffer whose chain starts here (nil: not the head of a chain in flight).
    @usableFromInline var buf: NetBuf?
    /// Bytes the device may write (RX) or was given (TX), for checking used lengths.
    @usableFromInline var posted: UInt32
    /// Descriptors in the chain starting here, and the private copy of this descriptor's link.
    @usableFromInline var chainCount: UInt16
    @usableFromInline var chainNext: UInt16
    @inlinable init(buf: NetBuf? = nil, posted: UInt32 = 0, chainCount: UInt16 = 0, chainNext: UInt16 = 0) {
        self.buf = buf
        self.posted = posted
        self.chainCount = chainCount
        self.chainNext = chainNext
    }
}
