import ArgumentParser
import Glibc
import NetdevSpec
import PktGen
import ToolSupport
import UKNetdev

/// `pktgen`: the packet generator and memcached load generator on any UKNetdev device.
///
///   pktgen tx --netdev pcap:tx=OUT --size 64 --count 1000
///   pktgen tx --netdev null --size 64,128,1518 --duration 5
///   pktgen rx --netdev tap:ifname=pg1 --duration 10
///   pktgen kv --netdev tap:ifname=pg0 --ip 192.0.2.3 --mac 02:00:00:00:00:03 --server-ip 192.0.2.2 --duration 10
///   pktgen replay --netdev tap:ifname=pg0 --file Traces/commands.in.pcap --loops 10 --rate 10k
@main
struct PktGenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pktgen",
        abstract: "Packet generator and memcached-UDP load generator on a UKNetdev device.",
        discussion: """
            Live statistics go to standard error once a second; the final summary (or, with --json, \
            one JSON document) goes to standard output. Every run is bounded by --count, --requests, \
            --loops or --duration, and stops cleanly on SIGINT or SIGTERM.
            """,
        subcommands: [TxCommand.self, RxCommand.self, KVCommand.self, ReplayCommand.self])
}

/// Where frames go and come from.
struct DeviceOptions: ParsableArguments {
    @Option(help: "The device: pcap:rx=FILE,tx=FILE | tap:ifname=NAME | vhost-user:path=SOCK[,queues=N] | \"dpdk:[--port=N] EAL-ARGUMENTS\" | null | ring (a loopback ring).")
    var netdev: String

    @Option(help: "Also record every frame received and sent into this pcap file.")
    var record: String?

    @Option(help: "Buffers in the packet pool.")
    var buffers: Int = 8192

    @Option(help: "Descriptors (ring slots) asked for per device queue.")
    var descriptors: Int = 1024

    @Option(help: ArgumentHelp("Inject faults between the device and the generator: drop=P,duplicate=P,corrupt=P,reorder=P,stall=P"
                               + "[,seed=N][,on=rx|tx|both] (probabilities 0...1).", valueName: "faults"))
    var faults: String?

    func spec() throws -> NetdevSpec {
        do { return try NetdevSpec(parsing: netdev) } catch { throw ValidationError("--netdev: \(error)") }
    }

    func check() throws {
        _ = try spec()
        guard buffers >= 64 else { throw ValidationError("--buffers: at least 64") }
        guard descriptors >= 1 && descriptors <= 65536 else { throw ValidationError("--descriptors: 1...65536") }
        _ = try faultConfig()
    }

    func faultConfig() throws -> FaultConfig? {
        guard let faults else { return nil }
        do { return try FaultConfig(parsing: faults) } catch { throw ValidationError("--faults: \(error)") }
    }

    func pool(roomSize: Int = 2048, threadSafe: Bool = false) throws -> NetBufPool {
        try spec().makePool(count: buffers, roomSize: roomSize, headroom: 128, threading: threadSafe ? .threadSafe : .singleThread)
    }

    var openOptions: NetdevOpenOptions { NetdevOpenOptions(descriptors: descriptors, faults: try? faultConfig()) }
}

struct OutputOptions: ParsableArguments {
    @Flag(help: "Print the result as one JSON document on standard output.")
    var json = false

    @Flag(help: "No live line on standard error.")
    var quiet = false
}

/// How fast frames go out: a rate limit (or none) and the burst size.
struct PacingOptions: ParsableArguments {
    @Option(help: "Rate limit in packets per second (suffix k, M: 100k, 1.5M).")
    var rate: String?

    @Option(help: "Rate limit in Gbit/s on the wire (frame + FCS + preamble + gap).")
    var gbps: Double?

    @Option(help: "Frames per TX burst.")
    var burst: Int = 32

    func limit() throws -> RateLimit { try RateLimit(rate: rate, gbps: gbps) }

    func check() throws {
        _ = try limit()
        guard burst >= 1 && burst <= 1024 else { throw ValidationError("--burst: 1...1024") }
    }
}

