import HostStack
import UKNetdev

/// Who may get what from a UDP store. A UDP request's source address is not proven (anyone can
/// write someone else's), so a store that answers small requests with large replies is a
/// reflector: the memcached attacks of 2018 sent 15-byte GETs with a victim's address and
/// reached 50,000x amplification. Sources in the store's own prefix and in `allow` are trusted;
/// to any other:
/// - no request's replies (UDP payload bytes, every datagram) exceed `maxReplyRatio` times the
///   request's own: larger ones are replaced by one short `SERVER_ERROR` datagram
///   (`SourceGuard.limitedReply`, always within the ratio);
/// - one source gets at most `budgetBytesPerSecond` of replies in a second; beyond that its
///   requests are dropped without a reply, counted;
/// - with an allow list, commands that change the store (set, add, replace, append, prepend,
///   cas, incr, decr, delete, touch, gat, gats, flush_all) are refused with a `SERVER_ERROR`
///   line (nothing with noreply): a spoofed source cannot plant a large value to reflect later.
public struct SourcePolicy: Sendable, Equatable {
    /// At most this many reply bytes per request byte to an untrusted source; 0: no limit.
    public var maxReplyRatio: Int
    /// Reply bytes per second to one untrusted source; 0: no budget. (Sources are counted in a
    /// fixed table by a hash of their address; two that share a slot share its budget.)
    public var budgetBytesPerSecond: Int
    /// Prefixes trusted besides the store's own.
    public var allow: [IPv4Prefix]

    public init(maxReplyRatio: Int = 10, budgetBytesPerSecond: Int = 1 << 20, allow: [IPv4Prefix] = []) {
        self.maxReplyRatio = maxReplyRatio
        self.budgetBytesPerSecond = budgetBytesPerSecond
        self.allow = allow
    }

    /// No limits: every source trusted.
    public static var trustEveryone: SourcePolicy { SourcePolicy(maxReplyRatio: 0, budgetBytesPerSecond: 0, allow: [IPv4Prefix(.any, length: 0)]) }
}

/// `SourcePolicy` applied: the trust test (inline, one compare for the store's own prefix) and
/// the per-source budgets. Owns its table; `deallocate` frees it.
public struct SourceGuard {
    public let policy: SourcePolicy
    let own: IPv4Prefix
    /// Every source trusted (the allow list holds 0.0.0.0/0): no checks at all.
    let trustsAll: Bool
    /// Per slot: the second its count is for, and the reply bytes sent in it.
    let slotSecond: UnsafeMutablePointer<UInt32>
    let slotBytes: UnsafeMutablePointer<UInt32>
    static var slotBits: UInt32 { 10 }
    static var slots: Int { 1 << Int(slotBits) }

    /// The reply that replaces one over the ratio (62 bytes with its memcached header: within
    /// 10x of the smallest request, 9 bytes, at any ratio >= 7).
    public static let limitedReply: StaticString = "SERVER_ERROR reply too large for an untrusted source"
    /// The answer to a write from an untrusted source when an allow list is given.
    public static let refusedWrite: StaticString = "SERVER_ERROR writes are accepted from trusted sources only"

    public init(policy: SourcePolicy, ownPrefix: IPv4Prefix) {
        self.policy = policy
        own = ownPrefix
        trustsAll = policy.allow.contains { $0.length == 0 }
        slotSecond = .allocate(capacity: Self.slots)
        slotSecond.initialize(repeating: 0, count: Self.slots)
        slotBytes = .allocate(capacity: Self.slots)
        slotBytes.initialize(repeating: 0, count: Self.slots)
    }

    /// Every source's budget full again.
    public func reset() {
        slotSecond.update(repeating: 0, count: Self.slots)
        slotBytes.update(repeating: 0, count: Self.slots)
    }

    public func deallocate() {
        slotSecond.deallocate()
        slotBytes.deallocate()
    }

    /// Whether `source` is trusted: in the store's prefix (checked first, inline) or allowed.
    @inline(__always)
    public func trusts(_ source: IPv4Address) -> Bool {
        own.contains(source) || trustsAllowed(source)
    }

    @inline(never)
    func trustsAllowed(_ source: IPv4Address) -> Bool {
        trustsAll || policy.allow.contains { $0.contains(source) }
    }

    /// Whether the engine may run commands that change the store for this (untrusted) source.
    var untrustedMayWrite: Bool { policy.allow.isEmpty }

    /// Over the ratio: replace (the replacement is then charged with `charge`).
    func exceedsRatio(replyBytes: Int, requestBytes: Int) -> Bool {
        policy.maxReplyRatio > 0 && replyBytes > policy.maxReplyRatio &* requestBytes
    }

    /// Charges `bytes` to `source`'s budget for second `now`; false (nothing charged) when they
    /// do not fit.
    mutating func charge(_ bytes: Int, to source: IPv4Address, now: UInt32) -> Bool {
        guard policy.budgetBytesPerSecond > 0 else { return true }
        let slot = Int((source.value &* 0x9E37_79B1) >> (32 - Self.slotBits))
        if slotSecond[slot] != now {
            slotSecond[slot] = now
            slotBytes[slot] = 0
        }
        let used = Int(slotBytes[slot])
        guard used + bytes <= policy.budgetBytesPerSecond else { return false }
        slotBytes[slot] = UInt32(truncatingIfNeeded: used + bytes)
        return true
    }

    /// The engine's replies to an untrusted source, screened: over the ratio, released and
    /// replaced by `limitedReply`; over the source's budget, released (counted in `stats`).
    /// `writer` still holds the request's peer. Returns what may be sent.
    mutating func screen(_ frames: UnsafeMutableBufferPointer<NetBuf>, requestBytes: Int, source: IPv4Address, now: UInt32,
                         writer: inout DatagramWriter, stats: inout KVServerStats) -> UnsafeMutableBufferPointer<NetBuf> {
        var frames = frames
        func payloadBytes(_ frames: UnsafeMutableBufferPointer<NetBuf>) -> Int {
            var bytes = 0
            for frame in frames { bytes &+= writer.udpPayloadBytes(of: frame) }
            return bytes
        }
        var bytes = payloadBytes(frames)
        if exceedsRatio(replyBytes: bytes, requestBytes: requestBytes) {
            writer.withdraw(frames)
            stats.repliesLimited &+= 1
            writer.begin(peer: writer.peer, spare: nil)
            writer.beginResponse()
            writer.append(Self.limitedReply)
            writer.append("\r\n")
            writer.flush()
            let replacement = writer.end()
            replacement.unused?.release()
            stats.drops.add(.noBufferForReply, replacement.dropped)
            frames = replacement.frames
            bytes = payloadBytes(frames)
        }
        guard !frames.isEmpty else { return frames }
        guard charge(bytes, to: source, now: now) else {
            writer.withdraw(frames)
            stats.drops.add(.sourceBudget)
            return UnsafeMutableBufferPointer(start: frames.baseAddress, count: 0)
        }
        return frames
    }
}
