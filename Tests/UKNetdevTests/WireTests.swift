import Testing
import TestSupport
import UKNetdev

/// The plain RFC 1071 loop: 16-bit big-endian words, odd byte padded, end-around carry.
func referenceChecksum(_ bytes: [UInt8]) -> UInt16 {
    var sum: UInt32 = 0
    var i = 0
    while i + 1 < bytes.count {
        sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
        i += 2
    }
    if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
    while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
    return ~UInt16(sum)
}

func checksum(_ bytes: [UInt8]) -> UInt16 {
    bytes.withUnsafeBytes { InternetChecksum.checksum($0.baseAddress!, count: $0.count) }
}

/// Parses `bytes` as far as it goes, returning the first error or nil.
func parseAll(_ bytes: inout [UInt8]) -> WireError? {
    bytes.withUnsafeMutableBytes { raw in
        do throws(WireError) {
            let eth = try EthernetFrame(raw)
            switch eth.etherType {
            case EtherType.ipv4:
                let ip = try IPv4Packet(eth.payload)
                if ip.protocolNumber == IPProtocol.udp, !ip.isFragment {
                    let udp = try UDPDatagram(ip.payload)
                    _ = udp.isChecksumValid(source: ip.source, destination: ip.destination)
                    _ = udp.payload.count
                } else if ip.protocolNumber == IPProtocol.icmp {
                    let icmp = try ICMPEcho(ip.payload)
                    _ = icmp.isChecksumValid
                }
                _ = ip.isHeaderChecksumValid
                _ = ip.options.count
            case EtherType.arp:
                let arp = try ARPPacket(eth.payload)
                _ = arp.targetProtocol
            default: break
            }
            return nil
        } catch {
            return error
        }
    }
}

@Suite struct ChecksumTests {
    @Test func rfc1071Example() {
        // RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2.
        #expect(checksum([0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]) == ~UInt16(0xDDF2))
    }

    @Test func knownIPv4Header() {
        let header: [UInt8] = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,
                               0xC0, 0xA8, 0x00, 0x01, 0xC0, 0xA8, 0x00, 0xC7]
        #expect(checksum(header) == 0xB861)
    }

    @Test func fastSumMatchesReferenceAtEveryLengthAndAlignment() {
        var rng = SplitMix64(seed: 1071)
        for length in 0..<300 {
            let bytes = (0..<(length + 7)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            for offset in 0..<4 {
                let slice = Array(bytes[offset..<(offset + length)])
                let fast = bytes.withUnsafeBytes { InternetChecksum.checksum($0.baseAddress! + offset, count: length) }
                #expect(fast == referenceChecksum(slice), "length \(length) offset \(offset)")
            }
        }
        // All ones and all zeros, where carries pile up.
        #expect(checksum([UInt8](repeating: 0xFF, count: 1500)) == referenceChecksum([UInt8](repeating: 0xFF, count: 1500)))
        #expect(checksum([UInt8](repeating: 0, count: 64)) == 0xFFFF)
    }

    @Test func verifiesAgreesWithTheFoldedSum() {
        var rng = SplitMix64(seed: 0xFFFF)
        for length in stride(from: 2, to: 200, by: 2) {
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            bytes[0] = 0; bytes[1] = 0
            let c = checksum(bytes)
            bytes[0] = UInt8(c >> 8); bytes[1] = UInt8(c & 0xFF)
            let good = bytes.withUnsafeBytes { InternetChecksum.nativeSum($0.baseAddress!, count: length) }
            #expect(InternetChecksum.verifies(nativeSum: good), "length \(length)")
            bytes[length - 1] ^= 0x10
            let bad = bytes.withUnsafeBytes { InternetChecksum.nativeSum($0.baseAddress!, count: length) }
            #expect(!InternetChecksum.verifies(nativeSum: bad), "length \(length)")
        }
        // Any accumulator: the shortcut and the four folds agree.
        for _ in 0..<100_000 {
            let acc = rng.next() >> (rng.next() % 64)
            #expect(InternetChecksum.verifies(nativeSum: acc) == (acc != 0 && InternetChecksum.foldNative(acc) == 0xFFFF))
        }
        #expect(!InternetChecksum.verifies(nativeSum: 0))
        #expect(InternetChecksum.verifies(nativeSum: 0xFFFF) && InternetChecksum.verifies(nativeSum: UInt64.max))
    }

    @Test func incrementalUpdateMatchesRecomputation() {
        var rng = SplitMix64(seed: 1624)
        for _ in 0..<2000 {
            var header = (0..<20).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            header[10] = 0
            header[11] = 0
            let c = checksum(header)
            // Change one 16-bit word.
            let w = 2 * (rng.below(9) + (rng.below(2) == 0 ? 0 : 1))
            let word = w == 10 ? 12 : w
            let old = UInt16(header[word]) << 8 | UInt16(header[word + 1])
            let new = UInt16(truncatingIfNeeded: rng.next())
            header[word] = UInt8(new >> 8)
            header[word + 1] = UInt8(new & 0xFF)
            #expect(InternetChecksum.update(c, old: old, new: new) == checksum(header))
            // Change the source address.
            let oldAddr = UInt32(header[12]) << 24 | UInt32(header[13]) << 16 | UInt32(header[14]) << 8 | UInt32(header[15])
            let newAddr = UInt32(truncatingIfNeeded: rng.next())
            let c2 = checksum(header)
            for i in 0..<4 { header[12 + i] = UInt8(truncatingIfNeeded: newAddr >> UInt32(24 - 8 * i)) }
            let updated = InternetChecksum.update(c2, old: oldAddr, new: newAddr)
            // One's complement has two zeros; both are the same checksum.
            #expect(updated == checksum(header) || (updated == 0 && checksum(header) == 0xFFFF) || (updated == 0xFFFF && checksum(header) == 0))
        }
    }
}

