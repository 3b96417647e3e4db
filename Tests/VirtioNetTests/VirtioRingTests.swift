import Testing
import TestSupport
import UKNetdev
import VirtioNet
import VirtioNetEmulator

/// A frame of `length` bytes whose content depends on `seed` (so reordering or mixing is seen).
func frame(_ length: Int, seed: Int) -> [UInt8] {
    (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ seed &* 13 &+ 1) }
}

func bytes(of buf: NetBuf) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: buf.packetLength)
    _ = out.withUnsafeMutableBytes { buf.copyOut(into: $0) }
    return out
}

func makeDevice(_ emu: EmulatedVirtioNet, pool: NetBufPool, size: Int = 8,
                options: VirtioNetOptions = VirtioNetOptions()) throws -> VirtioNetDevice<EmulatedTransport> {
    var dev = try VirtioNetDevice(transport: emu.transport, options: options)
    try dev.bringUp(rx: RxQueueConfig(descriptors: size, allocator: pool.rxAllocator), tx: TxQueueConfig(descriptors: size))
    return dev
}

/// Sends `frames` (copied into buffers from `pool`); returns how many the device took.
func send(_ frames: [[UInt8]], on dev: inout VirtioNetDevice<EmulatedTransport>, pool: NetBufPool) throws -> Int {
    let burst = Burst(frames.count)
    for (i, f) in frames.enumerated() {
        let b = try #require(pool.allocate())
        try f.withUnsafeBytes { try b.copyIn($0) }
        burst[i] = b
    }
    let r = dev.txBurst(queue: 0, from: burst.storage)
    for i in r.count..<frames.count { burst[i].release() }
    return r.count
}

/// Received frames' bytes (the buffers released).
func receiveAll(_ dev: inout VirtioNetDevice<EmulatedTransport>, max: Int = 32) -> (frames: [[UInt8]], result: BurstResult) {
    let burst = Burst(max)
    let r = dev.rxBurst(queue: 0, into: burst.storage)
    var out: [[UInt8]] = []
    for i in 0..<r.count {
        out.append(bytes(of: burst[i]))
        burst[i].release()
    }
    return (out, r)
}

@Suite struct VirtioNegotiationTests {
    @Test func aRequiredFeatureTheDeviceLacksIsRefused() {
        let emu = EmulatedVirtioNet(features: [.mac, .mrgRxbuf])   // a legacy-only device
        defer { emu.deallocate() }
        #expect(throws: VirtioError.requiredFeatureMissing(.version1)) {
            _ = try VirtioNetDevice(transport: emu.transport)
        }
    }

    @Test func theDriverUsesWhatItWantsAndTheDeviceOffers() throws {
        let emu = EmulatedVirtioNet(features: [.version1, .mrgRxbuf, .mac, .eventIdx, .indirectDesc, .csum])
        defer { emu.deallocate() }
        let dev = try VirtioNetDevice(transport: emu.transport)
        #expect(dev.negotiated == [.version1, .mrgRxbuf, .mac, .csum])
        #expect(emu.negotiated == dev.negotiated)
        #expect(dev.negotiationSummary.contains("CSUM MAC MRG_RXBUF VERSION_1"))
        let info = dev.info
        #expect(info.mac == MACAddress(0x02, 0, 0, 0, 0, 0x42))
        #expect(info.features.contains(.txChecksumOffload))
        #expect(!info.features.contains(.rxChecksumOffload), "GUEST_CSUM was not offered")
        #expect(info.nbEncapRx == 12 && info.nbEncapTx == 12)
    }

    @Test func queuesComeInPairs() throws {
        let emu = EmulatedVirtioNet(queuePairs: 2)
        defer { emu.deallocate() }
        var dev = try VirtioNetDevice(transport: emu.transport)
        #expect(throws: NetDeviceError.self) { try dev.configure(DeviceConfig(rxQueues: 2, txQueues: 1)) }
        #expect(throws: NetDeviceError.invalidQueueCount(requested: 3, max: 2)) { try dev.configure(DeviceConfig(rxQueues: 3, txQueues: 3)) }
        try dev.configure(DeviceConfig(rxQueues: 2, txQueues: 2))
        #expect(throws: NetDeviceError.self) { try dev.setupRxQueue(0, RxQueueConfig(descriptors: 6)) }   // not a power of two
    }
}

