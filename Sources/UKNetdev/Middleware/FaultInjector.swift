/// What a `FaultInjector` does, with probabilities in 0...1. The same seed and the same traffic
/// give the same faults.
public struct FaultConfig: Equatable, Sendable {
    public var seed: UInt64
    /// Packets lost (freed and counted).
    public var dropRate: Double
    /// Packets delivered twice (the copy is a new buffer from the packet's own pool).
    public var duplicateRate: Double
    /// Packets with one random bit of their data flipped.
    public var corruptRate: Double
    /// RX: packets held back and delivered after the rest of their burst, first in the next one.
    public var reorderRate: Double
    /// Packets longer than this are dropped (an MTU on the wire); nil: no limit.
    public var maxPacketSize: Int?
    /// Bursts that move nothing: RX leaves packets in the device, TX refuses all (back-pressure).
    public var stallRate: Double
    /// At most this many packets taken per TX burst (partial acceptance); nil: no limit.
    public var txBurstLimit: Int?
    /// Which directions the faults apply to.
    public var onRx: Bool
    public var onTx: Bool

    public init(seed: UInt64, dropRate: Double = 0, duplicateRate: Double = 0, corruptRate: Double = 0,
                reorderRate: Double = 0, maxPacketSize: Int? = nil, stallRate: Double = 0, txBurstLimit: Int? = nil,
                onRx: Bool = true, onTx: Bool = true) {
        self.seed = seed
        self.dropRate = dropRate
        self.duplicateRate = duplicateRate
        self.corruptRate = corruptRate
        self.reorderRate = reorderRate
        self.maxPacketSize = maxPacketSize
        self.stallRate = stallRate
        self.txBurstLimit = txBurstLimit
        self.onRx = onRx
        self.onTx = onTx
    }
}

/// Counts of what a `FaultInjector` did.
public struct FaultStats: Equatable, Sendable {
    public var dropped: UInt64 = 0
    public var oversized: UInt64 = 0
    public var duplicated: UInt64 = 0
    /// Duplicates that could not be made (pool empty, or no room to hold them).
    public var duplicatesFailed: UInt64 = 0
    public var corrupted: UInt64 = 0
    public var reordered: UInt64 = 0
    public var stalledBursts: UInt64 = 0
    public init() {}
}

/// A small, fast, seeded generator (SplitMix64): reproducible faults, no global state.
public struct SplitMix64: Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// True with probability `threshold / 2^32`.
    @inlinable
    public mutating func chance(_ threshold: UInt64) -> Bool {
        threshold != 0 && (next() >> 32) < threshold
    }
    /// Uniform in 0..<bound (bound > 0).
    @inlinable
    public mutating func below(_ bound: Int) -> Int { Int((next() >> 1) % UInt64(bound)) }
}

/// Middleware that injects faults into any device (smoltcp's `phy::FaultInjector`, generic):
/// drops, duplicates, single-bit corruption, a size limit, stalls and partial TX acceptance,
/// driven by a seeded generator so a failing run can be replayed.
///
/// Ownership is kept exact: dropped packets are freed and counted, duplicates that do not fit
/// the caller's array wait for the next RX burst, and a TX packet is never both refused and
/// dropped.
public struct FaultInjector<Inner: NetDevice & ~Copyable>: NetDeviceWrapper, ~Copyable {
    public var inner: Inner
    public let config: FaultConfig
    public private(set) var faults = FaultStats()
    @usableFromInline var random: SplitMix64
    @usableFromInline let drop, duplicate, corrupt, reorder, stall: UInt64
    @usableFromInline let storage: FaultScratch

    public init(inner: consuming Inner, config: FaultConfig) {
        self.inner = inner
        self.config = config
        random = SplitMix64(seed: config.seed)
        func threshold(_ p: Double) -> UInt64 { UInt64(min(max(p, 0), 1) * 4_294_967_296.0) }
        drop = threshold(config.dropRate)
        duplicate = threshold(config.duplicateRate)
        corrupt = threshold(config.corruptRate)
        reorder = threshold(config.reorderRate)
        stall = threshold(config.stallRate)
        storage = FaultScratch()
    }


