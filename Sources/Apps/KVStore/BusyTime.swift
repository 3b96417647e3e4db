/// Time a polling store spent in polls that received frames (their requests handled, replies
/// sent): what its requests cost a core, without the empty polls between them, which a polling
/// server's CPU time counts too (OVS-DPDK's pmd-stats-show reports the same as processing cycles).
/// The loop reads its clock once per poll (a poll's end is the next one's start) and adds the
/// polls that received frames. Shared by `kvstore` (every stack) and the unikernel's store, which
/// print the same line; integer arithmetic only (Embedded Swift prints no floating point).
public struct BusyTime: Sendable, Equatable {
    public var nanoseconds: UInt64 = 0
    /// Polls that received frames: requests over polls is how full the bursts were.
    public var polls: UInt64 = 0

    public init() {}

    /// A poll that received frames and took `nanoseconds`.
    @inline(__always)
    public mutating func add(poll nanoseconds: UInt64) {
        self.nanoseconds &+= nanoseconds
        polls &+= 1
    }

    /// "busy: S s in P polls that received frames (Q requests per poll), N ns per request (one core at
    /// that cost: R requests/s)", rounded to the nearest; `requests`: what the polls answered.
    public func reportLine(requests: UInt64) -> String {
        let milliseconds = (nanoseconds &+ 500_000) / 1_000_000
        let seconds = "\(milliseconds / 1000)." + Self.threeDigits(milliseconds % 1000) + " s"
        guard requests > 0, nanoseconds > 0, polls > 0 else { return "busy: " + seconds + " in polls that received frames" }
        let tenthsPerPoll = (requests &* 10 &+ polls / 2) / polls
        let perRequest = (nanoseconds &+ requests / 2) / requests
        // Requests of 1 s at this cost; requests stay far below 2^64 / 10^9 (18 billion).
        let perSecond = (requests &* 1_000_000_000 &+ nanoseconds / 2) / nanoseconds
        return "busy: " + seconds + " in \(polls) polls that received frames (\(tenthsPerPoll / 10).\(tenthsPerPoll % 10) requests per poll), "
            + "\(perRequest) ns per request (one core at that cost: \(perSecond) requests/s)"
    }

    static func threeDigits(_ n: UInt64) -> String {
        n >= 100 ? "\(n)" : (n >= 10 ? "0\(n)" : "00\(n)")
    }
}
