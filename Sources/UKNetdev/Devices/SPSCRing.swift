import CUKAtomics

/// A lock-free single-producer single-consumer ring of buffer handles, safe across two threads.
///
/// Free-running 32-bit indices; the producer's and the consumer's lines are 64 bytes apart so
/// they do not false-share, and each side caches the other's index and only reloads it when the
/// cached value says the ring looks full (or empty), as in Lamport's ring with FastForward's
/// caching. One release store publishes a whole burst.
///
/// Layout of the control block (3 cache lines, 192 bytes):
///   line 0 (producer): head (0), cached tail (4), depth limit (8), notifier present (12)
///   line 1 (consumer): tail (64), cached head (68)
///   line 2 (shared):   RX event armed (128), notifier slot (136: pointer to the consumer's
///                      `RxNotifier?`, allocated with the ring)
@frozen
public struct SPSCRing: Equatable {
    public let control: UnsafeMutableRawPointer
    public let slots: UnsafeMutablePointer<NetBuf>
    public let mask: UInt32

    @inlinable static var head: Int { 0 }
    @inlinable static var cachedTail: Int { 4 }
    @inlinable static var depth: Int { 8 }
    @inlinable static var hasNotifier: Int { 12 }
    @inlinable static var tail: Int { 64 }
    @inlinable static var cachedHead: Int { 68 }
    @inlinable static var armed: Int { 128 }
    @inlinable static var notifierSlot: Int { 136 }
    static let controlBytes = 192

