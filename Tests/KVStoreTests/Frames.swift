// Request frames from the test client (clientMAC/clientIP) to the store, written into a buffer.
import UKNetdev

/// A memcached request over UDP (memcached header included).
func writeRequest(into buf: NetBuf, _ payload: [UInt8], id: UInt16 = 1, total: UInt16 = 1, port: UInt16 = 11211,
                  corruptUDP: Bool = false, destination: IPv4Address = storeIP, source: IPv4Address = clientIP) throws {
    let flow = UDPFlow(sourceMAC: clientMAC, destinationMAC: storeMAC, source: source, destination: destination,
                       sourcePort: 40000, destinationPort: port)
    let header: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0]
    try (header + payload).withUnsafeBytes { try buf.copyIn($0) }
    try buf.prependUDPHeaders(flow)
    if corruptUDP { buf.data.storeBytes(of: buf.data.load(fromByteOffset: buf.length - 1, as: UInt8.self) ^ 0xFF, toByteOffset: buf.length - 1, as: UInt8.self) }
}

/// A broadcast who-has for `target`, padded to 60 bytes.
func writeARPRequest(into buf: NetBuf, target: IPv4Address = storeIP) throws {
    try buf.setLength(60)
    buf.data.initializeMemory(as: UInt8.self, repeating: 0, count: 60)
    EthernetFrame.writeHeader(at: buf.data, destination: .broadcast, source: clientMAC, etherType: EtherType.arp)
    ARPPacket.write(at: buf.data + 14, operation: ARPPacket.Operation.request, senderHardware: clientMAC,
                    senderProtocol: clientIP, targetHardware: .zero, targetProtocol: target)
}

/// An ICMP echo request, identifier 0x1234, carrying `data`.
func writeEchoRequest(into buf: NetBuf, data: [UInt8] = Array("ping data".utf8)) throws {
    let icmp: [UInt8] = [8, 0, 0, 0, 0x12, 0x34, 0, 1] + data
    try icmp.withUnsafeBytes { try buf.copyIn($0) }
    let c = InternetChecksum.checksum(buf.data, count: buf.length)
    buf.data.storeBytes(of: c.bigEndian, toByteOffset: 2, as: UInt16.self)
    let ip = try buf.prepend(20)
    IPv4Packet.writeHeader(at: ip, source: clientIP, destination: storeIP, protocol: IPProtocol.icmp, payloadLength: icmp.count)
    EthernetFrame.writeHeader(at: try buf.prepend(14), destination: storeMAC, source: clientMAC, etherType: EtherType.ipv4)
}

/// A UDP datagram (header with a valid checksum, then `payload`) from port 40000 to 11211, as
/// the bytes fragments carry.
func udpDatagram(_ payload: [UInt8]) -> [UInt8] {
    var udp = [UInt8](repeating: 0, count: 8) + payload
    let udpLength = udp.count
    udp[0] = 0x9C; udp[1] = 0x40; udp[2] = 0x2B; udp[3] = 0xCB
    udp[4] = UInt8(udpLength >> 8); udp[5] = UInt8(udpLength & 0xFF)
    let sum = udp.withUnsafeBytes {
        InternetChecksum.finish(InternetChecksum.sum($0.baseAddress!, count: udpLength,
            initial: InternetChecksum.pseudoHeaderSum(source: clientIP, destination: storeIP, protocol: IPProtocol.udp, length: udpLength)))
    }
    udp[6] = UInt8(sum >> 8); udp[7] = UInt8(sum & 0xFF)
    return udp
}

/// One IPv4 fragment of `datagram`: `length` bytes from `offset`.
func writeFragment(into buf: NetBuf, of datagram: [UInt8], offset: Int, length: Int, more: Bool, id: UInt16 = 0x4242) throws {
    try Array(datagram[offset..<(offset + length)]).withUnsafeBytes { try buf.copyIn($0) }
    let ip = try buf.prepend(20)
    IPv4Packet.writeHeader(at: ip, source: clientIP, destination: storeIP, protocol: IPProtocol.udp,
                           payloadLength: length, identification: id)
    let flags = UInt16(offset / 8) | (more ? 0x2000 : 0)
    ip.storeBytes(of: flags.bigEndian, toByteOffset: 6, as: UInt16.self)
    ip.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
    ip.storeBytes(of: InternetChecksum.checksum(ip, count: 20).bigEndian, toByteOffset: 10, as: UInt16.self)
    EthernetFrame.writeHeader(at: try buf.prepend(14), destination: storeMAC, source: clientMAC, etherType: EtherType.ipv4)
}

/// The bytes `write` puts into a buffer (one with room for jumbo frames).
func frame(_ write: (NetBuf) throws -> Void) throws -> [UInt8] {
    let pool = try NetBufPool(count: 1, roomSize: 9216, headroom: 128)
    defer { try? pool.destroy() }
    let buf = pool.allocate()!
    defer { buf.release() }
    try write(buf)
    return Array(UnsafeRawBufferPointer(buf.unsafeBytes))
}
