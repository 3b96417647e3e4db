#if canImport(Glibc)
import Glibc
#endif
import CPcap
import UKNetdev

/// Where the timestamps of written packets come from.
public enum PcapTimestamps: Equatable, Sendable {
    /// The wall clock (CLOCK_REALTIME) when each packet is written.
    case realTime
    /// Every packet gets this time: traces that compare byte for byte.
    case fixed(seconds: Int, microseconds: Int = 0)
    /// The first packet gets `startSeconds`, each next one `stepMicroseconds` later: deterministic
    /// traces whose packets still have distinct, increasing times.
    case counting(startSeconds: Int, stepMicroseconds: Int = 1)
}

/// Why a pcap file could not be opened, read or written; `message` is libpcap's own.
public enum PcapDeviceError: Error, Equatable {
    case open(path: String, message: String)
    /// The file's link type is not Ethernet: its frames are not what a device carries.
    /// `linkType` is libpcap's DLT_ value (DLT_RAW, 12 on Linux, for a file of LINKTYPE_RAW, 101).
    case unsupportedLinkType(path: String, linkType: Int32)
    case write(path: String, message: String)
}

extension PcapDeviceError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .open(let path, let message):
            // libpcap's message usually names the file already.
            message.contains(path) ? "cannot open the pcap file: \(message)" : "cannot open the pcap file \(path): \(message)"
        case .unsupportedLinkType(let path, let linkType):
            "\(path) holds link type \(linkType), not Ethernet (DLT_EN10MB, 1): its frames are not what a device carries"
        case .write(let path, let message):
            "cannot write the pcap file \(path): \(message)"
        }
    }
}

/// Pcap's on-disk snapshot length for files this module writes: a whole IPv4 datagram.
public let pcapDefaultSnapLength = 65535

/// The timestamp state of one dump file, in memory allocated once.
@usableFromInline
struct PcapClock {
    var realTime: Bool
    /// Next timestamp in microseconds since the epoch (fixed and counting modes).
    var nextMicroseconds: Int64
    var stepMicroseconds: Int64

    init(_ mode: PcapTimestamps) {
        switch mode {
        case .realTime:
            self.init(realTime: true, next: 0, step: 0)
        case .fixed(let s, let us):
            self.init(realTime: false, next: Int64(s) * 1_000_000 + Int64(us), step: 0)
        case .counting(let s, let step):
            self.init(realTime: false, next: Int64(s) * 1_000_000, step: Int64(step))
        }
    }
    private init(realTime: Bool, next: Int64, step: Int64) {
        self.realTime = realTime
        nextMicroseconds = next
        stepMicroseconds = step
    }

    mutating func next() -> timeval {
        if realTime {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            return timeval(tv_sec: now.tv_sec, tv_usec: now.tv_nsec / 1000)
        }
        let t = nextMicroseconds
        nextMicroseconds &+= stepMicroseconds
        return timeval(tv_sec: Int(t / 1_000_000), tv_usec: Int(t % 1_000_000))
    }
}

/// An open pcap savefile being written through libpcap's dump API (pcap_open_dead +
/// pcap_dump_open): Ethernet link type, one scratch buffer for chained packets. A bundle of
/// handles without ownership: the owner (a device's or writer's storage class) calls `close()`.
/// Kept out of inlinable code, so clients never see libpcap.
@usableFromInline
struct PcapDumpFile {
    @usableFromInline let handle: OpaquePointer
    @usableFromInline let dumper: OpaquePointer
    /// Where a chain is gathered into one frame; also caps what is written (the snapshot length).
    @usableFromInline let scratch: UnsafeMutableRawBufferPointer
    @usableFromInline let clock: UnsafeMutablePointer<PcapClock>
    /// Packets and bytes (as on the wire) written so far.
    @usableFromInline let counters: UnsafeMutablePointer<(packets: UInt64, bytes: UInt64)>

    static func open(path: String, timestamps: PcapTimestamps, snapLength: Int = pcapDefaultSnapLength) throws(PcapDeviceError) -> PcapDumpFile {
        guard snapLength > 0, snapLength <= 262_144 else {
            throw .open(path: path, message: "snapshot length \(snapLength) is outside 1...262144")
        }
        guard let handle = pcap_open_dead(DLT_EN10MB, Int32(snapLength)) else {
            throw .open(path: path, message: "pcap_open_dead failed")
        }
        guard let dumper = pcap_dump_open(handle, path) else {
            let message = String(cString: pcap_geterr(handle))
            pcap_close(handle)
            throw .open(path: path, message: message)
        }
        let clock = UnsafeMutablePointer<PcapClock>.allocate(capacity: 1)
        clock.initialize(to: PcapClock(timestamps))
        let counters = UnsafeMutablePointer<(packets: UInt64, bytes: UInt64)>.allocate(capacity: 1)
        counters.initialize(to: (0, 0))
        return PcapDumpFile(handle: handle, dumper: dumper,
                            scratch: .allocate(byteCount: snapLength, alignment: 64),
                            clock: clock, counters: counters)
    }

    /// Writes one packet (the whole chain); returns its length on the wire. No allocation.
    @usableFromInline
    func write(_ packet: NetBuf) -> Int {
        let length = packet.packetLength
        var header = pcap_pkthdr()
        header.ts = clock.pointee.next()
        header.len = UInt32(truncatingIfNeeded: length)
        let bytes: UnsafeRawPointer
        if packet.next == nil {
            // One segment: straight from the buffer, no copy.
            bytes = UnsafeRawPointer(packet.data)
            header.caplen = UInt32(truncatingIfNeeded: min(packet.length, scratch.count))
        } else {
            bytes = UnsafeRawPointer(scratch.baseAddress!)
            header.caplen = UInt32(truncatingIfNeeded: packet.copyOut(into: scratch))
        }
        pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &header,
                  bytes.assumingMemoryBound(to: UInt8.self))
        counters.pointee.packets &+= 1
        counters.pointee.bytes &+= UInt64(truncatingIfNeeded: length)
        return length
    }

    /// Writes the first `count` packets at `packets`; returns their bytes on the wire.
    @usableFromInline
    func write(_ packets: UnsafeMutablePointer<NetBuf>, count: Int) -> Int {
        var bytes = 0
        var i = 0
        while i < count {
            bytes &+= write(packets[i])
            i &+= 1
        }
        return bytes
    }

    /// Pushes stdio's buffer to the file. Returns the system's message on failure (libpcap
    /// leaves it in errno, not in pcap_geterr).
    func flush() -> String? {
        pcap_dump_flush(dumper) == 0 ? nil : String(cString: strerror(errno))
    }

    /// Flushes and closes the file and frees what `open` allocated.
    func close() {
        pcap_dump_close(dumper)
        pcap_close(handle)
        scratch.deallocate()
        clock.deallocate()
        counters.deallocate()
    }
}

/// Frames in the pcap file at `path` (another program will read it, e.g. DPDK's net_pcap, and
/// the reader of its output needs to know when all of it has come through).
public func pcapFrameCount(path: String) throws(PcapDeviceError) -> UInt64 {
    var message = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
    guard let handle = pcap_open_offline(path, &message) else {
        throw .open(path: path, message: message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    }
    defer { pcap_close(handle) }
    var count: UInt64 = 0
    var header: UnsafeMutablePointer<pcap_pkthdr>?
    var data: UnsafePointer<UInt8>?
    while pcap_next_ex(handle, &header, &data) == 1 { count += 1 }
    return count
}
