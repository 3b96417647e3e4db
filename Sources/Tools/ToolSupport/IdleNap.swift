import Glibc

/// A polling loop's nap while nothing arrives: it busy-polls for `after` nanoseconds since the
/// last packet (a closed loop's next one is microseconds away, and a measured run never naps),
/// then sleeps `sleep` microseconds per empty poll. An idle or gone peer then costs no core, and
/// the kernel's per-CPU work on that core runs: it was seen delayed for seconds to minutes behind
/// a spinning pktgen (which a dying vhost-user backend waits on to finish its exit).
public struct IdleNap {
    let quiet: UInt64
    let sleep: useconds_t
    var lastPacket: UInt64

    public init(after nanoseconds: UInt64, sleep microseconds: useconds_t, now: UInt64) {
        quiet = nanoseconds
        sleep = microseconds
        lastPacket = now
    }

    /// After a poll that got `packets` (frames, replies) at `now`; true if it napped.
    @inline(__always)
    @discardableResult
    public mutating func after(packets: Int, now: UInt64) -> Bool {
        if packets != 0 {
            lastPacket = now
            return false
        }
        guard now &- lastPacket > quiet else { return false }
        usleep(sleep)
        return true
    }
}
