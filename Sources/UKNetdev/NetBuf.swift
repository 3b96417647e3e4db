import CUKAtomics

/// A packet buffer: a pointer-sized handle to a 64-byte header that sits in a pool's slab
/// directly in front of the buffer's data room (as in ixy and DPDK). Copying a `NetBuf` copies
/// the handle, not the packet, and costs no reference counting: ownership is explicit, as in C.
///
/// Layout of one slab slot: `[pad][header: 64 B][data room: headroom | data | tailroom]`.
/// `data` starts `headroom` bytes into the room, so protocol headers can be prepended in place.
///
/// Ownership rule (Unikraft's): whoever holds a buffer must eventually hand it to exactly one of
/// `release()`, a device's `txBurst` (which then owns it), or `NetBuf.releaseBulk`.
@frozen
public struct NetBuf: Equatable, Hashable, @unchecked Sendable {
    /// Address of the 64-byte header.
    public let header: UnsafeMutableRawPointer

    @inlinable @inline(__always)
    public init(header: UnsafeMutableRawPointer) { self.header = header }

    // MARK: Header layout (byte offsets); one cache line.
    // refcount and kind sit together so "sole owner, own data" is one 64-bit compare on free;
    // everything an allocation resets (refcount to flags, checksum request, tag) is 32 contiguous
    // bytes from offset 24, written as four 8-byte stores.
    @usableFromInline enum Field {
        @inlinable static var pool: Int { 0 }           // UnsafeMutableRawPointer: NetBufPool state
        @inlinable static var next: Int { 8 }           // UnsafeMutableRawPointer?: next segment's header
        @inlinable static var room: Int { 16 }          // UnsafeMutableRawPointer: data room (a clone's points into its origin's)
        @inlinable static var refcount: Int { 24 }      // UInt32: atomic when above 1; 0 while free (a release then is caught)
        @inlinable static var kind: Int { 28 }          // UInt32: Kind
        @inlinable static var dataOffset: Int { 32 }    // UInt32: start of data within the room
        @inlinable static var length: Int { 36 }        // UInt32: data bytes in this segment
        @inlinable static var packetLength: Int { 40 }  // UInt32: bytes in the whole chain (head segment)
        @inlinable static var flags: Int { 44 }         // UInt16: OffloadFlags
        @inlinable static var segments: Int { 46 }      // UInt16: segments in the chain (head segment)
        @inlinable static var checksumStart: Int { 48 } // UInt16: where a requested checksum's coverage starts
        @inlinable static var checksumOffset: Int { 50 } // UInt16: where, from checksumStart, the checksum goes
        @inlinable static var userTag: Int { 52 }       // UInt32: free for the app
        @inlinable static var index: Int { 56 }         // UInt32: slot index in the pool
        @inlinable static var capacity: Int { 60 }      // UInt32: size of the data room
    }
    /// Where a segment's data room lives and who frees it.
    @usableFromInline enum Kind {
        /// The room behind the header, in the pool's slab.
        @inlinable static var own: UInt32 { 0 }
        /// A read-only view of another buffer's room; the origin's header is kept in the clone's
        /// own (unused) room, so a clone can point into any kind of room.
        @inlinable static var clone: UInt32 { 1 }
        /// Memory another library owns (a DPDK mbuf, an lwIP pbuf), writable; the attachment
        /// behind the header says how to give it back.
        @inlinable static var external: UInt32 { 2 }
        /// The same, read-only (e.g. a pbuf over constant data).
        @inlinable static var externalReadOnly: UInt32 { 3 }
    }
    /// Bytes of metadata in front of every data room.
    @inlinable public static var headerSize: Int { 64 }

    @inlinable @inline(__always)
    func load<T>(_ offset: Int, as type: T.Type) -> T { header.load(fromByteOffset: offset, as: T.self) }
    @inlinable @inline(__always)
    func store<T>(_ offset: Int, _ value: T) { header.storeBytes(of: value, toByteOffset: offset, as: T.self) }

    // MARK: Geometry

