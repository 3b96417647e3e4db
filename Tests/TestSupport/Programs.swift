// Running this build's executables and the peers the tests check output with (tshark), and
// reading the pcap files they write.
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The frames of a classic pcap file (either byte order, micro- or nanosecond timestamps).
public func readPcapFrames(_ path: String) throws -> [[UInt8]] {
    struct BadFile: Error, CustomStringConvertible {
        let description: String
    }
    let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    guard data.count >= 24 else { throw BadFile(description: "\(path): \(data.count) bytes, no pcap header") }
    func u32(_ o: Int, _ little: Bool) -> Int {
        let b = (0..<4).map { UInt32(data[o + $0]) }
        return Int(little ? b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24 : b[3] | b[2] << 8 | b[1] << 16 | b[0] << 24)
    }
    let little: Bool
    switch u32(0, true) {
    case 0xA1B2_C3D4, 0xA1B2_3C4D: little = true
    case 0xD4C3_B2A1, 0x4D3C_B2A1: little = false
    default: throw BadFile(description: "\(path): not a classic pcap file")
    }
    guard u32(20, little) == 1 else { throw BadFile(description: "\(path): link type \(u32(20, little)), not Ethernet") }
    var frames: [[UInt8]] = []
    var o = 24
    while o < data.count {
        guard o + 16 <= data.count else { throw BadFile(description: "\(path): record header cut off at \(o)") }
        let captured = u32(o + 8, little)
        guard o + 16 + captured <= data.count else { throw BadFile(description: "\(path): record cut off at \(o)") }
        frames.append(Array(data[(o + 16)..<(o + 16 + captured)]))
        o += 16 + captured
    }
    return frames
}

/// Child processes for tests: started with posix_spawn (Foundation's Process hung in this test
/// runner), output to a file, reaped with waitpid under a deadline (a child that overstays is
/// killed), so no test can hang on a child.
public enum Processes {
    public struct Failed: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    public enum Exit: Equatable, CustomStringConvertible {
        case code(Int32), signal(Int32), timedOut
        public var description: String {
            switch self {
            case .code(let c): "exit \(c)"
            case .signal(let s): "signal \(s)"
            case .timedOut: "timed out (killed)"
            }
        }
    }

    /// The first of `paths` that is executable.
    public static func executable(_ paths: [String]) -> String? { paths.first { access($0, X_OK) == 0 } }

    /// Tests run in parallel: an unguarded counter here once gave two children the same file
    /// (one test read the other's output).
    static let counter = Mutex(0)

    /// A fresh temporary file path for one child's output.
    public static func outputPath() -> String {
        let n = counter.withLock { n in
            n += 1
            return n
        }
        return "/tmp/uknet-child-\(getpid())-\(n).out"
    }

    /// Starts `arguments` with stdin from /dev/null and stdout+stderr into `output`, with default
    /// signal handling and nothing blocked (whatever the test runner's threads have).
    public static func spawn(_ arguments: [String], output: String) throws -> pid_t {
        var cargs: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGPIPE, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, &attr, &cargs, environ)
        guard rc == 0 else { throw Failed(description: "posix_spawn \(arguments[0]): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// Waits up to `seconds` for `pid`; past that, SIGKILLs and reaps it.
    public static func wait(_ pid: pid_t, seconds: Double) -> Exit {
        let deadline = monotonic() + seconds
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { return .code(-1) }   // not our child any more (already reaped)
            if monotonic() >= deadline {
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                return .timedOut
            }
            usleep(5_000)
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG are C macros Swift does not import.
        return status & 0x7F == 0 ? .code((status >> 8) & 0xFF) : .signal(status & 0x7F)
    }

    public static func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    /// Runs a command to completion within `seconds`; returns its exit and output.
    public static func run(_ arguments: [String], seconds: Double = 5) throws -> (exit: Exit, output: String) {
        let path = outputPath()
        defer { unlink(path) }
        let pid = try spawn(arguments, output: path)
        let exit = wait(pid, seconds: seconds)
        return (exit, read(path))
    }

    /// Runs a command that must succeed; throws with its output otherwise.
    @discardableResult
    public static func check(_ arguments: [String], seconds: Double = 5) throws -> String {
        let (exit, output) = try run(arguments, seconds: seconds)
        guard exit == .code(0) else {
            throw Failed(description: "\(arguments.joined(separator: " ")): \(exit): \(output)")
        }
        return output
    }

    public static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// Runs `path` with `arguments` to completion (at most `seconds`, then killed); returns the exit
/// status (-1 if it did not exit normally) and what it printed on stdout and stderr.
public func runProgram(_ path: String, _ arguments: [String], seconds: Double = 300) throws -> (status: Int32, output: String) {
    let (exit, output) = try Processes.run([path] + arguments, seconds: seconds)
    if case .code(let c) = exit { return (c, output) }
    return (-1, output + "\n(\(exit))")
}

public enum Tools {
    /// The peers and system tools the tests use, where Debian puts them.
    public static let tshark = Processes.executable(["/usr/bin/tshark", "/usr/local/bin/tshark"])
    public static let memcached = Processes.executable(["/usr/bin/memcached", "/usr/local/bin/memcached"])
    public static let ip = Processes.executable(["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"])

    /// An executable product of this build (`kvstore`, `pktgen`): next to the test binary
    /// (Linux: .build/<config>/), or a level up (a bundle).
    public static func executable(_ name: String) -> String? {
        var dirs: [URL] = []
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        dirs.append(me.deletingLastPathComponent())
        dirs.append(me.deletingLastPathComponent().deletingLastPathComponent())
        let bundle = Bundle.main.bundleURL
        dirs.append(bundle)
        dirs.append(bundle.deletingLastPathComponent())
        for d in dirs {
            let candidate = d.appendingPathComponent(name).path
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDir), !isDir.boolValue,
               FileManager.default.isExecutableFile(atPath: candidate) {
                return candidate
            }
        }
        return nil
    }

    /// tshark's complaints about a file: malformed packets, bad checksums, warnings and errors.
    public static func tsharkProblems(_ file: String) throws -> [String] {
        let (status, output) = try runProgram(tshark!, ["-r", file, "-o", "ip.check_checksum:TRUE",
                                                        "-o", "udp.check_checksum:TRUE", "-V"])
        var problems: [String] = []
        if status != 0 { problems.append("tshark exited with \(status): \(output.suffix(500))") }
        var frame = "?"
        for line in output.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("Frame ") { frame = String(line.prefix(40)) }
            let bad = line.contains("[Malformed") || line.contains("Bad checksum")
                || (line.contains("[Checksum:") && line.contains("incorrect")) || line.contains("incorrect, should be")
                || line.contains("Expert Info (Warning") || line.contains("Expert Info (Error")
            if bad { problems.append("\(frame): \(line.trimmingCharacters(in: .whitespaces))") }
        }
        // tshark decoded something (not an empty or unreadable file by accident).
        let frameCount = try readPcapFrames(file).count
        if !output.contains("Frame 1:") && frameCount > 0 {
            problems.append("tshark printed no frames: \(output.prefix(500))")
        }
        return problems
    }
}

