// The whole driver (VirtioNet's rings over the vhost-user transport) against testpmd's net_vhost,
// as a library user drives it: several queue pairs, and event mode through the call eventfd.
import Testing
import TestSupport
import UKNetdev
import UKNetdevLinux
import VirtioNet
import VirtioNetVhostUser
#if canImport(Glibc)
import Glibc
#endif

/// Connects a device to testpmd's socket once it listens (a refusal right after start is retried).
func connectDevice(_ testpmd: TestPMD, path: String, queuePairs: Int, memory: PacketMemory) throws -> VhostUserNetDevice {
    #expect(testpmd.waitForLog("(\(path)) binding succeeded", timeout: 15), "testpmd did not create its socket:\n\(testpmd.log)")
    let deadline = Processes.monotonic() + 3
    while true {
        do {
            return try VhostUserNetDevice.vhostUser(path: path, queuePairs: queuePairs, memory: memory)
        } catch {
            guard Processes.monotonic() < deadline else { throw error }
            usleep(20_000)
        }
    }
}

/// Whether `fd` becomes readable within `milliseconds`.
func readable(_ fd: Int32, within milliseconds: Int32) -> Bool {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&p, 1, milliseconds) == 1
}

func drainEventFD(_ fd: Int32) {
    var value: UInt64 = 0
    while read(fd, &value, 8) == 8 {}
}

@Suite(.serialized, .enabled(if: TestPMD.isAvailable, "dpdk-testpmd is not installed (Debian package dpdk-dev; make test installs it)"))
struct VhostUserDeviceTests {
    @Test func twoQueuePairsBothCarryTraffic() throws {
        let dir = TemporaryDirectory(purpose: "vhost-mq")
        let path = dir.file("mq.sock")
        let testpmd = try TestPMD(vdevs: ["net_vhost0,iface=\(path),queues=2"],
                                  testpmdArguments: ["--forward-mode=rxonly", "--rxq=2", "--txq=2"], directory: dir)
        defer { _ = testpmd.stop() }
        let memory = try PacketMemory(size: 64 << 20)
        let pool = try memory.makePool(count: 2048)
        do {
            var dev = try connectDevice(testpmd, path: path, queuePairs: 2, memory: memory)
            #expect(dev.info.maxTxQueues == 2)
            try dev.bringUp(rxQueues: 2, txQueues: 2, rx: RxQueueConfig(descriptors: 256, allocator: pool.rxAllocator),
                            tx: TxQueueConfig(descriptors: 256))
            #expect(testpmd.waitForLog("virtio is now ready for processing", timeout: 10), "\(testpmd.log)")
            for vring in 0..<4 { #expect(testpmd.log.contains("set queue enable: 1 to qp idx: \(vring)")) }
            // 1,000 frames on each TX queue.
            let burst = Burst(32)
            for queue in 0..<2 {
                var sent = 0
                let deadline = Processes.monotonic() + 10
                while sent < 1000 && Processes.monotonic() < deadline {
                    let n = pool.allocateBulk(into: burst.prefix(min(32, 1000 - sent)), length: 60)
                    let taken = dev.txBurst(queue: queue, from: burst.prefix(n)).count
                    NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst.storage[taken..<n]))
                    sent += taken
                }
                #expect(sent == 1000)
                #expect(dev.txQueueStats(queue).packets == 1000)
            }
            usleep(500_000)
            dev.stop()
            #expect(pool.inUse == 0, "every buffer back after stop")
        }
        _ = testpmd.stop()
        #expect(testpmd.statistics[0]?.rxPackets == 2000, "testpmd received both queues' frames:\n\(testpmd.log.suffix(2000))")
    }

    @Test func eventModeWakesOnTheCallEventFDAndPollingModeGetsNoCalls() throws {
        let dir = TemporaryDirectory(purpose: "vhost-events")
        let path = dir.file("ev.sock")
        let memory = try PacketMemory(size: 64 << 20)
        let pool = try memory.makePool(count: 1024)
        // txonly: testpmd sends as soon as the device is ready, continuously.
        let testpmd = try TestPMD(vdevs: ["net_vhost0,iface=\(path)"], testpmdArguments: ["--forward-mode=txonly"], directory: dir)
        defer { _ = testpmd.stop() }
        do {
            var dev = try connectDevice(testpmd, path: path, queuePairs: 1, memory: memory)
            #expect(dev.info.features.contains(.rxEvents))
            try dev.bringUp(rx: RxQueueConfig(descriptors: 256, allocator: pool.rxAllocator), tx: TxQueueConfig(descriptors: 256))
            guard case .platformHandle(let handle) = dev.rxEventSource(queue: 0) else {
                Issue.record("no call eventfd")
                return
            }
            let fd = Int32(handle)
            #expect(testpmd.waitForLog("virtio is now ready for processing", timeout: 10))
            let burst = Burst(32)
            // Polling (calls suppressed): frames arrive, the backend does not signal.
            var received = 0
            let deadline = Processes.monotonic() + 10
            while received < 10_000 && Processes.monotonic() < deadline {
                let r = dev.rxBurst(queue: 0, into: burst.storage)
                NetBuf.releaseBulk(burst.prefix(r.count))
                received += r.count
            }
            #expect(received >= 10_000)
            drainEventFD(fd)
            for _ in 0..<1000 {
                let r = dev.rxBurst(queue: 0, into: burst.storage)
                NetBuf.releaseBulk(burst.prefix(r.count))
            }
            #expect(!readable(fd, within: 0), "no call while polling")
            // Event mode as the contract says: arm, poll once more (here it takes what filled the
            // ring meanwhile and refills it), then wait on the eventfd: the backend's call wakes us.
            try dev.setRxEvents(queue: 0, enabled: true)
            let more = dev.rxBurst(queue: 0, into: burst.storage)
            NetBuf.releaseBulk(burst.prefix(more.count))
            #expect(readable(fd, within: 5000), "the backend signalled the call eventfd")
            drainEventFD(fd)
            let r = dev.rxBurst(queue: 0, into: burst.storage)
            #expect(r.count > 0, "frames waiting after the wake-up")
            NetBuf.releaseBulk(burst.prefix(r.count))
            // That burst disarmed the queue: polling again, the backend stops calling.
            for _ in 0..<100 {
                let r = dev.rxBurst(queue: 0, into: burst.storage)
                NetBuf.releaseBulk(burst.prefix(r.count))
            }
            drainEventFD(fd)
            for _ in 0..<1000 {
                let r = dev.rxBurst(queue: 0, into: burst.storage)
                NetBuf.releaseBulk(burst.prefix(r.count))
            }
            #expect(!readable(fd, within: 0), "calls suppressed again after the wake-up")
            dev.stop()
            #expect(pool.inUse == 0)
        }
    }
}
