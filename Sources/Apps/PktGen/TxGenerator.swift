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
public struct PendingBurst {
    let burst: UnsafeMutablePointer<NetBuf>
    public let capacity: Int
    /// Built frames at burst[0..<count].
    public private(set) var count = 0

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
    public mutating func deallocate() {
        NetBuf.releaseBulk(UnsafeMutableBufferPointer(start: burst, count: count))
        count = 0
        burst.deallocate()
    }

    /// Tops the burst up to `want` frames from `pool`, each written by `build` (which returns
    /// the frame's length); returns how many were added (fewer when the pool runs short).
    @inline(__always)
    public mutating func fill(upTo want: Int, from pool: NetBufPool, _ build: (UnsafeMutableRawPointer) -> Int) -> Int {
        let target = min(want, capacity)
        guard count < target else { return 0 }
        let got = pool.allocateBulk(into: UnsafeMutableBufferPointer(start: burst + count, count: target - count))
        var i = count
        let end = count + got
        while i < end {
            let buf = burst[i]
            try? buf.setLength(build(buf.data))
            i &+= 1
        }
        count = end
        return got
    }

    /// Offers up to `limit` built frames to the device; returns how many it took.
    @inline(__always)
    public mutating func transmit<Device: NetDevice>(on device: inout Device, queue: Int, limit: Int) -> Int {
        let offered = min(count, limit)
        guard offered > 0 else { return 0 }
        let sent = device.txBurst(queue: queue, from: UnsafeMutableBufferPointer(start: burst, count: offered)).count
        if sent > 0 {
            count -= sent
            var i = 0
            while i < count { burst[i] = burst[sent &+ i]; i &+= 1 }
        }
        return sent
    }
}

/// Sends frames from a `FrameTemplate` in bursts: buffers from the pool in bulk, one template
/// copy each (plus flow fields and probe stamp), one TX burst. Sequence numbers are stamped
/// when a frame is built, and frames leave in build order (`PendingBurst`): the receiver sees
/// no gap that the sender did not cause.
public struct TxGenerator {
    public let template: FrameTemplate
    let pool: NetBufPool
    var pending: PendingBurst
    /// The next sequence number to stamp, and the next flow.
    public private(set) var nextSequence: UInt64 = 0
    var flow = 0
    public private(set) var stats = TxStats()

    public init(template: FrameTemplate, pool: NetBufPool, burstSize: Int = 32) throws(PktGenError) {
        guard pool.roomSize - pool.headroom >= template.frameLength else {
            throw .buffersTooSmall(needed: template.frameLength, available: pool.roomSize - pool.headroom)
        }
        self.template = template
        self.pool = pool
        pending = try PendingBurst(capacity: burstSize)
    }

    /// Releases frames not yet taken and the burst array; the template and pool are the caller's.
    public mutating func deallocate() { pending.deallocate() }

    public var burstSize: Int { pending.capacity }
    /// Frames built but not yet taken by the device.
    public var unsent: Int { pending.count }

    /// Sends up to `limit` frames (at most one burst) stamped with `now`; returns how many the
    /// device took.
    @inline(__always)
    public mutating func send<Device: NetDevice>(on device: inout Device, queue: Int = 0, limit: Int, now: UInt64) -> Int {
        let want = min(pending.capacity, limit)
        let missing = want - pending.count
        if missing > 0 {
            let template = self.template
            let flows = template.spec.flows
            var sequence = nextSequence
            var flow = self.flow
            let got = pending.fill(upTo: want, from: pool) { frame in
                template.write(into: frame, flow: flow, sequence: sequence, time: now)
                sequence &+= 1
                flow &+= 1
                if flow == flows { flow = 0 }
                return template.frameLength
            }
            if got < missing { stats.allocationShortfalls &+= 1 }
            nextSequence = sequence
            self.flow = flow
        }
        let offered = min(pending.count, want)
        let sent = pending.transmit(on: &device, queue: queue, limit: offered)
        if sent < offered { stats.partialBursts &+= 1 }
        stats.packets &+= UInt64(sent)
        stats.bytes &+= UInt64(sent &* template.frameLength)
        return sent
    }
}