    /// The pool this buffer's header came from.
    @inlinable public var pool: NetBufPool {
        @inline(__always) get { NetBufPool(state: load(Field.pool, as: UnsafeMutableRawPointer.self).assumingMemoryBound(to: NetBufPoolState.self)) }
    }
    @inlinable var room: UnsafeMutableRawPointer {
        @inline(__always) get { load(Field.room, as: UnsafeMutableRawPointer.self) }
    }
    @inlinable var dataOffset: Int {
        @inline(__always) get { Int(load(Field.dataOffset, as: UInt32.self)) }
    }
    /// First byte of this segment's data.
    @inlinable public var data: UnsafeMutableRawPointer {
        @inline(__always) get { room + dataOffset }
    }
    /// Bytes of data in this segment.
    @inlinable public var length: Int {
        @inline(__always) get { Int(load(Field.length, as: UInt32.self)) }
    }
    /// Bytes of data in the whole chain; meaningful on the head segment.
    @inlinable public var packetLength: Int {
        @inline(__always) get { Int(load(Field.packetLength, as: UInt32.self)) }
    }
    /// Sum of the `packetLength`s of `count` packets at `p`: a burst's bytes, for the stats.
    @inlinable @inline(__always)
    public static func totalLength(_ p: UnsafePointer<NetBuf>, count: Int) -> Int {
        var bytes = 0
        var i = 0
        while i < count {
            bytes &+= p[i].packetLength
            i &+= 1
        }
        return bytes
    }
    /// Size of the data room (headroom + data + tailroom).
    @inlinable public var capacity: Int {
        @inline(__always) get { Int(load(Field.capacity, as: UInt32.self)) }
    }
    /// Free bytes in front of the data.
    @inlinable public var headroom: Int { @inline(__always) get { dataOffset } }
    /// Free bytes after the data.
    @inlinable public var tailroom: Int { @inline(__always) get { capacity - dataOffset - length } }
    /// Slot index within the pool.
    @inlinable public var index: Int { @inline(__always) get { Int(load(Field.index, as: UInt32.self)) } }
    /// Segments in the chain; meaningful on the head segment.
    @inlinable public var segmentCount: Int { Int(load(Field.segments, as: UInt16.self)) }
    /// Current reference count of this segment.
    @inlinable public var refcount: Int { Int(uk_load_relaxed_u32(refcountPointer)) }
    @inlinable var refcountPointer: UnsafeMutablePointer<UInt32> {
        @inline(__always) get { (header + Field.refcount).assumingMemoryBound(to: UInt32.self) }
    }
    @inlinable var kind: UInt32 { @inline(__always) get { load(Field.kind, as: UInt32.self) } }
    /// True when this buffer is a clone that reads another buffer's data room.
    @inlinable public var isClone: Bool { @inline(__always) get { kind == Kind.clone } }
    /// True when this buffer's data room is memory another library owns (see `NetBufPool.attach`).
    @inlinable public var isExternal: Bool { @inline(__always) get { kind >= Kind.external } }
    /// True when the holder may write this segment's data in place (replies written over their
    /// request, a device's header written into the headroom): the data room may be written (own or
    /// writable external memory, not a clone's view of another buffer's room) and nobody else holds
    /// a reference (a clone of it, a tracer, a second queue). Writers that find it false build
    /// their output in a fresh buffer.
    @inlinable public var isWritable: Bool {
        @inline(__always) get {
            let word = uk_load_relaxed_u64((header + Field.refcount).assumingMemoryBound(to: UInt64.self))
            return word == 1 || word == UInt64(Kind.external) << 32 | 1   // refcount 1, kind own or external
        }
    }
    /// Asks the CPU to bring the first `bytes` of data (from `headroomBytes` before it) into this
    /// core's cache, for writing: a frame another core just wrote (a vhost-user backend's copy)
    /// costs one cross-core transfer per line, hidden when asked for a few frames ahead of use,
    /// and taken exclusive at once when the reply is written over it. A hint: no fault, no effect
    /// on what is read.
    @inlinable @inline(__always)
    public func prefetchForWriting(headroomBytes: Int = 0, bytes: Int) {
        let start = Int(bitPattern: data)
        var line = (start &- headroomBytes) & ~63   // every line the range touches
        let end = start &+ bytes
        while line < end {
            uk_prefetch_write(UnsafeRawPointer(bitPattern: line))
            line &+= 64
        }
    }
    /// True when the data room may be written at all (own or writable external memory),
    /// whoever else holds a reference: what `prepend`, `append` and byte-level faults check.
    @inlinable public var hasWritableRoom: Bool { @inline(__always) get { kind & 1 == 0 } }
    /// Writable kinds (own, external) are even, read-only ones (clone, external read-only) odd.
    @inlinable @inline(__always)
    func requireWritableRoom() throws(NetBufError) {
        let k = kind
        guard k & 1 == 0 else { throw k == Kind.clone ? .readOnlyClone : .readOnlyExternal }
    }

