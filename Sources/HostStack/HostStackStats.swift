/// Why the host stack dropped a frame. Every frame it neither answers nor delivers is counted
/// under one.
public enum HostDropReason: Int, CaseIterable, Sendable {
    case truncatedFrame, notForUs, unsupportedEtherType
    case arpMalformed, arpNotForUs
    case ipMalformed, ipBadChecksum, ipWrongAddress, ipUnsupportedProtocol
    case fragmentOverlap, fragmentTooLarge, fragmentMalformed, fragmentTableFull, fragmentTimeout
    case udpMalformed, udpBadChecksum, udpWrongPort
    case icmpMalformed, icmpBadChecksum, icmpNotEchoRequest, icmpTooLarge
    case noBuffer, chainTooLong

    public var name: String {
        switch self {
        case .truncatedFrame: "truncated frame"
        case .notForUs: "not for our MAC"
        case .unsupportedEtherType: "unsupported EtherType"
        case .arpMalformed: "malformed ARP"
        case .arpNotForUs: "ARP not for us"
        case .ipMalformed: "malformed IPv4 header"
        case .ipBadChecksum: "bad IPv4 checksum"
        case .ipWrongAddress: "not for our IPv4 address"
        case .ipUnsupportedProtocol: "unsupported IP protocol"
        case .fragmentOverlap: "overlapping fragment"
        case .fragmentTooLarge: "fragment beyond 64 KiB"
        case .fragmentMalformed: "malformed fragment"
        case .fragmentTableFull: "reassembly table full"
        case .fragmentTimeout: "reassembly timeout"
        case .udpMalformed: "malformed UDP header"
        case .udpBadChecksum: "bad UDP checksum"
        case .udpWrongPort: "UDP port not ours"
        case .icmpMalformed: "malformed ICMP"
        case .icmpBadChecksum: "bad ICMP checksum"
        case .icmpNotEchoRequest: "ICMP other than echo request"
        case .icmpTooLarge: "ICMP echo too large to answer"
        case .noBuffer: "no buffer for a reply or a chained frame's copy"
        case .chainTooLong: "chained frame beyond 64 KiB"
        }
    }
}

/// One counter per case of `Reason`, in fixed storage (no allocation, no reference counting on
/// the packet path). InlineArray takes its size as a literal, so the owner names it beside the
/// enum and `init` checks it against `Reason.allCases.count`: a reason added without growing the
/// storage stops the first run (and every test) instead of counting into the wrong slot.
///
/// Inlinable, so each owner's counters are specialized in its own module: a generic call
/// across modules would look up metadata and conformances at run time, on the packet path.
@frozen
public struct ReasonCounters<Reason: CaseIterable & RawRepresentable, let count: Int>: Sendable where Reason.RawValue == Int {
    @usableFromInline var counts: InlineArray<count, UInt64>

    @inlinable
    public init() {
        precondition(Reason.allCases.count == count, "ReasonCounters: storage size differs from the number of reasons")
        counts = InlineArray(repeating: 0)
    }

    @inlinable
    public subscript(_ reason: Reason) -> UInt64 { counts[reason.rawValue] }

    @inlinable
    public var total: UInt64 {
        var t: UInt64 = 0
        for i in 0..<count { t &+= counts[i] }
        return t
    }

    @inlinable @inline(__always)
    public mutating func add(_ reason: Reason, _ n: UInt64 = 1) { counts[reason.rawValue] &+= n }
}

/// What the host stack did: replies it made, datagrams it reassembled, chains it copied, and
/// every frame it dropped, by reason.
public struct HostStackStats: Sendable {
    public var arpReplies: UInt64 = 0
    /// ARP requests made (by `arpRequest(for:)`), and replies to them that resolved a peer.
    public var arpRequests: UInt64 = 0
    public var arpResolved: UInt64 = 0
    public var icmpReplies: UInt64 = 0
    public var reassembled: UInt64 = 0
    /// Chained (multi-segment) frames copied into one buffer, or into the stack's own memory.
    public var linearised: UInt64 = 0
    public var drops = ReasonCounters<HostDropReason, 23>()
    public init() {}
    public subscript(_ r: HostDropReason) -> UInt64 { drops[r] }
    public var totalDrops: UInt64 { drops.total }
}
