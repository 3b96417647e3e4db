// DPDK's testpmd as a test peer (for example a vhost-user backend: --vdev net_vhost0,iface=SOCK),
// run non-interactively with its output in a log file the test reads.
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// RX/TX packet counts of one testpmd port.
public struct TestPMDPortStatistics: Equatable, Sendable {
    public var rxPackets: UInt64
    public var txPackets: UInt64
    public init(rxPackets: UInt64, txPackets: UInt64) {
        self.rxPackets = rxPackets
        self.txPackets = txPackets
    }
}

/// Packets and bytes of one testpmd port from a periodic "NIC statistics" block
/// (`--stats-period`): the device's own counters. Bytes are frame bytes without the FCS
/// (net_vhost counts what it copies; 64-byte frames on the wire are 60 here).
public struct TestPMDNICStatistics: Equatable, Sendable {
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    public var txPackets: UInt64 = 0
    public var txBytes: UInt64 = 0
    public init(rxPackets: UInt64 = 0, rxBytes: UInt64 = 0, txPackets: UInt64 = 0, txBytes: UInt64 = 0) {
        self.rxPackets = rxPackets
        self.rxBytes = rxBytes
        self.txPackets = txPackets
        self.txBytes = txBytes
    }
}

/// One dpdk-testpmd process: `--no-huge -m 512 --no-pci`, a file prefix of its own, its two
/// lcores pinned to separate CPUs, `-a --stats-period 1` (forwarding starts at once; with a stats
/// period it does not wait for Enter, which would end it at once with stdin at end of file).
/// Stopped (SIGINT, then SIGKILL) when this goes away.
public final class TestPMD {
    public static let executablePath: String? = {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return Processes.executable(dirs.map { "\($0)/dpdk-testpmd" })
    }()
    /// dpdk-testpmd is on PATH (Debian package dpdk-dev).
    public static var isAvailable: Bool { executablePath != nil }

    /// testpmds started so far: each one's file prefix (suites run in parallel, so guarded).
    static let started = Mutex(0)

    public let pid: pid_t
    public let logPath: String
    public let filePrefix: String
    public let arguments: [String]
    /// How it ended, once it has.
    public private(set) var exit: Processes.Exit?
    private let directory: TemporaryDirectory

    /// - vdevs: one `--vdev` each ("net_vhost0,iface=/tmp/x.sock").
    /// - testpmdArguments: after `--` ("--forward-mode=rxonly").
    /// - forwardingCPU: the CPU of lcore 1, which forwards (the main lcore gets the other):
    ///   two pollers must not share a CPU on this 2-core machine.
    /// - directory: where the log goes (a fresh temporary directory if nil).
    public init(vdevs: [String], testpmdArguments: [String] = [], forwardingCPU: Int = 1,
                directory: TemporaryDirectory? = nil) throws {
        guard let executable = Self.executablePath else {
            throw Processes.Failed(description: "dpdk-testpmd is not installed (Debian package dpdk-dev)")
        }
        precondition(forwardingCPU == 0 || forwardingCPU == 1)
        let n = Self.started.withLock { n in
            n += 1
            return n
        }
        filePrefix = "uknet-\(getpid())-\(n)"
        self.directory = directory ?? TemporaryDirectory(purpose: "testpmd")
        logPath = self.directory.file("testpmd-\(filePrefix).log")
        arguments = [executable, "--lcores=0@\(1 - forwardingCPU),1@\(forwardingCPU)", "--no-huge", "-m", "512", "--no-pci",
                     "--file-prefix=\(filePrefix)"]
            + vdevs.flatMap { ["--vdev", $0] }
            + ["--", "-a", "--stats-period", "1", "--total-num-mbufs=32768"] + testpmdArguments
        pid = try Processes.spawn(arguments, output: logPath)
    }

    deinit { stop() }

    /// Everything it has printed so far.
    public var log: String { Processes.read(logPath) }

    /// Whether it still runs (reaps it if it ended).
    public var isRunning: Bool {
        if exit != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid {
            exit = status & 0x7F == 0 ? .code((status >> 8) & 0xFF) : .signal(status & 0x7F)
            return false
        }
        return r == 0
    }

    /// Waits until the log contains `substring` `count` times; false after `timeout` seconds or
    /// as soon as testpmd has exited without printing it.
    public func waitForLog(_ substring: String, count: Int = 1, timeout: Double) -> Bool {
        let deadline = Processes.monotonic() + timeout
        while true {
            let running = isRunning
            if occurrences(of: substring) >= count { return true }
            if !running || Processes.monotonic() >= deadline { return false }
            usleep(20_000)
        }
    }

