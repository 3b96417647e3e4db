#if canImport(Glibc)
import Glibc
#endif
import CUKLinux
import UKNetdev

/// An eventfd(2) that a device signals in event mode: a Linux process's stand-in for an
/// interrupt. Give `notifier` to `RxQueueConfig`, arm the queue with `setRxEvents`, poll the
/// queue once more, then `wait`.
public final class EventFD {
    public let fd: Int32

    public enum Failure: Error, Equatable { case system(errno: Int32) }

    public init() throws(Failure) {
        let fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard fd >= 0 else { throw .system(errno: errno) }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Signals this eventfd; keep the `EventFD` alive as long as a device may call it.
    public var notifier: RxNotifier {
        RxNotifier(context: Unmanaged.passUnretained(self).toOpaque(), source: .fileDescriptor(fd)) { context in
            let me = Unmanaged<EventFD>.fromOpaque(context!).takeUnretainedValue()
            me.signal()
        }
    }

    /// Adds one event (what a device does).
    public func signal() {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) for an event and consumes all pending
    /// ones; returns how many were pending (0 on timeout).
    @discardableResult
    public func wait(timeoutMilliseconds: Int32) -> UInt64 {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pfd, 1, timeoutMilliseconds)
        guard ready > 0 else { return 0 }
        var count: UInt64 = 0
        return read(fd, &count, 8) == 8 ? count : 0
    }
}
