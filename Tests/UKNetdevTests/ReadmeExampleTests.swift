import Testing
import TestSupport
import UKNetdev

/// The README's usage example, kept compiling and working here.
@Suite struct ReadmeExampleTests {
    @Test func usageExample() throws {
        let pool = try NetBufPool(count: 4096, roomSize: 2048, headroom: 128)
        let ring = RingDevice.pair(queues: 1, slots: 1024)   // or NullDevice(), RingDevice.loopback()
        var a = ring.a, b = ring.b
        try a.bringUp(rx: RxQueueConfig(descriptors: 1024, allocator: pool.rxAllocator),
                      tx: TxQueueConfig(descriptors: 1024))

        let flow = UDPFlow(sourceMAC: MACAddress("02:00:00:00:00:01")!, destinationMAC: MACAddress("02:00:00:00:00:02")!,
                           source: IPv4Address("192.0.2.1")!, destination: IPv4Address("192.0.2.2")!,
                           sourcePort: 1234, destinationPort: 11211)
        let burst = UnsafeMutableBufferPointer<NetBuf>.allocate(capacity: 32)   // caller-owned, reused
        let n = pool.allocateBulk(into: burst)
        for i in 0..<n {
            let buf = burst[i]
            try buf.setLength(18)                           // UDP payload
            try buf.prependUDPHeaders(flow)                 // Ethernet/IPv4/UDP built in the headroom
        }
        let sent = a.txBurst(queue: 0, from: UnsafeMutableBufferPointer(rebasing: burst[0..<n])).count
        NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[sent..<n]))   // the caller keeps what TX refused

        // What arrived on the other side is a valid 60-byte UDP frame.
        #expect(sent == 32)
        try b.bringUp(rx: RxQueueConfig(descriptors: 1024), tx: TxQueueConfig(descriptors: 1024))
        let got = b.rxBurst(queue: 0, into: burst).count
        #expect(got == 32)
        let eth = try EthernetFrame(burst[0].unsafeBytes)
        let ip = try IPv4Packet(eth.payload)
        let udp = try UDPDatagram(ip.payload)
        #expect(burst[0].length == 60)
        #expect(udp.isChecksumValid(source: ip.source, destination: ip.destination))
        NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[0..<got]))
        burst.deallocate()
        #expect(pool.inUse == 0)
        try pool.destroy()
    }
}
