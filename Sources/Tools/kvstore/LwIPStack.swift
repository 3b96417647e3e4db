import Glibc
import KVStore
import LwIPBridge
import NetdevSpec
import ToolSupport
import UKNetdev

/// What lwIP's UDP callback reaches: the store, the socket to answer on, the time.
struct LwIPKVContext: ~Copyable {
    var service: KVDatagramService
    var socket: LwIPUDPSocketHandle?
    var now: UInt32
    var sendFailures: UInt64 = 0
}

/// `--stack lwip`: the store on real lwIP, a netif over the device. lwIP does ARP, IPv4,
/// reassembly, ICMP and UDP; the store sees datagrams (same engine and replies as the netdev
/// stack) and answers with payload buffers that lwIP sends in place.
struct LwIPServerRunner: NetDeviceVisitor {
    let config: KVServerConfig
    let pool: NetBufPool
    let live: Bool

    static let receive: LwIPUDPSocket.Receive = { context, payload, length, address, port in
        let c = context!.assumingMemoryBound(to: LwIPKVContext.self)
        let replies = c.pointee.service.handle(payload!, count: Int(length), from: IPv4Address(value: UInt32(bigEndian: address)),
                                               now: c.pointee.now)
        for reply in replies where !c.pointee.socket!.send(reply, toAddress: address, port: port) {
            c.pointee.sendFailures &+= 1
        }
    }

    mutating func visit<D: NetDevice & ~Copyable>(_ device: inout D) throws -> String {
        let netif = try LwIPNetif(pool: pool, mac: config.mac, ip: config.ip, prefixLength: config.prefixLength,
                                  mtu: device.info.mtu > 0 ? device.info.mtu : 1500)
        let context = UnsafeMutablePointer<LwIPKVContext>.allocate(capacity: 1)
        context.initialize(to: LwIPKVContext(service: try KVDatagramService(pool: pool, memoryBytes: config.memoryBytes, now: unixTime(),
                                                                                       sources: config.sources, ownPrefix: config.ownPrefix,
                                                                                       shutdownCommand: config.shutdownCommand),
                                             socket: nil, now: unixTime()))
        defer {
            context.deinitialize(count: 1)
            context.deallocate()
        }
        let socket = try LwIPUDPSocket(on: netif, port: config.port, context: UnsafeMutableRawPointer(context), receive: Self.receive)
        context.pointee.socket = socket.handle
        describeProcess(&context.pointee.service.engine.environment)
        context.pointee.service.engine.environment.udpPort = config.port
        context.pointee.service.engine.environment.interface = config.ip
        let busy = pollUntilDone(live: live,
                                 poll: {
                                     context.pointee.now = unixTime()
                                     return netif.poll(&device)
                                 },
                                 finished: { netif.inputEnded && (netif.pendingTransmit == 0 || !device.info.link.up) },
                                 liveLine: {
                                     let s = context.pointee.service.stats, b = netif.stats
                                     return "frames \(b.framesIn)  requests \(s.requests)  replies \(s.replyDatagrams)  "
                                         + "pbufs live \(b.pbufsLive)  pool \(pool.inUse)/\(pool.capacity)"
                                 })
        netif.flush(&device)
        if live { print("") }
        let b = netif.stats
        var lines = ["kvstore \(config.ip)/\(config.prefixLength) \(config.mac) port \(config.port) (lwip: lwIP 2.1.3 raw API on the device)"]
        lines.append("frames into lwIP: \(b.framesIn) (\(b.rxPbufs) as pbufs over their buffers, \(b.rxPbufsOnHeap) with the pbuf struct on the heap, "
                     + "\(b.framesLinearised) chains copied), refused by lwIP's input: \(b.inputErrors)")
        lines.append("frames out of lwIP: \(b.framesOutZeroCopy) in place, \(b.framesOutCopied) copied, \(b.framesOutDropped) dropped; "
                     + "UDP payloads sent in place \(b.udpSentInPlace), copied \(b.udpSentCopied); reassembled datagrams \(b.udpChained); "
                     + "peers taught to ARP \(b.peersGleaned)")
        let service = context.pointee.service.stats
        lines.append("memcached requests: \(service.requests), reply datagrams: \(service.replyDatagrams), send failures: \(context.pointee.sendFailures)")
        lines.append(contentsOf: engineReportLines(context.pointee.service.engine))
        lines.append(contentsOf: dropReportLines(service))
        lines.append(busy.reportLine(requests: service.requests))
        _ = consume socket
        _ = consume netif
        // With the netif gone and partial datagrams aged out, lwIP holds none of our buffers; one
        // still held would be a leak.
        lines.append("lwIP pbufs over our buffers after shutdown: \(LwIPNetif.pbufsLive)")
        return lines.joined(separator: "\n")
    }
}
