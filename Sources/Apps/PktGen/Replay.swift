import UKNetdev

/// Frames kept back to back in one arena (a capture loaded once), for replay.
public struct FrameList {
    let arena: UnsafeMutableRawPointer
    public let arenaBytes: Int
    let starts: UnsafeMutablePointer<Int>
    let lengths: UnsafeMutablePointer<Int>
    public let maxFrames: Int
    public private(set) var count = 0
    var used = 0

    public init(maxFrames: Int, maxBytes: Int) {
        self.maxFrames = max(1, maxFrames)
        arenaBytes = max(64, maxBytes)
        arena = .allocate(byteCount: arenaBytes, alignment: 64)
        starts = .allocate(capacity: self.maxFrames)
        lengths = .allocate(capacity: self.maxFrames)
    }

    public func deallocate() {
        arena.deallocate()
        starts.deallocate()
        lengths.deallocate()
    }

    /// Adds a copy of a frame; false when the list is full.
    public mutating func append(_ bytes: UnsafeRawPointer, count length: Int) -> Bool {
        guard count < maxFrames, length >= 0, used + length <= arenaBytes else { return false }
        (arena + used).copyMemory(from: bytes, byteCount: length)
        starts[count] = used
        lengths[count] = length
        used += length
        count += 1
        return true
    }

    public func frame(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: arena + starts[i], count: lengths[i])
    }

    /// Bytes in all frames.
    public var bytes: Int { used }

    /// The longest frame (buffers must hold it).
    public var longest: Int {
        var m = 0
        for i in 0..<count { m = max(m, lengths[i]) }
        return m
    }
}

/// The `replay` engine: sends a `FrameList` `loops` times in order, each frame copied into a
/// pool buffer, in bursts (`PendingBurst`: what the device refuses goes first next time).
public struct Replayer: ~Copyable {
    public let frames: FrameList
    public let loops: UInt64
    let pool: NetBufPool
    var pending: PendingBurst
    /// The next frame to build, and the loop it belongs to.
    var nextFrame = 0
    public private(set) var loop: UInt64 = 0
    var stats = TxStats()
    var builtBytes: UInt64 = 0

    public init(frames: FrameList, loops: UInt64, pool: NetBufPool, burstSize: Int = 32) throws(PktGenError) {
        guard pool.roomSize - pool.headroom >= frames.longest else {
            throw .buffersTooSmall(needed: frames.longest, available: pool.roomSize - pool.headroom)
        }
        let pending = try PendingBurst(capacity: burstSize)   // the last thing that can throw
        self.frames = frames
        self.loops = loops
        self.pool = pool
        self.pending = pending
    }

    /// Ends the replayer now: frames not yet taken go back to their pool. Going out of scope
    /// does the same.
    public consuming func deallocate() {}

    /// Frames and bytes the device has taken.
    public var sent: TxStats {
        var s = stats
        s.bytes = builtBytes - pending.bytes
        return s
    }

    /// Every frame of every loop taken by the device.
    public var finished: Bool { (loop >= loops || frames.count == 0) && pending.count == 0 }

    /// Sends up to `limit` frames (at most one burst); returns how many the device took.
    public mutating func send<Device: NetDevice & ~Copyable>(on device: inout Device, queue: Int = 0, limit: Int) -> Int {
        let want = min(pending.capacity, limit)
        if pending.count < want && loop < loops && frames.count > 0 {
            // Never build past the last frame of the last loop.
            let left = (loops - loop) * UInt64(frames.count) - UInt64(nextFrame)
            let target = pending.count + Int(min(UInt64(want - pending.count), left))
            let fresh = pending.reserve(upTo: target, from: pool)
            var next = nextFrame
            var loop = self.loop
            var bytes: UInt64 = 0
            for i in fresh {
                let f = frames.frame(next)
                copyPacketBytes(to: pending[i].data, from: f.baseAddress!, count: f.count)
                pending[i].unsafeSetLength(f.count)   // buffers were checked against the longest frame
                bytes &+= UInt64(f.count)
                next += 1
                if next == frames.count { next = 0; loop += 1 }
            }
            if pending.count < target { stats.allocationShortfalls &+= 1 }
            nextFrame = next
            self.loop = loop
            builtBytes &+= bytes
        }
        let offered = min(pending.count, want)
        let sent = pending.transmit(on: &device, queue: queue, limit: offered)
        if sent < offered { stats.partialBursts &+= 1 }
        stats.packets &+= UInt64(sent)
        return sent
    }
}
