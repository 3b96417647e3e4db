import CUKAtomics

/// Shared state of a pool; lives in memory the pool allocates once. Buffers point back to it.
public struct NetBufPoolState {
    public var slab: UnsafeMutableRawPointer
    public var slabBytes: Int
    /// Bytes from one slot to the next.
    public var stride: Int
    /// Offset of the header inside a slot (the data room follows the header).
    public var headerOffset: Int
    public var count: UInt32
    /// Free slots; also the depth of `freeStack`.
    public var free: UInt32
    public var freeStack: UnsafeMutablePointer<UInt32>
    public var roomSize: UInt32
    public var headroom: UInt32
    /// Address of `slab` as a device sees it.
    public var deviceBase: UInt64
    public var threadSafe: Bool
    public var ownsSlab: Bool
    public var lock: UnsafeMutablePointer<UInt32>
    /// Buffers asked for and not delivered.
    public var allocationFailures: UInt64
    /// Most buffers ever in use at once.
    public var highWater: UInt32
    /// Releases of buffers that were already free (double releases), or that would have
    /// overfilled the free stack: caught and ignored, never written to the stack.
    public var invalidReleases: UInt64
}

/// Why a pool could not be built or torn down.
public enum NetBufPoolError: Error, Equatable {
    case invalidCount(Int)
    case invalidAlignment(Int)
    case invalidRoom(roomSize: Int, headroom: Int)
    case regionTooSmall(needed: Int, given: Int)
    case regionMisaligned(alignment: Int)
    /// `destroy()` refused: these buffers were never given back. The pool stays usable.
    case buffersInUse(Int)
}

/// A fixed set of buffers in one slab, allocated once, with a stack of free indices
/// (ixy's design): allocation and free are a pop and a push, in bulk under one lock.
///
/// `NetBufPool` is a handle (one pointer, no reference counting); the pool lives until
/// `destroy()`, which refuses while buffers are out, as DPDK's mempools do.
///
/// Why the handle stays copyable while devices are not: a pool is shared by design (every
/// buffer points back to it, RX refill, the app and TX completion all free into it, like an
/// `rte_mempool *`), and a copy can do no harm: allocation and free go through the one shared
/// state, and `destroy()` leaves that state behind as an empty tombstone, so a handle kept past
/// it gets nil and counted invalid releases, never freed memory.
@frozen
public struct NetBufPool: Equatable, @unchecked Sendable {
    public let state: UnsafeMutablePointer<NetBufPoolState>

    @inlinable @inline(__always)
    public init(state: UnsafeMutablePointer<NetBufPoolState>) { self.state = state }

    /// Whether buffers may be allocated and freed from several threads at once. One poller that
    /// owns its pool (the common case, and the only one in the unikernel) needs no lock; a pool
    /// shared by threads (a ring pair polled from two cores) asks for `.threadSafe`.
    public enum Threading { case threadSafe, singleThread }

    /// Bytes of slab needed for `count` buffers of `roomSize` bytes at `alignment`.
    public static func regionSize(count: Int, roomSize: Int, alignment: Int = 64) -> Int {
        let a = max(alignment, 64)
        return count * slotStride(roomSize: roomSize, alignment: a) + a
    }
    static func slotStride(roomSize: Int, alignment a: Int) -> Int {
        roundUp(NetBuf.headerSize, a) + roundUp(roomSize, a)
    }
    static func roundUp(_ x: Int, _ a: Int) -> Int { (x + a - 1) & ~(a - 1) }

