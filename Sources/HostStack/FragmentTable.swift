import UKNetdev

/// IPv4 reassembly with fixed memory: a few slots, each with a 64 KiB buffer and a bitmap of
/// the 8-byte blocks received. Overlapping fragments, datagrams past 65535 bytes, a full table
/// and timeouts drop the datagram and are counted, never trusted.
struct FragmentTable {
    struct Slot {
        var inUse = false
        var source = IPv4Address.any
        var destination = IPv4Address.any
        var identification: UInt16 = 0
        var proto: UInt8 = 0
        var firstSeen: UInt32 = 0
        /// Payload length once the last fragment (MF clear) arrived, else -1.
        var total = -1
        var senderMAC = MACAddress.zero
        var vlan: UInt16?
    }

    enum Outcome {
        /// Stored; the datagram is not complete yet.
        case pending
        /// Complete: the payload is in `buffer(slot)`, `total` bytes; free the slot after use.
        case complete(slot: Int)
        case dropped(HostDropReason)
    }

    static let maxPayload = 65535 - 20
    static let blocks = (maxPayload + 7) / 8

    var slots: UnsafeMutablePointer<Slot>
    let count: Int
    /// Slots holding a datagram being reassembled (rarely any: `expire` looks only then).
    var inUse = 0
    let buffers: UnsafeMutableRawPointer
    let bitmaps: UnsafeMutablePointer<UInt64>
    let words = (blocks + 63) / 64
    let timeout: UInt32

    init(slots count: Int, timeout: UInt32) {
        self.count = count
        self.timeout = timeout
        slots = .allocate(capacity: max(count, 1))
        slots.initialize(repeating: Slot(), count: max(count, 1))
        buffers = .allocate(byteCount: max(count, 1) * 65536, alignment: 64)
        bitmaps = .allocate(capacity: max(count, 1) * words)
        bitmaps.initialize(repeating: 0, count: max(count, 1) * words)
    }

    func deallocate() {
        slots.deallocate()
        buffers.deallocate()
        bitmaps.deallocate()
    }

    func buffer(_ slot: Int) -> UnsafeMutableRawPointer { buffers + slot * 65536 }

    mutating func free(_ slot: Int) {
        if slots[slot].inUse { inUse -= 1 }
        slots[slot].inUse = false
        (bitmaps + slot * words).update(repeating: 0, count: words)
    }

    /// Frees slots older than the timeout; returns how many.
    mutating func expireSlots(now: UInt32) -> Int {
        var n = 0
        for i in 0..<count where slots[i].inUse && now &- slots[i].firstSeen >= timeout {
            free(i)
            n += 1
        }
        return n
    }

    /// Adds one fragment (`ip` is its parsed header, `payload` its data).
    mutating func add(_ ip: IPv4Packet, senderMAC: MACAddress, vlan: UInt16?, now: UInt32) -> Outcome {
        let offset = ip.fragmentOffset
        let payload = ip.payload
        let length = payload.count
        let more = ip.moreFragments
        var slot = -1
        var freeSlot = -1
        for i in 0..<count {
            if slots[i].inUse {
                if slots[i].identification == ip.identification && slots[i].source == ip.source
                    && slots[i].destination == ip.destination && slots[i].proto == ip.protocolNumber {
                    slot = i
                    break
                }
            } else if freeSlot < 0 {
                freeSlot = i
            }
        }
        if slot < 0 {
            guard freeSlot >= 0 else { return .dropped(.fragmentTableFull) }
            slot = freeSlot
            inUse += 1
            slots[slot] = Slot(inUse: true, source: ip.source, destination: ip.destination, identification: ip.identification,
                               proto: ip.protocolNumber, firstSeen: now, total: -1, senderMAC: senderMAC, vlan: vlan)
        }
        // Every fragment but the last carries a multiple of 8 bytes; nothing may pass 64 KiB.
        guard offset + length <= FragmentTable.maxPayload else {
            free(slot)
            return .dropped(.fragmentTooLarge)
        }
        guard !more || (length % 8 == 0 && length > 0) else {
            free(slot)
            return .dropped(.fragmentMalformed)
        }
        if !more {
            guard slots[slot].total < 0 else {
                free(slot)
                return .dropped(.fragmentOverlap)
            }
            slots[slot].total = offset + length
        }
        if let total = Optional(slots[slot].total), total >= 0, offset + length > total {
            free(slot)
            return .dropped(.fragmentOverlap)
        }
        // Overlap with anything already received drops the whole datagram.
        let bitmap = bitmaps + slot * words
        let first = offset / 8
        let last = (offset + length + 7) / 8
        for b in first..<last where bitmap[b / 64] & (1 << UInt64(b % 64)) != 0 {
            free(slot)
            return .dropped(.fragmentOverlap)
        }
        for b in first..<last { bitmap[b / 64] |= 1 << UInt64(b % 64) }
        if length > 0, let base = payload.baseAddress { (buffer(slot) + offset).copyMemory(from: base, byteCount: length) }
        let total = slots[slot].total
        guard total >= 0 else { return .pending }
        let needed = (total + 7) / 8
        for b in 0..<needed where bitmap[b / 64] & (1 << UInt64(b % 64)) == 0 { return .pending }
        return .complete(slot: slot)
    }
}