    /// What follows the header in its slot. For an own buffer it is the data room; for a clone it
    /// holds the origin's header (the clone's own room is unused); for an external buffer it holds
    /// the `Attachment`. Header-only pools give each header just this much.
    @inlinable var attachment: UnsafeMutableRawPointer { @inline(__always) get { header + NetBuf.headerSize } }
    /// Layout of an external buffer's attachment (byte offsets).
    @usableFromInline enum Attachment {
        @inlinable static var function: Int { 0 }      // ExternalRelease.Function
        @inlinable static var context: Int { 8 }       // UnsafeMutableRawPointer?
        @inlinable static var token: Int { 16 }        // UnsafeMutableRawPointer?: the foreign object (mbuf, pbuf)
        @inlinable static var deviceBase: Int { 24 }   // UInt64: device address of the room's first byte
        @inlinable static var origin: Int { 0 }        // a clone's: UnsafeMutableRawPointer, its origin's header
        /// Bytes the attachment needs behind the header.
        @inlinable static var size: Int { 64 }
    }

    /// The buffer that owns the data room a clone points into (self when not a clone).
    @inlinable var roomOwner: NetBuf {
        @inline(__always) get {
            isClone ? NetBuf(header: attachment.load(fromByteOffset: Attachment.origin, as: UnsafeMutableRawPointer.self)) : self
        }
    }
    /// For an external buffer: the foreign object given to `NetBufPool.attach` (e.g. an mbuf).
    @inlinable public var externalToken: UnsafeMutableRawPointer? {
        isExternal ? attachment.load(fromByteOffset: Attachment.token, as: UnsafeMutableRawPointer?.self) : nil
    }

    /// Address of the first data byte as a device sees it (a guest-physical or IOVA address when the
    /// pool was built over shared memory, or what `attach` was told for external memory; the
    /// virtual address otherwise).
    @inlinable public var deviceAddress: UInt64 {
        let owner = roomOwner
        if owner.isExternal {
            let base = owner.attachment.load(fromByteOffset: Attachment.deviceBase, as: UInt64.self)
            return base &+ UInt64(UInt(bitPattern: data - owner.room))
        }
        return owner.pool.deviceAddress(of: data)
    }

    /// Offload requests and results.
    @inlinable public var flags: OffloadFlags {
        @inline(__always) get { OffloadFlags(rawValue: load(Field.flags, as: UInt16.self)) }
        @inline(__always) nonmutating set { store(Field.flags, newValue.rawValue) }
    }
    /// Checksum offload request: coverage starts at `start` bytes into the data and the result is
    /// stored at `start + offset` (virtio-net's csum_start/csum_offset).
    @inlinable public var checksumRequest: (start: Int, offset: Int) {
        get { (Int(load(Field.checksumStart, as: UInt16.self)), Int(load(Field.checksumOffset, as: UInt16.self))) }
        nonmutating set {
            store(Field.checksumStart, UInt16(truncatingIfNeeded: newValue.start))
            store(Field.checksumOffset, UInt16(truncatingIfNeeded: newValue.offset))
        }
    }
    /// A 32-bit tag free for the application (e.g. a sequence number or flow id).
    @inlinable public var userTag: UInt32 {
        get { load(Field.userTag, as: UInt32.self) }
        nonmutating set { store(Field.userTag, newValue) }
    }

    // MARK: Chains

    /// The next segment of a chain.
    @inlinable public var next: NetBuf? {
        @inline(__always) get { load(Field.next, as: UnsafeMutableRawPointer?.self).map(NetBuf.init(header:)) }
    }
    @inlinable @inline(__always) func setNext(_ buf: NetBuf?) { store(Field.next, buf?.header) }
    @inlinable @inline(__always) func setLengths(segment: Int, packet: Int) {
        store(Field.length, UInt32(truncatingIfNeeded: segment))
        store(Field.packetLength, UInt32(truncatingIfNeeded: packet))
    }