    /// A pool of `count` buffers with `roomSize` bytes of data room each, the data starting
    /// `headroom` bytes in. Each data room starts on an `alignment` boundary (a power of two; at
    /// least 64, the header's cache line).
    public init(count: Int, roomSize: Int = 2048, headroom: Int = 128, alignment: Int = 64,
                threading: Threading = .singleThread) throws(NetBufPoolError) {
        try Self.validate(count: count, roomSize: roomSize, headroom: headroom, alignment: alignment)
        let a = max(alignment, 64)
        let bytes = count * Self.slotStride(roomSize: roomSize, alignment: a)
        let slab = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: a)
        self.init(slab: slab, bytes: bytes, ownsSlab: true, deviceBase: UInt64(UInt(bitPattern: slab)),
                  count: count, roomSize: roomSize, headroom: headroom, alignment: a, threading: threading)
    }

    /// A pool of `count` bare headers for buffers over memory another library owns (see
    /// `attach`): each slot is a header and its 64-byte attachment, no data room.
    public static func headersOnly(count: Int, threading: Threading = .singleThread) throws(NetBufPoolError) -> NetBufPool {
        try NetBufPool(count: count, roomSize: NetBuf.Attachment.size, headroom: 0, threading: threading)
    }

    /// A pool whose slab lives in memory the caller provides, such as a mapping a vhost-user
    /// backend also maps; `deviceAddress` is the address of `region`'s first byte as the device
    /// sees it. The region must outlive the pool and start on an `alignment` boundary.
    public init(count: Int, region: UnsafeMutableRawBufferPointer, deviceAddress: UInt64,
                roomSize: Int = 2048, headroom: Int = 128, alignment: Int = 64,
                threading: Threading = .singleThread) throws(NetBufPoolError) {
        try Self.validate(count: count, roomSize: roomSize, headroom: headroom, alignment: alignment)
        let a = max(alignment, 64)
        let bytes = count * Self.slotStride(roomSize: roomSize, alignment: a)
        guard let base = region.baseAddress, region.count >= bytes else {
            throw .regionTooSmall(needed: bytes, given: region.count)
        }
        guard UInt(bitPattern: base) % UInt(a) == 0 else { throw .regionMisaligned(alignment: a) }
        self.init(slab: base, bytes: bytes, ownsSlab: false, deviceBase: deviceAddress,
                  count: count, roomSize: roomSize, headroom: headroom, alignment: a, threading: threading)
    }

    static func validate(count: Int, roomSize: Int, headroom: Int, alignment: Int) throws(NetBufPoolError) {
        guard count > 0, count <= Int(UInt32.max) else { throw .invalidCount(count) }
        guard alignment > 0, alignment & (alignment - 1) == 0, alignment <= 1 << 21 else { throw .invalidAlignment(alignment) }
        guard roomSize > 0, roomSize <= Int(UInt32.max) / 2, headroom >= 0, headroom <= roomSize else {
            throw .invalidRoom(roomSize: roomSize, headroom: headroom)
        }
    }

    init(slab: UnsafeMutableRawPointer, bytes: Int, ownsSlab: Bool, deviceBase: UInt64,
         count: Int, roomSize: Int, headroom: Int, alignment a: Int, threading: Threading) {
        let stride = Self.slotStride(roomSize: roomSize, alignment: a)
        let headerOffset = roundUpHeader(a)
        let stack = UnsafeMutablePointer<UInt32>.allocate(capacity: count)
        let lock = UnsafeMutablePointer<UInt32>.allocate(capacity: 16) // own cache line
        lock.initialize(repeating: 0, count: 16)
        let state = UnsafeMutablePointer<NetBufPoolState>.allocate(capacity: 1)
        state.initialize(to: NetBufPoolState(
            slab: slab, slabBytes: bytes, stride: stride, headerOffset: headerOffset,
            count: UInt32(count), free: UInt32(count), freeStack: stack,
            roomSize: UInt32(roomSize), headroom: UInt32(headroom), deviceBase: deviceBase,
            threadSafe: threading == .threadSafe, ownsSlab: ownsSlab, lock: lock,
            allocationFailures: 0, highWater: 0, invalidReleases: 0))
        self.init(state: state)
        for i in 0..<count {
            let header = slab + i * stride + headerOffset
            let buf = NetBuf(header: header)
            buf.store(NetBuf.Field.pool, UnsafeMutableRawPointer(state))
            buf.store(NetBuf.Field.next, UnsafeMutableRawPointer?.none)
            buf.store(NetBuf.Field.room, header + NetBuf.headerSize)
            buf.store(NetBuf.Field.capacity, UInt32(roomSize))
            buf.store(NetBuf.Field.index, UInt32(i))
            Self.resetHeader(buf, headroom: UInt32(headroom))
            buf.store(NetBuf.Field.refcount, UInt32(0))   // free
            // Lowest index on top: buffers come out in address order, which the prefetcher likes.
            stack[i] = UInt32(count - 1 - i)
        }
        func roundUpHeader(_ a: Int) -> Int { Self.roundUp(NetBuf.headerSize, a) - NetBuf.headerSize }
    }

    /// Frees the slab (if the pool allocated it) and the free stack. Refuses, changing nothing,
    /// while any buffer is still out. The small state block (and its lock) stays as a tombstone
    /// of 0 buffers: any other handle to this pool then allocates nothing and frees nothing.
    /// Destroying twice is harmless.
    public func destroy() throws(NetBufPoolError) {
        lock()
        defer { unlock() }
        let s = state.pointee
        guard s.free == s.count else { throw .buffersInUse(Int(s.count - s.free)) }
        guard s.count > 0 else { return }   // already destroyed
        if s.ownsSlab { s.slab.deallocate() }
        s.freeStack.deallocate()
        state.pointee.count = 0
        state.pointee.free = 0
        state.pointee.slabBytes = 0
        state.pointee.ownsSlab = false
    }

    /// True once `destroy()` has run: the pool has no buffers and hands out none.
    @inlinable public var isDestroyed: Bool { state.pointee.count == 0 }

    // MARK: Counters

    /// Buffers in the pool.
    @inlinable public var capacity: Int { Int(state.pointee.count) }
    /// Buffers free right now.
    @inlinable public var available: Int { Int(state.pointee.free) }
    /// Buffers handed out and not yet given back.
    @inlinable public var inUse: Int { Int(state.pointee.count - state.pointee.free) }
    /// Buffers asked for and not delivered because the pool was empty.
    @inlinable public var allocationFailures: UInt64 { state.pointee.allocationFailures }
    /// Most buffers ever in use at once.
    @inlinable public var highWater: Int { Int(state.pointee.highWater) }
    /// Releases caught as invalid (a buffer released twice): each is a bug in the caller.
    @inlinable public var invalidReleases: UInt64 { state.pointee.invalidReleases }
    /// Data room per buffer, and where new buffers' data starts in it.
    @inlinable public var roomSize: Int { Int(state.pointee.roomSize) }
    @inlinable public var headroom: Int { Int(state.pointee.headroom) }

    /// The device's view of a data address inside this pool's slab.
    @inlinable @inline(__always)
    public func deviceAddress(of pointer: UnsafeRawPointer) -> UInt64 {
        state.pointee.deviceBase &+ UInt64(UInt(bitPattern: pointer - UnsafeRawPointer(state.pointee.slab)))
    }
    /// The buffer whose data room holds `deviceAddress` (for a device that reports buffers by
    /// their device address), or nil if it is outside the slab.
    @inlinable
    public func buffer(containing deviceAddress: UInt64) -> NetBuf? {
        let s = state.pointee
        guard deviceAddress >= s.deviceBase else { return nil }
        let offset = deviceAddress - s.deviceBase
        guard offset < UInt64(Int(s.count) * s.stride) else { return nil }
        let slot = Int(offset) / s.stride
        return NetBuf(header: s.slab + slot * s.stride + s.headerOffset)
    }

    // MARK: Allocation

    @inlinable @inline(__always)
    func lock() { if state.pointee.threadSafe { uk_spin_lock(state.pointee.lock) } }
    @inlinable @inline(__always)
    func unlock() { if state.pointee.threadSafe { uk_spin_unlock(state.pointee.lock) } }

    /// Puts a buffer's header back to the state of a fresh allocation: one reference, own data
    /// at the headroom, `length` bytes, one segment, no flags, checksum request or tag. Four
    /// 8-byte stores over the header's bytes 24..<56 (see `NetBuf.Field`).
    @inlinable @inline(__always)
    static func resetHeader(_ buf: NetBuf, headroom: UInt32, length: UInt32 = 0) {
        buf.store(NetBuf.Field.refcount, UInt64(1))                                     // refcount 1, kind own
        buf.store(NetBuf.Field.dataOffset, UInt64(headroom) | UInt64(length) << 32)     // dataOffset, length
        buf.store(NetBuf.Field.packetLength, UInt64(length) | UInt64(1) << 48)          // packetLength, flags 0, segments 1
        buf.store(NetBuf.Field.checksumStart, UInt64(0))                                // checksum request, userTag
    }

    @inlinable @inline(__always)
    func header(ofSlot index: UInt32) -> NetBuf {
        let s = state
        return NetBuf(header: s.pointee.slab + (Int(index) &* s.pointee.stride &+ s.pointee.headerOffset))
    }

    /// One buffer, or nil (counted in `allocationFailures`) when the pool is empty.
    @inlinable
    public func allocate() -> NetBuf? {
        lock()
        let free = state.pointee.free
        guard free > 0 else {
            state.pointee.allocationFailures &+= 1
            unlock()
            return nil
        }
        let top = free - 1
        state.pointee.free = top
        let index = state.pointee.freeStack[Int(top)]
        let used = state.pointee.count - top
        if used > state.pointee.highWater { state.pointee.highWater = used }
        unlock()
        let buf = header(ofSlot: index)
        Self.resetHeader(buf, headroom: state.pointee.headroom)
        return buf
    }

    /// Fills `buffers` from the front with as many buffers as the pool has, up to its count;
    /// returns how many. The shortfall is counted in `allocationFailures`. With `length`, each
    /// buffer comes with that many data bytes after the headroom (whatever the room holds: a
    /// generator's prefilled frames); 0 if `length` does not fit the room.
    @inlinable
    public func allocateBulk(into buffers: UnsafeMutableBufferPointer<NetBuf>, length: Int = 0) -> Int {
        guard let out = buffers.baseAddress, buffers.count > 0, length >= 0,
              length <= Int(state.pointee.roomSize) - Int(state.pointee.headroom) else { return 0 }
        lock()
        let s = state
        let free = Int(s.pointee.free)
        let n = min(free, buffers.count)
        if n < buffers.count { s.pointee.allocationFailures &+= UInt64(buffers.count - n) }
        let top = free - n
        s.pointee.free = UInt32(truncatingIfNeeded: top)
        let used = s.pointee.count &- UInt32(truncatingIfNeeded: top)
        if used > s.pointee.highWater { s.pointee.highWater = used }
        let stack = s.pointee.freeStack
        let slab = s.pointee.slab + s.pointee.headerOffset
        let stride = s.pointee.stride
        let headroom = s.pointee.headroom
        // Read the indices under the lock: once it is dropped, frees on other threads reuse
        // those stack slots. The headers are ours already, so tidying them here costs no extra
        // pass over the burst.
        var i = 0
        while i < n {
            let index = stack[free &- 1 &- i]
            let buf = NetBuf(header: slab + Int(index) &* stride)
            Self.resetHeader(buf, headroom: headroom, length: UInt32(truncatingIfNeeded: length))
            (out + i).initialize(to: buf)
            i &+= 1
        }
        unlock()
        return n
    }

    /// Returns one buffer whose last reference is gone (its header already tidied). A full
    /// stack means a buffer came back that was never out: counted, not written.
    @inlinable @inline(__always)
    func putBack(_ buf: NetBuf) {
        lock()
        let top = state.pointee.free
        if top < state.pointee.count {
            state.pointee.freeStack[Int(top)] = buf.load(NetBuf.Field.index, as: UInt32.self)
            state.pointee.free = top &+ 1
        } else {
            state.pointee.invalidReleases &+= 1
        }
        unlock()
    }

    /// Counts a release of a buffer that was already free (out of line: it is the cold path).
    @usableFromInline @inline(never)
    func countInvalidRelease() {
        lock()
        state.pointee.invalidReleases &+= 1
        unlock()
    }

    /// A buffer over `capacity` bytes at `room` that another library owns (a DPDK mbuf's data
    /// room, an lwIP pbuf's payload): no copy. Its data starts `dataOffset` bytes in and is
    /// `length` long; `deviceAddress` is `room`'s address as a device sees it. On the buffer's
    /// last release, `release.function(release.context, token)` gives the memory back, then the
    /// header returns to this pool (a `headersOnly` pool is made for this, but any pool serves).
    /// Read-only memory (`writable: false`) refuses every in-place write (`NetBufError.readOnlyExternal`).
    /// Throws, attaching nothing, when the pool is empty or the geometry does not fit; the memory
    /// then stays the caller's.
    @inlinable
    public func attach(room: UnsafeMutableRawPointer, capacity: Int, dataOffset: Int = 0, length: Int,
                       deviceAddress: UInt64, writable: Bool = true, release: ExternalRelease,
                       token: UnsafeMutableRawPointer?) throws(NetBufError) -> NetBuf {
        guard capacity >= 0, capacity <= Int(UInt32.max), dataOffset >= 0, length >= 0,
              dataOffset <= capacity, length <= capacity - dataOffset else {
            throw .invalidAttachment(capacity: capacity, dataOffset: dataOffset, length: length)
        }
        guard let buf = allocate() else { throw .poolEmpty }
        let a = buf.attachment
        a.storeBytes(of: release.function, toByteOffset: NetBuf.Attachment.function, as: ExternalRelease.Function.self)
        a.storeBytes(of: release.context, toByteOffset: NetBuf.Attachment.context, as: UnsafeMutableRawPointer?.self)
        a.storeBytes(of: token, toByteOffset: NetBuf.Attachment.token, as: UnsafeMutableRawPointer?.self)
        a.storeBytes(of: deviceAddress, toByteOffset: NetBuf.Attachment.deviceBase, as: UInt64.self)
        buf.store(NetBuf.Field.room, room)
        buf.store(NetBuf.Field.capacity, UInt32(capacity))
        buf.store(NetBuf.Field.kind, writable ? NetBuf.Kind.external : NetBuf.Kind.externalReadOnly)
        buf.store(NetBuf.Field.dataOffset, UInt32(dataOffset))
        buf.setLengths(segment: length, packet: length)
        return buf
    }

    /// The pool as an RX-refill allocator (Unikraft's `alloc_rxpkts`).
    @inlinable
    public var rxAllocator: RxBufferAllocator {
        RxBufferAllocator(context: UnsafeMutableRawPointer(state)) { context, out, count in
            let pool = NetBufPool(state: context!.assumingMemoryBound(to: NetBufPoolState.self))
            return pool.allocateBulk(into: UnsafeMutableBufferPointer(start: out.assumingMemoryBound(to: NetBuf.self), count: count))
        }
    }
}