    /// The inner device's statistics, then the faults (named `faults_...`).
    public func extendedStats(_ body: (_ name: StaticString, _ queue: Int, _ value: UInt64) -> Void) {
        inner.extendedStats(body)
        body("faults_dropped", -1, faults.dropped)
        body("faults_oversized", -1, faults.oversized)
        body("faults_duplicated", -1, faults.duplicated)
        body("faults_duplicates_failed", -1, faults.duplicatesFailed)
        body("faults_corrupted", -1, faults.corrupted)
        body("faults_reordered", -1, faults.reordered)
        body("faults_stalled_bursts", -1, faults.stalledBursts)
    }

    /// Packets made as duplicates, or held back to be reordered, not yet delivered.
    public var pendingDuplicates: Int { storage.pendingCount }

    /// Decides one packet's fate. Returns false if it is to be dropped (not yet freed).
    @usableFromInline
    mutating func survives(_ buf: NetBuf) -> Bool {
        if let limit = config.maxPacketSize, buf.packetLength > limit {
            faults.oversized &+= 1
            return false
        }
        if random.chance(drop) {
            faults.dropped &+= 1
            return false
        }
        if random.chance(corrupt), buf.length > 0, buf.hasWritableRoom {
            let bit = random.below(buf.length * 8)
            let p = buf.data + bit / 8
            p.storeBytes(of: p.load(as: UInt8.self) ^ UInt8(1 << (bit % 8)), as: UInt8.self)
            faults.corrupted &+= 1
        }
        return true
    }

    /// A copy of `buf` in a new single buffer from its pool, or nil.
    @usableFromInline
    mutating func duplicateIfChosen(_ buf: NetBuf) -> NetBuf? {
        guard random.chance(duplicate) else { return nil }
        let pool = buf.pool
        guard let copy = pool.allocate() else {
            faults.duplicatesFailed &+= 1
            return nil
        }
        let n = buf.packetLength
        guard (try? copy.setLength(n)) != nil else {
            copy.release()
            faults.duplicatesFailed &+= 1
            return nil
        }
        _ = buf.copyOut(into: UnsafeMutableRawBufferPointer(start: copy.data, count: n))
        copy.flags = buf.flags
        copy.userTag = buf.userTag
        faults.duplicated &+= 1
        return copy
    }

    public mutating func rxBurst(queue: Int, into packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard config.onRx else { return inner.rxBurst(queue: queue, into: packets) }
        guard let out = packets.baseAddress else { return inner.rxBurst(queue: queue, into: packets) }
        // Duplicates left over from the last burst go first.
        let s = storage
        let n = s.takePending(into: out, max: packets.count)
        if n == packets.count { return BurstResult(count: n, status: [.success, .more]) }
        if random.chance(stall) {
            faults.stalledBursts &+= 1
            return BurstResult(count: n, status: .success)
        }
        let room = UnsafeMutableBufferPointer(start: out + n, count: packets.count - n)
        let result = inner.rxBurst(queue: queue, into: room)
        guard result.status.contains(.success) else { return n > 0 ? BurstResult(count: n, status: .success) : result }
        var kept = n
        for i in 0..<result.count {
            let buf = room[i]
            guard survives(buf) else {
                buf.release()
                continue
            }
            if reorder != 0, random.chance(reorder), s.pendingCount < FaultScratch.capacity {
                // Held back: it comes after this burst's others (duplicates are not made of it).
                s.pending[s.pendingCount] = buf
                s.pendingCount += 1
                faults.reordered &+= 1
                continue
            }
            out[kept] = buf
            kept += 1
            if let copy = duplicateIfChosen(buf) {
                if s.pendingCount < FaultScratch.capacity {
                    s.pending[s.pendingCount] = copy
                    s.pendingCount += 1
                } else {
                    copy.release()
                    faults.duplicatesFailed &+= 1
                }
            }
        }
        // Deliver what fits of the new duplicates and held-back packets now (after the others),
        // keep the rest pending.
        kept += s.takePending(into: out + kept, max: packets.count - kept)
        var status = result.status
        if s.pendingCount > 0 { status.insert(.more) }
        return BurstResult(count: kept, status: status)
    }

