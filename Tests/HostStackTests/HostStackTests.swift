import HostStack
import Testing
import TestSupport
import UKNetdev

let ourMAC = MACAddress(0x02, 0, 0, 0, 0, 0x0A), ourIP = IPv4Address(192, 0, 2, 10)

/// An ARP packet from `sender` to us, in a buffer from `pool`.
func arpFrame(_ pool: NetBufPool, operation: UInt16, senderMAC: MACAddress, senderIP: IPv4Address,
              target: IPv4Address = ourIP) throws -> NetBuf {
    let buf = try #require(pool.allocate())
    try buf.setLength(60)
    buf.data.initializeMemory(as: UInt8.self, repeating: 0, count: 60)
    EthernetFrame.writeHeader(at: buf.data, destination: operation == ARPPacket.Operation.request ? .broadcast : ourMAC,
                              source: senderMAC, etherType: EtherType.arp)
    ARPPacket.write(at: buf.data + 14, operation: operation, senderHardware: senderMAC, senderProtocol: senderIP,
                    targetHardware: operation == ARPPacket.Operation.request ? .zero : ourMAC, targetProtocol: target)
    return buf
}

@Suite struct HostStackTests {
    /// A peer is resolved by a reply to our own request only; one we did not ask for is not for us.
    @Test func arpResolvesWhatWeAskedFor() throws {
        try withPool(count: 16) { pool in
            var host = HostStack(config: HostConfig(mac: ourMAC, ip: ourIP, udpPort: 7), pool: pool)
            defer { host.deallocate() }
            let peerIP = IPv4Address(192, 0, 2, 20), peerMAC = MACAddress(0x02, 0, 0, 0, 0, 0x14)
            let unasked = try arpFrame(pool, operation: ARPPacket.Operation.reply, senderMAC: peerMAC, senderIP: peerIP)
            guard case .dropped(.arpNotForUs) = host.receive(unasked, now: 0) else { Issue.record("an unasked reply was taken"); return }
            #expect(host.peerMAC(peerIP) == nil)

            let made = host.arpRequest(for: peerIP)
            let request = try #require(made)
            let eth = try EthernetFrame(request.unsafeBytes)
            let arp = try ARPPacket(eth.payload)
            #expect(eth.destination == .broadcast && arp.operation == ARPPacket.Operation.request)
            #expect(arp.senderHardware == ourMAC && arp.senderProtocol == ourIP && arp.targetProtocol == peerIP)
            request.release()
            #expect(host.peerMAC(peerIP) == nil, "pending, not resolved")

            let reply = try arpFrame(pool, operation: ARPPacket.Operation.reply, senderMAC: peerMAC, senderIP: peerIP)
            guard case .absorbed = host.receive(reply, now: 0) else { Issue.record("the reply was not taken"); return }
            #expect(host.peerMAC(peerIP) == peerMAC)
            #expect(host.stats.arpRequests == 1 && host.stats.arpResolved == 1 && host.stats.totalDrops == 1)
        }
    }

    /// A request for our address is answered and teaches us the asker (on our subnet); the table
    /// keeps the newest peers when it is full.
    @Test func arpRequestsAreAnsweredAndLearned() throws {
        try withPool(count: 16) { pool in
            var host = HostStack(config: HostConfig(mac: ourMAC, ip: ourIP, prefixLength: 24, udpPort: 7), pool: pool)
            defer { host.deallocate() }
            for i in 1...12 {
                let mac = MACAddress(0x02, 0, 0, 0, 1, UInt8(i)), ip = IPv4Address(192, 0, 2, UInt8(100 + i))
                let request = try arpFrame(pool, operation: ARPPacket.Operation.request, senderMAC: mac, senderIP: ip)
                guard case .reply(let reply, .arp) = host.receive(request, now: 0) else { Issue.record("no ARP reply"); return }
                let arp = try ARPPacket(try EthernetFrame(reply.unsafeBytes).payload)
                #expect(arp.operation == ARPPacket.Operation.reply && arp.senderHardware == ourMAC && arp.targetHardware == mac)
                reply.release()
                #expect(host.peerMAC(ip) == mac)
            }
            #expect(host.peerMAC(IPv4Address(192, 0, 2, 101)) == nil, "the oldest peer made room")
            // Off our subnet: answered, not learned.
            let far = IPv4Address(198, 51, 100, 1)
            let request = try arpFrame(pool, operation: ARPPacket.Operation.request, senderMAC: MACAddress(0x02, 0, 0, 0, 2, 1), senderIP: far)
            guard case .reply(let reply, .arp) = host.receive(request, now: 0) else { Issue.record("no ARP reply"); return }
            reply.release()
            #expect(host.peerMAC(far) == nil)
            #expect(host.stats.arpReplies == 13)
        }
    }

    @Test func onLinkFollowsThePrefix() {
        let config = HostConfig(mac: ourMAC, ip: ourIP, prefixLength: 25, udpPort: 7)
        #expect(config.isOnLink(IPv4Address(192, 0, 2, 127)) && !config.isOnLink(IPv4Address(192, 0, 2, 128)))
        #expect(HostConfig(mac: ourMAC, ip: ourIP, prefixLength: 0, udpPort: 7).isOnLink(IPv4Address(8, 8, 8, 8)))
        #expect(!HostConfig(mac: ourMAC, ip: ourIP, prefixLength: 32, udpPort: 7).isOnLink(IPv4Address(192, 0, 2, 11)))
    }
}