    /// How many times the log contains `substring`.
    public func occurrences(of substring: String) -> Int {
        log.components(separatedBy: substring).count - 1
    }

    /// SIGINT (testpmd then prints its forward statistics and closes its ports), SIGKILL if it
    /// has not exited after `timeout` seconds; then removes its DPDK runtime directory.
    @discardableResult
    public func stop(timeout: Double = 5) -> Processes.Exit {
        if isRunning {
            kill(pid, SIGINT)
            exit = Processes.wait(pid, seconds: timeout)
        }
        for base in ["/var/run/dpdk", (ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"] ?? "/nonexistent") + "/dpdk", "/tmp/dpdk"] {
            try? FileManager.default.removeItem(atPath: "\(base)/\(filePrefix)")
        }
        return exit ?? .code(-1)
    }

    /// Per-port statistics from the log so far (see `parseStatistics`).
    public var statistics: [Int: TestPMDPortStatistics] { Self.parseStatistics(log) }

    /// The last complete periodic NIC statistics of each port so far (see `parseNICStatistics`).
    public var nicStatistics: [Int: TestPMDNICStatistics] { Self.parseNICStatistics(log) }

    /// Per port, the last complete "NIC statistics for port N" block (one that testpmd has
    /// finished printing: its closing rule is there, so no number is cut off mid-write).
    public static func parseNICStatistics(_ log: String) -> [Int: TestPMDNICStatistics] {
        var result: [Int: TestPMDNICStatistics] = [:]
        var current: (port: Int, stats: TestPMDNICStatistics)?
        func number(after label: String, in line: Substring) -> UInt64? {
            guard let r = line.range(of: label) else { return nil }
            return UInt64(line[r.upperBound...].drop { $0 == " " }.prefix { $0.isNumber })
        }
        for line in log.split(separator: "\n", omittingEmptySubsequences: false) {
            if let r = line.range(of: "NIC statistics for port ") {
                current = Int(line[r.upperBound...].prefix { $0.isNumber }).map { ($0, TestPMDNICStatistics()) }
                continue
            }
            guard var c = current else { continue }
            if line.contains("########################") {   // the block's closing rule
                result[c.port] = c.stats
                current = nil
                continue
            }
            if let v = number(after: "RX-packets:", in: line) { c.stats.rxPackets = v }
            if let v = number(after: "RX-bytes:", in: line) { c.stats.rxBytes = v }
            if let v = number(after: "TX-packets:", in: line) { c.stats.txPackets = v }
            if let v = number(after: "TX-bytes:", in: line) { c.stats.txBytes = v }
            current = c
        }
        return result
    }

    /// RX-packets and TX-packets per port: from the forward statistics testpmd prints when it
    /// stops, or, for a port without those (still running), from the last periodic NIC statistics.
    public static func parseStatistics(_ log: String) -> [Int: TestPMDPortStatistics] {
        var forward: [Int: TestPMDPortStatistics] = [:]
        var periodic: [Int: TestPMDPortStatistics] = [:]
        enum Block { case forward(Int), periodic(Int) }
        var block: Block?
        func number(after label: String, in line: Substring) -> UInt64? {
            guard let r = line.range(of: label) else { return nil }
            return UInt64(line[r.upperBound...].drop { $0 == " " }.prefix { $0.isNumber })
        }
        for line in log.split(separator: "\n") {
            if let r = line.range(of: "Forward statistics for port ") {
                block = Int(line[r.upperBound...].prefix { $0.isNumber }).map { .forward($0) }
                continue
            }
            if let r = line.range(of: "NIC statistics for port ") {
                block = Int(line[r.upperBound...].prefix { $0.isNumber }).map { .periodic($0) }
                continue
            }
            if line.contains("Accumulated forward statistics") || line.contains("-----------------------")
                || line.contains("########################") {
                // The all-ports sum, or a block's closing rule.
                if !line.contains("statistics for port") { block = nil }
                continue
            }
            guard let current = block else { continue }
            switch current {
            case .forward(let port):
                var s = forward[port] ?? TestPMDPortStatistics(rxPackets: 0, txPackets: 0)
                if let rx = number(after: "RX-packets:", in: line) { s.rxPackets = rx }
                if let tx = number(after: "TX-packets:", in: line) { s.txPackets = tx }
                forward[port] = s
            case .periodic(let port):
                var s = periodic[port] ?? TestPMDPortStatistics(rxPackets: 0, txPackets: 0)
                if let rx = number(after: "RX-packets:", in: line) { s.rxPackets = rx }
                if let tx = number(after: "TX-packets:", in: line) { s.txPackets = tx }
                periodic[port] = s
            }
        }
        return periodic.merging(forward) { _, final in final }
    }
}
