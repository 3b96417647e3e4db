#if canImport(Glibc)
import Glibc
#endif
import CPcap
import UKNetdev

/// A device whose wire is a pair of pcap files (DPDK's net_pcap): RX replays the frames of the
/// `rx` file, TX appends every packet to the `tx` file. Either side may be absent: with no `rx`
/// file RX delivers nothing, with no `tx` file TX frees and counts packets as drops.
///
/// One queue each way. RX copies each frame into a buffer from the queue's allocator; a frame
/// longer than the buffer's room is counted as an RX error and skipped, a frame captured
/// shorter than it was on the wire (caplen < len) is delivered as captured and counted in
/// `rxTruncatedFrames`. When the allocator runs dry the next frame stays pending for the next
/// burst (status `.underrun`), so nothing is lost. The burst that delivers the last frame (and
/// every one after it) carries `.endOfInput`; `rxExhausted` says the same outside a burst.
///
/// TX writes Ethernet frames (DLT_EN10MB, snapshot length 65535) with timestamps from
/// `PcapTimestamps`; the file is flushed by `stop()`, `flush()` and when the last copy of the
/// device goes away. No allocation per packet either way: libpcap reads into and writes from
/// buffers of its own, allocated when the files are opened.
public struct PcapDevice: NetDevice, ~Copyable {
    /// Where the RX side stands in its file. Mutable state shared by copies of the device.
    @usableFromInline struct ReadCursor {
        /// The frame read ahead and not yet delivered: libpcap's header and data, valid until
        /// the next pcap_next_ex on this handle (only this device calls it).
        var header: UnsafeMutablePointer<pcap_pkthdr>? = nil
        var data: UnsafePointer<UInt8>? = nil
        /// The file is fully read (end of file, or a read error) and nothing is pending.
        var exhausted = false
        /// Frames delivered shorter than they were on the wire.
        var truncated: UInt64 = 0
    }

    /// Owns the libpcap handles, closing them (which flushes the TX file) when the last copy of
    /// the device goes away.
    @usableFromInline final class Storage {
        let rxPath: String?
        let txPath: String?
        let reader: OpaquePointer?
        let writer: PcapDumpFile?
        let rxStats = QueueStatsTable(count: 1)
        let txStats = QueueStatsTable(count: 1)
        let cursor: UnsafeMutablePointer<ReadCursor>
        let allocator: UnsafeMutablePointer<RxBufferAllocator?>
        /// libpcap's message for a read error that ended RX early (a cut-off file), if any.
        var readFailure: String?

        init(rx: String?, tx: String?, timestamps: PcapTimestamps) throws(PcapDeviceError) {
            var reader: OpaquePointer? = nil
            if let rx {
                var message = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
                guard let handle = pcap_open_offline(rx, &message) else {
                    throw .open(path: rx, message: message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
                }
                let linkType = pcap_datalink(handle)
                guard linkType == DLT_EN10MB else {
                    pcap_close(handle)
                    throw .unsupportedLinkType(path: rx, linkType: linkType)
                }
                reader = handle
            }
            do {
                writer = try tx.map { path throws(PcapDeviceError) in try PcapDumpFile.open(path: path, timestamps: timestamps) }
            } catch {
                if let reader { pcap_close(reader) }
                throw error
            }
            self.reader = reader
            rxPath = rx
            txPath = tx
            cursor = .allocate(capacity: 1)
            cursor.initialize(to: ReadCursor(exhausted: reader == nil))
            allocator = .allocate(capacity: 1)
            allocator.initialize(to: nil)
        }

        deinit {
            writer?.close()
            if let reader { pcap_close(reader) }
            rxStats.deallocate()
            txStats.deallocate()
            cursor.deallocate()
            allocator.deallocate()
        }
    }

    @usableFromInline let storage: Storage
    @usableFromInline let reader: OpaquePointer?
    @usableFromInline let writer: PcapDumpFile?
    @usableFromInline let cursor: UnsafeMutablePointer<ReadCursor>
    @usableFromInline let allocator: UnsafeMutablePointer<RxBufferAllocator?>
    @usableFromInline let rxStats: QueueStatsTable
    @usableFromInline let txStats: QueueStatsTable
    @usableFromInline var lifecycle = DeviceLifecycle()
    public var state: DeviceState { lifecycle.state }
    public let info: DeviceInfo

    /// Opens `rx` for reading and creates (truncates) `tx` for writing; either may be nil.
    public init(rx: String?, tx: String?, timestamps: PcapTimestamps = .realTime) throws(PcapDeviceError) {
        storage = try Storage(rx: rx, tx: tx, timestamps: timestamps)
        reader = storage.reader
        writer = storage.writer
        cursor = storage.cursor
        allocator = storage.allocator
        rxStats = storage.rxStats
        txStats = storage.txStats
        let limits = DescriptorLimits(min: 1, max: 1 << 16)
        info = DeviceInfo(maxRxQueues: 1, maxTxQueues: 1, mtu: pcapDefaultSnapLength - 14, features: [.scatterGather],
                          rxDescriptors: limits, txDescriptors: limits)
    }

