import Testing
import TestSupport
import UKNetdev
import UKNetdevLinux

func fill(_ pool: NetBufPool, _ burst: Burst, _ n: Int, firstSeq: UInt32 = 0, length: Int = 60) throws -> Int {
    let got = pool.allocateBulk(into: burst.prefix(n))
    for i in 0..<got {
        try burst[i].setLength(length)
        burst[i].data.storeBytes(of: firstSeq + UInt32(i), as: UInt32.self)
    }
    return got
}

@Suite struct DeviceContractTests {
    @Test func lifeCycleIsEnforced() throws {
        let ring = RingDevice.pair(queues: 2, slots: 64)
        var a = ring.a
        #expect(a.state == .unconfigured)
        #expect(throws: NetDeviceError.invalidState(.unconfigured)) { try a.setupRxQueue(0, RxQueueConfig(descriptors: 32)) }
        #expect(throws: NetDeviceError.invalidState(.unconfigured)) { try a.start() }
        #expect(throws: NetDeviceError.invalidQueueCount(requested: 3, max: 2)) { try a.configure(DeviceConfig(rxQueues: 3, txQueues: 1)) }
        try a.configure(DeviceConfig(rxQueues: 2, txQueues: 2))
        #expect(throws: NetDeviceError.invalidQueue(2)) { try a.setupTxQueue(2, TxQueueConfig(descriptors: 32)) }
        #expect(throws: NetDeviceError.invalidDescriptorCount(requested: 65, limits: a.info.txDescriptors)) {
            try a.setupTxQueue(0, TxQueueConfig(descriptors: 65))
        }
        try a.setupRxQueue(0, RxQueueConfig(descriptors: 64))
        try a.setupTxQueue(0, TxQueueConfig(descriptors: 64))
        try a.setupTxQueue(1, TxQueueConfig(descriptors: 64))
        #expect(throws: NetDeviceError.queueNotSetUp(rx: true, queue: 1)) { try a.start() }
        try a.setupRxQueue(1, RxQueueConfig(descriptors: 64))
        try a.start()
        #expect(a.state == .running(rxQueues: 2, txQueues: 2))
        #expect(throws: NetDeviceError.invalidState(.running(rxQueues: 2, txQueues: 2))) { try a.configure(DeviceConfig()) }
        let burst = Burst(4)
        #expect(a.rxBurst(queue: 2, into: burst.prefix(4)) == .refused)
        #expect(a.rxBurst(queue: -1, into: burst.prefix(4)) == .refused)
        a.stop()
        #expect(a.rxBurst(queue: 0, into: burst.prefix(4)) == .refused)
    }

    @Test func descriptorLimitRules() {
        let l = DescriptorLimits(min: 64, max: 4096, alignment: 8, powerOfTwo: true)
        #expect(throws: Never.self) { try l.check(256) }
        #expect(throws: NetDeviceError.self) { try l.check(32) }
        #expect(throws: NetDeviceError.self) { try l.check(8192) }
        #expect(throws: NetDeviceError.self) { try l.check(200) }
        #expect(throws: NetDeviceError.self) { try l.check(68) }
    }
}