extension NetBuf {
    /// Drops one reference from each packet (bulk TX free). Runs of single-segment, sole-owner
    /// buffers from the same pool go back under one lock; anything else takes `release()`.
    @inlinable
    public static func releaseBulk(_ buffers: UnsafeMutableBufferPointer<NetBuf>) {
        guard let base = buffers.baseAddress else { return }
        let n = buffers.count
        var i = 0
        while i < n {
            let first = base[i]
            guard first.isPlain else {
                releaseOutOfLine(first)
                i &+= 1
                continue
            }
            let poolState = first.load(Field.pool, as: UnsafeMutableRawPointer.self)
            let pool = NetBufPool(state: poolState.assumingMemoryBound(to: NetBufPoolState.self))
            pool.lock()
            let stack = pool.state.pointee.freeStack
            var top = Int(pool.state.pointee.free)
            let room = Int(pool.state.pointee.count) &- top
            guard room > 0 else {   // a buffer that was never out: counted, never written
                pool.unlock()
                pool.countInvalidRelease()
                i &+= 1
                continue
            }
            // The stack bound folded into the loop's end: no extra compare per buffer.
            let end = i &+ Swift.min(n &- i, room)
            repeat {
                let buf = base[i]
                #if DEBUG
                // Debug builds (and every test) poison on the bulk path too, so a second release
                // is caught; release builds skip this store (1 instruction per packet) and rely
                // on the stack bound alone, as DPDK does outside its mbuf debug mode.
                buf.store(Field.refcount, UInt32(0))
                #endif
                stack[top] = buf.load(Field.index, as: UInt32.self)
                top &+= 1
                i &+= 1
            } while i < end && base[i].isPlain && base[i].load(Field.pool, as: UnsafeMutableRawPointer.self) == poolState
            pool.state.pointee.free = UInt32(truncatingIfNeeded: top)
            pool.unlock()
        }
    }

