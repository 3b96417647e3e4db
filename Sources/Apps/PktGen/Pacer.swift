/// A token bucket on a nanosecond clock the caller supplies (so it runs in a unikernel and on
/// a virtual clock in tests). Exact integer arithmetic in unit-nanoseconds: a rate of 1 packet
/// per second holds as well as 100 Mpps, with no drift from rounding.
///
/// A rate is "units per second" and a packet costs some units: 1 for packets per second, its
/// bits on the wire for a bit rate (frame + FCS + preamble + inter-frame gap: length + 24 bytes).
public struct Pacer: Sendable {
    let unitsPerSecond: UInt64
    /// Unit-nanoseconds per packet.
    let packetCost: UInt64
    /// At most this much credit builds up while idle: `burst` packets, plus just under one more
    /// so the fraction earned between two polls is never cut off (the long-run rate stays exact).
    let capacity: UInt64
    let burst: Int
    /// Elapsed time beyond which the bucket is full anyway (keeps the product in 64 bits).
    let fillTime: UInt64
    var credit: UInt64 = 0
    var last: UInt64

    /// `packetsPerSecond` packets per second, bursts of at most `burst` packets.
    public init(packetsPerSecond: UInt64, burst: Int, start: UInt64) {
        self.init(unitsPerSecond: packetsPerSecond, unitsPerPacket: 1, burst: burst, start: start)
    }

    /// `bitsPerSecond` on the wire for frames of `frameLength` bytes (without FCS).
    public init(bitsPerSecond: UInt64, frameLength: Int, burst: Int, start: UInt64) {
        self.init(unitsPerSecond: bitsPerSecond, unitsPerPacket: UInt64(frameLength + 24) * 8, burst: burst, start: start)
    }

    init(unitsPerSecond: UInt64, unitsPerPacket: UInt64, burst: Int, start: UInt64) {
        self.unitsPerSecond = max(1, unitsPerSecond)
        packetCost = unitsPerPacket * 1_000_000_000
        self.burst = max(1, burst)
        capacity = packetCost * UInt64(self.burst) + packetCost - 1
        fillTime = capacity / self.unitsPerSecond + 1
        last = start
    }

    /// Packets that may go now.
    public mutating func available(now: UInt64) -> Int {
        if now > last {
            let elapsed = min(now - last, fillTime)
            credit = min(capacity, credit + elapsed * unitsPerSecond)
            last = now
        }
        return min(burst, Int(credit / packetCost))
    }

    /// Takes the credit of `packets` sent (at most what `available` returned).
    public mutating func consume(_ packets: Int) {
        credit -= min(credit, UInt64(packets) * packetCost)
    }

    /// Nanoseconds until the next packet may go (0 if one may go now).
    public var nanosecondsUntilNext: UInt64 {
        credit >= packetCost ? 0 : (packetCost - credit + unitsPerSecond - 1) / unitsPerSecond
    }
}
