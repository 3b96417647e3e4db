import Testing
import TestSupport
import UKNetdev

@Suite struct RingThreadTests {
    /// Ten million numbered packets from one thread to another through a ring pair, buffers
    /// allocated on one side and freed on the other (a thread-safe pool): none lost, none
    /// reordered, none leaked.
    @Test func tenMillionPacketsAcrossTwoThreads() throws {
        let total: UInt32 = 10_000_000
        try withPool(count: 2048, roomSize: 256, headroom: 64, threading: .threadSafe) { pool in
            let ring = RingDevice.pair(slots: 512)
            var a = ring.a, b = ring.b
            try a.bringUp(rx: RxQueueConfig(descriptors: 512), tx: TxQueueConfig(descriptors: 512))
            try b.bringUp(rx: RxQueueConfig(descriptors: 512), tx: TxQueueConfig(descriptors: 512))
            let sender = SendableBox(a)
            let producer = TestThread {
                let burst = Burst(32)
                var next: UInt32 = 0
                var held = 0
                while next < total || held > 0 {
                    if held < 32 && next < total {
                        let want = min(32 - held, Int(total - next))
                        let got = pool.allocateBulk(into: UnsafeMutableBufferPointer(rebasing: burst.storage[held..<(held + want)]))
                        for i in held..<(held + got) {
                            let p = burst[i]
                            try! p.setLength(64)
                            p.data.storeBytes(of: next, as: UInt32.self)
                            next += 1
                        }
                        held += got
                    }
                    let sent = sender.value.txBurst(queue: 0, from: burst.prefix(held)).count
                    if sent < held {
                        for i in sent..<held { burst[i - sent] = burst[i] }
                    }
                    held -= sent
                }
            }
            let rx = Burst(32)
            var expected: UInt32 = 0
            var errors = 0
            var spins = 0
            while expected < total && spins < 200_000_000 {
                let n = b.rxBurst(queue: 0, into: rx.prefix(32)).count
                if n == 0 { spins += 1; continue }
                for i in 0..<n {
                    let seq = rx[i].data.load(as: UInt32.self)
                    if seq != expected || rx[i].length != 64 { errors += 1 }
                    expected = seq &+ 1
                }
                NetBuf.releaseBulk(rx.prefix(n))
            }
            producer.join()
            #expect(expected == total, "all packets arrived")
            #expect(errors == 0, "no loss, no reordering, no damage")
            #expect(b.rxPending(queue: 0) == 0)
            #expect(sender.value.txQueueStats(0).packets == UInt64(total))
            #expect(b.rxQueueStats(0).packets == UInt64(total))
            #expect(b.rxQueueStats(0).bytes == UInt64(total) * 64)
        }
    }
}
