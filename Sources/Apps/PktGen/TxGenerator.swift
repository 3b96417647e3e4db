import UKNetdev

/// Counters of a transmitting run.
public struct TxStats: Sendable {
    public var packets: UInt64 = 0
    public var bytes: UInt64 = 0
    /// Bursts the pool could not fill completely (the device holds the rest).
    public var allocationShortfalls: UInt64 = 0
    /// Bursts the device took only part of (the rest is sent next time, in order).
    public var partialBursts: UInt64 = 0
    public init() {}
}

/// Frames built for the device and not yet taken, in order: filled in bulk from a pool, offered
/// in one TX burst; what the device refuses stays at the front and goes first next time, so
/// frames reach the wire in order and none is lost or built twice. Shared by the generators.
/// `~Copyable`: it owns the frames not yet taken and gives them back, once, when it goes away.
public struct PendingBurst: ~Copyable {
    @usableFromInline let burst: UnsafeMutablePointer<NetBuf>
    public let capacity: Int
    /// Built frames at burst[0..<count].
    @usableFromInline var built = 0
    public var count: Int { built }

    public init(capacity: Int) throws(PktGenError) {
        guard capacity >= 1, capacity <= 1024 else { throw .burstSize(capacity) }
        self.capacity = capacity
        burst = .allocate(capacity: capacity)
    }

    /// Bytes in the frames not yet taken.
    public var bytes: UInt64 {
        var total: UInt64 = 0
        for i in 0..<count { total &+= UInt64(burst[i].length) }
        return total
    }

    /// Releases frames not yet taken, and the array.
    deinit {
        NetBuf.releaseBulk(UnsafeMutableBufferPointer(start: burst, count: built))
        burst.deallocate()
    }

    /// Tops the burst up towards `want` frames with fresh buffers from `pool`, each `length`
    /// bytes long; returns the slots added (fewer when the pool runs short). The caller writes
    /// them (`self[i]`) before the next `transmit`.
    @inlinable @inline(__always)
    public mutating func reserve(upTo want: Int, from pool: NetBufPool, length: Int = 0) -> Range<Int> {
        let target = min(want, capacity)
        guard built < target else { return built..<built }
        let got = pool.allocateBulk(into: UnsafeMutableBufferPointer(start: burst + built, count: target - built), length: length)
        let start = built
        built += got
        return start..<built
    }

    @inlinable public subscript(i: Int) -> NetBuf { @inline(__always) get { burst[i] } }

    /// Offers up to `limit` built frames to the device; returns how many it took.
    @inlinable @inline(__always)
    public mutating func transmit<Device: NetDevice & ~Copyable>(on device: inout Device, queue: Int, limit: Int) -> Int {
        let offered = min(built, limit)
        guard offered > 0 else { return 0 }
        let sent = device.txBurst(queue: queue, from: UnsafeMutableBufferPointer(start: burst, count: offered)).count
        if sent > 0 {
            built -= sent
            var i = 0
            while i < built { burst[i] = burst[sent &+ i]; i &+= 1 }
        }
        return sent
    }
}

/// Sends frames from a `FrameTemplate` in bursts: buffers from the pool in bulk, the template
/// written into each (plus flow fields and probe stamp), one TX burst. Sequence numbers are
/// stamped when a frame is built, and frames leave in build order (`PendingBurst`): the
/// receiver sees no gap that the sender did not cause.
///
/// With `prefilled`, every buffer of the pool gets the template once, up front, and a packet
/// costs only what varies (nothing for one flow without probes), as DPDK's pktgen does with its
/// own mempool. That needs a pool of the generator's own that nothing else writes into: not a
/// device's RX pool, and no receiver that rewrites frames in place (a null, pcap or TAP device,
/// or a ring to a reader, are fine). `pktgen tx` runs this way.
public struct TxGenerator: ~Copyable {
    public let template: FrameTemplate
    @usableFromInline let pool: NetBufPool
    @usableFromInline var pending: PendingBurst
    @usableFromInline let prefilled: Bool
    /// The next sequence number to stamp, and the next flow.
    @usableFromInline var sequence: UInt64 = 0
    @usableFromInline var flow = 0
    @usableFromInline var counters = TxStats()
    public var stats: TxStats { counters }

    public init(template: FrameTemplate, pool: NetBufPool, burstSize: Int = 32, prefilled: Bool = false) throws(PktGenError) {
        guard pool.roomSize - pool.headroom >= template.frameLength else {
            throw .buffersTooSmall(needed: template.frameLength, available: pool.roomSize - pool.headroom)
        }
        if prefilled { guard pool.inUse == 0 else { throw .poolInUse(pool.inUse) } }
        let pending = try PendingBurst(capacity: burstSize)   // the last thing that can throw
        self.template = template
        self.pool = pool
        self.prefilled = prefilled
        self.pending = pending
        if prefilled {
            // Every buffer at once, so each holds the template when it comes round again.
            let all = UnsafeMutableBufferPointer<NetBuf>.allocate(capacity: pool.capacity)
            defer { all.deallocate() }
            let n = pool.allocateBulk(into: all)
            for i in 0..<n { template.write(into: all[i].data, flow: 0, sequence: 0, time: 0) }
            NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: all[0..<n]))
        }
    }

    /// Ends the generator now: frames not yet taken go back to their pool (the template and
    /// pool are the caller's). Going out of scope does the same.
    public consuming func deallocate() {}

    /// Frames built but not yet taken by the device.
    public var unsent: Int { pending.count }

    /// Sends up to `limit` frames (at most one burst) stamped with `now`; returns how many the
    /// device took.
    @inlinable @inline(__always)
    public mutating func send<Device: NetDevice & ~Copyable>(on device: inout Device, queue: Int = 0, limit: Int, now: UInt64) -> Int {
        let want = min(pending.capacity, limit)
        let missing = want - pending.count
        if missing > 0 {
            // Buffers come with the frame's length set (checked against the room at init).
            let length = template.frameLength
            let fresh = pending.reserve(upTo: want, from: pool, length: length)
            if fresh.count < missing { counters.allocationShortfalls &+= 1 }
            // A prefilled frame already holds everything that does not vary.
            if !prefilled || template.varies {
                var sequence = self.sequence
                var flow = self.flow
                let flows = template.spec.flows
                for i in fresh {
                    let frame = pending[i].data
                    if prefilled {
                        template.patch(frame, flow: flow, sequence: sequence, time: now)
                    } else {
                        template.write(into: frame, flow: flow, sequence: sequence, time: now)
                    }
                    sequence &+= 1
                    flow &+= 1
                    if flow == flows { flow = 0 }
                }
                self.sequence = sequence
                self.flow = flow
            }
        }
        let offered = min(pending.count, want)
        let sent = pending.transmit(on: &device, queue: queue, limit: offered)
        if sent < offered { counters.partialBursts &+= 1 }
        counters.packets &+= UInt64(sent)
        counters.bytes &+= UInt64(sent &* template.frameLength)
        return sent
    }
}