    /// A chain, a shared, clone or external buffer, or a bad release: the rare case, kept out of
    /// `releaseBulk` so that stays small enough to be inlined into every TX path.
    @usableFromInline @inline(never)
    static func releaseOutOfLine(_ buf: NetBuf) { buf.release() }

    /// One segment, one reference, own data: can go straight back to its pool.
    @inlinable var isPlain: Bool {
        @inline(__always) get {
            // refcount == 1 and kind == own, in one load (x86: an aligned 8-byte load is atomic).
            load(Field.next, as: UnsafeMutableRawPointer?.self) == nil
                && uk_load_relaxed_u64((header + Field.refcount).assumingMemoryBound(to: UInt64.self)) == 1
        }
    }
}

/// Where a device's RX queue gets empty buffers to refill its ring: Unikraft's `alloc_rxpkts`, a
/// C function pointer and a context, so it costs no reference counting and works in a kernel.
/// The function fills up to `count` buffers at `out` and returns how many it filled.
public struct RxBufferAllocator {
    public typealias Function = @convention(c) (_ context: UnsafeMutableRawPointer?, _ out: UnsafeMutableRawPointer, _ count: Int) -> Int
    public let context: UnsafeMutableRawPointer?
    public let function: Function

    @inlinable
    public init(context: UnsafeMutableRawPointer?, function: Function) {
        self.context = context
        self.function = function
    }

    @inlinable @inline(__always)
    public func allocate(into buffers: UnsafeMutableBufferPointer<NetBuf>) -> Int {
        guard let base = buffers.baseAddress, buffers.count > 0 else { return 0 }
        return function(context, UnsafeMutableRawPointer(base), buffers.count)
    }
}
