import HostStack

/// Why the server dropped a datagram the host stack delivered, or a reply. Drops below
/// memcached (Ethernet, ARP, IPv4, ICMP, UDP) are the host stack's: `HostDropReason`.
public enum KVDropReason: Int, CaseIterable, Sendable {
    case memcachedTooShort, memcachedMultiDatagram
    case noBufferForReply, txQueueFull
    /// Echo mode: a datagram that came reassembled (or in a buffer it may not write over) and
    /// whose echo would not fit one 1500-byte IPv4 packet (the server does not fragment).
    case echoTooLarge
    /// Replies to an untrusted source over its byte budget for the second (`SourcePolicy`).
    case sourceBudget

    public var name: String {
        switch self {
        case .memcachedTooShort: "memcached datagram of 8 bytes or fewer"
        case .memcachedMultiDatagram: "memcached multi-datagram request"
        case .noBufferForReply: "no buffer for a reply"
        case .txQueueFull: "transmit queue full"
        case .echoTooLarge: "echo larger than one 1500-byte packet"
        case .sourceBudget: "reply over an untrusted source's byte budget"
        }
    }
}

public struct KVServerStats: Sendable {
    public var framesReceived: UInt64 = 0
    public var requests: UInt64 = 0
    public var replyDatagrams: UInt64 = 0
    /// Echo mode: datagrams answered with themselves by the one-pass path (turned around in
    /// their own buffer), and by the general path after the host stack (fresh headers in front
    /// of the payload; `echoCopies` of them copied into a fresh buffer because their own could
    /// not be used: reassembled, or shared with someone else). Not in `requests` or
    /// `replyDatagrams`, which count memcached's.
    public var echoFastPath: UInt64 = 0
    public var echoGeneralPath: UInt64 = 0
    public var echoCopies: UInt64 = 0
    /// Replies to untrusted sources over the ratio, replaced by one short SERVER_ERROR (`SourcePolicy`).
    public var repliesLimited: UInt64 = 0
    /// Every datagram echoed.
    public var echoed: UInt64 { echoFastPath &+ echoGeneralPath }
    /// The host stack's: ARP and ICMP replies, reassembly, chains, and its drops.
    public var host = HostStackStats()
    public var drops = ReasonCounters<KVDropReason, 6>()
    public init() {}

    public subscript(_ r: KVDropReason) -> UInt64 { drops[r] }
    public subscript(_ r: HostDropReason) -> UInt64 { host[r] }
    public var arpReplies: UInt64 { host.arpReplies }
    public var icmpReplies: UInt64 { host.icmpReplies }
    public var reassembled: UInt64 { host.reassembled }
    public var totalDrops: UInt64 { host.totalDrops &+ drops.total }

    /// Every drop counter with its reason's name, the host stack's first, in declaration order.
    public func forEachDrop(_ body: (_ reason: String, _ count: UInt64) -> Void) {
        for r in HostDropReason.allCases { body(r.name, host[r]) }
        for r in KVDropReason.allCases { body(r.name, drops[r]) }
    }
}