    /// A ring of `capacity` slots (a power of two).
    init(capacity: Int) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0 && capacity <= 1 << 30)
        control = .allocate(byteCount: Self.controlBytes, alignment: 64)
        control.initializeMemory(as: UInt8.self, repeating: 0, count: Self.controlBytes)
        control.storeBytes(of: UInt32(capacity), toByteOffset: Self.depth, as: UInt32.self)
        let notifier = UnsafeMutablePointer<RxNotifier?>.allocate(capacity: 1)
        notifier.initialize(to: nil)
        control.storeBytes(of: UnsafeMutableRawPointer(notifier), toByteOffset: Self.notifierSlot, as: UnsafeMutableRawPointer.self)
        slots = .allocate(capacity: capacity)
        mask = UInt32(capacity - 1)
    }

    /// Frees the ring; buffers still in it are released first, so nothing leaks.
    func destroy() {
        while let b = dequeueOne() { b.release() }
        notifierPointer.deinitialize(count: 1)
        notifierPointer.deallocate()
        slots.deallocate()
        control.deallocate()
    }

    @inlinable @inline(__always)
    func word(_ offset: Int) -> UnsafeMutablePointer<UInt32> {
        (control + offset).assumingMemoryBound(to: UInt32.self)
    }
    var notifierPointer: UnsafeMutablePointer<RxNotifier?> {
        control.load(fromByteOffset: Self.notifierSlot, as: UnsafeMutableRawPointer.self).assumingMemoryBound(to: RxNotifier?.self)
    }

    @inlinable public var capacity: Int { Int(mask) &+ 1 }
    /// Packets in the ring right now (approximate while the other side runs).
    public var count: Int { Int(uk_load_acquire_u32(word(Self.head)) &- uk_load_acquire_u32(word(Self.tail))) }

    /// Limits how many slots the producer uses (a TX queue's descriptor count).
    func setDepth(_ depth: Int) { uk_store_release_u32(word(Self.depth), UInt32(depth)) }

    /// Consumer side: set (or clear) who to signal when the producer adds packets while armed.
    func setNotifier(_ n: RxNotifier?) {
        notifierPointer.pointee = n
        uk_store_release_u32(word(Self.hasNotifier), n == nil ? 0 : 1)
    }

    /// Consumer side: arm or disarm the RX event. Arming is ordered before any later check of
    /// the ring by a full fence, so the producer either sees the flag or the consumer sees the
    /// packets (virtio's event suppression protocol).
    func setArmed(_ armed: Bool) {
        uk_store_relaxed_u32(word(Self.armed), armed ? 1 : 0)
        uk_fence_seq_cst()
    }

    // MARK: Producer

    /// Moves up to `count` handles from `source` into the ring; returns how many, their bytes
    /// (read before publishing: afterwards the consumer may already have freed them), and whether
    /// room is left after them.
    @inlinable @inline(__always)
    public func enqueue(from source: UnsafePointer<NetBuf>, count: Int) -> (moved: Int, bytes: Int, roomLeft: Bool) {
        let headPtr = word(Self.head)
        let head = uk_load_relaxed_u32(headPtr)
        let depth = uk_load_relaxed_u32(word(Self.depth))
        var tail = word(Self.cachedTail).pointee
        var free = depth &- (head &- tail)
        if free < UInt32(truncatingIfNeeded: count) {
            tail = uk_load_acquire_u32(word(Self.tail))
            word(Self.cachedTail).pointee = tail
            free = depth &- (head &- tail)
        }
        let n = min(Int(free), count)
        let bytes = NetBuf.totalLength(source, count: n)
        copyIn(from: source, at: head, count: n)
        uk_store_release_u32(headPtr, head &+ UInt32(truncatingIfNeeded: n))
        if n > 0 && uk_load_relaxed_u32(word(Self.hasNotifier)) != 0 { signalIfArmed() }
        return (n, bytes, Int(free) > n)
    }

    @usableFromInline
    func signalIfArmed() {
        // The head store must be visible before the flag is read (store->load needs mfence on x86).
        uk_fence_seq_cst()
        let armed = word(Self.armed)
        if uk_load_relaxed_u32(armed) != 0 {
            uk_store_relaxed_u32(armed, 0)
            notifierPointer.pointee?.signal()
        }
    }

    // MARK: Consumer

    /// Moves up to `count` handles out of the ring into `destination`; returns how many, and
    /// whether more are waiting.
    @inlinable @inline(__always)
    public func dequeue(into destination: UnsafeMutablePointer<NetBuf>, count: Int) -> (moved: Int, more: Bool) {
        let tailPtr = word(Self.tail)
        let tail = uk_load_relaxed_u32(tailPtr)
        var head = word(Self.cachedHead).pointee
        var available = head &- tail
        if available < UInt32(truncatingIfNeeded: count) {
            head = uk_load_acquire_u32(word(Self.head))
            word(Self.cachedHead).pointee = head
            available = head &- tail
        }
        let n = min(Int(available), count)
        copyOut(into: destination, at: tail, count: n)
        uk_store_release_u32(tailPtr, tail &+ UInt32(truncatingIfNeeded: n))
        return (n, Int(available) > n)
    }

    /// Copies handles into the slots from index `at` on; a burst that does not wrap (the usual
    /// case) is one straight copy without per-element masking, as in DPDK's rte_ring.
    @inlinable @inline(__always)
    func copyIn(from source: UnsafePointer<NetBuf>, at index: UInt32, count n: Int) {
        let start = Int(index & mask)
        let first = min(n, capacity &- start)
        (slots + start).update(from: source, count: first)
        if first < n { slots.update(from: source + first, count: n &- first) }
    }

    @inlinable @inline(__always)
    func copyOut(into destination: UnsafeMutablePointer<NetBuf>, at index: UInt32, count n: Int) {
        let start = Int(index & mask)
        let first = min(n, capacity &- start)
        destination.update(from: slots + start, count: first)
        if first < n { (destination + first).update(from: slots, count: n &- first) }
    }

    func dequeueOne() -> NetBuf? {
        let tmp = UnsafeMutablePointer<NetBuf>.allocate(capacity: 1)
        defer { tmp.deallocate() }
        return dequeue(into: tmp, count: 1).moved == 1 ? tmp.pointee : nil
    }
}
