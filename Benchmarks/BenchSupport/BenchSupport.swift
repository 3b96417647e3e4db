// What both benchmark programs need around their measured loops: timing, CPU pinning, threads
// pinned to a CPU, a stop flag, and plain-text figures.
@_exported import CBenchSupport
import CUKAtomics
import Glibc

/// Writes `message` to stderr, prefixed with the program's name.
public func printError(_ message: String) {
    let program = CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? "") } ?? "bench"
    var line = "\(program): \(message)\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

public func fail(_ message: String) -> Never {
    printError(message)
    exit(2)
}

/// Monotonic seconds.
public func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Pins the calling thread to one CPU (two pollers must never share one: see platform facts).
public func pin(toCPU cpu: Int) {
    let rc = bench_pin_to_cpu(Int32(cpu))
    if rc != 0 { printError("could not pin to CPU \(cpu) (errno \(rc)); figures may suffer") }
}

/// `x` with three decimals.
public func fixed3(_ x: Double) -> String {
    let scaled = Int((x * 1000).rounded())
    let frac = String(scaled % 1000)
    return "\(scaled / 1000).\(String(repeating: "0", count: 3 - frac.count))\(frac)"
}

/// Runs `body` on its own pthread pinned to `cpu`; `join` waits for it.
public final class PinnedThread {
    var thread = pthread_t()
    let body: () -> Void
    let cpu: Int
    public init(cpu: Int, _ body: @escaping () -> Void) {
        self.body = body
        self.cpu = cpu
        let me = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            let t = Unmanaged<PinnedThread>.fromOpaque(arg!).takeRetainedValue()
            pin(toCPU: t.cpu)
            t.body()
            return nil
        }, me)
        if rc != 0 { fail("pthread_create: \(rc)") }
    }
    public func join() { pthread_join(thread, nil) }
}

/// A value two pinned threads hand over; each uses its own end (or takes turns).
public final class Shared<T>: @unchecked Sendable {
    public var value: T
    public init(_ value: T) { self.value = value }
}

/// A flag one thread raises and another polls, with release/acquire ordering.
public final class StopFlag: @unchecked Sendable {
    let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    public init() { word.initialize(to: 0) }
    deinit { word.deallocate() }
    public var isRaised: Bool { uk_load_acquire_u32(word) != 0 }
    public func raise() { uk_store_release_u32(word, 1) }
}
