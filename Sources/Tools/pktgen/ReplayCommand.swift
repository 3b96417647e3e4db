import ArgumentParser
import Glibc
import NetdevSpec
import PcapNet
import PktGen
import ToolSupport
import UKNetdev

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Send the frames of a pcap file, in order, --loops times, at a rate or as fast as the device takes them.")

    @OptionGroup var device: DeviceOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var pacing: PacingOptions

    @Option(help: "The pcap file to replay (Ethernet).")
    var file: String

    @Option(help: "Times to send the whole file.")
    var loops: UInt64 = 1

    @Option(help: "Stop after this many seconds even if loops remain.")
    var duration: Double?

    mutating func validate() throws {
        try device.check()
        try pacing.check()
        guard loops >= 1 else { throw ValidationError("--loops: at least 1") }
        try checkRunLength(count: nil, duration: duration, countName: "")
        guard access(file, R_OK) == 0 else { throw ValidationError("--file: cannot read '\(file)'") }
    }

    func run() throws {
        installStopSignals()
        let pool = try device.pool(roomSize: 10240)
        let frames = try load(file, pool: pool)
        defer { frames.deallocate() }
        guard frames.count > 0 else { throw ValidationError("--file: '\(file)' holds no frames") }
        var runner = ReplayRunner(frames: frames, loops: loops, pool: pool, burst: pacing.burst, limit: try pacing.limit(),
                                  duration: duration, live: !output.quiet)
        let r = try open(try device.spec(), pool: pool, record: device.record, options: device.openOptions, visitor: &runner)
        let pps = r.seconds > 0 ? Double(r.stats.packets) / r.seconds : 0
        if output.json {
            print(JSON.object([("command", .string("replay")), ("netdev", .string(device.netdev)), ("file", .string(file)),
                               ("frames_in_file", .int(UInt64(frames.count))), ("loops", .int(loops)),
                               ("packets", .int(r.stats.packets)), ("bytes", .int(r.stats.bytes)), ("seconds", .number(r.seconds)),
                               ("pps", .number(pps)), ("complete", .bool(r.complete))]).text)
        } else {
            print("replay \(file): \(frames.count) frames x \(loops) loops: \(r.stats.packets) packets, \(r.stats.bytes) bytes in \(fixed(r.seconds, 3)) s, "
                  + "\(fixed(pps / 1e6, 3)) Mpps" + (r.complete ? "" : " (incomplete: stopped)"))
        }
        if pool.inUse != 0 { printError("warning: \(pool.inUse) buffers still in use at exit") }
        exitIfDeviceLost()
        if !r.complete { throw ExitCode(1) }
    }

    /// Every frame of the file into one arena (read through the pcap device itself).
    func load(_ path: String, pool: NetBufPool) throws -> FrameList {
        var st = stat()
        guard stat(path, &st) == 0 else { throw ValidationError("--file: cannot stat '\(path)'") }
        var frames = FrameList(maxFrames: max(1, Int(st.st_size) / 16), maxBytes: Int(st.st_size))
        var input = try PcapDevice(rx: path, tx: nil, timestamps: .realTime)
        try input.bringUp(rx: RxQueueConfig(descriptors: 64, allocator: pool.rxAllocator), tx: TxQueueConfig(descriptors: 64))
        defer { input.stop() }
        let burst = UnsafeMutableBufferPointer<NetBuf>.allocate(capacity: 64)
        defer { burst.deallocate() }
        while !input.rxExhausted {
            let n = input.rxBurst(queue: 0, into: burst).count
            for i in 0..<n {
                let b = burst[i]
                if b.next != nil || !frames.append(UnsafeRawPointer(b.data), count: b.length) {
                    NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[0..<n]))
                    throw ValidationError("--file: frame \(frames.count + 1) of '\(path)' could not be loaded (chained or beyond the file size)")
                }
            }
            NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[0..<n]))
            if n == 0 && !input.rxExhausted { usleep(10) }
        }
        if let failure = input.rxReadFailure { throw ValidationError("--file: \(failure)") }
        return frames
    }
}

struct ReplayOutcome {
    let stats: TxStats
    let seconds: Double
    let complete: Bool
}

struct ReplayRunner: NetDeviceVisitor {
    let frames: FrameList
    let loops: UInt64
    let pool: NetBufPool
    let burst: Int
    let limit: RateLimit
    let duration: Double?
    let live: Bool

    mutating func visit<D: NetDevice & ~Copyable>(_ device: inout D) throws -> ReplayOutcome {
        var replayer = try Replayer(frames: frames, loops: loops, pool: pool, burstSize: burst)
        var drain = RxDrain()
        defer { drain.deallocate() }
        let start = monotonicNanoseconds()
        let deadline = duration.map { start + UInt64($0 * 1e9) } ?? .max
        var pacer = limit.pacer(frameLength: frames.bytes / max(1, frames.count), burst: burst, start: start)
        var line = LiveLine(enabled: live, start: start, duration: duration.map { UInt64($0 * 1e9) })
        let total = UInt64(frames.count) * loops
        var now = start
        var last: UInt64 = 0
        var rounds = 0
        while !replayer.finished && now < deadline && stopRequested == 0 {
            var allowance = burst
            if pacer != nil { allowance = min(allowance, pacer!.available(now: now)) }
            if allowance > 0 {
                let sent = replayer.send(on: &device, limit: allowance)
                if pacer != nil { pacer!.consume(sent) }
                if sent == 0 { usleep(20) }
            } else if let p = pacer {
                waitFor(p)
            }
            now = monotonicNanoseconds()
            rounds &+= 1
            if rounds & 255 == 0 { drain.drain(&device) }
            if line.due(now) {
                let p = replayer.sent.packets
                line.show(now, "replay \(fixed(Double(p - last) / 1e6, 3)) Mpps  total \(p) of \(total)", progress: Double(p) / Double(total))
                last = p
            }
        }
        let end = monotonicNanoseconds()
        drain.drain(&device)
        line.finish()
        return ReplayOutcome(stats: replayer.sent, seconds: Double(end - start) / 1e9, complete: replayer.finished)
    }
}