/// A rate: packets per second with an optional k/M/G suffix ("100k", "14.88M").
func parseRate(_ text: String) -> Double? {
    var t = text
    var scale = 1.0
    switch t.last {
    case "k", "K": scale = 1e3; t.removeLast()
    case "m", "M": scale = 1e6; t.removeLast()
    case "g", "G": scale = 1e9; t.removeLast()
    default: break
    }
    guard let v = Double(t), v > 0, v.isFinite else { return nil }
    return v * scale
}

/// Pacing chosen on the command line: none, packets per second, or bits per second on the wire.
enum RateLimit {
    case none
    case packets(UInt64)
    case bits(UInt64)

    init(rate: String?, gbps: Double?) throws {
        if rate != nil && gbps != nil { throw ValidationError("--rate and --gbps: give one of them") }
        if let rate {
            guard let pps = parseRate(rate), pps >= 1, pps <= 1e9 else { throw ValidationError("--rate: packets per second, 1 to 1G, e.g. 100k or 1.5M") }
            self = .packets(UInt64(pps))
        } else if let gbps {
            guard gbps > 0, gbps <= 400 else { throw ValidationError("--gbps: more than 0, at most 400") }
            self = .bits(UInt64(gbps * 1e9))
        } else {
            self = .none
        }
    }

    func pacer(frameLength: Int, burst: Int, start: UInt64) -> Pacer? {
        switch self {
        case .none: return nil
        case .packets(let pps): return Pacer(packetsPerSecond: pps, burst: burst, start: start)
        case .bits(let bps): return Pacer(bitsPerSecond: bps, frameLength: frameLength, burst: burst, start: start)
        }
    }
}

/// Waits for the pacer: sleeps when the next packet is far (low rates leave the CPU alone);
/// when it is near, returns at once and the loop polls the clock.
@inline(__always)
func waitFor(_ pacer: Pacer) {
    let ns = pacer.nanosecondsUntilNext
    if ns > 200_000 { usleep(useconds_t((ns - 100_000) / 1000)) }
}

/// Frames received while transmitting (a loopback ring, a TAP) are counted and let go.
struct RxDrain {
    let burst = UnsafeMutableBufferPointer<NetBuf>.allocate(capacity: 64)
    var frames: UInt64 = 0
    /// Set when the last drain found more waiting after its 16 bursts: an RX that never runs dry
    /// (DPDK's net_null makes up frames on every poll). Then one burst per drain, until a burst
    /// comes back short: a generator must not spend its time receiving what nobody sent.
    var endless = false

    /// Takes what is waiting, at most 16 bursts (one while the RX looks endless); returns true once
    /// the device said its input ended for good (`endOfInput`: e.g. a vhost-user backend that went
    /// away and will not be waited for).
    @discardableResult
    mutating func drain<D: NetDevice & ~Copyable>(_ device: inout D) -> Bool {
        for _ in 0..<(endless ? 1 : 16) {
            let r = device.rxBurst(queue: 0, into: burst)
            let n = r.count
            if n == 0 { return r.status.contains(.endOfInput) }
            frames &+= UInt64(n)
            NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[0..<n]))
            if n < burst.count {
                endless = false
                return false
            }
        }
        endless = true
        return false
    }
    func deallocate() { burst.deallocate() }
}

func parseMAC(_ text: String, _ option: String) throws -> MACAddress {
    guard let m = MACAddress(text) else { throw ValidationError("\(option): expected XX:XX:XX:XX:XX:XX, got '\(text)'") }
    return m
}

func parseIP(_ text: String, _ option: String) throws -> IPv4Address {
    guard let a = IPv4Address(text) else { throw ValidationError("\(option): expected A.B.C.D, got '\(text)'") }
    return a
}

func checkRunLength(count: UInt64?, duration: Double?, countName: String) throws {
    if let count, count == 0 { throw ValidationError("\(countName): at least 1") }
    if let duration { guard duration > 0, duration <= 86400 else { throw ValidationError("--duration: seconds, more than 0, at most 86400") } }
}