@Suite struct WireViewTests {
    let flow = UDPFlow(sourceMAC: MACAddress(0x02, 0, 0, 0, 0, 1), destinationMAC: MACAddress(0x02, 0, 0, 0, 0, 2),
                       source: IPv4Address(192, 0, 2, 1), destination: IPv4Address(192, 0, 2, 2),
                       sourcePort: 1234, destinationPort: 11211)

    @Test func knownUDPChecksum() throws {
        // Computed independently (Python, RFC 768 pseudo-header) for "hello" 192.0.2.1:1234 -> 192.0.2.2:11211.
        try withPool { pool in
            let b = try #require(pool.allocate())
            defer { b.release() }
            try Array("hello".utf8).withUnsafeBytes { try b.copyIn($0) }
            try b.prependUDPHeaders(flow)
            let udp = try UDPDatagram(UnsafeMutableRawBufferPointer(rebasing: b.unsafeBytes[34...]))
            #expect(udp.checksum == 0x0761)
        }
    }

    @Test func buildThenParseRoundTrip() throws {
        try withPool { pool in
            let b = try #require(pool.allocate())
            defer { b.release() }
            let payload = (0..<100).map { UInt8($0) }
            try payload.withUnsafeBytes { try b.copyIn($0) }
            try b.prependUDPHeaders(flow, identification: 0x1234)
            #expect(b.length == 142)
            #expect(b.headroom == 128 - 42)
            let eth = try EthernetFrame(b.unsafeBytes)
            #expect(eth.destination == flow.destinationMAC)
            #expect(eth.source == flow.sourceMAC)
            #expect(eth.etherType == EtherType.ipv4)
            #expect(eth.vlanID == nil)
            let ip = try IPv4Packet(eth.payload)
            #expect(ip.headerLength == 20)
            #expect(ip.totalLength == 128)
            #expect(ip.identification == 0x1234)
            #expect(ip.timeToLive == 64)
            #expect(ip.protocolNumber == IPProtocol.udp)
            #expect(ip.source == flow.source && ip.destination == flow.destination)
            #expect(!ip.isFragment)
            #expect(ip.isHeaderChecksumValid)
            let udp = try UDPDatagram(ip.payload)
            #expect(udp.sourcePort == 1234 && udp.destinationPort == 11211)
            #expect(udp.length == 108)
            #expect(udp.isChecksumValid(source: ip.source, destination: ip.destination))
            #expect(Array(udp.payload) == payload)
            // Turn it around in place: checksums stay valid without recomputation.
            eth.reply(from: MACAddress(0x02, 0, 0, 0, 0, 9))
            ip.swapAddresses()
            udp.swapPorts()
            #expect(ip.source == flow.destination && udp.sourcePort == 11211)
            #expect(eth.destination == flow.sourceMAC)
            #expect(ip.isHeaderChecksumValid)
            #expect(udp.isChecksumValid(source: ip.source, destination: ip.destination))
            // One flipped payload bit is caught.
            udp.payload[5] ^= 0x10
            #expect(!udp.isChecksumValid(source: ip.source, destination: ip.destination))
        }
    }

    @Test func headroomTooSmallForHeadersIsAnError() throws {
        try withPool(headroom: 20) { pool in
            let b = try #require(pool.allocate())
            defer { b.release() }
            try b.setLength(10)
            #expect(throws: NetBufError.noHeadroom(requested: 42, available: 20)) { try b.prependUDPHeaders(flow) }
            #expect(b.length == 10)
        }
    }