@Suite struct VirtioTrafficTests {
    @Test func framesSentArriveWholeAtTheDeviceAndTheirBuffersComeBack() throws {
        try withPool(count: 64) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            do {
                var dev = try makeDevice(emu, pool: pool, size: 16)
                #expect(emu.driverOK)
                let frames = [60, 64, 1514, 1, 333].enumerated().map { frame($0.element, seed: $0.offset) }
                #expect(try send(frames, on: &dev, pool: pool) == frames.count)
                var seen: [[UInt8]] = []
                var flags: [UInt8] = []
                emu.transmitted { seen.append(Array($0)); flags.append($1) }
                #expect(seen == frames)
                #expect(flags == [0, 0, 0, 0, 0])
                // The used buffers are reclaimed when the ring runs short: send enough to need them.
                for round in 0..<10 {
                    #expect(try send((0..<8).map { frame(100, seed: round * 8 + $0) }, on: &dev, pool: pool) == 8)
                    #expect(emu.transmitted { _, _ in } == 8)
                }
                #expect(dev.txQueueStats(0).packets == 85)
                #expect(pool.inUse <= 16 + 16, "RX ring plus at most one TX ring of buffers in flight")
                dev.stop()
                #expect(pool.inUse == 0)
            }
            #expect(emu.state.pointee.memoryBlocks == 0, "ring memory freed with the device")
        }
    }

    @Test func framesTheDeviceDeliversArriveWholeAndTheRingIsRefilled() throws {
        try withPool(count: 64) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            var dev = try makeDevice(emu, pool: pool, size: 8)
            #expect(emu.availablePending(0) == 8, "the whole RX ring is posted at start")
            #expect(emu.callsSuppressed(0), "a polling driver asks for no calls")
            let frames = (0..<5).map { frame(60 + 200 * $0, seed: $0) }
            for f in frames { #expect(f.withUnsafeBytes { emu.receive($0) }) }
            let (got, r) = receiveAll(&dev)
            #expect(got == frames)
            #expect(r.status.contains(.success))
            #expect(dev.rxQueueStats(0).packets == 5)
            #expect(dev.rxQueueStats(0).bytes == UInt64(frames.reduce(0) { $0 + $1.count }))
            #expect(emu.availablePending(0) == 8, "refilled in one bulk allocation")
            dev.stop()
        }
    }

    @Test func indicesWrapAroundWithoutLoss() throws {
        // 70,000 frames through an 8-entry ring: the 16-bit ring indices wrap once, the ring
        // positions thousands of times.
        try withPool(count: 64) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            var dev = try makeDevice(emu, pool: pool, size: 8)
            let burst = Burst(4)
            var next: UInt32 = 0
            var expected: UInt32 = 0
            while expected < 70_000 {
                let n = pool.allocateBulk(into: burst.prefix(4), length: 64)
                for i in 0..<n { burst[i].data.storeBytes(of: next &+ UInt32(i), as: UInt32.self) }
                let sent = dev.txBurst(queue: 0, from: burst.prefix(n)).count
                for i in sent..<n { burst[i].release() }
                next &+= UInt32(sent)
                emu.loopback(max: 8)
                let r = dev.rxBurst(queue: 0, into: burst.storage)
                for i in 0..<r.count {
                    #expect(burst[i].length == 64)
                    let seq = burst[i].data.load(as: UInt32.self)
                    if seq != expected { Issue.record("frame \(seq) arrived where \(expected) was due"); return }
                    expected &+= 1
                }
                NetBuf.releaseBulk(burst.prefix(r.count))
            }
            #expect(expected > 65535 && Int(emu.queue(0).usedIdx) == Int(expected) % 65536, "the used index wrapped past 65535")
            #expect(dev.virtioCounters(0).rxFault == .none)
            dev.stop()
        }
    }

    @Test func aFullTxRingTakesWhatFitsAndMoreAfterTheDeviceCatchesUp() throws {
        try withPool(count: 64) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            var dev = try makeDevice(emu, pool: pool, size: 8)
            let frames = (0..<20).map { frame(64, seed: $0) }
            #expect(try send(frames, on: &dev, pool: pool) == 8)
            #expect(try send(frames, on: &dev, pool: pool) == 0, "ring full, the device took nothing")
            #expect(emu.transmitted { _, _ in } == 8)
            #expect(try send(frames, on: &dev, pool: pool) == 8)
            dev.stop()
            #expect(pool.inUse == 0, "the 8 frames still in flight came back on stop")
        }
    }

    @Test func anEmptyRxRingIsAnUnderrunNotACrash() throws {
        try withPool(count: 8) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            var dev = try makeDevice(emu, pool: pool, size: 8)   // the ring holds the whole pool
            var held: [NetBuf] = []
            for i in 0..<8 { #expect(frame(60, seed: i).withUnsafeBytes { emu.receive($0) }) }
            #expect(frame(60, seed: 9).withUnsafeBytes { emu.receive($0) } == false, "no buffer posted: the device drops")
            let burst = Burst(32)
            let r = dev.rxBurst(queue: 0, into: burst.storage)
            #expect(r.count == 8)
            #expect(r.status.contains(.underrun), "nothing to refill with while the app holds every buffer")
            for i in 0..<r.count { held.append(burst[i]) }
            for b in held { b.release() }
            _ = dev.rxBurst(queue: 0, into: burst.storage)
            #expect(emu.availablePending(0) == 8, "refilled once buffers came back")
            dev.stop()
        }
    }

    @Test func kicksOnlyWhenTheDeviceAsksAndAtMostOncePerBurst() throws {
        try withPool(count: 64) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            var dev = try makeDevice(emu, pool: pool, size: 16)
            #expect(try send((0..<4).map { frame(64, seed: $0) }, on: &dev, pool: pool) == 4)
            #expect(emu.notifies(1) == 0, "VRING_USED_F_NO_NOTIFY set: no kick")
            emu.setNotificationsWanted(1, true)
            #expect(try send((0..<4).map { frame(64, seed: $0) }, on: &dev, pool: pool) == 4)
            #expect(emu.notifies(1) == 1, "one kick for a burst of four")
            #expect(dev.virtioCounters(0).txNotifies == 1)
            var reported: [String: UInt64] = [:]
            dev.extendedStats { name, queue, value in reported["\(name)[\(queue)]"] = value }
            #expect(reported["tx_notifies[0]"] == 1 && reported["rx_notifies[0]"] == 0 && reported["tx_ring_fault[0]"] == 0)
            dev.stop()
        }
    }

    @Test func stopAndStartAgain() throws {
        try withPool(count: 64) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            var dev = try makeDevice(emu, pool: pool, size: 8)
            #expect(try send([frame(64, seed: 1)], on: &dev, pool: pool) == 1)
            dev.stop()
            #expect(pool.inUse == 0)
            #expect(emu.resets == 1)
            try dev.start()
            #expect(emu.availablePending(0) == 8)
            #expect(frame(70, seed: 2).withUnsafeBytes { emu.receive($0) })
            #expect(receiveAll(&dev).frames == [frame(70, seed: 2)])
            dev.stop()
        }
    }
}

