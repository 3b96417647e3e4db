import Glibc
import Histogram
import PktGen
import ToolSupport

/// Latencies into an HDR histogram (1 ns to 60 s, 3 significant digits; recording allocates
/// nothing). Values beyond the range are clamped and counted.
struct HdrLatency: LatencyRecorder {
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000,
                                      numberOfSignificantValueDigits: .three)
    var clamped: UInt64 = 0

    mutating func record(nanoseconds: UInt64) {
        if !histogram.record(max(1, nanoseconds)) {
            clamped &+= 1
            histogram.record(60_000_000_000)
        }
    }

    /// p50, p90, p99, p99.9 and max in microseconds, for the summary and JSON.
    var percentiles: [(String, Double)] {
        guard histogram.totalCount > 0 else { return [] }
        return [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)].map { ($0.0, Double(histogram.valueAtPercentile($0.1)) / 1000) }
            + [("max", Double(histogram.maxRecorded) / 1000)]
    }

    var count: UInt64 { histogram.totalCount }

    func text() -> String {
        guard count > 0 else { return "latency: no samples" }
        return "latency (us): " + percentiles.map { "\($0.0) \(fixed($0.1, 1))" }.joined(separator: "  ") + "  (\(count) samples)"
    }
}

/// A value of a JSON result, written in the order given (harnesses read it with any parser).
enum JSON {
    case int(UInt64)
    case number(Double)
    case string(String)
    case bool(Bool)
    case object([(String, JSON)])
    case array([JSON])

    var text: String {
        switch self {
        case .int(let v): return String(v)
        case .number(let v): return v.isFinite ? fixed(v, 3) : "null"
        case .bool(let v): return v ? "true" : "false"
        case .string(let s):
            var out = "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\t": out += "\\t"
                default:
                    if u.value < 0x20 { out += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16) }
                    else { out.unicodeScalars.append(u) }
                }
            }
            return out + "\""
        case .object(let fields): return "{" + fields.map { JSON.string($0.0).text + ": " + $0.1.text }.joined(separator: ", ") + "}"
        case .array(let items): return "[" + items.map(\.text).joined(separator: ", ") + "]"
        }
    }
}

func fixed(_ x: Double, _ digits: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([x]) { vsnprintf(&buffer, 64, "%.\(digits)f", $0) }
    return String(cString: buffer)
}

func latencyJSON(_ l: HdrLatency) -> JSON {
    .object([("samples", .int(l.count))] + l.percentiles.map { ($0.0 + "_us", JSON.number($0.1)) })
}

/// One line a second on standard error (a terminal: rewritten in place), with the time left.
struct LiveLine {
    let enabled: Bool
    let terminal = isatty(2) != 0
    var next: UInt64
    let start: UInt64
    let duration: UInt64?

    init(enabled: Bool, start: UInt64, duration: UInt64?) {
        self.enabled = enabled
        self.start = start
        self.duration = duration
        next = start + 1_000_000_000
    }

    /// True when a second has passed (the caller then builds the line and calls `show`).
    @inline(__always) func due(_ now: UInt64) -> Bool { enabled && now >= next }

    mutating func show(_ now: UInt64, _ text: String, progress: Double? = nil) {
        next = now + 1_000_000_000
        var line = "[\(fixed(Double(now - start) / 1e9, 0))s] " + text
        if let duration, duration > 0 {
            let left = max(0, Double(Int64(start + duration) - Int64(now)) / 1e9)
            line += "  (\(fixed(left, 0)) s left)"
        } else if let progress {
            line += "  (\(fixed(progress * 100, 0)) %)"
        }
        printError(line, terminator: terminal ? "\u{1B}[K\r" : "\n")
    }

    func finish() { if enabled && terminal { printError("") } }
}