    @Test func ipv4OptionsAndFragments() throws {
        var bytes: [UInt8] = [0x46, 0, 0, 32, 0xAB, 0xCD, 0x20, 0x03, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
                              1, 1, 1, 0,  // 4 bytes of options (NOP NOP NOP EOL)
                              0, 1, 0, 2, 0, 8, 0, 0,  // UDP header
                              0xEE, 0xEE]  // padding beyond the total length
        try bytes.withUnsafeMutableBytes { raw in
            let ip = try IPv4Packet(raw)
            #expect(ip.headerLength == 24)
            #expect(ip.options.count == 4)
            #expect(ip.payload.count == 8)
            #expect(ip.moreFragments)
            #expect(ip.fragmentOffset == 24)
            #expect(ip.isFragment)
            ip.updateHeaderChecksum()
            #expect(ip.isHeaderChecksumValid)
        }
        // The last fragment: MF clear, offset set.
        bytes[6] = 0x00
        bytes[7] = 0x10
        try bytes.withUnsafeMutableBytes { raw in
            let ip = try IPv4Packet(raw)
            #expect(!ip.moreFragments)
            #expect(ip.isFragment)
            #expect(ip.fragmentOffset == 128)
        }
    }

    @Test func malformedHeadersAreRejectedNotTrapped() {
        func ip(_ bytes: [UInt8]) -> WireError? {
            var b = bytes
            return b.withUnsafeMutableBytes { raw -> WireError? in
                do throws(WireError) { _ = try IPv4Packet(raw); return nil } catch { return error }
            }
        }
        let good: [UInt8] = [0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2, 0, 1, 0, 2, 0, 8, 0, 0]
        #expect(ip(good) == nil)
        #expect(ip(Array(good[0..<19])) == .truncated(needed: 20, available: 19))
        var v = good; v[0] = 0x65
        #expect(ip(v) == .badVersion(6))
        var ihl = good; ihl[0] = 0x44
        #expect(ip(ihl) == .badHeaderLength(16))
        var longIHL = good; longIHL[0] = 0x4F
        #expect(ip(longIHL) == .badHeaderLength(60))
        var total = good; total[3] = 29
        #expect(ip(total) == .badTotalLength(29))
        var short = good; short[3] = 19
        #expect(ip(short) == .badTotalLength(19))

        func udp(_ bytes: [UInt8]) -> WireError? {
            var b = bytes
            return b.withUnsafeMutableBytes { raw -> WireError? in
                do throws(WireError) { _ = try UDPDatagram(raw); return nil } catch { return error }
            }
        }
        #expect(udp([0, 1, 0, 2, 0, 9, 0, 0]) == .badUDPLength(9))
        #expect(udp([0, 1, 0, 2, 0, 7, 0, 0]) == .badUDPLength(7))
        #expect(udp([0, 1, 0, 2, 0]) == .truncated(needed: 8, available: 5))

        var eth: [UInt8] = [1, 2, 3]
        #expect(parseAll(&eth) == .truncated(needed: 14, available: 3))
        var vlanShort: [UInt8] = [UInt8](repeating: 0, count: 12) + [0x81, 0x00, 0, 5]
        #expect(parseAll(&vlanShort) == .truncated(needed: 18, available: 16))
        var arp: [UInt8] = [UInt8](repeating: 0xFF, count: 12) + [0x08, 0x06] + [0, 6, 0x08, 0, 6, 4] + [UInt8](repeating: 0, count: 22)
        #expect(parseAll(&arp) == .unsupportedARP)
        // The UDP length must fit in the IP payload, not just in the frame.
        var frame: [UInt8] = [UInt8](repeating: 0, count: 12) + [0x08, 0x00] + good + [0, 0, 0, 0]
        frame[14 + 25] = 12
        #expect(parseAll(&frame) == .badUDPLength(12))
    }

    @Test func randomBytesNeverTrapTheParsers() {
        var rng = SplitMix64(seed: 7)
        var errors = 0
        for _ in 0..<20_000 {
            let n = rng.below(80)
            var bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            // Steer half of them into the IPv4/ARP paths.
            if n >= 15 && rng.below(2) == 0 {
                bytes[12] = 0x08
                bytes[13] = rng.below(3) == 0 ? 0x06 : 0x00
                bytes[14] = 0x40 | UInt8(rng.below(16))
            }
            if parseAll(&bytes) != nil { errors += 1 }
        }
        #expect(errors > 1000, "most random inputs are malformed and must be reported as such")
    }

    @Test func vlanTaggedFrame() throws {
        var bytes = [UInt8](repeating: 0, count: 12) + [0x81, 0x00, 0x20, 0x2A, 0x08, 0x06] + [UInt8](repeating: 0, count: 28)
        try bytes.withUnsafeMutableBytes { raw in
            let eth = try EthernetFrame(raw)
            #expect(eth.headerLength == 18)
            #expect(eth.vlanID == 42)
            #expect(eth.etherType == EtherType.arp)
            #expect(eth.payload.count == 28)
        }
    }