@Suite struct VirtioLayoutTests {
    @Test func chainsClonesAndReadOnlyBuffersGoAsDescriptorChains() throws {
        try withPool(count: 64) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            var dev = try makeDevice(emu, pool: pool, size: 16)
            let a = try #require(pool.allocate()), b = try #require(pool.allocate())
            try frame(40, seed: 1).withUnsafeBytes { try a.copyIn($0) }
            try frame(30, seed: 2).withUnsafeBytes { try b.copyIn($0) }
            try a.chain(b)
            let original = try #require(pool.allocate())
            try frame(50, seed: 3).withUnsafeBytes { try original.copyIn($0) }
            let clone = try #require(original.clone(using: pool))
            let burst = Burst(2)
            burst[0] = a
            burst[1] = clone
            #expect(dev.txBurst(queue: 0, from: burst.storage).count == 2)
            var seen: [[UInt8]] = []
            emu.transmitted { seen.append(Array($0)); _ = $1 }
            #expect(seen == [frame(40, seed: 1) + frame(30, seed: 2), frame(50, seed: 3)])
            #expect(dev.virtioCounters(0).txChained == 2)
            #expect(bytes(of: original) == frame(50, seed: 3), "the clone's origin was not written")
            original.release()
            dev.stop()
        }
    }

    @Test func aPacketMergedOverSeveralBuffersArrivesAsAChain() throws {
        try withPool(count: 64) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            var dev = try makeDevice(emu, pool: pool, size: 8)
            // A device writes a 3000-byte frame over two buffers: header + 1800 bytes, then 1200.
            let big = frame(3000, seed: 5)
            var d = EmulatedDescriptor(address: 0, length: 0, flags: 0)
            let (h1, _) = try #require(emu.takeAvailable(0, into: &d, max: 1))
            let first = UnsafeMutableRawPointer(bitPattern: UInt(d.address))!
            first.initializeMemory(as: UInt8.self, repeating: 0, count: 12)
            first.storeBytes(of: UInt16(2), toByteOffset: 10, as: UInt16.self)
            big.withUnsafeBytes { (first + 12).copyMemory(from: $0.baseAddress!, byteCount: 1800) }
            let (h2, _) = try #require(emu.takeAvailable(0, into: &d, max: 1))
            let second = UnsafeMutableRawPointer(bitPattern: UInt(d.address))!
            big.withUnsafeBytes { second.copyMemory(from: $0.baseAddress! + 1800, byteCount: 1200) }
            emu.putUsed(0, id: UInt32(h1), length: 1812, publish: false)
            emu.putUsed(0, id: UInt32(h2), length: 1200)
            let (got, _) = receiveAll(&dev)
            #expect(got == [big])
            #expect(dev.virtioCounters(0).rxMerged == 1)
            dev.stop()
        }
    }

    @Test func checksumOffloadBothWays() throws {
        try withPool(count: 64) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            var dev = try makeDevice(emu, pool: pool, size: 8)
            // TX: a request to finish a checksum becomes NEEDS_CSUM with start and offset.
            let b = try #require(pool.allocate())
            try frame(80, seed: 1).withUnsafeBytes { try b.copyIn($0) }
            b.flags = .needsChecksum
            b.checksumRequest = (34, 6)
            let burst = Burst(1)
            burst[0] = b
            #expect(dev.txBurst(queue: 0, from: burst.storage).count == 1)
            var d = EmulatedDescriptor(address: 0, length: 0, flags: 0)
            let (head, _) = try #require(emu.takeAvailable(1, into: &d, max: 1))
            let header = UnsafeRawPointer(bitPattern: UInt(d.address))!
            #expect(header.load(as: UInt8.self) == 1)
            #expect(header.load(fromByteOffset: 6, as: UInt16.self) == 34)
            #expect(header.load(fromByteOffset: 8, as: UInt16.self) == 6)
            emu.putUsed(1, id: UInt32(head), length: 0)
            // RX: DATA_VALID is reported; a partial checksum is completed by the driver.
            let payload = frame(20, seed: 3)
            #expect(payload.withUnsafeBytes { emu.receive($0, headerFlags: 2) })
            var partial = payload
            partial[8] = 0; partial[9] = 0
            #expect(partial.withUnsafeBytes { emu.receive($0, headerFlags: 1, csumStart: 4, csumOffset: 4) })
            let out = Burst(4)
            let r = dev.rxBurst(queue: 0, into: out.storage)
            #expect(r.count == 2)
            #expect(out[0].flags.contains(.checksumValid))
            #expect(out[1].flags.contains(.checksumValid))
            let completed = bytes(of: out[1])
            #expect(completed.withUnsafeBytes { InternetChecksum.checksum($0.baseAddress! + 4, count: 16) } == 0,
                    "the completed checksum covers bytes 4..<20 and sums to zero")
            #expect(dev.virtioCounters(0).rxChecksumsCompleted == 1)
            out[0].release(); out[1].release()
            dev.stop()
        }
    }

    @Test func aDeviceThatComesBackIsReconnectedWhenAskedAndNoBufferIsLost() throws {
        try withPool(count: 64) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            var dev = try makeDevice(emu, pool: pool, size: 8, options: VirtioNetOptions(aliveCheckInterval: 4, reconnect: true))
            #expect(try send((0..<8).map { frame(64, seed: $0) }, on: &dev, pool: pool) == 8, "8 frames in flight when it goes")
            emu.disappear()
            for _ in 0..<8 {
                let r = receiveAll(&dev).result
                #expect(!r.status.contains(.endOfInput), "waiting, not ending")
            }
            let goneThen = dev.deviceGone
            #expect(goneThen)
            emu.comeBack()
            _ = receiveAll(&dev)   // connects again and hands the rings over
            let goneNow = dev.deviceGone, reconnections = dev.reconnections
            #expect(!goneNow && emu.driverOK && emu.reconnects == 1)
            #expect(reconnections == 1)
            #expect(pool.inUse == 8, "the old rings' buffers came back; the new RX ring holds 8")
            #expect(emu.availablePending(0) == 8)
            #expect(frame(70, seed: 3).withUnsafeBytes { emu.receive($0) })
            #expect(receiveAll(&dev).frames == [frame(70, seed: 3)])
            #expect(try send([frame(64, seed: 4)], on: &dev, pool: pool) == 1)
            var seen: [[UInt8]] = []
            emu.transmitted { seen.append(Array($0)); _ = $1 }
            #expect(seen == [frame(64, seed: 4)])
            dev.stop()
        }
    }

    @Test func aDeviceThatGoesAwayEndsTheInput() throws {
        try withPool(count: 64) { pool in
            let emu = EmulatedVirtioNet()
            defer { emu.deallocate() }
            var dev = try makeDevice(emu, pool: pool, size: 8, options: VirtioNetOptions(aliveCheckInterval: 4))
            emu.disappear()
            var ended = false
            for _ in 0..<8 where !ended { ended = receiveAll(&dev).result.status.contains(.endOfInput) }
            #expect(ended)
            let gone = dev.deviceGone
            #expect(gone)
            #expect(dev.info.link.up == false)
            #expect(try send([frame(64, seed: 0)], on: &dev, pool: pool) == 0, "TX refused too")
            dev.stop()
        }
    }
}
