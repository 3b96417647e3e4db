import Foundation
import PktGen
import Testing
import TestSupport
import UKNetdev

/// Checks one received frame the way a peer would: Ethernet/IPv4/UDP, both checksums valid.
func checkFrame(_ buf: NetBuf, length: Int, spec: FrameSpec) -> (port: UInt16, source: IPv4Address)? {
    guard buf.length == length, let eth = try? EthernetFrame(buf.unsafeBytes), eth.etherType == EtherType.ipv4,
          eth.destination == spec.destinationMAC, eth.source == spec.sourceMAC,
          let ip = try? IPv4Packet(eth.payload), ip.isHeaderChecksumValid, ip.totalLength == length - 14,
          ip.destination == spec.destination, let udp = try? UDPDatagram(ip.payload),
          udp.destinationPort == spec.destinationPort else { return nil }
    if spec.udpChecksum {
        guard udp.checksum != 0, udp.isChecksumValid(source: ip.source, destination: ip.destination) else { return nil }
    } else {
        guard udp.checksum == 0 else { return nil }
    }
    return (udp.sourcePort, ip.source)
}

@Suite struct TxRxTests {
    /// tx -> ring -> rx: every frame arrives, in order, with its size, flow fields, valid
    /// checksums and its sequence number; the meter counts no loss, reordering or duplicates.
    @Test(arguments: [60, 61, 64, 128, 1000, 1514], [false, true])
    func txThroughRingToRx(frameLength: Int, prefilled: Bool) throws {
        try withPool(count: 512) { pool in
            let ring = try ringPair(slots: 256)
            var a = ring.a, b = ring.b
            let spec = FrameSpec(frameLength: frameLength, flows: 5, variation: .both, probe: true)
            let template = try FrameTemplate(spec)
            defer { template.deallocate() }
            var gen = try TxGenerator(template: template, pool: pool, burstSize: 32, prefilled: prefilled)
            var meter = RxMeter(latency: LatencySummary())
            defer { meter.deallocate() }
            let total = 3000
            let burst = Burst(64)
            var sent = 0, received = 0, clock: UInt64 = 1_000
            while received < total {
                clock += 100
                sent += gen.send(on: &a, limit: total - sent, now: clock)
                let n = b.rxBurst(queue: 0, into: burst.storage).count
                for i in 0..<n {
                    let buf = burst[i]
                    let fields = checkFrame(buf, length: frameLength, spec: spec)
                    #expect(fields != nil, "frame \(received + i) is not a valid frame of the spec")
                    // Flow i % 5: source port and address both advance with it.
                    let flow = (received + i) % 5
                    #expect(fields?.port == spec.sourcePort + UInt16(flow))
                    #expect(fields?.source == IPv4Address(value: spec.source.value + UInt32(flow)))
                    meter.count(buf, now: clock + 50)
                }
                NetBuf.releaseBulk(burst.prefix(n))
                received += n
                #expect(clock < 10_000_000, "stalled")
                if clock >= 10_000_000 { break }
            }
            #expect(gen.stats.packets == UInt64(total) && gen.stats.bytes == UInt64(total * frameLength))
            let s = meter.stats
            #expect(s.packets == UInt64(total) && s.probes == UInt64(total) && s.unique == UInt64(total))
            #expect(s.bytes == UInt64(total * frameLength))
            #expect(s.expected == UInt64(total) && s.lost == 0 && s.reordered == 0 && s.duplicates == 0 && s.other == 0)
            #expect(meter.latency.count == UInt64(total) && meter.latency.minimum >= 50)
        }
    }

    /// A prefilled generator needs its pool whole.
    @Test func prefilledNeedsAWholePool() throws {
        try withPool(count: 8) { pool in
            let template = try FrameTemplate(FrameSpec())
            defer { template.deallocate() }
            let held = try #require(pool.allocate())
            #expect(throws: PktGenError.poolInUse(1)) { _ = try TxGenerator(template: template, pool: pool, prefilled: true) }
            held.release()
        }
    }

