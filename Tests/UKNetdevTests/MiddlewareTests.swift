import Testing
import TestSupport
import UKNetdev

struct CountingObserver: PacketObserver {
    var rx = 0, tx = 0, bytes = 0
    var sequence: [UInt32] = []
    mutating func observe(_ buffer: NetBuf, direction: PacketDirection, queue: Int) {
        if direction == .rx { rx += 1 } else { tx += 1 }
        bytes += buffer.packetLength
        sequence.append(buffer.data.load(as: UInt32.self))
    }
}

/// What one run of the fault scenario delivered, to compare runs.
struct Delivery: Equatable {
    var received: [UInt32] = []
    /// Sequence numbers of the packets that arrived undamaged.
    var clean: [UInt32] = []
    var corruptedSeen = 0
    var faults = FaultStats()
}

/// Sends `total` numbered 64-byte packets through a fault injector on A's TX (or B's RX),
/// retrying refused ones, and records what B receives.
func runFaultScenario(_ config: FaultConfig, total: Int = 3000, onReceiver: Bool = false) throws -> Delivery {
    var result = Delivery()
    try withPool(count: 512) { pool in
        let ring = RingDevice.pair(slots: 256)
        let rawA = ring.a, rawB = ring.b
        var a = FaultInjector(inner: rawA, config: onReceiver ? FaultConfig(seed: 0) : config)
        var b = FaultInjector(inner: rawB, config: onReceiver ? config : FaultConfig(seed: 0))
        try a.bringUp(rx: RxQueueConfig(descriptors: 256), tx: TxQueueConfig(descriptors: 256))
        try b.bringUp(rx: RxQueueConfig(descriptors: 256), tx: TxQueueConfig(descriptors: 256))
        let out = Burst(32), inb = Burst(8)  // a small RX array forces duplicates to wait
        var next: UInt32 = 0
        var held = 0
        var rounds = 0
        while (Int(next) < total || held > 0 || b.pendingDuplicates > 0 || b.inner.rxPending(queue: 0) > 0) && rounds < 1_000_000 {
            rounds += 1
            // Top up the TX array to 32 with new packets after the held ones.
            while held < 32 && Int(next) < total, let buf = pool.allocate() {
                try buf.setLength(64)
                buf.data.initializeMemory(as: UInt8.self, repeating: 0, count: 64)
                buf.data.storeBytes(of: next, as: UInt32.self)
                buf.data.storeBytes(of: next, toByteOffset: 4, as: UInt32.self)
                out[held] = buf
                held += 1
                next += 1
            }
            let r = a.txBurst(queue: 0, from: out.prefix(held))
            // Keep the refused ones, in order, at the front.
            for i in r.count..<held { out[i - r.count] = out[i] }
            held -= r.count
            let got = b.rxBurst(queue: 0, into: inb.prefix(8))
            for i in 0..<got.count {
                let p = inb[i]
                let seq = p.data.load(as: UInt32.self)
                result.received.append(seq)
                // The sequence number is there twice, then zeros: anything else is a flipped bit.
                var dirty = p.data.load(fromByteOffset: 4, as: UInt32.self) != seq
                for o in 8..<64 where p.data.load(fromByteOffset: o, as: UInt8.self) != 0 { dirty = true }
                if dirty { result.corruptedSeen += 1 } else { result.clean.append(seq) }
            }
            NetBuf.releaseBulk(inb.prefix(got.count))
        }
        #expect(rounds < 1_000_000, "the scenario finished")
        result.faults = onReceiver ? b.faults : a.faults
    }
    return result
}

