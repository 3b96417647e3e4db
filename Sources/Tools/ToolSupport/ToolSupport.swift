// What the command-line tools and the benchmarks share: stop signals, clocks, pinned threads,
// flags and values handed between threads.
import CUKAtomics
import CUKLinux
import Glibc

/// Set by SIGINT/SIGTERM (see `installStopSignals`); loops poll it and finish cleanly.
nonisolated(unsafe) public var stopRequested: sig_atomic_t = 0

public func installStopSignals() {
    signal(SIGINT) { _ in stopRequested = 1 }
    signal(SIGTERM) { _ in stopRequested = 1 }
    // A peer that closes its socket is an error to report, not a death: DPDK's virtio_user
    // writes to its vhost-user socket without MSG_NOSIGNAL (our own frontend uses it).
    signal(SIGPIPE, SIG_IGN)
}

public func unixTime() -> UInt32 { UInt32(truncatingIfNeeded: time(nil)) }

/// CLOCK_MONOTONIC in nanoseconds: the clock of probe timestamps and latencies (the same for
/// every process on the host).
@inline(__always)
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

public func monotonicSeconds() -> Double { Double(monotonicNanoseconds()) / 1e9 }

/// Writes to standard error (live lines and warnings, apart from results on standard output).
public func printError(_ message: String, terminator: String = "\n") {
    let text = message + terminator
    _ = text.withCString { write(2, $0, strlen($0)) }
}

/// Runs `body` on its own pthread, pinned to `cpu` if given; `join` waits for it.
public final class PinnedThread: @unchecked Sendable {
    var thread = pthread_t()
    let body: () -> Void
    let cpu: Int?

    public init(cpu: Int?, _ body: @escaping () -> Void) {
        self.body = body
        self.cpu = cpu
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let me = Unmanaged<PinnedThread>.fromOpaque(raw!).takeRetainedValue()
            if let cpu = me.cpu { pin(toCPU: cpu) }
            me.body()
            return nil
        }, context)
        if rc != 0 { fatalError("pthread_create: \(String(cString: strerror(rc)))") }
    }

    public func join() { pthread_join(thread, nil) }
}

/// Pins the calling thread to one CPU (two pollers must never share one: see platform facts).
/// Best effort: a failure is reported, not fatal.
public func pin(toCPU cpu: Int) {
    let rc = uk_pin_to_cpu(Int32(cpu))
    if rc != 0 { printError("warning: cannot pin to CPU \(cpu): \(String(cString: strerror(rc))); figures may suffer") }
}

/// A value two threads hand over; each uses its own part (or they take turns).
public final class Shared<T: ~Copyable>: @unchecked Sendable {
    public var value: T
    public init(_ value: consuming T) { self.value = value }
}

/// A flag one thread raises and another polls, with release/acquire ordering.
public final class StopFlag: @unchecked Sendable {
    let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    public init() { word.initialize(to: 0) }
    deinit { word.deallocate() }
    public func raise() { uk_store_release_u32(word, 1) }
    public var isRaised: Bool { uk_load_acquire_u32(word) != 0 }
}
