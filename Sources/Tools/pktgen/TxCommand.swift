import ArgumentParser
import Glibc
import NetdevSpec
import PktGen
import ToolSupport
import UKNetdev

struct TxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tx",
        abstract: "Send Ethernet/IPv4/UDP frames built from a template.",
        discussion: """
            --size is the frame size on the wire, FCS included (64...1518), as testpmd and \
            RFC 2544 count it; frames are written without the FCS (size - 4 bytes). A list \
            (--size 64,128,1518) runs each size in turn for --count or --duration. Checksums are \
            valid unless --no-udp-checksum. With --probe each payload starts with a sequence number \
            and the transmit time, for `pktgen rx` to measure loss, reordering and latency.
            """)

    @OptionGroup var device: DeviceOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var pacing: PacingOptions

    @Option(help: "Frame size(s) with FCS, 64...1518: one, or a comma-separated list to sweep.")
    var size: String = "64"

    @Option(help: "Frames to send (per size).")
    var count: UInt64?

    @Option(help: "Seconds to send (per size); default 5 when no --count is given.")
    var duration: Double?

    @Option(help: "Seconds to keep the device up after the last frame (received frames are still drained), so that a peer that counts only while connected (DPDK's memif) can count them all.")
    var linger: Double = 0

    @Option(help: "Flows: the source port (and/or address) takes this many consecutive values.")
    var flows: Int = 1

    @Option(help: "What the flows vary: port, ip or both.")
    var vary: String = "port"

    @Flag(help: "Stamp a sequence number and the transmit time into each payload.")
    var probe = false

    @Flag(help: "Send a zero UDP checksum (none) instead of a valid one.")
    var noUdpChecksum = false

    @Option(help: "Source MAC.") var srcMac = "02:00:00:00:00:10"
    @Option(help: "Destination MAC.") var dstMac = "02:00:00:00:00:20"
    @Option(help: "Source IPv4 address.") var srcIp = "198.51.100.1"
    @Option(help: "Destination IPv4 address.") var dstIp = "198.51.100.2"
    @Option(help: "Source UDP port (of the first flow).") var srcPort: UInt16 = 1024
    @Option(help: "Destination UDP port.") var dstPort: UInt16 = 9

    func sizes() throws -> [Int] {
        let parts = size.split(separator: ",", omittingEmptySubsequences: false)
        var out: [Int] = []
        for p in parts {
            guard let s = Int(p), s >= 64, s <= 1518 else {
                throw ValidationError("--size: frame sizes with FCS, 64...1518 (frames are written without the 4-byte FCS), got '\(p)'")
            }
            out.append(s)
        }
        return out
    }

    func variation() throws -> FlowVariation {
        switch vary {
        case "port": return .sourcePort
        case "ip": return .sourceAddress
        case "both": return .both
        default: throw ValidationError("--vary: port, ip or both")
        }
    }

    mutating func validate() throws {
        try device.check()
        _ = try sizes()
        _ = try variation()
        try pacing.check()
        try checkRunLength(count: count, duration: duration, countName: "--count")
        guard linger >= 0 && linger <= 3600 else { throw ValidationError("--linger: 0...3600 seconds") }
        guard flows >= 1 && flows <= FrameSpec.maxFlows else { throw ValidationError("--flows: 1...\(FrameSpec.maxFlows)") }
        for (text, name) in [(srcMac, "--src-mac"), (dstMac, "--dst-mac")] { _ = try parseMAC(text, name) }
        for (text, name) in [(srcIp, "--src-ip"), (dstIp, "--dst-ip")] { _ = try parseIP(text, name) }
    }

    func run() throws {
        installStopSignals()
        var specs: [FrameSpec] = []
        for s in try sizes() {
            specs.append(FrameSpec(sourceMAC: try parseMAC(srcMac, ""), destinationMAC: try parseMAC(dstMac, ""),
                                   source: try parseIP(srcIp, ""), destination: try parseIP(dstIp, ""),
                                   sourcePort: srcPort, destinationPort: dstPort, frameLength: s - 4, flows: flows,
                                   variation: try variation(), probe: probe, udpChecksum: !noUdpChecksum))
        }
        // The device's RX pool (a TAP or a loopback ring hands us frames); the generator gets a
        // TX pool of its own per size, prefilled with the template (nothing else writes into it).
        let netdev = try device.spec()
        let pool = try netdev.makePool(count: 1024, roomSize: 2048, headroom: 128, threading: .singleThread)
        var runner = TxRunner(netdev: netdev, specs: specs, buffers: device.buffers, burst: pacing.burst, limit: try pacing.limit(),
                              count: count, duration: count == nil && duration == nil ? 5 : duration, live: !output.quiet,
                              linger: linger)
        // One device for the whole sweep (a pcap file holds every size, in order).
        let results = try open(netdev, pool: pool, record: device.record, options: device.openOptions, visitor: &runner)
        if output.json {
            print(JSON.object([("command", .string("tx")), ("netdev", .string(device.netdev)), ("results", .array(results.map(\.json)))]).text)
        } else {
            for r in results { print(r.text) }
        }
        if pool.inUse != 0 { printError("warning: \(pool.inUse) buffers still in use at exit") }
        exitIfDeviceLost()
    }
}

