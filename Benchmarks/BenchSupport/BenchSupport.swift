// What the benchmark programs need around their measured loops, beyond ToolSupport (threads,
// pinning, flags, clocks): the malloc counter, failing loudly, and plain-text figures.
@_exported import CBenchSupport
@_exported import ToolSupport
import Glibc

/// Writes `message` to stderr, prefixed with the program's name, and exits 2.
public func fail(_ message: String) -> Never {
    let program = CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? "") } ?? "bench"
    printError("\(program): \(message)")
    exit(2)
}

/// Monotonic seconds.
@inline(__always)
public func now() -> Double { monotonicSeconds() }

/// `x` with three decimals.
public func fixed3(_ x: Double) -> String {
    let scaled = Int((x * 1000).rounded())
    let frac = String(scaled % 1000)
    return "\(scaled / 1000).\(String(repeating: "0", count: 3 - frac.count))\(frac)"
}
