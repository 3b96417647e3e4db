/// The addresses and ports of one UDP flow over Ethernet/IPv4.
public struct UDPFlow: Equatable, Sendable {
    public var sourceMAC: MACAddress
    public var destinationMAC: MACAddress
    public var source: IPv4Address
    public var destination: IPv4Address
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public init(sourceMAC: MACAddress, destinationMAC: MACAddress, source: IPv4Address, destination: IPv4Address,
                sourcePort: UInt16, destinationPort: UInt16) {
        self.sourceMAC = sourceMAC
        self.destinationMAC = destinationMAC
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }
}

extension NetBuf {
    /// Bytes of Ethernet + IPv4 + UDP headers that `prependUDPHeaders` puts in front.
    @inlinable public static var udpHeadersLength: Int { 14 + 20 + 8 }

    /// Builds Ethernet, IPv4 and UDP headers in place in the headroom, in front of this
    /// single-segment buffer's data (the UDP payload), with a valid IPv4 checksum and, unless
    /// `udpChecksum` is false, a valid UDP checksum. Fails, changing nothing, without 42 bytes of
    /// headroom or if the datagram would not fit in an IPv4 total length.
    @inlinable
    public func prependUDPHeaders(_ flow: UDPFlow, identification: UInt16 = 0, udpChecksum: Bool = true) throws(NetBufError) {
        guard next == nil else { throw .chained }
        let payloadLength = length
        guard payloadLength <= 65535 - 28 else { throw .noTailroom(requested: payloadLength, available: 65535 - 28) }
        let frame = try prepend(NetBuf.udpHeadersLength)
        EthernetFrame.writeHeader(at: frame, destination: flow.destinationMAC, source: flow.sourceMAC, etherType: EtherType.ipv4)
        IPv4Packet.writeHeader(at: frame + 14, source: flow.source, destination: flow.destination,
                               protocol: IPProtocol.udp, payloadLength: 8 + payloadLength, identification: identification)
        UDPDatagram.writeHeader(at: frame + 34, sourcePort: flow.sourcePort, destinationPort: flow.destinationPort, payloadLength: payloadLength)
        if udpChecksum {
            let udp = UDPDatagram(unchecked: frame + 34, length: 8 + payloadLength)
            udp.updateChecksum(source: flow.source, destination: flow.destination)
        }
    }
}

extension UDPDatagram {
    /// A view over a header this code just wrote (no checks).
    @inlinable
    init(unchecked base: UnsafeMutableRawPointer, length: Int) {
        self.base = base
        self.length = length
    }
}
