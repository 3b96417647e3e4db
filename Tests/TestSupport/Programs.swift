// Running this build's executables and the peers the tests check output with (tshark), and
// reading the pcap files they write.
import Foundation
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

/// Runs `path` with `arguments` (posix_spawn, waitpid), its stdout and stderr going to a file;
/// returns the exit status (-1 if it did not exit normally) and what it printed.
public func runProgram(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let dir = TemporaryDirectory(purpose: "replay")
    let log = dir.file("output.txt")
    var pid: pid_t = 0
    var cargs: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
    defer { for a in cargs { free(a) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let rc = posix_spawn(&pid, path, &actions, nil, &cargs, environ)
    posix_spawn_file_actions_destroy(&actions)
    struct SpawnFailed: Error, CustomStringConvertible {
        let description: String
    }
    guard rc == 0 else { throw SpawnFailed(description: "posix_spawn \(path): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    // WIFEXITED / WEXITSTATUS, spelled out (the C macros are not imported).
    let exited = status & 0x7F == 0
    return (exited ? (status >> 8) & 0xFF : -1, output)
}

public enum Tools {
    public static let tshark: String? = ["/usr/bin/tshark", "/usr/local/bin/tshark"].first { FileManager.default.isExecutableFile(atPath: $0) }

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