@Suite struct RingDeviceTests {
    @Test func packetsCrossInOrderAndTxIsPartialWhenFull() throws {
        try withPool(count: 128) { pool in
            let ring = RingDevice.pair(queues: 1, slots: 64)
            var a = ring.a, b = ring.b
            try a.bringUp(rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 16))
            try b.bringUp(rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 64))
            let burst = Burst(32)
            let n = try fill(pool, burst, 32)
            let sent = a.txBurst(queue: 0, from: burst.prefix(n))
            #expect(sent.count == 16, "TX descriptors limit the ring to 16")
            #expect(sent.status == .success, "no room left: no MORE")
            // The caller keeps the 16 refused packets.
            NetBuf.releaseBulk(burst.suffix(from: 16))
            let rx = Burst(32)
            let got = b.rxBurst(queue: 0, into: rx.prefix(10))
            #expect(got == BurstResult(count: 10, status: [.success, .more]))
            let got2 = b.rxBurst(queue: 0, into: rx.suffix(from: 10))
            #expect(got2.count == 6)
            #expect(!got2.status.contains(.more))
            for i in 0..<16 { #expect(rx[i].data.load(as: UInt32.self) == UInt32(i)) }
            #expect(a.txQueueStats(0) == QueueStats(packets: 16, bytes: 16 * 60))
            #expect(b.rxQueueStats(0) == QueueStats(packets: 16, bytes: 16 * 60))
            #expect(b.stats.rx.packets == 16)
            NetBuf.releaseBulk(rx.prefix(16))
        }
    }

    @Test func buffersLeftInFlightAreReleasedWithTheDevice() throws {
        try withPool(count: 8) { pool in
            do {
                let ring = RingDevice.pair()
                var a = ring.a, b = ring.b
                try a.bringUp(rx: RxQueueConfig(descriptors: 8), tx: TxQueueConfig(descriptors: 8))
                try b.bringUp(rx: RxQueueConfig(descriptors: 8), tx: TxQueueConfig(descriptors: 8))
                let burst = Burst(8)
                let n = try fill(pool, burst, 8)
                #expect(a.txBurst(queue: 0, from: burst.prefix(n)).count == 8)
                #expect(pool.inUse == 8)
            }
            #expect(pool.inUse == 0)
        }
    }

    @Test func loopbackFeedsItself() throws {
        try withPool { pool in
            var lo = RingDevice.loopback(queues: 2)
            try lo.bringUp(rxQueues: 2, txQueues: 2, rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 64))
            let burst = Burst(4)
            let n = try fill(pool, burst, 4, firstSeq: 7)
            #expect(lo.txBurst(queue: 1, from: burst.prefix(n)).count == 4)
            #expect(lo.rxBurst(queue: 0, into: burst.prefix(4)).count == 0, "queues are separate")
            #expect(lo.rxBurst(queue: 1, into: burst.prefix(4)).count == 4)
            #expect(burst[3].data.load(as: UInt32.self) == 10)
            NetBuf.releaseBulk(burst.prefix(4))
        }
    }

    @Test func eventModeWakesAWaiterOnAnotherThread() throws {
        try withPool { pool in
            let ring = RingDevice.pair()
            var a = ring.a, b = ring.b
            let event = try EventFD()
            try a.bringUp(rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 64))
            try b.bringUp(rx: RxQueueConfig(descriptors: 64, notifier: event.notifier), tx: TxQueueConfig(descriptors: 64))
            #expect(b.rxEventSource(queue: 0) == .fileDescriptor(event.fd))
            #expect(throws: NetDeviceError.notSupported) { try a.setRxEvents(queue: 0, enabled: true) }
            try b.setRxEvents(queue: 0, enabled: true)
            #expect(event.wait(timeoutMilliseconds: 0) == 0, "nothing yet")
            let sender = SendableBox(a)
            let thread = TestThread {
                let burst = Burst(1)
                let n = try! fill(pool, burst, 1, firstSeq: 42)
                _ = sender.value.txBurst(queue: 0, from: burst.prefix(n))
            }
            #expect(event.wait(timeoutMilliseconds: 5000) == 1, "the peer's TX signalled once")
            thread.join()
            let rx = Burst(4)
            #expect(b.rxBurst(queue: 0, into: rx.prefix(4)).count == 1)
            #expect(rx[0].data.load(as: UInt32.self) == 42)
            rx[0].release()
            // Disarmed after one signal: further TX does not signal.
            let burst = Burst(1)
            let n = try fill(pool, burst, 1)
            _ = sender.value.txBurst(queue: 0, from: burst.prefix(n))
            #expect(event.wait(timeoutMilliseconds: 0) == 0)
            #expect(b.rxBurst(queue: 0, into: rx.prefix(4)).count == 1)
            rx[0].release()
        }
    }
}

@Suite struct NullDeviceTests {
    @Test func txFreesAndCounts() throws {
        try withPool { pool in
            var null = NullDevice()
            try null.bringUp(rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 64))
            let burst = Burst(32)
            let n = try fill(pool, burst, 32, length: 100)
            #expect(null.txBurst(queue: 0, from: burst.prefix(n)).count == 32)
            #expect(pool.inUse == 0)
            #expect(null.txQueueStats(0) == QueueStats(packets: 32, bytes: 3200))
            #expect(null.rxBurst(queue: 0, into: burst.prefix(8)) == BurstResult(count: 0, status: .success))
        }
    }

    @Test func rxCopiesTheTemplateAndReportsUnderrun() throws {
        try withPool(count: 40) { pool in
            let template: [UInt8] = (0..<60).map { UInt8($0) }
            var null = NullDevice(rxTemplate: template)
            try null.configure(DeviceConfig())
            #expect(throws: NetDeviceError.missingAllocator) { try null.setupRxQueue(0, RxQueueConfig(descriptors: 64)) }
            try null.setupRxQueue(0, RxQueueConfig(descriptors: 64, allocator: pool.rxAllocator))
            try null.setupTxQueue(0, TxQueueConfig(descriptors: 64))
            try null.start()
            let burst = Burst(32)
            let r1 = null.rxBurst(queue: 0, into: burst.prefix(32))
            #expect(r1 == BurstResult(count: 32, status: [.success, .more]))
            #expect(burst[31].length == 60)
            #expect(burst[31].data.load(fromByteOffset: 59, as: UInt8.self) == 59)
            let second = Burst(32)
            let r2 = null.rxBurst(queue: 0, into: second.prefix(32))
            #expect(r2 == BurstResult(count: 8, status: [.success, .underrun]))
            #expect(pool.allocationFailures == 24)
            NetBuf.releaseBulk(burst.prefix(32))
            NetBuf.releaseBulk(second.prefix(8))
        }
    }

    @Test func templateLargerThanBuffersIsAnErrorNotAnOverflow() throws {
        try withPool(count: 8, roomSize: 64, headroom: 32) { pool in
            let template = [UInt8](repeating: 7, count: 60)
            var null = NullDevice(rxTemplate: template)
            try null.bringUp(rx: RxQueueConfig(descriptors: 8, allocator: pool.rxAllocator), tx: TxQueueConfig(descriptors: 8))
            let burst = Burst(4)
            #expect(null.rxBurst(queue: 0, into: burst.prefix(4)).count == 0)
            #expect(null.rxQueueStats(0).errors == 4)
        }
    }
}