    public mutating func txBurst(queue: Int, from packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard config.onTx, let src = packets.baseAddress else { return inner.txBurst(queue: queue, from: packets) }
        if random.chance(stall) {
            faults.stalledBursts &+= 1
            return BurstResult(count: 0, status: .success)
        }
        var offered = min(packets.count, FaultScratch.capacity)
        if let limit = config.txBurstLimit { offered = min(offered, max(limit, 0)) }
        // Decide every offered packet's fate first; free the dropped ones only once we know
        // which of them lie before the point where the inner device stopped taking packets.
        let s = storage
        var survivors = 0
        for i in 0..<offered {
            let buf = src[i]
            let lives = survives(buf)
            s.dropped[i] = !lives
            guard lives else { continue }
            s.survivors[survivors] = buf
            s.origins[survivors] = i
            survivors += 1
            if let copy = duplicateIfChosen(buf) {
                s.survivors[survivors] = copy
                s.origins[survivors] = -1 - i   // a duplicate of packet i (ours, not the caller's)
                survivors += 1
            }
        }
        let result = inner.txBurst(queue: queue, from: UnsafeMutableBufferPointer(start: s.survivors, count: survivors))
        let sent = result.status.contains(.success) ? result.count : 0
        // The caller's packets up to `taken` are gone (sent or dropped); the rest stay theirs.
        var taken = offered
        if sent < survivors {
            let o = s.origins[sent]
            taken = o >= 0 ? o : -o  // a refused duplicate of packet i: packet i itself went out
        }
        for j in sent..<survivors where s.origins[j] < 0 {
            s.survivors[j].release()  // a duplicate the device did not take: ours to free
            faults.duplicated &-= 1
            faults.duplicatesFailed &+= 1
        }
        for i in 0..<offered where s.dropped[i] {
            if i < taken {
                src[i].release()
            } else if let limit = config.maxPacketSize, src[i].packetLength > limit {
                faults.oversized &-= 1   // still the caller's: not lost (yet)
            } else {
                faults.dropped &-= 1
            }
        }
        return BurstResult(count: taken, status: sent < survivors ? .success : result.status)
    }
}

/// Scratch memory of a `FaultInjector`, allocated once: TX survivors and their origins, RX
/// duplicates waiting for room.
@usableFromInline final class FaultScratch {
    static let capacity = 256
    let survivors = UnsafeMutablePointer<NetBuf>.allocate(capacity: 2 * capacity)
    let origins = UnsafeMutablePointer<Int>.allocate(capacity: 2 * capacity)
    let dropped = UnsafeMutablePointer<Bool>.allocate(capacity: capacity)
    let pending = UnsafeMutablePointer<NetBuf>.allocate(capacity: capacity)
    var pendingCount = 0

    /// Moves up to `max` pending duplicates, oldest first, to `out` (one shift of the rest);
    /// returns how many.
    func takePending(into out: UnsafeMutablePointer<NetBuf>, max: Int) -> Int {
        let n = min(max, pendingCount)
        guard n > 0 else { return 0 }
        out.update(from: pending, count: n)
        pending.update(from: pending + n, count: pendingCount - n)
        pendingCount -= n
        return n
    }

    deinit {
        // Duplicates never delivered are ours to free.
        for i in 0..<pendingCount { pending[i].release() }
        survivors.deallocate()
        origins.deallocate()
        dropped.deallocate()
        pending.deallocate()
    }
}