@Suite struct MiddlewareTests {
    @Test func tracerSeesEveryPacketOnceAndOnlyWhenTaken() throws {
        try withPool { pool in
            let ring = RingDevice.pair(slots: 64)
            let rawA = ring.a, rawB = ring.b
            var a = Tracer(inner: rawA, observer: CountingObserver())
            var b = Tracer(inner: rawB, observer: CountingObserver())
            try a.bringUp(rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 10))
            try b.bringUp(rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 64))
            let burst = Burst(16)
            let n = try fill(pool, burst, 16)
            let r = a.txBurst(queue: 0, from: burst.prefix(n))
            #expect(r.count == 10)
            #expect(a.observer.tx == 10, "refused packets are not traced")
            #expect(a.observer.sequence == Array(0..<10))
            #expect(burst[10].refcount == 1 && burst[15].refcount == 1, "the caller's refused packets are as they were")
            NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst.storage[10..<16]))
            let got = b.rxBurst(queue: 0, into: burst.prefix(16))
            #expect(got.count == 10)
            #expect(b.observer.rx == 10)
            #expect(b.observer.bytes == 600)
            for i in 0..<10 { #expect(burst[i].refcount == 1) }
            NetBuf.releaseBulk(burst.prefix(10))
        }
    }

    @Test func sameSeedSameFaults() throws {
        let config = FaultConfig(seed: 42, dropRate: 0.05, duplicateRate: 0.03, corruptRate: 0.04,
                                 stallRate: 0.05, txBurstLimit: 20)
        let first = try runFaultScenario(config)
        let second = try runFaultScenario(config)
        #expect(first == second)
        var other = config
        other.seed = 43
        #expect(try runFaultScenario(other) != first)
        // Every kind of fault happened, and the books balance.
        let f = first.faults
        #expect(f.dropped > 50 && f.duplicated > 30 && f.corrupted > 30 && f.stalledBursts > 5)
        #expect(first.received.count == 3000 - Int(f.dropped) + Int(f.duplicated))
        #expect(first.corruptedSeen >= Int(f.corrupted) - 1 - Int(f.duplicated))
        #expect(first.corruptedSeen > 0)
        // Nothing arrives out of order; duplicates arrive right behind their original.
        #expect(zip(first.clean, first.clean.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(first.clean.count == first.received.count - first.corruptedSeen)
    }

    @Test func receiverSideFaultsAreReproducibleAndDuplicatesWait() throws {
        let config = FaultConfig(seed: 9, dropRate: 0.02, duplicateRate: 0.2, stallRate: 0.1)
        let first = try runFaultScenario(config, onReceiver: true)
        #expect(first == (try runFaultScenario(config, onReceiver: true)))
        #expect(first.received.count == 3000 - Int(first.faults.dropped) + Int(first.faults.duplicated))
        #expect(first.faults.duplicated > 400)
    }

    @Test func reorderedPacketsArriveLaterAndEveryOneArrives() throws {
        let config = FaultConfig(seed: 5, reorderRate: 0.1)
        let first = try runFaultScenario(config, onReceiver: true)
        #expect(first.faults.reordered > 100)
        #expect(first.received.sorted() == (0..<3000).map { UInt32($0) }, "each packet exactly once")
        let late = zip(first.received, first.received.dropFirst()).filter { $0 > $1 }.count
        #expect(late > 100, "held-back packets arrive after later ones (\(late) inversions)")
        #expect(first == (try runFaultScenario(config, onReceiver: true)))
    }

    @Test func sizeLimitDropsAndCounts() throws {
        try withPool { pool in
            let ring = RingDevice.pair(slots: 64)
            let rawA = ring.a, rawB = ring.b
            var a = FaultInjector(inner: rawA, config: FaultConfig(seed: 1, maxPacketSize: 100))
            var b = rawB
            try a.bringUp(rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 64))
            try b.bringUp(rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 64))
            let burst = Burst(4)
            _ = try fill(pool, burst, 4)
            try burst[1].setLength(101)
            try burst[3].setLength(1500)
            #expect(a.txBurst(queue: 0, from: burst.prefix(4)).count == 4)
            #expect(a.faults.oversized == 2)
            #expect(b.rxBurst(queue: 0, into: burst.prefix(4)).count == 2)
            #expect(burst[1].data.load(as: UInt32.self) == 2)
            NetBuf.releaseBulk(burst.prefix(2))
        }
    }
}
