import UKNetdev

/// Peers on the link by IPv4 address: learned from ARP requests for our address and from
/// replies to our own requests (RFC 826's merge, kept small: a full table replaces its entries
/// in turn). An address we asked for and have no answer for yet is pending.
struct ARPTable {
    struct Entry {
        var ip = IPv4Address.any
        var mac = MACAddress.zero
        var resolved = false
    }
    static var capacity: Int { 8 }
    var entries = InlineArray<8, Entry>(repeating: Entry())
    var used = 0
    var nextReplaced = 0

    func index(of ip: IPv4Address) -> Int? {
        for i in 0..<used where entries[i].ip == ip { return i }
        return nil
    }

    func mac(of ip: IPv4Address) -> MACAddress? {
        guard let i = index(of: ip), entries[i].resolved else { return nil }
        return entries[i].mac
    }

    func isPending(_ ip: IPv4Address) -> Bool {
        guard let i = index(of: ip) else { return false }
        return !entries[i].resolved
    }

    mutating func learn(_ ip: IPv4Address, _ mac: MACAddress) {
        entries[index(of: ip) ?? newIndex()] = Entry(ip: ip, mac: mac, resolved: true)
    }

    mutating func markPending(_ ip: IPv4Address) {
        guard index(of: ip) == nil else { return }
        entries[newIndex()] = Entry(ip: ip)
    }

    mutating func newIndex() -> Int {
        if used < ARPTable.capacity {
            used += 1
            return used - 1
        }
        // Full: the entries in turn, oldest first.
        let replaced = nextReplaced
        nextReplaced = (replaced + 1) % ARPTable.capacity
        return replaced
    }
}

extension HostStack {
    /// The MAC address of a peer, once known.
    public func peerMAC(_ ip: IPv4Address) -> MACAddress? { peers.mac(of: ip) }

    /// An ARP request for `ip` to broadcast (the caller sends it); its reply will resolve the
    /// peer. Nil (counted) when the pool is empty.
    public mutating func arpRequest(for ip: IPv4Address) -> NetBuf? {
        guard let buf = pool.allocate() else {
            stats.drops.add(.noBuffer)
            return nil
        }
        let f = buf.data
        f.initializeMemory(as: UInt8.self, repeating: 0, count: 60)   // the Ethernet minimum, padded
        EthernetFrame.writeHeader(at: f, destination: .broadcast, source: config.mac, etherType: EtherType.arp)
        ARPPacket.write(at: f + 14, operation: ARPPacket.Operation.request, senderHardware: config.mac,
                        senderProtocol: config.ip, targetHardware: .zero, targetProtocol: ip)
        buf.unsafeSetLength(60)
        peers.markPending(ip)
        stats.arpRequests &+= 1
        return buf
    }

    /// Answers a request for our address (over the request when it is writable), learns from it
    /// and from replies to our own requests; anything else is not for us.
    mutating func handleARP(_ frame: Frame, _ eth: EthernetFrame) -> Outcome {
        let arp: ARPPacket
        do { arp = try ARPPacket(eth.payload) } catch { return drop(frame, .arpMalformed) }
        guard arp.targetProtocol == config.ip else { return drop(frame, .arpNotForUs) }
        let sender = arp.senderProtocol
        switch arp.operation {
        case ARPPacket.Operation.request:
            if config.isOnLink(sender) { peers.learn(sender, arp.senderHardware) }
            guard let reply = writableCopy(of: frame) else { return drop(nil, .noBuffer) }
            // The request's bytes, checked above: these views cannot fail.
            guard let replyEth = try? EthernetFrame(reply.unsafeBytes), let replyARP = try? ARPPacket(replyEth.payload) else {
                return drop(Frame(bytes: reply.unsafeBytes, buffer: reply), .arpMalformed)
            }
            replyARP.makeReply(hardware: config.mac, address: config.ip)
            replyEth.reply(from: config.mac)
            stats.arpReplies &+= 1
            return .reply(reply, .arp)
        case ARPPacket.Operation.reply where peers.isPending(sender):
            peers.learn(sender, arp.senderHardware)
            frame.buffer?.release()
            stats.arpResolved &+= 1
            return .absorbed
        default:
            return drop(frame, .arpNotForUs)
        }
    }
}

extension HostStack {
    /// Answers an echo request: in place over the request when it came in one frame (a copy
    /// when that is shared), else (reassembled, or from a chain too long for one buffer) in a
    /// fresh frame if the reply fits one.
    mutating func handleICMP(_ payload: UnsafeMutableRawBufferPointer, source: IPv4Address, senderMAC: MACAddress,
                             vlan: UInt16?, frame: Frame?) -> Outcome {
        let icmp: ICMPEcho
        do { icmp = try ICMPEcho(payload) } catch { return drop(frame, .icmpMalformed) }
        guard icmp.isChecksumValid else { return drop(frame, .icmpBadChecksum) }
        guard icmp.type == ICMPEcho.Kind.echoRequest, icmp.code == 0 else { return drop(frame, .icmpNotEchoRequest) }
        if let frame, frame.buffer != nil {
            guard let reply = writableCopy(of: frame) else { return drop(nil, .noBuffer) }
            // The request's bytes, checked above: these views cannot fail.
            guard let eth = try? EthernetFrame(reply.unsafeBytes), let ip = try? IPv4Packet(eth.payload),
                  let echo = try? ICMPEcho(ip.payload) else {
                return drop(Frame(bytes: reply.unsafeBytes, buffer: reply), .icmpMalformed)
            }
            // Addresses swapped, type changed, checksum updated incrementally.
            echo.makeReply()
            ip.swapAddresses()
            ip.timeToLive = 64
            ip.updateHeaderChecksum()
            eth.reply(from: config.mac)
            stats.icmpReplies &+= 1
            return .reply(reply, .icmpEcho)
        }
        let headers = (vlan == nil ? 14 : 18) + 20
        guard let reply = pool.allocate() else { return drop(nil, .noBuffer) }
        guard (try? reply.setLength(headers + payload.count)) != nil, payload.count <= 1480 else {
            reply.release()
            return drop(nil, .icmpTooLarge)
        }
        let p = reply.data + writeEthernetHeader(at: reply.data, destination: senderMAC, source: config.mac, vlan: vlan)
        IPv4Packet.writeHeader(at: p, source: config.ip, destination: source, protocol: IPProtocol.icmp, payloadLength: payload.count)
        (p + 20).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
        let echo = try! ICMPEcho(UnsafeMutableRawBufferPointer(start: p + 20, count: payload.count))
        echo.makeReply()
        stats.icmpReplies &+= 1
        return .reply(reply, .icmpEcho)
    }
}
