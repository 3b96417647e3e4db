import ArgumentParser
import Glibc
import NetdevSpec
import PktGen
import ToolSupport
import UKNetdev

struct RxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rx",
        abstract: "Count received frames: rate, bit rate, and for probe frames loss, reordering and latency.",
        discussion: """
            Probe frames are those of `pktgen tx --probe`: loss and reordering come from their \
            sequence numbers, latency from their transmit time (the sender must run on this host: \
            both read CLOCK_MONOTONIC). Ends after --count frames, --duration seconds, at the end \
            of a pcap input, or on SIGINT.
            """)

    @OptionGroup var device: DeviceOptions
    @OptionGroup var output: OutputOptions

    @Option(help: "Stop after this many frames.")
    var count: UInt64?

    @Option(help: "Stop after this many seconds.")
    var duration: Double?

    @Option(help: "Expected probe frames in all (e.g. the sender's --count): frames missing at the end count as lost too.")
    var expect: UInt64?

    mutating func validate() throws {
        try device.check()
        try checkRunLength(count: count, duration: duration, countName: "--count")
    }

    func run() throws {
        installStopSignals()
        let pool = try device.pool()
        var runner = RxRunner(count: count, duration: duration, expect: expect, live: !output.quiet)
        let r = try open(try device.spec(), pool: pool, record: device.record, options: device.openOptions, visitor: &runner)
        print(output.json ? JSON.object([("command", .string("rx")), ("netdev", .string(device.netdev))] + r.fields).text : r.text)
        if pool.inUse != 0 { printError("warning: \(pool.inUse) buffers still in use at exit") }
        exitIfDeviceLost()
    }
}

struct RxResult {
    let stats: RxStats
    let latency: HdrLatency
    let seconds: Double
    let expect: UInt64?

    /// Lost: gaps below the highest sequence number, and with --expect also the missing tail.
    var lost: UInt64 {
        guard let expect, expect > stats.expected else { return stats.lost }
        return stats.lost + (expect - stats.expected)
    }

    var pps: Double { seconds > 0 ? Double(stats.packets) / seconds : 0 }
    /// Frame bits with FCS.
    var gbps: Double { seconds > 0 ? Double(stats.bytes + 4 * stats.packets) * 8 / seconds / 1e9 : 0 }

    var fields: [(String, JSON)] {
        [("packets", .int(stats.packets)), ("bytes", .int(stats.bytes)), ("seconds", .number(seconds)),
         ("pps", .number(pps)), ("gbps", .number(gbps)),
         ("probes", .int(stats.probes)), ("lost", .int(lost)), ("reordered", .int(stats.reordered)),
         ("duplicates", .int(stats.duplicates)), ("too_late", .int(stats.tooLate)), ("other", .int(stats.other)),
         ("latency", latencyJSON(latency))]
    }

    var text: String {
        """
            rx: \(stats.packets) frames, \(stats.bytes) bytes in \(fixed(seconds, 3)) s: \(fixed(pps / 1e6, 3)) Mpps, \(fixed(gbps, 3)) Gbit/s
            probes: \(stats.probes), lost \(lost), reordered \(stats.reordered), duplicates \(stats.duplicates), too late to tell \(stats.tooLate); other frames \(stats.other)
            \(latency.text())
            """
    }
}

struct RxRunner: NetDeviceVisitor {
    let count: UInt64?
    let duration: Double?
    let expect: UInt64?
    let live: Bool

    mutating func visit<D: NetDevice & ~Copyable>(_ device: inout D) throws -> RxResult {
        var meter = RxMeter(latency: HdrLatency())
        defer { meter.deallocate() }
        let burst = UnsafeMutableBufferPointer<NetBuf>.allocate(capacity: 64)
        defer { burst.deallocate() }
        let start = monotonicNanoseconds()
        let deadline = duration.map { start + UInt64($0 * 1e9) } ?? .max
        let total = count ?? .max
        var line = LiveLine(enabled: live, start: start, duration: duration.map { UInt64($0 * 1e9) })
        var last = RxStats()
        var now = start
        // Busy-polls 50 us after the last frame (as long as ~1,000 empty polls), then naps 50 us a poll.
        var nap = IdleNap(after: 50_000, sleep: 50, now: now)
        while meter.stats.packets < total && now < deadline && stopRequested == 0 {
            let want = Int(min(64, total - meter.stats.packets))
            let received = device.rxBurst(queue: 0, into: UnsafeMutableBufferPointer(rebasing: burst[0..<want]))
            let n = received.count
            now = monotonicNanoseconds()
            for i in 0..<n { meter.count(burst[i], now: now) }
            NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[0..<n]))
            if n == 0 && received.status.contains(.endOfInput) { break }
            nap.after(packets: n, now: now)
            if line.due(now) {
                let s = meter.stats
                let progress = count.map { Double(s.packets) / Double($0) }
                line.show(now, "rx \(fixed(Double(s.packets - last.packets) / 1e6, 3)) Mpps  total \(s.packets)  lost \(s.lost)  reordered \(s.reordered)",
                          progress: progress)
                last = s
            }
        }
        line.finish()
        return RxResult(stats: meter.stats, latency: meter.latency, seconds: Double(monotonicNanoseconds() - start) / 1e9, expect: expect)
    }
}
