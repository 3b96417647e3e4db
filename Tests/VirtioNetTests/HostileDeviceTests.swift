import Testing
import TestSupport
import UKNetdev
import VirtioNet
import VirtioNetEmulator

/// The used ring is written by another party. Each lie below is detected, counted as the
/// queue's fault, the queue stops (no out-of-bounds access, no crash), and every buffer comes
/// back to the pool on stop.
@Suite struct HostileDeviceTests {
    enum Lie: CaseIterable {
        case idOutOfRange, idNeverPosted, sameIdTwice, lengthBeyondBuffer, usedIndexJumpsAhead, mergedBuffersMissing
        var fault: VirtqueueFault {
            switch self {
            case .idOutOfRange: .idOutOfRange
            case .idNeverPosted, .sameIdTwice: .idNotInFlight
            case .lengthBeyondBuffer: .lengthBeyondBuffer
            case .usedIndexJumpsAhead: .usedIndexAhead
            case .mergedBuffersMissing: .mergedBuffersMissing
            }
        }
    }

    /// Makes the device tell `lie` on RX queue 0, after one honest frame.
    func tell(_ lie: Lie, _ emu: EmulatedVirtioNet) throws {
        var d = EmulatedDescriptor(address: 0, length: 0, flags: 0)
        let (head, _) = try #require(emu.takeAvailable(0, into: &d, max: 1))
        UnsafeMutableRawPointer(bitPattern: UInt(d.address))!.initializeMemory(as: UInt8.self, repeating: 0, count: 12)
        UnsafeMutableRawPointer(bitPattern: UInt(d.address))!.storeBytes(of: UInt16(1), toByteOffset: 10, as: UInt16.self)
        switch lie {
        case .idOutOfRange: emu.putUsed(0, id: 4000, length: 60)
        case .idNeverPosted:
            // The pool of 4 filled ids 0-3 of the 8-entry ring: id 6 is in range, never posted.
            emu.putUsed(0, id: 6, length: 60)
        case .sameIdTwice:
            emu.putUsed(0, id: UInt32(head), length: 60, publish: false)
            emu.putUsed(0, id: UInt32(head), length: 60)
        case .lengthBeyondBuffer: emu.putUsed(0, id: UInt32(head), length: UInt32(d.length + 1))
        case .usedIndexJumpsAhead:
            emu.putUsed(0, id: UInt32(head), length: 60, publish: false)
            emu.publishUsed(0, value: 9)   // 9 returned of 8 posted
        case .mergedBuffersMissing:
            UnsafeMutableRawPointer(bitPattern: UInt(d.address))!.storeBytes(of: UInt16(3), toByteOffset: 10, as: UInt16.self)
            emu.putUsed(0, id: UInt32(head), length: 60)   // announces 3 buffers, returns 1
        }
    }

    @Test(arguments: Lie.allCases)
    func aLyingDeviceBreaksTheQueueAndLosesNoBuffer(_ lie: Lie) throws {
        // 4 buffers for an 8-entry ring: half the descriptor ids are never posted.
        try withPool(count: 4) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            var dev = try makeDevice(emu, pool: pool, size: 8)
            #expect(frame(60, seed: 1).withUnsafeBytes { emu.receive($0) })
            #expect(receiveAll(&dev).frames == [frame(60, seed: 1)], "an honest frame first")
            try tell(lie, emu)
            let burst = Burst(32)
            var delivered = 0
            for _ in 0..<3 {
                let r = dev.rxBurst(queue: 0, into: burst.storage)
                delivered += r.count
                for i in 0..<r.count { burst[i].release() }
            }
            // Returning an id twice: the first return is a valid one.
            #expect(delivered == (lie == .sameIdTwice ? 1 : 0), "nothing the lie returned is believed")
            let counters = dev.virtioCounters(0)
            #expect(counters.rxFault == lie.fault, "\(lie): fault \(counters.rxFault)")
            // Further honest traffic on the broken queue is ignored, not read.
            _ = frame(60, seed: 2).withUnsafeBytes { emu.receive($0) }
            #expect(dev.rxBurst(queue: 0, into: burst.storage).count == 0)
            dev.stop()
            #expect(pool.inUse == 0, "every buffer posted to the broken queue came back")
        }
    }

    @Test func aLyingTxCompletionBreaksTheTxQueue() throws {
        try withPool(count: 64) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            var dev = try makeDevice(emu, pool: pool, size: 8)
            #expect(try send((0..<8).map { frame(64, seed: $0) }, on: &dev, pool: pool) == 8)
            emu.putUsed(1, id: 77, length: 0)   // a completion for a descriptor that does not exist
            #expect(try send([frame(64, seed: 9)], on: &dev, pool: pool) == 0)
            #expect(dev.virtioCounters(0).txFault == .idOutOfRange)
            #expect(try send([frame(64, seed: 9)], on: &dev, pool: pool) == 0, "a broken queue refuses")
            dev.stop()
            #expect(pool.inUse == 0)
        }
    }

    @Test func aRuntIsDroppedAndCounted() throws {
        try withPool(count: 64) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            var dev = try makeDevice(emu, pool: pool, size: 8)
            var d = EmulatedDescriptor(address: 0, length: 0, flags: 0)
            let (head, _) = try #require(emu.takeAvailable(0, into: &d, max: 1))
            emu.putUsed(0, id: UInt32(head), length: 5)   // shorter than the virtio-net header
            #expect(receiveAll(&dev).frames.isEmpty)
            #expect(dev.virtioCounters(0).rxRunts == 1)
            #expect(dev.rxQueueStats(0).errors == 1)
            #expect(dev.virtioCounters(0).rxFault == .none, "a runt is a bad packet, not a broken ring")
            dev.stop()
        }
    }
}
