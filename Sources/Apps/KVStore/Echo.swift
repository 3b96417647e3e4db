import HostStack
import UKNetdev

/// Echo mode (`KVServerConfig.mode == .echo`): every UDP datagram on the server's port is
/// answered with itself. The same poll loop, host stack and wire checks as memcached's; the
/// reply goes back to the sender's MAC, address and port from ours, with the same IPv4 header
/// as memcached's replies (the template: TTL 64, the server's identification sequence) and a
/// valid UDP checksum. A baseline for benchmarks: it costs what the path costs without the KV
/// logic.
extension KVServer {
    /// The largest UDP payload of an echo built in a fresh buffer: one 1500-byte IPv4 packet
    /// (the server does not fragment; the host stack's ICMP echo has the same limit). An echo
    /// turned around in its own buffer is as long as its request, which came in one frame.
    public static var echoMaxCopiedPayload: Int { 1500 - 20 - 8 }

    /// The common datagram turned around in its own buffer, in one pass: untagged Ethernet to
    /// our MAC, a 20-byte IPv4 header with a good checksum, to our address, not a fragment, UDP
    /// to our port with a good (or no) checksum, in a buffer that is writable and not chained.
    /// The same checks as the lone-GET path; anything else, or any doubt, returns false and takes
    /// the host stack, which checks again and counts what it drops.
    ///
    /// In place: the MACs swapped, the IPv4 header rewritten from the reply template (our
    /// address as source, the sender's as destination, a fresh identification, the checksum
    /// from parts), the ports swapped. The UDP checksum covers both addresses and both ports,
    /// and a sum does not depend on their order, so the request's (verified) checksum is the
    /// echo's as it stands; a request without one (0) gets one, from the sum just taken. The
    /// payload is not touched, and no byte of it is copied. The frame is the general path's,
    /// byte for byte (tested).
    @inline(__always)
    mutating func echoInPlace(_ buf: NetBuf) -> Bool {
        guard let (f, ip, udp, total, udpLength) = fastPathDatagram(buf, minimumPayload: 0) else { return false }
        let peerIP = IPv4Address.load(from: ip + 12)
        let pseudo = InternetChecksum.pseudoHeaderNativeSum(source: peerIP, destination: config.ip, protocol: IPProtocol.udp,
                                                            length: udpLength)
        let sum = InternetChecksum.nativeSum(udp, count: udpLength, initial: pseudo)
        let checksum = udp.loadUnaligned(fromByteOffset: 6, as: UInt16.self)
        guard checksum == 0 || InternetChecksum.verifies(nativeSum: sum) else { return false }

        // Committed: the datagram goes back in this buffer. Ethernet: the sender's MAC moved to
        // the destination, ours as the source (both as they load, no swapping).
        f.storeBytes(of: f.loadUnaligned(fromByteOffset: 6, as: UInt32.self), as: UInt32.self)
        f.storeBytes(of: f.loadUnaligned(fromByteOffset: 10, as: UInt16.self), toByteOffset: 4, as: UInt16.self)
        f.storeBytes(of: wire.macHead, toByteOffset: 6, as: UInt32.self)
        f.storeBytes(of: wire.macTail, toByteOffset: 10, as: UInt16.self)
        let peerPort = udp.loadUnaligned(as: UInt16.self)
        copyPacketBytes(to: ip, from: writer.template + 14, count: 20)
        _ = writer.finishIPv4Header(ip, totalLength: UInt16(truncatingIfNeeded: total), peerIP: peerIP)
        udp.storeBytes(of: wire.port, as: UInt16.self)
        udp.storeBytes(of: peerPort, toByteOffset: 2, as: UInt16.self)
        if checksum == 0 {
            udp.storeBytes(of: InternetChecksum.udpChecksumField(nativeSum: sum), toByteOffset: 6, as: UInt16.self)
        }
        buf.unsafeSetLength(14 &+ total)   // without the request's Ethernet padding, as the general path
        counters.echoFastPath &+= 1
        enqueue(buf)
        return true
    }

    /// A datagram the host stack delivered (tagged, with IP options, from a chain, reassembled,
    /// or in a buffer shared with someone else): fresh headers in front of its payload, in its
    /// own buffer when that is writable (the payload stays where it is), else in a fresh buffer
    /// with the payload copied once.
    mutating func echo(_ datagram: ReceivedDatagram) {
        let payload = datagram.payload
        let count = payload.count
        let headers = (datagram.vlan == nil ? 14 : 18) + 20 + 8
        let reply: NetBuf
        // The request's headers are at least as long as the echo's: in its own buffer only the
        // data start moves (past IP options), and the length drops what followed the datagram.
        if let frame = datagram.frame, frame.isWritable,
           case let offset = UnsafeMutableRawPointer(payload.baseAddress!) - frame.data, offset >= headers,
           (try? frame.strip(offset - headers)) != nil, (try? frame.setLength(headers + count)) != nil {
            reply = frame
        } else {
            guard count <= KVServer.echoMaxCopiedPayload else { return drop(datagram.frame, .echoTooLarge) }
            guard let fresh = pool.allocate() else { return drop(datagram.frame, .noBufferForReply) }
            guard (try? fresh.setLength(headers + count)) != nil else {
                fresh.release()
                return drop(datagram.frame, .echoTooLarge)
            }
            copyPacketBytes(to: fresh.data + headers, from: payload.baseAddress!, count: count)
            datagram.frame?.release()
            counters.echoCopies &+= 1
            reply = fresh
        }
        let payloadSum = InternetChecksum.sum(reply.data + headers, count: count)
        writer.writeEchoHeaders(reply.data, mac: datagram.senderMAC, vlan: datagram.vlan, ip: datagram.source,
                                port: datagram.sourcePort, payloadCount: count, payloadSum: payloadSum)
        counters.echoGeneralPath &+= 1
        enqueue(reply)
    }
}