    @Test func arpRequestBecomesReply() throws {
        let me = MACAddress(0x02, 0, 0, 0, 0, 2), asker = MACAddress(0x02, 0, 0, 0, 0, 1)
        var bytes = [UInt8](repeating: 0, count: 28)
        try bytes.withUnsafeMutableBytes { raw in
            ARPPacket.write(at: raw.baseAddress!, operation: ARPPacket.Operation.request, senderHardware: asker,
                            senderProtocol: IPv4Address(192, 0, 2, 1), targetHardware: .zero, targetProtocol: IPv4Address(192, 0, 2, 2))
            let arp = try ARPPacket(raw)
            #expect(arp.operation == ARPPacket.Operation.request)
            arp.makeReply(hardware: me, address: IPv4Address(192, 0, 2, 2))
            #expect(arp.operation == ARPPacket.Operation.reply)
            #expect(arp.senderHardware == me && arp.senderProtocol == IPv4Address(192, 0, 2, 2))
            #expect(arp.targetHardware == asker && arp.targetProtocol == IPv4Address(192, 0, 2, 1))
        }
        #expect(Array(bytes[0..<8]) == [0, 1, 8, 0, 6, 4, 0, 2])
    }

    @Test func icmpEchoReplyKeepsAValidChecksum() throws {
        var msg: [UInt8] = [8, 0, 0, 0, 0x12, 0x34, 0, 1] + Array("abcdefghij".utf8)
        let c = checksum(msg)
        msg[2] = UInt8(c >> 8)
        msg[3] = UInt8(c & 0xFF)
        try msg.withUnsafeMutableBytes { raw in
            let icmp = try ICMPEcho(raw)
            #expect(icmp.isChecksumValid)
            #expect(icmp.type == ICMPEcho.Kind.echoRequest)
            #expect(icmp.identifier == 0x1234 && icmp.sequenceNumber == 1)
            icmp.makeReply()
            #expect(icmp.type == ICMPEcho.Kind.echoReply)
            #expect(icmp.isChecksumValid)
        }
        #expect(checksum(msg) == 0 || checksum(msg) == 0xFFFF)
    }

    /// Found by the virtio-used-ring fuzzer (Fuzz/Corpus/virtio-used-ring/crash-clone-checksum):
    /// VirtioNet, sending a clone that asked for checksums to a device without CSUM, completed
    /// them in software into the clone's data, which is read-only and its origin's.
    @Test func softwareChecksumsDoNotWriteThroughAClone() throws {
        try withPool { pool in
            let b = try #require(pool.allocate())
            defer { b.release() }
            try [UInt8](repeating: 0x5A, count: 100).withUnsafeBytes { try b.copyIn($0) }
            try b.prependUDPHeaders(flow)
            let before = Array(b.unsafeBytes)
            let clone = try #require(b.clone(using: pool))
            #expect(!clone.completePartialChecksum(start: 34, offset: 6))
            #expect(!clone.fillIPv4HeaderChecksum())
            clone.release()
            #expect(Array(b.unsafeBytes) == before, "the origin's data is unchanged")
            #expect(b.completePartialChecksum(start: 34, offset: 6), "its own data may be written")
            #expect(b.fillIPv4HeaderChecksum())
        }
    }

    @Test func addressesParseAndPrint() {
        #expect(MACAddress("02:00:00:00:00:0a")?.description == "02:00:00:00:00:0a")
        #expect(MACAddress("02-00-00-00-00-0A") == MACAddress(2, 0, 0, 0, 0, 10))
        #expect(MACAddress("02:00:00:00:00") == nil)
        #expect(MACAddress("02:00:00:00:00:0g") == nil)
        #expect(MACAddress.broadcast.isBroadcast && MACAddress.broadcast.isMulticast)
        #expect(IPv4Address("192.0.2.254")?.description == "192.0.2.254")
        #expect(IPv4Address("192.0.2.256") == nil)
        #expect(IPv4Address("192.0..2") == nil)
        #expect(IPv4Address("1.2.3.4.5") == nil)
        #expect(IPv4Address("0.0.0.0") == .any)
    }
}

@Suite struct ShortSumTests {
    @Test func shortSumMatchesSumForHeaderSizes() {
        var rng = SplitMix64(seed: 16)
        for count in stride(from: 4, through: 64, by: 4) {
            for _ in 0..<50 {
                let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                let initial = UInt32(truncatingIfNeeded: rng.next() & 0x3FFFF)
                bytes.withUnsafeBytes { raw in
                    #expect(InternetChecksum.shortSum(raw.baseAddress!, count: count, initial: initial)
                            == InternetChecksum.sum(raw.baseAddress!, count: count, initial: initial))
                }
            }
        }
    }
}
