import UKNetdev

/// Why a generator could not be set up (checked once, before any packet).
public enum PktGenError: Error, Equatable, Sendable {
    /// Frame lengths are 60...1514 bytes without the FCS (64...1518 on the wire).
    case frameLength(Int)
    case flows(Int)
    /// Bursts are 1...1024 frames.
    case burstSize(Int)
    case window(Int)
    case keySize(needed: Int, given: Int)
    case valueSize(Int, max: Int)
    case keys(Int)
    case buffersTooSmall(needed: Int, available: Int)
    /// A prefilled generator needs its pool whole (every buffer gets the template up front).
    case poolInUse(Int)
}

/// Which header fields differ between the flows of a run.
public enum FlowVariation: Sendable {
    /// Flow i uses source port `sourcePort + i`.
    case sourcePort
    /// Flow i uses source address `source + i`.
    case sourceAddress
    /// Both.
    case both
}

/// The frames a `tx` run sends: Ethernet/IPv4/UDP to one destination, from `flows` sources.
public struct FrameSpec: Sendable {
    public var sourceMAC: MACAddress
    public var destinationMAC: MACAddress
    public var source: IPv4Address
    public var destination: IPv4Address
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// Bytes per frame without the FCS: 60 (a 64-byte frame on the wire) to 1514.
    public var frameLength: Int
    public var flows: Int
    public var variation: FlowVariation
    /// Sequence number and transmit time in each payload (see `Probe`), for loss and latency.
    public var probe: Bool
    /// A zero UDP checksum ("none", RFC 768) instead of a valid one.
    public var udpChecksum: Bool

    public static var minFrameLength: Int { 60 }
    public static var maxFrameLength: Int { 1514 }
    public static var maxFlows: Int { 65536 }

    public init(sourceMAC: MACAddress = MACAddress(0x02, 0, 0, 0, 0, 0x10), destinationMAC: MACAddress = MACAddress(0x02, 0, 0, 0, 0, 0x20),
                source: IPv4Address = IPv4Address(198, 51, 100, 1), destination: IPv4Address = IPv4Address(198, 51, 100, 2),
                sourcePort: UInt16 = 1024, destinationPort: UInt16 = 9, frameLength: Int = 60, flows: Int = 1,
                variation: FlowVariation = .sourcePort, probe: Bool = false, udpChecksum: Bool = true) {
        self.sourceMAC = sourceMAC
        self.destinationMAC = destinationMAC
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.frameLength = frameLength
        self.flows = flows
        self.variation = variation
        self.probe = probe
        self.udpChecksum = udpChecksum
    }
}

/// The payload stamp of a probe frame, at the start of the UDP payload: a 16-bit magic, the
/// 64-bit sequence number and the 64-bit transmit time in nanoseconds, all big-endian (18 bytes:
/// exactly the payload of a 60-byte frame).
public enum Probe {
    public static var magic: UInt16 { 0x554B }   // "UK"
    public static var length: Int { 18 }
    @inlinable static var sequenceOffset: Int { 2 }
    @inlinable static var timeOffset: Int { 10 }

    /// The sequence number and transmit time of a UDP payload, or nil if it carries no probe.
    public static func read(_ payload: UnsafeRawPointer, count: Int) -> (sequence: UInt64, time: UInt64)? {
        guard count >= length, UInt16(bigEndian: payload.loadUnaligned(as: UInt16.self)) == magic else { return nil }
        return (UInt64(bigEndian: payload.loadUnaligned(fromByteOffset: sequenceOffset, as: UInt64.self)),
                UInt64(bigEndian: payload.loadUnaligned(fromByteOffset: timeOffset, as: UInt64.self)))
    }
}

/// A frame built once, with every flow's varying fields and checksums worked out in advance:
/// writing a packet is one copy plus a few stores (and, for probes, a checksum from parts).
public struct FrameTemplate {
    public let spec: FrameSpec
    /// The frame of flow 0 with a zero probe.
    @usableFromInline let bytes: UnsafeMutableRawPointer
    @usableFromInline let flows: UnsafeMutablePointer<FlowFields>

    /// What differs per flow, as stored on the wire (native loads of wire bytes).
    @usableFromInline
    struct FlowFields {
        @usableFromInline var sourceAddress: UInt32
        @usableFromInline var sourcePort: UInt16
        @usableFromInline var ipChecksum: UInt16
        @usableFromInline var udpChecksum: UInt16
        /// Native-order sum of the UDP pseudo-header and datagram with a zero checksum field
        /// and a zero probe: a probe packet's checksum adds its sequence and time words.
        @usableFromInline var udpSum: UInt64
    }

    @inlinable static var headers: Int { 14 + 20 + 8 }

