// A tiny vhost-user backend on a real unix socket, scripted per test: it accepts one connection
// on a thread of its own and runs the script on it, so error paths can be provoked that a real
// backend never shows (silence, wrong replies, a close at the wrong moment).
import CUKLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Binds `path` as a unix stream socket; returns the socket (not yet listening).
func bindUnixSocket(_ path: String) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    precondition(fd >= 0, "socket: \(errno)")
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    precondition(rc == 0, "bind \(path): \(errno)")
    return fd
}

/// The backend's end of an accepted connection.
final class BackendPeer: @unchecked Sendable {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }

    struct Message {
        var request: UInt32
        var flags: UInt32
        var payload: [UInt8]
        var fds: [Int32]
    }

    /// Exactly `count` bytes, collecting passed descriptors; nil if the peer closed first.
    func read(_ count: Int, fds: inout [Int32]) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            var passed = [Int32](repeating: -1, count: Int(UK_MAX_PASSED_FDS))
            var n: Int32 = 0
            let r = bytes.withUnsafeMutableBytes { uk_recv_with_fds(fd, $0.baseAddress! + got, count - got, 0, &passed, &n) }
            fds.append(contentsOf: passed.prefix(Int(n)))
            if r == -Int(EINTR) { continue }
            if r <= 0 { return nil }
            got += r
        }
        return bytes
    }

    /// The next message from the frontend; nil once it closed.
    func receive() -> Message? {
        var fds: [Int32] = []
        guard let header = read(12, fds: &fds) else { return nil }
        func u32(_ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(header[o + $1]) << (8 * UInt32($1)) } }
        guard let payload = read(Int(u32(8)), fds: &fds) else { return nil }
        return Message(request: u32(0), flags: u32(4), payload: payload, fds: fds)
    }

    /// A raw header and payload (the size field is `size` if given, else the payload's length).
    func send(request: UInt32, flags: UInt32 = 0x1 | 0x4, payload: [UInt8], size: UInt32? = nil) {
        var bytes: [UInt8] = []
        for v in [request, flags, size ?? UInt32(payload.count)] {
            for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
        }
        bytes += payload
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    func sendU64(request: UInt32, _ value: UInt64, flags: UInt32 = 0x1 | 0x4) {
        send(request: request, flags: flags, payload: (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) })
    }
}

/// Listens on `path`, accepts one frontend and runs `script` on it on a thread; the connection
/// is closed when the script returns. `finish()` waits for that.
final class FakeBackend: @unchecked Sendable {
    let path: String
    private let listener: Int32
    private let done = DispatchSemaphore(value: 0)

    init(path: String, script: @escaping @Sendable (BackendPeer) -> Void) {
        self.path = path
        listener = bindUnixSocket(path)
        precondition(listen(listener, 1) == 0)
        let listener = self.listener
        let done = self.done
        let thread = Thread {
            let fd = accept(listener, nil, nil)
            if fd >= 0 {
                script(BackendPeer(fd: fd))
                close(fd)
            }
            done.signal()
        }
        thread.start()
    }

    /// Waits (up to `seconds`) for the script to end; false if it did not.
    @discardableResult
    func finish(seconds: Double = 5) -> Bool {
        done.wait(timeout: .now() + seconds) == .success
    }

    deinit {
        shutdown(listener, Int32(SHUT_RDWR))   // wakes an accept still waiting
        close(listener)
        unlink(path)
    }
}