    /// Without probes and with one flow the template goes out unchanged; without a UDP checksum
    /// the field is zero.
    @Test func plainFramesAndNoChecksum() throws {
        try withPool { pool in
            let ring = try ringPair(slots: 64)
            var a = ring.a, b = ring.b
            for udpChecksum in [true, false] {
                let spec = FrameSpec(frameLength: 60, udpChecksum: udpChecksum)
                let template = try FrameTemplate(spec)
                defer { template.deallocate() }
                var gen = try TxGenerator(template: template, pool: pool, burstSize: 8)
                #expect(gen.send(on: &a, limit: 8, now: 0) == 8)
                let burst = Burst(8)
                #expect(b.rxBurst(queue: 0, into: burst.storage).count == 8)
                for i in 0..<8 { #expect(checkFrame(burst[i], length: 60, spec: spec)?.port == spec.sourcePort) }
                NetBuf.releaseBulk(burst.storage)
            }
        }
    }

    /// What the device refuses is kept, in order, and sent first next time: the sequence
    /// numbers on the wire have no gap even when the ring is full most of the time.
    @Test func refusedFramesGoFirstNextTime() throws {
        try withPool(count: 256) { pool in
            let ring = try ringPair(slots: 16)
            var a = ring.a, b = ring.b
            let template = try FrameTemplate(FrameSpec(probe: true))
            defer { template.deallocate() }
            var gen = try TxGenerator(template: template, pool: pool, burstSize: 32)
            var meter = RxMeter(latency: LatencySummary())
            defer { meter.deallocate() }
            let burst = Burst(5)
            for round in 0..<400 {
                _ = gen.send(on: &a, limit: 32, now: UInt64(round))
                let n = b.rxBurst(queue: 0, into: burst.storage).count   // drain slower than the sender
                for i in 0..<n { meter.count(burst[i], now: UInt64(round)) }
                NetBuf.releaseBulk(burst.prefix(n))
            }
            #expect(gen.stats.partialBursts > 0)
            #expect(meter.stats.unique == meter.stats.expected && meter.stats.lost == 0 && meter.stats.reordered == 0)
            #expect(meter.stats.unique > 1000)
        }
    }

    /// The meter's accounting of loss, reordering and duplicates, from sequence numbers alone.
    @Test func meterCountsLossReorderingAndDuplicates() throws {
        try withPool { pool in
            let template = try FrameTemplate(FrameSpec(probe: true))
            defer { template.deallocate() }
            var meter = RxMeter(latency: LatencySummary())
            defer { meter.deallocate() }
            let buf = try #require(pool.allocate())
            defer { buf.release() }
            try buf.setLength(60)
            // 0 1 2 5 4 4 9 3 ... : 6, 7, 8 lost; 4 and 3 late; one duplicate 4.
            for s: UInt64 in [0, 1, 2, 5, 4, 4, 9, 3] {
                template.write(into: buf.data, flow: 0, sequence: s, time: 0)
                meter.count(buf, now: 10)
            }
            let st = meter.stats
            #expect(st.expected == 10 && st.unique == 7 && st.lost == 3)
            #expect(st.reordered == 2 && st.duplicates == 1)
            // Far behind the window: counted apart, not as a duplicate.
            template.write(into: buf.data, flow: 0, sequence: 100_000, time: 0)
            meter.count(buf, now: 10)
            template.write(into: buf.data, flow: 0, sequence: 6, time: 0)
            meter.count(buf, now: 10)
            #expect(meter.stats.tooLate == 1)
        }
    }

    @Test func badSpecsAreErrors() throws {
        #expect(throws: PktGenError.frameLength(59)) { _ = try FrameTemplate(FrameSpec(frameLength: 59)) }
        #expect(throws: PktGenError.frameLength(1515)) { _ = try FrameTemplate(FrameSpec(frameLength: 1515)) }
        #expect(throws: PktGenError.flows(0)) { _ = try FrameTemplate(FrameSpec(flows: 0)) }
        try withPool(count: 4, roomSize: 512, headroom: 128) { pool in
            let t = try FrameTemplate(FrameSpec(frameLength: 1514))
            defer { t.deallocate() }
            #expect(throws: PktGenError.buffersTooSmall(needed: 1514, available: 384)) { _ = try TxGenerator(template: t, pool: pool) }
        }
    }
}

@Suite struct PacerTests {
    /// The generator paced on a virtual clock that advances in uneven steps (as a real loop
    /// would): one virtual second holds the rate within 5 %, and no burst exceeds the bucket.
    @Test(arguments: [UInt64(100_000), 1_000_000])
    func packetRateHoldsOnAVirtualClock(rate: UInt64) throws {
        try withPool(count: 256) { pool in
            var null = NullDevice()
            try null.bringUp(rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 64))
            let template = try FrameTemplate(FrameSpec())
            defer { template.deallocate() }
            var gen = try TxGenerator(template: template, pool: pool, burstSize: 32)
            var pacer = Pacer(packetsPerSecond: rate, burst: 32, start: 0)
            var random = SplitMix64(seed: rate)
            var now: UInt64 = 0
            var sent = 0
            while now < 1_000_000_000 {
                now += 200 + UInt64(random.below(3_000))   // 0.2 to 3.2 us per loop
                let n = gen.send(on: &null, limit: pacer.available(now: now), now: now)
                #expect(n <= 32)
                pacer.consume(n)
                sent += n
            }
            let error = abs(Double(sent) - Double(rate)) / Double(rate)
            #expect(error < 0.05, "\(sent) packets in one virtual second at \(rate) pps")
            #expect(pool.inUse == 0)
        }
    }

    /// Low rates hold too (integer credit, no rounding drift), and a bit rate counts the wire
    /// overhead (FCS, preamble, gap: 24 bytes a frame).
    @Test func lowRatesAndBitRates() {
        var slow = Pacer(packetsPerSecond: 3, burst: 1, start: 0)
        var count = 0
        var t: UInt64 = 0
        while t < 10_000_000_000 {
            t += 1_000_000
            let n = slow.available(now: t)
            slow.consume(n)
            count += n
        }
        #expect(count == 30)
        var gbit = Pacer(bitsPerSecond: 1_000_000_000, frameLength: 1514, burst: 32, start: 0)
        count = 0
        t = 0
        while t < 1_000_000_000 {
            t += 10_000
            let n = gbit.available(now: t)
            gbit.consume(n)
            count += n
        }
        #expect(abs(count - 1_000_000_000 / (1538 * 8)) <= 1, "\(count) frames of 1514 bytes in a second at 1 Gbit/s")
        #expect(gbit.nanosecondsUntilNext > 0 && gbit.nanosecondsUntilNext <= 12_304)
    }
}