    public init(_ spec: FrameSpec) throws(PktGenError) {
        guard spec.frameLength >= FrameSpec.minFrameLength, spec.frameLength <= FrameSpec.maxFrameLength else {
            throw .frameLength(spec.frameLength)
        }
        guard spec.flows >= 1, spec.flows <= FrameSpec.maxFlows else { throw .flows(spec.flows) }
        self.spec = spec
        let length = spec.frameLength
        bytes = .allocate(byteCount: length, alignment: 64)
        bytes.initializeMemory(as: UInt8.self, repeating: 0, count: length)
        flows = .allocate(capacity: spec.flows)
        let payloadLength = length - FrameTemplate.headers
        EthernetFrame.writeHeader(at: bytes, destination: spec.destinationMAC, source: spec.sourceMAC, etherType: EtherType.ipv4)
        // A recognisable filler after the probe (bytes count up), so a capture shows the payload.
        for i in 0..<payloadLength { bytes.storeBytes(of: UInt8(truncatingIfNeeded: i), toByteOffset: FrameTemplate.headers + i, as: UInt8.self) }
        if spec.probe {
            let p = bytes + FrameTemplate.headers
            p.storeBytes(of: Probe.magic.bigEndian, as: UInt16.self)
            for i in 2..<Probe.length { p.storeBytes(of: UInt8(0), toByteOffset: i, as: UInt8.self) }
        }
        // Every flow written into a scratch frame once, its checksums computed the plain way.
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 64)
        defer { scratch.deallocate() }
        for f in 0..<spec.flows {
            scratch.copyMemory(from: bytes, byteCount: length)
            let port = spec.variation == .sourceAddress ? spec.sourcePort : UInt16(truncatingIfNeeded: Int(spec.sourcePort) + f)
            let address = spec.variation == .sourcePort ? spec.source : IPv4Address(value: spec.source.value &+ UInt32(f))
            IPv4Packet.writeHeader(at: scratch + 14, source: address, destination: spec.destination, protocol: IPProtocol.udp,
                                   payloadLength: 8 + payloadLength)
            UDPDatagram.writeHeader(at: scratch + 34, sourcePort: port, destinationPort: spec.destinationPort, payloadLength: payloadLength)
            let pseudo = InternetChecksum.pseudoHeaderNativeSum(source: address, destination: spec.destination,
                                                                protocol: IPProtocol.udp, length: 8 + payloadLength)
            let sum = InternetChecksum.nativeSum(scratch + 34, count: 8 + payloadLength, initial: pseudo)
            let udp = spec.udpChecksum ? InternetChecksum.udpChecksumField(nativeSum: sum) : 0
            scratch.storeBytes(of: udp, toByteOffset: 40, as: UInt16.self)
            flows[f] = FlowFields(sourceAddress: scratch.loadUnaligned(fromByteOffset: 26, as: UInt32.self),
                                  sourcePort: scratch.loadUnaligned(fromByteOffset: 34, as: UInt16.self),
                                  ipChecksum: scratch.loadUnaligned(fromByteOffset: 24, as: UInt16.self),
                                  udpChecksum: udp, udpSum: sum)
            if f == 0 { bytes.copyMemory(from: scratch, byteCount: length) }
        }
    }

    public func deallocate() {
        bytes.deallocate()
        flows.deallocate()
    }

    @inlinable public var frameLength: Int { spec.frameLength }

    /// Writes the frame of `flow` (0..<flows) into `frame`, stamped with `sequence` and `time`
    /// when the spec asks for probes. Every checksum valid (or the UDP one zero if told so).
    @inlinable @inline(__always)
    public func write(into frame: UnsafeMutableRawPointer, flow: Int, sequence: UInt64, time: UInt64) {
        copyPacketBytes(to: frame, from: bytes, count: spec.frameLength)
        patch(frame, flow: flow, sequence: sequence, time: time)
    }

    /// Whether `patch` has anything to write (several flows or probes).
    @inlinable public var varies: Bool { spec.flows > 1 || spec.probe }

    /// Writes only what differs from flow 0's frame with a zero probe: the flow's address, port
    /// and checksums, and the probe stamp. Over a frame that already holds the template (see
    /// `TxGenerator`'s prefilled pools) this is a complete frame.
    @inlinable @inline(__always)
    public func patch(_ frame: UnsafeMutableRawPointer, flow: Int, sequence: UInt64, time: UInt64) {
        let fields = flows[flow]
        let checksummedProbe = spec.probe && spec.udpChecksum
        if spec.flows > 1 {
            frame.storeBytes(of: fields.sourceAddress, toByteOffset: 26, as: UInt32.self)
            frame.storeBytes(of: fields.ipChecksum, toByteOffset: 24, as: UInt16.self)
            frame.storeBytes(of: fields.sourcePort, toByteOffset: 34, as: UInt16.self)
            if !checksummedProbe { frame.storeBytes(of: fields.udpChecksum, toByteOffset: 40, as: UInt16.self) }
        }
        if spec.probe {
            let s = sequence.bigEndian, t = time.bigEndian
            frame.storeBytes(of: s, toByteOffset: FrameTemplate.headers + Probe.sequenceOffset, as: UInt64.self)
            frame.storeBytes(of: t, toByteOffset: FrameTemplate.headers + Probe.timeOffset, as: UInt64.self)
            if checksummedProbe {
                // Both fields start at even offsets of the datagram: their words join its native sum as stored.
                let sum = fields.udpSum &+ (s & 0xFFFF_FFFF) &+ (s >> 32) &+ (t & 0xFFFF_FFFF) &+ (t >> 32)
                frame.storeBytes(of: InternetChecksum.udpChecksumField(nativeSum: sum), toByteOffset: 40, as: UInt16.self)
            }
        }
    }

}