    /// Appends `tail` (a single buffer or a whole chain) behind the last segment of this chain.
    /// Fails when the chain would exceed 65535 segments or 4 GiB.
    @inlinable
    public func chain(_ tail: NetBuf) throws(NetBufError) {
        guard tail != self else { throw .chainLoop }
        var last = self
        while let n = last.next {
            guard n != tail else { throw .chainLoop }
            last = n
        }
        let segments = segmentCount + tail.segmentCount
        let total = packetLength + tail.packetLength
        guard segments <= Int(UInt16.max), total <= Int(UInt32.max) else { throw .chainTooLong }
        last.setNext(tail)
        store(Field.segments, UInt16(segments))
        store(Field.packetLength, UInt32(total))
    }

    /// Detaches and returns everything after the head segment (as a chain of its own), or nil.
    @inlinable
    public func unchain() -> NetBuf? {
        guard let rest = next else { return nil }
        rest.store(Field.segments, UInt16(segmentCount - 1))
        rest.store(Field.packetLength, UInt32(packetLength - length))
        setNext(nil)
        store(Field.segments, UInt16(1))
        store(Field.packetLength, UInt32(length))
        return rest
    }

    // MARK: Headroom and tailroom (this segment; the head's packetLength follows)

    /// Grows the data `count` bytes to the front, into the headroom; returns the new first byte.
    @inlinable @inline(__always)
    @discardableResult
    public func prepend(_ count: Int) throws(NetBufError) -> UnsafeMutableRawPointer {
        let offset = dataOffset
        guard count >= 0, count <= offset else { throw .noHeadroom(requested: count, available: offset) }
        try requireWritableRoom()
        store(Field.dataOffset, UInt32(truncatingIfNeeded: offset - count))
        setLengths(segment: length + count, packet: packetLength + count)
        return room + (offset - count)
    }

    /// Removes `count` bytes from the front of the data (e.g. a parsed header).
    @inlinable @inline(__always)
    public func strip(_ count: Int) throws(NetBufError) {
        let len = length
        guard count >= 0, count <= len else { throw .beyondData(requested: count, available: len) }
        store(Field.dataOffset, UInt32(truncatingIfNeeded: dataOffset + count))
        setLengths(segment: len - count, packet: packetLength - count)
    }

    /// Grows the data `count` bytes at the end, into the tailroom; returns the first new byte.
    @inlinable @inline(__always)
    @discardableResult
    public func append(_ count: Int) throws(NetBufError) -> UnsafeMutableRawPointer {
        let room = tailroom
        guard count >= 0, count <= room else { throw .noTailroom(requested: count, available: room) }
        try requireWritableRoom()
        let len = length
        setLengths(segment: len + count, packet: packetLength + count)
        return data + len
    }

    /// Removes `count` bytes from the end of this segment's data.
    @inlinable @inline(__always)
    public func trim(_ count: Int) throws(NetBufError) {
        let len = length
        guard count >= 0, count <= len else { throw .beyondData(requested: count, available: len) }
        setLengths(segment: len - count, packet: packetLength - count)
    }

    /// Sets this single-segment buffer's data length (keeping the data offset).
    @inlinable @inline(__always)
    public func setLength(_ newLength: Int) throws(NetBufError) {
        let limit = capacity - dataOffset
        guard newLength >= 0, newLength <= limit else { throw .noTailroom(requested: newLength - length, available: limit - length) }
        guard next == nil else { throw .chained }
        setLengths(segment: newLength, packet: newLength)
    }

    /// Moves the start of the data to `headroom` bytes into the room and empties it.
    @inlinable
    public func reset(headroom: Int) throws(NetBufError) {
        guard headroom >= 0, headroom <= capacity else { throw .noHeadroom(requested: headroom, available: capacity) }
        try requireWritableRoom()
        store(Field.dataOffset, UInt32(headroom))
        setLengths(segment: 0, packet: 0)
    }

    // MARK: Bounds-checked access