struct TxResult {
    let frameLength: Int
    let packets: UInt64
    let bytes: UInt64
    let seconds: Double
    let allocationShortfalls: UInt64
    let partialBursts: UInt64
    let received: UInt64
    let stopped: Bool

    var pps: Double { seconds > 0 ? Double(packets) / seconds : 0 }
    /// Frame bits with FCS, and on the wire with preamble and gap.
    var gbps: Double { seconds > 0 ? Double(bytes + 4 * packets) * 8 / seconds / 1e9 : 0 }
    var lineGbps: Double { seconds > 0 ? Double(bytes + 24 * packets) * 8 / seconds / 1e9 : 0 }

    var text: String {
        "tx \(frameLength + 4)-byte frames (\(frameLength) without FCS): \(packets) packets, \(bytes) bytes in \(fixed(seconds, 3)) s: "
            + "\(fixed(pps / 1e6, 3)) Mpps, \(fixed(gbps, 3)) Gbit/s (\(fixed(lineGbps, 3)) on the wire)"
            + (allocationShortfalls + partialBursts > 0 ? "; pool short \(allocationShortfalls)x, device busy \(partialBursts)x" : "")
            + (received > 0 ? "; \(received) frames received and dropped" : "")
            + (stopped ? " (stopped by signal)" : "")
    }

    var json: JSON {
        .object([("size", .int(UInt64(frameLength + 4))), ("frame_length", .int(UInt64(frameLength))), ("packets", .int(packets)),
                 ("bytes", .int(bytes)), ("seconds", .number(seconds)), ("pps", .number(pps)), ("gbps", .number(gbps)),
                 ("line_gbps", .number(lineGbps)), ("pool_short", .int(allocationShortfalls)), ("device_busy", .int(partialBursts)),
                 ("received", .int(received)), ("stopped", .bool(stopped))])
    }
}

/// The TX loop, once per frame size, on whatever device the spec names.
struct TxRunner: NetDeviceVisitor {
    /// The device, for pools it can carry.
    let netdev: NetdevSpec
    let specs: [FrameSpec]
    let buffers: Int
    let burst: Int
    let limit: RateLimit
    let count: UInt64?
    let duration: Double?
    let live: Bool
    /// Seconds the device stays up after the last size (RX drained meanwhile).
    var linger: Double = 0

