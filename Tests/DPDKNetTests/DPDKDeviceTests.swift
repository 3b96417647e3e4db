import DPDKNet
import Foundation
import Testing
import TestSupport
import UKNetdev

/// EAL in this test process, over DPDK's net_null (it starts once per process: every in-process
/// suite here uses this one; more ports are hot-plugged with `DPDK.attach`).
enum InProcessEAL {
    static let prefix = "uknet-t-\(getpid())-inproc"
    static let started: Result<Void, DPDKError> = {
        // EAL would pin the thread that starts it to its main lcore's CPU: here that thread is one
        // of the test runner's, which other suites use next (two threads spinning on one CPU never
        // finish), so its CPUs are kept.
        do throws(DPDKError) {
            try DPDK.initialize(arguments: ["--no-huge", "-m", "256", "--no-pci", "-l", "0", "--log-level=lib.eal:error",
                                            "--file-prefix=\(prefix)", "--vdev=net_null0", "--vdev=net_null1"], pinCallingThread: false)
            // Its runtime folder goes when the test process ends (hot-plugging needs it until then).
            atexit { try? FileManager.default.removeItem(atPath: "/var/run/dpdk/\(InProcessEAL.prefix)") }
            return .success(())
        } catch {
            return .failure(error)
        }
    }()
}

@Suite(.serialized) struct DPDKDeviceTests {
    /// Several queues where the PMD offers them: four queue pairs on net_null, a burst sent on
    /// each TX queue and received on each RX queue, every buffer back in the pool at the end.
    @Test func fourQueuePairsEachCarryTraffic() throws {
        try InProcessEAL.started.get()
        let pool = try DPDK.makePool(count: 4096)
        var dev = try DPDKDevice(port: 1)
        try #require(dev.info.maxRxQueues >= 4 && dev.info.maxTxQueues >= 4, "net_null offers \(dev.info.maxRxQueues) queues")
        try dev.bringUp(rxQueues: 4, txQueues: 4, rx: RxQueueConfig(descriptors: 256, allocator: pool.rxAllocator),
                        tx: TxQueueConfig(descriptors: 256))
        #expect(dev.state == .running(rxQueues: 4, txQueues: 4))
        let burst = UnsafeMutableBufferPointer<NetBuf>.allocate(capacity: 32)
        defer { burst.deallocate() }
        for q in 0..<4 {
            let n = pool.allocateBulk(into: burst, length: 60 + q)
            #expect(n == 32)
            let sent = dev.txBurst(queue: q, from: UnsafeMutableBufferPointer(rebasing: burst[0..<n])).count
            NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[sent..<n]))
            #expect(sent == 32, "queue \(q)")
            let r = dev.rxBurst(queue: q, into: burst)   // net_null makes up frames on every RX queue
            #expect(r.count == 32, "queue \(q)")
            NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[0..<r.count]))
            #expect(dev.txQueueStats(q).packets == 32 && dev.txQueueStats(q).bytes == UInt64(32 * (60 + q)))
            #expect(dev.rxQueueStats(q).packets == 32)
        }
        #expect(dev.txBurst(queue: 4, from: burst) == .refused)
        var tx: UInt64 = 0
        dev.extendedStats { name, _, value in if "\(name)" == "port_tx_packets" { tx = value } }
        #expect(tx == 128, "the port's own count")
        dev.stop()
        #expect(pool.inUse == 0, "\(pool.inUse) buffers not back")
    }

    /// Port ids are not dense: a closed virtual device leaves a gap, and a port hot-plugged
    /// after one may carry an id at or above the port count. Such a port opens; the one closed is
    /// refused with the ids that exist.
    @Test func aPortAfterAGapOpensAndAClosedOneIsNamed() throws {
        try InProcessEAL.started.get()
        let first = try DPDK.attach(device: "net_null_gap_a")
        let second = try DPDK.attach(device: "net_null_gap_b")
        do { _ = try DPDKDevice(port: first) }   // its deinit closes the port
        #expect(!DPDK.portIDs.contains(first) && DPDK.portIDs.contains(second))
        let dev = try DPDKDevice(port: second)
        #expect(dev.info.maxRxQueues >= 1)
        do {
            _ = try DPDKDevice(port: first)
            Issue.record("a closed port opened")
        } catch {
            #expect("\(error)".contains("DPDK has no port \(first) (ports: ") && "\(error)".contains("--port=\(second)"), "\(error)")
        }
    }

    /// A queue the PMD refuses (here: buffers smaller than DPDK's 128-byte headroom needs): one
    /// message saying what was asked, what the port takes and what to change; nothing held.
    @Test func aRefusedQueueSaysWhatToChange() throws {
        try InProcessEAL.started.get()
        let pool = try DPDK.makePool(count: 512, roomSize: 96, headroom: 0)
        defer { try? DPDK.destroyPool(pool) }
        var dev = try DPDKDevice(port: 0)
        do {
            try dev.bringUp(rx: RxQueueConfig(descriptors: 256, allocator: pool.rxAllocator), tx: TxQueueConfig(descriptors: 256))
            Issue.record("net_null took 96-byte buffers")
        } catch {
            let text = "\(error)"
            #expect(text.contains("refused RX queue 0") && text.contains("buffers of 96 bytes") && text.contains("at least 128 bytes"), "\(text)")
        }
        #expect(pool.inUse == 0)
    }
}
