import FuzzSupport
import HostStack
import UKNetdev

// Any byte string as frames: through the wire views (every `init` check, every accessor, the
// in-place rewrites) and through `HostStack.receive`, which parses every frame a program gets.
//
// Input: frame records (`FrameRecord`: [control][length: 2 bytes, big-endian][frame]), as many
// as there are, all through one host stack. The control byte repairs checksums, chains or
// clones the frame, moves the clock. An empty frame instead makes an ARP request for the
// address in the next 4 bytes (its reply then resolves a peer). Each frame's bytes also go
// through the views directly, and through the buffer checksum helpers.
// After each input: every buffer back in the pool, none released twice.

let pool = try! NetBufPool(count: 128, roomSize: 2048, headroom: 128)
let config = HostConfig(mac: MACAddress(0x02, 0, 0, 0, 0, 0x02), ip: IPv4Address(192, 0, 2, 2), prefixLength: 24,
                        udpPort: 11211, reassemblySlots: 4, reassemblyTimeout: 30)

/// What the reads add up to, kept so that none is optimised away.
var observed: UInt32 = 0

/// Reads every byte of `bytes` (ASan sees a read out of bounds), returning a sum so nothing is optimised away.
@inline(never)
func touch(_ bytes: UnsafeMutableRawBufferPointer) -> UInt32 {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
    return InternetChecksum.sum(base, count: bytes.count)
}

/// Every view over a copy of the frame: inits, accessors, and the rewrites the stack does. The
/// copy is an allocation of exactly the frame's size, so ASan sees any byte read past its end.
func exerciseViews(_ frame: UnsafeRawBufferPointer) -> UInt32 {
    let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: frame.count, alignment: 1)
    defer { bytes.deallocate() }
    bytes.copyMemory(from: frame)
    var acc: UInt32 = 0
    guard let eth = try? EthernetFrame(bytes) else { return acc }
    acc &+= UInt32(eth.etherType) &+ UInt32(eth.vlanID ?? 0) &+ UInt32(eth.destination.isBroadcast ? 1 : 0)
    acc &+= touch(eth.payload)
    switch eth.etherType {
    case EtherType.arp:
        if let arp = try? ARPPacket(eth.payload) {
            acc &+= UInt32(arp.operation) &+ arp.senderProtocol.value &+ arp.targetProtocol.value
            _ = (arp.senderHardware, arp.targetHardware)
            arp.makeReply(hardware: config.mac, address: config.ip)
            eth.reply(from: config.mac)
        }
    case EtherType.ipv4:
        guard let ip = try? IPv4Packet(eth.payload) else { break }
        acc &+= UInt32(ip.typeOfService) &+ UInt32(ip.identification) &+ UInt32(ip.fragmentOffset)
        acc &+= UInt32(ip.timeToLive) &+ UInt32(ip.headerChecksum) &+ ip.source.value &+ ip.destination.value
        acc &+= (ip.dontFragment ? 1 : 0) &+ (ip.moreFragments ? 2 : 0) &+ (ip.isFragment ? 4 : 0)
        acc &+= (ip.isHeaderChecksumValid ? 8 : 0) &+ touch(ip.options) &+ touch(ip.payload)
        switch ip.protocolNumber {
        case IPProtocol.udp:
            if let udp = try? UDPDatagram(ip.payload) {
                acc &+= UInt32(udp.sourcePort) &+ UInt32(udp.destinationPort) &+ UInt32(udp.checksum)
                acc &+= udp.isChecksumValid(source: ip.source, destination: ip.destination) ? 16 : 0
                acc &+= touch(udp.payload)
                udp.swapPorts()
                udp.updateChecksum(source: ip.destination, destination: ip.source)
                guard udp.isChecksumValid(source: ip.destination, destination: ip.source) else {
                    fatalError("wire: a UDP checksum just computed does not verify")
                }
            }
        case IPProtocol.icmp:
            if let icmp = try? ICMPEcho(ip.payload) {
                acc &+= UInt32(icmp.type) &+ UInt32(icmp.code) &+ UInt32(icmp.identifier) &+ UInt32(icmp.sequenceNumber)
                acc &+= touch(icmp.data)
                let valid = icmp.isChecksumValid
                icmp.makeReply()
                if valid && !icmp.isChecksumValid { fatalError("wire: an ICMP reply made from a valid message does not verify") }
            }
        default: break
        }
        ip.swapAddresses()
        ip.timeToLive = 64
        ip.updateHeaderChecksum()
        guard ip.isHeaderChecksumValid else { fatalError("wire: an IPv4 header checksum just computed does not verify") }
    default: break
    }
    return acc
}

/// The checksum helpers on a buffer: the IPv4 header filled in, a partial checksum completed
/// at offsets taken from the frame itself.
func exerciseBufferChecksums(_ frame: UnsafeRawBufferPointer) {
    guard let buf = makeFrame(frame, pool: pool) else { return }
    defer { buf.release() }
    _ = buf.fillIPv4HeaderChecksum()
    if frame.count >= 4 {
        let start = Int(frame.loadUnaligned(as: UInt16.self)), offset = Int(frame.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        _ = buf.completePartialChecksum(start: start, offset: offset)
        _ = buf.completePartialChecksum(start: start & 0x7F, offset: offset & 0x3F)
    }
    checkBounds(buf, "wire: after the checksum helpers")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    var host = HostStack(config: config, pool: pool)
    var now: UInt32 = 1000
    var sink: UInt32 = 0
    while !input.isAtEnd {
        let record = FrameRecord.read(&input)
        if record.advancesClock { now &+= 16 }
        host.expire(now: now)
        if record.bytes.isEmpty {
            if let request = host.arpRequest(for: IPv4Address(value: input.u32())) {
                checkBounds(request, "wire: an ARP request")
                request.release()
            }
            continue
        }
        sink &+= exerciseViews(record.bytes)
        exerciseBufferChecksums(record.bytes)
        guard let buf = record.buffer(from: pool) else { continue }
        switch host.receive(buf, now: now) {
        case .reply(let reply, let kind):
            checkSentFrame(reply, mac: config.mac, ip: config.ip, "wire: a reply")
            if let eth = try? EthernetFrame(reply.unsafeBytes), (eth.etherType == EtherType.arp) != (kind == .arp) {
                fatalError("wire: a reply of another kind than it says")
            }
            reply.release()
        case .datagram(let d):
            sink &+= touch(d.payload) &+ UInt32(d.sourcePort) &+ d.source.value
            if let frame = d.frame {
                checkBounds(frame, "wire: a delivered datagram's frame")
                let start = UnsafeRawPointer(frame.data), end = start + frame.length
                guard let p = d.payload.baseAddress.map(UnsafeRawPointer.init), p >= start, p + d.payload.count <= end else {
                    fatalError("wire: a datagram's payload lies outside its frame")
                }
                // Delivered only to our address and port, with checksums that verify.
                guard let eth = try? EthernetFrame(frame.unsafeBytes), let ip = try? IPv4Packet(eth.payload),
                      ip.isHeaderChecksumValid, ip.destination == config.ip, !ip.isFragment,
                      let udp = try? UDPDatagram(ip.payload), udp.destinationPort == config.udpPort,
                      udp.isChecksumValid(source: ip.source, destination: ip.destination) else {
                    fatalError("wire: a datagram delivered from a frame that is not UDP to our address and port")
                }
                frame.release()
            }
        case .absorbed, .dropped:
            break
        }
    }
    host.deallocate()
    requireFullPool(pool, "wire: after the input")
    observed &+= sink
    return 0
}
