import UKNetdev

/// Where latency samples go: a histogram in a hosted program (HdrHistogram), anything cheap in
/// a unikernel. Generic, so the meter stays free of existentials.
public protocol LatencyRecorder {
    mutating func record(nanoseconds: UInt64)
}

/// Keeps only count, sum, minimum and maximum (no allocation; enough for tests and kernels).
public struct LatencySummary: LatencyRecorder, Sendable {
    public var count: UInt64 = 0
    public var total: UInt64 = 0
    public var minimum: UInt64 = .max
    public var maximum: UInt64 = 0
    public init() {}
    public mutating func record(nanoseconds: UInt64) {
        count &+= 1
        total &+= nanoseconds
        minimum = min(minimum, nanoseconds)
        maximum = max(maximum, nanoseconds)
    }
}

/// Counters of a receiving run.
public struct RxStats: Sendable {
    /// Every frame received, and its bytes (without FCS).
    public var packets: UInt64 = 0
    public var bytes: UInt64 = 0
    /// Frames carrying a probe (see `Probe`), and of those: first seen, arrived after a higher
    /// sequence number (late), seen twice, or too far behind to tell.
    public var probes: UInt64 = 0
    public var unique: UInt64 = 0
    public var reordered: UInt64 = 0
    public var duplicates: UInt64 = 0
    public var tooLate: UInt64 = 0
    /// The highest sequence number seen plus one (0: none yet).
    public var expected: UInt64 = 0
    /// Frames that are not UDP/IPv4 with a probe (counted, not measured).
    public var other: UInt64 = 0
    public init() {}

    /// Sequence numbers below the highest seen that never arrived (so far: a late one still counts).
    public var lost: UInt64 { expected > unique &+ tooLate ? expected - unique - tooLate : 0 }
}

/// The `rx` sink: counts frames and bytes, and for probe frames loss, reordering and duplicates
/// from the sequence numbers (a window of the last 4096 behind the highest) and latency from the
/// transmit time (same clock as the sender: one host).
public struct RxMeter<Latency: LatencyRecorder> {
    public private(set) var stats = RxStats()
    public var latency: Latency
    /// Bit i%window set: sequence number i (within the window behind `expected`) arrived.
    let seen: UnsafeMutablePointer<UInt64>
    static var window: UInt64 { 4096 }

    public init(latency: Latency) {
        self.latency = latency
        seen = .allocate(capacity: Int(RxMeter.window / 64))
        seen.initialize(repeating: 0, count: Int(RxMeter.window / 64))
    }

    public func deallocate() { seen.deallocate() }

    /// Counts one received frame (the buffer stays the caller's).
    public mutating func count(_ buf: NetBuf, now: UInt64) {
        stats.packets &+= 1
        let length = buf.length
        stats.bytes &+= UInt64(length)
        let f = UnsafeRawPointer(buf.data)
        guard buf.next == nil, length >= 14 + 20 + 8 + Probe.length,
              f.loadUnaligned(fromByteOffset: 12, as: UInt16.self) == EtherType.ipv4.bigEndian,
              f.load(fromByteOffset: 23, as: UInt8.self) == IPProtocol.udp else { stats.other &+= 1; return }
        let ihl = Int(f.load(fromByteOffset: 14, as: UInt8.self) & 0x0F) * 4
        let payloadStart = 14 + ihl + 8
        guard ihl >= 20, length >= payloadStart + Probe.length,
              let probe = Probe.read(f + payloadStart, count: length - payloadStart) else { stats.other &+= 1; return }
        stats.probes &+= 1
        if now >= probe.time { latency.record(nanoseconds: now - probe.time) }
        note(probe.sequence)
    }

    mutating func note(_ sequence: UInt64) {
        let window = RxMeter.window
        if sequence >= stats.expected {
            // New highest: clear the bits of the numbers skipped over (and of this one) first.
            let from = stats.expected
            let to = sequence + 1
            if to - from >= window {
                seen.update(repeating: 0, count: Int(window / 64))
            } else {
                var s = from
                while s < to { clear(s); s += 1 }
            }
            // Numbers skipped count as lost until they arrive (late).
            set(sequence)
            stats.expected = to
            stats.unique &+= 1
        } else if stats.expected - sequence > window {
            stats.tooLate &+= 1
        } else if isSet(sequence) {
            stats.duplicates &+= 1
        } else {
            set(sequence)
            stats.unique &+= 1
            stats.reordered &+= 1
        }
    }

    @inline(__always) func bit(_ s: UInt64) -> (Int, UInt64) {
        let i = s % RxMeter.window
        return (Int(i / 64), UInt64(1) << (i % 64))
    }
    @inline(__always) func set(_ s: UInt64) { let (w, m) = bit(s); seen[w] |= m }
    @inline(__always) func clear(_ s: UInt64) { let (w, m) = bit(s); seen[w] &= ~m }
    @inline(__always) func isSet(_ s: UInt64) -> Bool { let (w, m) = bit(s); return seen[w] & m != 0 }
}
