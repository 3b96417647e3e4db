import UKNetdev

/// Where the text protocol engine writes replies. memcached builds each reply as "response
/// objects" and sends them at flush points (after each get, every 20 commands, at the end of
/// the datagram). At a flush, over UDP, every response object is its own group of datagrams
/// (sequence from 0, total = ceil(bytes / 1392)); skipped (noreply) objects send nothing; and
/// an empty object sends a header-only datagram with total 0 only if it is the first object of
/// the flush, otherwise nothing (memcached's transmit_udp and _transmit_post). The engine
/// reports object boundaries and flush points; sinks apply this rule (`FlushWindow`).
public protocol ResponseSink {
    /// Starts a new response object; later appends go to it.
    mutating func beginResponse()
    /// Appends bytes to the current response object.
    mutating func append(_ bytes: UnsafeRawPointer, count: Int)
    /// The current response object is not to be sent (memcached's `noreply`).
    mutating func skipResponse()
    /// A flush point: memcached transmits what it has stacked; it can no longer be discarded.
    mutating func flush()
    /// Drops every response object since the last flush (memcached's conn_release_items, run
    /// by a get before it reports an error, and on an HTTP request line).
    mutating func discardUnflushed()
}

/// memcached's rule for which response objects of a flush produce datagrams.
struct FlushWindow {
    /// Whether an object that is not skipped came earlier in this flush.
    var sawObject = false
    /// Decides for one finished object: send it (true) or drop it silently.
    mutating func admits(empty: Bool, skipped: Bool) -> Bool {
        if skipped { return false }
        defer { sawObject = true }
        return !(empty && sawObject)
    }
    mutating func reset() { sawObject = false }
}

extension ResponseSink {
    @inline(__always)
    mutating func append(_ s: StaticString) {
        append(UnsafeRawPointer(s.utf8Start), count: s.utf8CodeUnitCount)
    }

    /// Appends `value` in decimal.
    @inline(__always)
    mutating func appendDecimal(_ value: UInt64) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of stack for up to 20 digits
        withUnsafeMutableBytes(of: &digits) { buf in
            let n = writeDecimal(value, to: buf.baseAddress!)
            append(UnsafeRawPointer(buf.baseAddress!), count: n)
        }
    }
}

/// A sink that keeps every datagram's payload as it would go on the wire (tests, the
/// differential check against memcached, and anything that wants replies as bytes).
public struct CollectingSink: ResponseSink {
    /// The response objects that are sent, each as its bytes, in order.
    public private(set) var responses: [[UInt8]] = []
    /// Objects since the last flush: bytes, or nil if skipped (noreply).
    var pending: [[UInt8]?] = []
    var window = FlushWindow()
    public init() {}
    public mutating func beginResponse() { pending.append([]) }
    public mutating func append(_ bytes: UnsafeRawPointer, count: Int) {
        if pending.isEmpty { pending.append([]) }
        let p = bytes.assumingMemoryBound(to: UInt8.self)
        pending[pending.count - 1]?.append(contentsOf: UnsafeBufferPointer(start: p, count: count))
    }
    public mutating func skipResponse() {
        if !pending.isEmpty { pending[pending.count - 1] = nil }
    }
    public mutating func flush() {
        for r in pending where window.admits(empty: r?.isEmpty ?? true, skipped: r == nil) { responses.append(r!) }
        pending.removeAll()
        window.reset()
    }
    public mutating func discardUnflushed() {
        pending.removeAll()
        window.reset()
    }

    /// The datagram payloads (each with its 8-byte memcached header) memcached would send for
    /// these response objects, for request id `requestID`.
    public func datagrams(requestID: UInt16) -> [[UInt8]] {
        var out: [[UInt8]] = []
        for r in responses {
            let total = (r.count + MemcachedUDP.maxPayload - 1) / MemcachedUDP.maxPayload
            if total == 0 {
                out.append(MemcachedUDP.header(requestID: requestID, sequence: 0, total: 0))
                continue
            }
            for seq in 0..<total {
                let chunk = r[(seq * MemcachedUDP.maxPayload)..<min(r.count, (seq + 1) * MemcachedUDP.maxPayload)]
                out.append(MemcachedUDP.header(requestID: requestID, sequence: UInt16(seq), total: UInt16(total)) + chunk)
            }
        }
        return out
    }
}

/// memcached's UDP frame header: request id, sequence number, total datagrams, reserved.
public enum MemcachedUDP {
    public static let headerLength = 8
    /// Payload bytes per datagram after the frame header (memcached's UDP_DATA_SIZE).
    public static let maxPayload = 1392

    /// Request id, sequence, total, reserved 0, at `p`.
    @inline(__always)
    static func writeHeader(at p: UnsafeMutableRawPointer, requestID: UInt16, sequence: UInt16, total: UInt16) {
        p.storeBytes(of: requestID.bigEndian, as: UInt16.self)
        p.storeBytes(of: sequence.bigEndian, toByteOffset: 2, as: UInt16.self)
        p.storeBytes(of: total.bigEndian, toByteOffset: 4, as: UInt16.self)
        p.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
    }

    /// The request id of a request datagram's payload, or why memcached drops it: 8 bytes or
    /// fewer is nothing; a request spread over several datagrams is not supported.
    @inline(__always)
    static func requestID(of data: UnsafeRawPointer, count: Int) -> (id: UInt16, drop: KVDropReason?) {
        guard count > headerLength else { return (0, .memcachedTooShort) }
        guard UInt16(bigEndian: data.loadUnaligned(fromByteOffset: 4, as: UInt16.self)) == 1 else {
            return (0, .memcachedMultiDatagram)
        }
        return (UInt16(bigEndian: data.loadUnaligned(as: UInt16.self)), nil)
    }

    public static func header(requestID: UInt16, sequence: UInt16, total: UInt16) -> [UInt8] {
        [UInt8(requestID >> 8), UInt8(requestID & 0xFF), UInt8(sequence >> 8), UInt8(sequence & 0xFF),
         UInt8(total >> 8), UInt8(total & 0xFF), 0, 0]
    }
}