    /// This segment's data as a bounds-checked read-only span.
    @inlinable
    public func withBytes<R, E: Error>(_ body: (RawSpan) throws(E) -> R) throws(E) -> R {
        try body(RawSpan(_unsafeStart: UnsafeRawPointer(data), byteCount: length))
    }
    /// This segment's data as a bounds-checked mutable span. Fails on a clone, whose data is shared.
    @inlinable
    public func withMutableBytes<R>(_ body: (inout MutableRawSpan) -> R) throws(NetBufError) -> R {
        try requireWritableRoom()
        var span = MutableRawSpan(_unsafeStart: data, byteCount: length)
        return body(&span)
    }
    /// This segment's data as an unsafe buffer pointer, valid while the buffer is held. For hot
    /// paths and wire views; prefer `withBytes` elsewhere.
    @inlinable public var unsafeBytes: UnsafeMutableRawBufferPointer {
        @inline(__always) get { UnsafeMutableRawBufferPointer(start: data, count: length) }
    }

    /// Sets the length of a fresh single-segment buffer without checks: the caller knows the
    /// room holds `length` bytes after the headroom (checked once, e.g. against the pool's room
    /// size). For per-packet loops that fill whole bursts; prefer `setLength` elsewhere.
    @inlinable @inline(__always)
    public func unsafeSetLength(_ length: Int) {
        setLengths(segment: length, packet: length)
    }

    /// Replaces this single segment's data by `bytes` (headroom kept); fails if they do not fit.
    @inlinable
    public func copyIn(_ bytes: UnsafeRawBufferPointer) throws(NetBufError) {
        try setLength(bytes.count)
        if let base = bytes.baseAddress { data.copyMemory(from: base, byteCount: bytes.count) }
    }

    /// Copies the whole chain's data, in order, into `destination`; returns the bytes copied
    /// (at most `destination.count`).
    @inlinable
    public func copyOut(into destination: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = destination.baseAddress else { return 0 }
        var copied = 0
        var seg: NetBuf? = self
        while let s = seg, copied < destination.count {
            let n = min(s.length, destination.count - copied)
            (base + copied).copyMemory(from: s.data, byteCount: n)
            copied += n
            seg = s.next
        }
        return copied
    }

    // MARK: Reference counting (of the segments, not of the handle)

    /// Adds one reference to every segment of the chain.
    @inlinable
    public func retain() {
        var seg: NetBuf? = self
        while let s = seg {
            _ = uk_add_fetch_u32(s.refcountPointer, 1)
            seg = s.next
        }
    }

    /// Drops one reference from every segment of the chain; segments that reach zero go back to
    /// their pools (and a clone's reference to its origin is dropped with it).
    @inlinable
    public func release() {
        var seg: NetBuf? = self
        while let s = seg {
            seg = s.next
            s.releaseSegment()
        }
    }

    /// Drops one reference from this segment alone; returns true if it went back to its pool.
    /// A segment already free (refcount 0: a double release) is counted in its pool's
    /// `invalidReleases` and left alone, so the free stack never holds it twice.
    @inlinable @inline(__always)
    @discardableResult
    func releaseSegment() -> Bool {
        let rc = refcountPointer
        let count = uk_load_relaxed_u32(rc)
        // Sole owner: no atomic read-modify-write needed (DPDK's rte_pktmbuf_prefree_seg).
        if count != 1 {
            guard count != 0 else {
                pool.countInvalidRelease()
                return false
            }
            if uk_sub_fetch_u32(rc, 1) != 0 { return false }
        }
        uk_store_relaxed_u32(rc, 0)   // free: a second release is caught above
        let k = kind
        if k != Kind.own {
            let origin = roomOwner
            if k >= Kind.external {
                let a = attachment
                let function = a.load(fromByteOffset: Attachment.function, as: ExternalRelease.Function.self)
                function(a.load(fromByteOffset: Attachment.context, as: UnsafeMutableRawPointer?.self),
                         a.load(fromByteOffset: Attachment.token, as: UnsafeMutableRawPointer?.self))
            }
            store(Field.room, attachment)
            store(Field.capacity, pool.state.pointee.roomSize)
            store(Field.kind, Kind.own)
            if k == Kind.clone { origin.releaseSegment() }
        }
        setNext(nil)
        pool.putBack(self)
        return true
    }

