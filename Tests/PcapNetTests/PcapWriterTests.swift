import Foundation
import Testing
import TestSupport
import UKNetdev
import PcapNet

@Suite struct PcapWriterTests {
    /// A's side of a ring pair, recorded: A sends 40 frames into a TX queue that takes at most
    /// 10 per burst (refused ones are offered again), B echoes each back, A receives them.
    /// The file must hold exactly what crossed A, in order, each packet once.
    @Test func recordsExactlyWhatCrossedTheDevice() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let path = dir.file("ring.pcap")
        var crossed: [[UInt8]] = []
        try withPool { pool in
            let ring = RingDevice.pair(slots: 64)
            let rawA = ring.a, rawB = ring.b
            var a = try PcapWriter(inner: rawA, path: path, timestamps: .fixed(seconds: 1_700_000_000))
            var b = rawB
            try a.bringUp(rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 10))
            try b.bringUp(rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 64))
            let out = Burst(16), inb = Burst(16)
            var next = 0, held = 0
            var rounds = 0
            while (next < 40 || held > 0 || a.inner.rxPending(queue: 0) > 0 || b.rxPending(queue: 0) > 0) && rounds < 1000 {
                rounds += 1
                while held < 16 && next < 40 {
                    out[held] = try udpFrame(pool, sequence: next, payload: 20 + next)
                    held += 1
                    next += 1
                }
                let r = a.txBurst(queue: 0, from: out.prefix(held))
                // (the ring moved handles only: the bytes are intact until B reads them)
                for i in 0..<r.count { crossed.append(bytes(of: out[i])) }
                for i in r.count..<held { out[i - r.count] = out[i] }
                held -= r.count
                // B echoes everything back with the addresses swapped, so the copies differ.
                let got = b.rxBurst(queue: 0, into: inb.prefix(16))
                for i in 0..<got.count {
                    let frame = try EthernetFrame(inb[i].unsafeBytes)
                    frame.reply(from: MACAddress("02:00:00:00:00:02")!)
                }
                let sent = b.txBurst(queue: 0, from: inb.prefix(got.count))
                #expect(sent.count == got.count)
                let back = a.rxBurst(queue: 0, into: inb.prefix(16))
                for i in 0..<back.count { crossed.append(bytes(of: inb[i])) }
                NetBuf.releaseBulk(inb.prefix(back.count))
            }
            #expect(rounds < 1000)
            #expect(a.recordedPackets == 80)
            #expect(a.recordedPackets == a.stats.rx.packets + a.stats.tx.packets)
            #expect(a.recordedBytes == a.stats.rx.bytes + a.stats.tx.bytes)
            try a.flush()
            let (recorded, _) = try readPcap(path, pool: pool)
            #expect(recorded == crossed)
            a.stop()
            b.stop()
        }
        try expectCleanDecode(path)
    }

    @Test func recordsOnlyTheDirectionsAskedFor() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        try withPool { pool in
            for (name, directions, expected) in [("rx", PcapDirections.rx, 5), ("tx", .tx, 5), ("both", .both, 10)] {
                let path = dir.file("\(name).pcap")
                var dev = try PcapWriter(inner: RingDevice.loopback(slots: 16), path: path, directions: directions)
                try dev.bringUp(rx: RxQueueConfig(descriptors: 16), tx: TxQueueConfig(descriptors: 16))
                let burst = Burst(8)
                for i in 0..<5 { burst[i] = try udpFrame(pool, sequence: i, payload: 10) }
                #expect(dev.txBurst(queue: 0, from: burst.prefix(5)).count == 5)
                for want in [3, 2] {
                    let r = dev.rxBurst(queue: 0, into: burst.prefix(want))
                    #expect(r.count == want)
                    NetBuf.releaseBulk(burst.prefix(r.count))
                }
                #expect(dev.recordedPackets == UInt64(expected))
                dev.stop()
                let (recorded, _) = try readPcap(path, pool: pool)
                #expect(recorded.count == expected, "\(name)")
            }
        }
    }

    /// A device that frees at once (null) must still have its TX packets recorded intact: the
    /// writer holds a reference across the inner call.
    @Test func packetsFreedByTheInnerDeviceAreRecordedIntact() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let path = dir.file("null.pcap")
        try withPool { pool in
            var dev = try PcapWriter(inner: NullDevice(), path: path)
            try dev.bringUp(rx: RxQueueConfig(descriptors: 16), tx: TxQueueConfig(descriptors: 16))
            let burst = Burst(4)
            var expected: [[UInt8]] = []
            for i in 0..<4 {
                burst[i] = try udpFrame(pool, sequence: i, payload: 100)
                expected.append(bytes(of: burst[i]))
            }
            #expect(dev.txBurst(queue: 0, from: burst.prefix(4)).count == 4)
            #expect(pool.inUse == 0)
            dev.stop()
            let (recorded, _) = try readPcap(path, pool: pool)
            #expect(recorded == expected)
        }
        try expectCleanDecode(path)
    }

    @Test func aWriterThatGoesAwayFlushes() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let path = dir.file("gone.pcap")
        try withPool { pool in
            do {
                var dev = try PcapWriter(inner: NullDevice(), path: path)
                try dev.bringUp(rx: RxQueueConfig(descriptors: 16), tx: TxQueueConfig(descriptors: 16))
                let burst = Burst(2)
                for i in 0..<2 { burst[i] = try udpFrame(pool, sequence: i, payload: 100) }
                _ = dev.txBurst(queue: 0, from: burst.prefix(2))
            }
            let (recorded, _) = try readPcap(path, pool: pool)
            #expect(recorded.count == 2)
        }
    }

    @Test func anUnwritablePathIsATypedError() throws {
        #expect(throws: PcapDeviceError.self) {
            _ = try PcapWriter(inner: NullDevice(), path: "/nonexistent-dir-uknet/x.pcap")
        }
    }
}
