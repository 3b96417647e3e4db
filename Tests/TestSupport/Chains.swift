// Chained (multi-segment) frames, as virtio's mergeable RX buffers deliver them: built from
// bytes, and a device wrapper that hands every received frame on as a chain.
import UKNetdev

/// `bytes` as a chain of `segment`-byte buffers from `pool` (the last one shorter); nil, with
/// nothing left allocated, when the pool runs out.
public func makeChain(_ bytes: [UInt8], segment: Int, pool: NetBufPool) -> NetBuf? {
    precondition(segment > 0)
    var head: NetBuf?
    var offset = 0
    repeat {
        let n = min(segment, bytes.count - offset)
        guard let seg = pool.allocate() else {
            head?.release()
            return nil
        }
        bytes[offset..<(offset + n)].withUnsafeBytes { try! seg.copyIn($0) }
        if let h = head { try! h.chain(seg) } else { head = seg }
        offset += n
    } while offset < bytes.count
    return head
}

/// The bytes of a whole frame, chained or not.
public func frameBytes(_ buf: NetBuf) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: buf.packetLength)
    _ = out.withUnsafeMutableBytes { buf.copyOut(into: $0) }
    return out
}

/// Middleware that hands every frame `inner` receives on as a chain of `segment`-byte buffers
/// from `pool` (the original freed), the way a virtio device with mergeable RX buffers does.
/// A frame the pool cannot chain is dropped and counted.
public struct SegmentingDevice<Inner: NetDevice & ~Copyable>: NetDeviceWrapper, ~Copyable {
    public var inner: Inner
    public let pool: NetBufPool
    public let segment: Int
    /// Frames handed on as chains of two or more segments.
    public private(set) var chained: UInt64 = 0
    public private(set) var dropped: UInt64 = 0

    public init(inner: consuming Inner, pool: NetBufPool, segment: Int) {
        self.inner = inner
        self.pool = pool
        self.segment = segment
    }

    public mutating func rxBurst(queue: Int, into packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        let result = inner.rxBurst(queue: queue, into: packets)
        var kept = 0
        for i in 0..<result.count {
            let original = packets[i]
            let chain = makeChain(frameBytes(original), segment: segment, pool: pool)
            original.release()
            if let chain {
                packets[kept] = chain
                kept += 1
                if chain.next != nil { chained += 1 }
            } else {
                dropped += 1
            }
        }
        return BurstResult(count: kept, status: result.status)
    }
}