    /// A new chain whose segments share this chain's data (no copy): headers come from `pool`,
    /// each data room gains a reference and is read-only through the clone. Returns nil, leaving
    /// nothing allocated, when `pool` runs out.
    @inlinable
    public func clone(using pool: NetBufPool) -> NetBuf? {
        var head: NetBuf? = nil
        var last: NetBuf? = nil
        var seg: NetBuf? = self
        while let s = seg {
            guard let c = pool.allocate() else {
                head?.release()
                return nil
            }
            let origin = s.roomOwner
            _ = uk_add_fetch_u32(origin.refcountPointer, 1)
            c.store(Field.kind, Kind.clone)
            c.attachment.storeBytes(of: origin.header, toByteOffset: Attachment.origin, as: UnsafeMutableRawPointer.self)
            c.store(Field.room, origin.room)
            c.store(Field.capacity, UInt32(origin.capacity))
            c.store(Field.dataOffset, UInt32(s.dataOffset))
            c.setLengths(segment: s.length, packet: s.length)
            c.store(Field.flags, s.flags.rawValue)
            c.store(Field.checksumStart, s.load(Field.checksumStart, as: UInt16.self))
            c.store(Field.checksumOffset, s.load(Field.checksumOffset, as: UInt16.self))
            c.store(Field.userTag, s.userTag)
            if let l = last {
                l.setNext(c)
            } else {
                head = c
            }
            last = c
            seg = s.next
        }
        if let h = head {
            h.store(Field.segments, UInt16(segmentCount))
            h.store(Field.packetLength, UInt32(packetLength))
        }
        return head
    }
}

/// Why a buffer operation was refused. Nothing is changed when one is thrown.
public enum NetBufError: Error, Equatable {
    case noHeadroom(requested: Int, available: Int)
    case noTailroom(requested: Int, available: Int)
    case beyondData(requested: Int, available: Int)
    /// A clone's data room belongs to another buffer and may not be written through the clone.
    case readOnlyClone
    /// The buffer's data is foreign memory attached read-only.
    case readOnlyExternal
    /// The pool had no header left.
    case poolEmpty
    /// An attachment's data offset and length do not fit its room (or exceed 4 GiB).
    case invalidAttachment(capacity: Int, dataOffset: Int, length: Int)
    /// The operation needs a single segment but the buffer is chained.
    case chained
    case chainLoop
    case chainTooLong
}

/// The header's layout for C code that writes headers itself (the DPDK shim fills received
/// buffers' headers from their mbufs): the offsets of pool, next, room, refcount, kind, data
/// offset, length, packet length, flags, segments, checksum start, checksum offset and capacity,
/// then the header's size. Such code checks its own copy against this at start-up.
public enum NetBufLayout {
    public static var offsets: [UInt16] {
        typealias F = NetBuf.Field
        return [F.pool, F.next, F.room, F.refcount, F.kind, F.dataOffset, F.length, F.packetLength, F.flags,
                F.segments, F.checksumStart, F.checksumOffset, F.capacity, NetBuf.headerSize].map { UInt16($0) }
    }
}

/// How memory another library owns goes back to it: called once, on the last release of a
/// buffer attached over it, with the attach call's context and token (Unikraft's and DPDK's
/// shape: a C function pointer and a context, no reference counting, usable in a kernel).
public struct ExternalRelease {
    public typealias Function = @convention(c) (_ context: UnsafeMutableRawPointer?, _ token: UnsafeMutableRawPointer?) -> Void
    public let context: UnsafeMutableRawPointer?
    public let function: Function
    @inlinable
    public init(context: UnsafeMutableRawPointer?, function: Function) {
        self.context = context
        self.function = function
    }
}

/// Checksum offload requests (TX) and results (RX), as virtio-net and DPDK carry them.
public struct OffloadFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// TX: the device should compute the checksum described by `checksumRequest`.
    @inlinable public static var needsChecksum: OffloadFlags { OffloadFlags(rawValue: 1 << 0) }
    /// TX: the device should compute the IPv4 header checksum.
    @inlinable public static var needsIPv4Checksum: OffloadFlags { OffloadFlags(rawValue: 1 << 1) }
    /// RX: the device verified the L4 checksum.
    @inlinable public static var checksumValid: OffloadFlags { OffloadFlags(rawValue: 1 << 8) }
    /// RX: the device found the L4 checksum wrong.
    @inlinable public static var checksumBad: OffloadFlags { OffloadFlags(rawValue: 1 << 9) }
    /// RX: the device verified the IPv4 header checksum.
    @inlinable public static var ipv4ChecksumValid: OffloadFlags { OffloadFlags(rawValue: 1 << 10) }
}
