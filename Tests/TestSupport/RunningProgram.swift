import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// One of this build's programs, started under `taskset -c CPU`, its standard output and error
/// in one file; SIGKILLed and reaped if the test leaves it running.
public final class RunningProgram {
    static let taskset = Processes.executable(["/usr/bin/taskset", "/bin/taskset"])

    public let pid: pid_t
    public let outputPath: String
    public let started = Processes.monotonic()
    public private(set) var exit: Processes.Exit?
    /// When it was seen to have exited (monotonic seconds).
    public private(set) var ended: Double?

    public init(_ arguments: [String], cpu: Int, output: String) throws {
        let taskset = try #require(Self.taskset, "taskset (util-linux) is needed to pin the program to a CPU")
        outputPath = output
        pid = try Processes.spawn([taskset, "-c", "\(cpu)"] + arguments, output: output)   // taskset execs: same pid
    }

    deinit {
        if exit == nil {
            kill(pid, SIGKILL)
            _ = Processes.wait(pid, seconds: 5)
        }
    }

    /// Waits at most `seconds` for it to exit by itself (then SIGKILL: `.timedOut`).
    @discardableResult
    public func wait(seconds: Double) -> Processes.Exit {
        if let exit { return exit }
        let e = Processes.wait(pid, seconds: seconds)
        exit = e
        ended = Processes.monotonic()
        return e
    }

    /// Whether it still runs (reaps it, and notes when, if it has ended).
    public var isRunning: Bool {
        if exit != nil { return false }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return true }
        exit = status & 0x7F == 0 ? .code((status >> 8) & 0xFF) : .signal(status & 0x7F)
        ended = Processes.monotonic()
        return false
    }

    /// Waits for all of `programs` at once (each one's end time is when it ended, not when
    /// the wait got to it); those still running after `seconds` are SIGKILLed (`.timedOut`).
    public static func waitAll(_ programs: [RunningProgram], seconds: Double) {
        let deadline = Processes.monotonic() + seconds
        while programs.contains(where: { $0.isRunning }) && Processes.monotonic() < deadline { usleep(5_000) }
        for p in programs { p.wait(seconds: 0) }
    }

    /// SIGINT (the programs then stop cleanly and print their results), then waits.
    @discardableResult
    public func interrupt(seconds: Double = 10) -> Processes.Exit {
        if exit == nil { kill(pid, SIGINT) }
        return wait(seconds: seconds)
    }

    public var output: String { Processes.read(outputPath) }

    /// The `--json` document: the one output line that is a JSON object.
    public func json() throws -> [String: Any] {
        let out = output
        let line = try #require(out.split(separator: "\n").last { $0.hasPrefix("{") }, "no JSON line in:\n\(out)")
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not a JSON object: \(line)")
    }
}