    mutating func visit<D: NetDevice & ~Copyable>(_ device: inout D) throws -> [TxResult] {
        var results: [TxResult] = []
        for spec in specs where stopRequested == 0 {
            let template = try FrameTemplate(spec)
            defer { template.deallocate() }
            let pool = try netdev.makePool(count: buffers, roomSize: 2048, headroom: 128, threading: .singleThread)
            results.append(try send(&device, template: template, pool: pool))
            // Frames the device still holds (virtio frees them when the backend has sent them):
            // empty bursts take them back, for up to a second (none come back from a backend
            // that went away).
            var waits = 0
            while pool.inUse != 0 && waits < 1000 && device.info.link.up {
                _ = device.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: nil, count: 0))
                if pool.inUse != 0 { usleep(1000) }
                waits += 1
            }
            if pool.inUse == 0 { try netdev.destroyPool(pool) } else { printError("warning: \(pool.inUse) TX buffers still in use") }
        }
        if linger > 0 {
            var drain = RxDrain()
            defer { drain.deallocate() }
            let until = monotonicNanoseconds() + UInt64(linger * 1e9)
            while monotonicNanoseconds() < until && stopRequested == 0 {
                if drain.drain(&device) { break }
                usleep(1000)
            }
        }
        return results
    }

    func send<D: NetDevice & ~Copyable>(_ device: inout D, template: FrameTemplate, pool: NetBufPool) throws -> TxResult {
        var gen = try TxGenerator(template: template, pool: pool, burstSize: burst, prefilled: true)
        var drain = RxDrain()
        defer { drain.deallocate() }
        let start = monotonicNanoseconds()
        let total = count ?? .max
        let deadline = duration.map { start + UInt64($0 * 1e9) } ?? .max
        var pacer = limit.pacer(frameLength: template.frameLength, burst: burst, start: start)
        // Read the clock every burst when it matters (pacing, timestamps), else every 64 bursts
        // (a power of two: the test is a mask).
        let clockEvery = pacer != nil || template.spec.probe ? 1 : 64
        var line = LiveLine(enabled: live, start: start, duration: duration.map { UInt64($0 * 1e9) })
        var lastPackets: UInt64 = 0
        var now = start
        var rounds = 0
        var refusedInARow = 0
        while gen.stats.packets < total && now < deadline && stopRequested == 0 {
            var allowance = Int(min(UInt64(burst), total - gen.stats.packets))
            if pacer != nil { allowance = min(allowance, pacer!.available(now: now)) }
            if allowance > 0 {
                let sent = gen.send(on: &device, limit: allowance, now: now)
                if pacer != nil { pacer!.consume(sent) }
                // The device is full. A poller on the other side (a vhost-user backend) drains it
                // within microseconds: spin a little before sleeping (a TAP, a file).
                if sent == 0 {
                    refusedInARow &+= 1
                    if refusedInARow > 256 { usleep(20) }
                } else {
                    refusedInARow = 0
                }
            } else if let p = pacer {
                waitFor(p)
            }
            rounds &+= 1
            if rounds & (clockEvery - 1) == 0 {
                now = monotonicNanoseconds()
                if rounds & 255 == 0 {
                    if drain.drain(&device) { break }   // the device ended (a vhost-user backend went away)
                }
                if line.due(now) {
                    let p = gen.stats.packets
                    let progress = count.map { Double(p) / Double($0) }
                    line.show(now, "tx \(template.frameLength + 4)B  \(fixed(Double(p - lastPackets) / 1e6, 3)) Mpps  total \(p)", progress: progress)
                    lastPackets = p
                }
            }
        }
        // Frames built and not yet taken: give the device a moment (not one whose backend went
        // away: it takes nothing any more), then let them go.
        let flushDeadline = monotonicNanoseconds() + 1_000_000_000
        while gen.unsent > 0 && monotonicNanoseconds() < flushDeadline && device.info.link.up {
            if gen.send(on: &device, limit: gen.unsent, now: now) == 0 { usleep(100) }
        }
        let end = monotonicNanoseconds()
        drain.drain(&device)
        line.finish()
        return TxResult(frameLength: template.frameLength, packets: gen.stats.packets, bytes: gen.stats.bytes,
                        seconds: Double(end - start) / 1e9, allocationShortfalls: gen.stats.allocationShortfalls,
                        partialBursts: gen.stats.partialBursts, received: drain.frames, stopped: stopRequested != 0)
    }
}
