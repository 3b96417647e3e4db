import UKNetdev

/// Which packets a `PcapWriter` records.
public struct PcapDirections: OptionSet, Equatable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let rx = PcapDirections(rawValue: 1 << 0)
    public static let tx = PcapDirections(rawValue: 1 << 1)
    public static let both: PcapDirections = [.rx, .tx]
}

/// Middleware that records every packet a device receives and transmits into a pcap file
/// (smoltcp's `phy::PcapWriter`, generic instead of boxed), through libpcap's dump API.
/// Stacks with other middleware: `PcapWriter(inner: Tracer(inner: dev, ...), path: ...)`.
///
/// RX packets are recorded once the inner device delivered them. TX packets are recorded only
/// once the inner device has taken them, so a packet refused and offered again is recorded
/// once; as in `Tracer`, each offered packet holds an extra reference for the duration of the
/// inner call, so one the device freed at once can still be read. (With a ring pair, a peer
/// polled by another thread may already be changing a packet when it is recorded: record on
/// the receiving side there.)
///
/// The file is flushed by `flush()`, `stop()` and when the last copy of the writer goes away.
public struct PcapWriter<Inner: NetDevice & ~Copyable>: NetDeviceWrapper, ~Copyable {
    /// Owns the dump file: closing it (and so flushing it) when the last copy goes away.
    @usableFromInline final class Storage {
        let path: String
        let file: PcapDumpFile
        init(path: String, file: PcapDumpFile) {
            self.path = path
            self.file = file
        }
        deinit { file.close() }
    }

    public var inner: Inner
    public let directions: PcapDirections
    @usableFromInline let storage: Storage
    @usableFromInline let file: PcapDumpFile

    /// Creates (truncates) the pcap file at `path` and records `directions` of `inner` into it.
    public init(inner: consuming Inner, path: String, directions: PcapDirections = .both,
                timestamps: PcapTimestamps = .realTime) throws(PcapDeviceError) {
        file = try PcapDumpFile.open(path: path, timestamps: timestamps)
        storage = Storage(path: path, file: file)
        self.inner = inner
        self.directions = directions
    }

    /// The pcap file being written.
    public var path: String { storage.path }
    /// Packets recorded so far.
    public var recordedPackets: UInt64 { file.counters.pointee.packets }
    /// Bytes (as on the wire) recorded so far.
    public var recordedBytes: UInt64 { file.counters.pointee.bytes }

    /// Pushes every packet recorded so far to the file.
    public func flush() throws(PcapDeviceError) {
        if let message = file.flush() { throw .write(path: storage.path, message: message) }
    }

    public mutating func stop() {
        inner.stop()
        _ = file.flush()
    }

    @inlinable
    public mutating func rxBurst(queue: Int, into packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        let result = inner.rxBurst(queue: queue, into: packets)
        if directions.contains(.rx), result.count > 0, let base = packets.baseAddress {
            _ = file.write(base, count: result.count)
        }
        return result
    }

    @inlinable
    public mutating func txBurst(queue: Int, from packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard directions.contains(.tx), packets.baseAddress != nil else {
            return inner.txBurst(queue: queue, from: packets)
        }
        return txBurstHolding(queue: queue, from: packets) { writer, taken in
            if taken.count > 0, let base = taken.baseAddress { _ = writer.file.write(base, count: taken.count) }
        }
    }
}