    /// The files this device reads and writes.
    public var rxPath: String? { storage.rxPath }
    public var txPath: String? { storage.txPath }

    /// True once every frame of the RX file was delivered (or skipped), or if there is no RX file.
    public var rxExhausted: Bool { cursor.pointee.exhausted }
    /// Frames delivered shorter than they were on the wire (captured with a small snapshot length).
    public var rxTruncatedFrames: UInt64 { cursor.pointee.truncated }
    /// libpcap's message if reading stopped on an error rather than at the end of the file.
    public var rxReadFailure: String? { storage.readFailure }

    public mutating func configure(_ config: DeviceConfig) throws(NetDeviceError) {
        try lifecycle.configure(config, info: info)
    }

    public mutating func setupRxQueue(_ queue: Int, _ config: RxQueueConfig) throws(NetDeviceError) {
        if reader != nil && config.allocator == nil { throw .missingAllocator }
        try lifecycle.setupRx(queue, descriptors: config.descriptors, info: info)
        allocator.pointee = config.allocator
    }

    public mutating func setupTxQueue(_ queue: Int, _ config: TxQueueConfig) throws(NetDeviceError) {
        try lifecycle.setupTx(queue, descriptors: config.descriptors, info: info)
    }

    public mutating func start() throws(NetDeviceError) { try lifecycle.start() }

    /// Stops the data path and flushes the TX file, so a reader sees every packet sent so far.
    public mutating func stop() {
        lifecycle.stop()
        _ = writer?.flush()
    }

    /// Pushes every packet written so far to the TX file.
    public func flush() throws(PcapDeviceError) {
        if let writer, let message = writer.flush() {
            throw .write(path: storage.txPath ?? "", message: message)
        }
    }

    /// Makes sure a frame is pending, reading the next one if needed; false at the end of the file.
    @usableFromInline
    func readAhead() -> Bool {
        if cursor.pointee.data != nil { return true }
        guard !cursor.pointee.exhausted, let reader else { return false }
        var header: UnsafeMutablePointer<pcap_pkthdr>? = nil
        var data: UnsafePointer<UInt8>? = nil
        let status = pcap_next_ex(reader, &header, &data)
        if status == 1, let header, let data {
            cursor.pointee.header = header
            cursor.pointee.data = data
            return true
        }
        // PCAP_ERROR_BREAK is the end of the file; PCAP_ERROR a damaged or cut-off one.
        cursor.pointee.exhausted = true
        if status != PCAP_ERROR_BREAK {
            rxStats.recordErrors(0, 1)
            storage.readFailure = String(cString: pcap_geterr(reader))
        }
        return false
    }

    public mutating func rxBurst(queue: Int, into packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard lifecycle.canReceive(on: queue), let out = packets.baseAddress else { return .refused }
        // Allocate only when a frame is known to be waiting: polling an exhausted file is free.
        guard readAhead() else { return BurstResult(count: 0, status: [.success, .endOfInput]) }
        guard let allocator = allocator.pointee else { return BurstResult(count: 0, status: .success) }
        let got = allocator.allocate(into: packets)
        var n = 0
        var bytes = 0
        while n < got, readAhead() {
            let header = cursor.pointee.header!.pointee
            let data = cursor.pointee.data!
            cursor.pointee.header = nil
            cursor.pointee.data = nil
            let captured = Int(header.caplen)
            let buf = out[n]
            guard captured <= buf.capacity &- buf.headroom else {
                // Too long for the buffers this queue gets: an error, and the buffer stays free.
                rxStats.recordErrors(queue, 1)
                continue
            }
            if captured < Int(header.len) { cursor.pointee.truncated &+= 1 }
            copyPacketBytes(to: buf.data, from: UnsafeRawPointer(data), count: captured)
            buf.unsafeSetLength(captured)   // a fresh single buffer from the allocator; checked above
            bytes &+= captured
            n &+= 1
        }
        if n < got { NetBuf.releaseBulk(UnsafeMutableBufferPointer(start: out + n, count: got &- n)) }
        rxStats.record(queue, packets: n, bytes: bytes)
        var status: BurstStatus = .success
        // Read ahead once more so the last frame's burst already reports the end of the file.
        if readAhead() {
            status.insert(.more)
            if got < packets.count { status.insert(.underrun) }
        } else {
            status.insert(.endOfInput)
        }
        return BurstResult(count: n, status: status)
    }

    public mutating func txBurst(queue: Int, from packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard lifecycle.canTransmit(on: queue), let src = packets.baseAddress else { return .refused }
        let n = packets.count
        if let writer {
            txStats.record(queue, packets: n, bytes: writer.write(src, count: n))
        } else {
            txStats.recordDrops(queue, n)
        }
        NetBuf.releaseBulk(packets)
        return BurstResult(count: n, status: [.success, .more])
    }

    public func rxQueueStats(_ queue: Int) -> QueueStats { rxStats[queue] }
    public func txQueueStats(_ queue: Int) -> QueueStats { txStats[queue] }
}
