import CLwIP
import UKNetdev

/// Why lwIP could not be set up.
public enum LwIPError: Error, Equatable, CustomStringConvertible {
    case netifRefused
    case udpBindRefused(port: UInt16)
    case anotherNetifExists

    public var description: String {
        switch self {
        case .netifRefused: "lwIP refused the network interface"
        case .udpBindRefused(let port): "lwIP could not bind UDP port \(port) (in use?)"
        case .anotherNetifExists: "lwIP runs one netif per process here (its state is global)"
        }
    }
}

/// What the bridge did, beside lwIP's own work (lwIP's stats are compiled out in Debian's build).
public struct LwIPBridgeStats: Sendable, Equatable {
    /// Frames from the device given to lwIP.
    public var framesIn: UInt64 = 0
    /// Chained frames copied into one buffer first (lwIP's input takes one contiguous frame here).
    public var framesLinearised: UInt64 = 0
    /// Frames lwIP sent: from our NetBufs without copying, and copied out of lwIP's own memory.
    public var framesOutZeroCopy: UInt64 = 0
    public var framesOutCopied: UInt64 = 0
    /// Frames lost: no buffer for a copy, or the transmit queue full.
    public var framesOutDropped: UInt64 = 0
    public var framesInDropped: UInt64 = 0
    /// pbufs over NetBufs not yet freed by lwIP (0 when idle: nothing leaked).
    public var pbufsLive: UInt64 = 0
    /// RX frames wrapped as pbufs, and those whose pbuf struct had to go on the heap.
    public var rxPbufs: UInt64 = 0
    public var rxPbufsOnHeap: UInt64 = 0
    /// UDP payloads handed to lwIP in place, and copied (no headroom for lwIP's headers).
    public var udpSentInPlace: UInt64 = 0
    public var udpSentCopied: UInt64 = 0
    /// Datagrams lwIP delivered in several pbufs (reassembled), copied for the application.
    public var udpChained: UInt64 = 0
    /// Peers taught to lwIP's ARP from their IPv4 frames.
    public var peersGleaned: UInt64 = 0
    /// Frames lwIP's input refused.
    public var inputErrors: UInt64 = 0
}

/// The netif's state, at a fixed address: lwIP's output callback reaches it from C.
@usableFromInline
struct LwIPNetifState {
    var netif: UnsafeMutableRawPointer?
    let pool: NetBufPool
    let burst: UnsafeMutablePointer<NetBuf>
    /// Frames lwIP sent, waiting for the device (a ring).
    let txQueue: UnsafeMutablePointer<NetBuf>
    var txHead = 0
    var txCount = 0
    var stats = LwIPBridgeStats()
    var inputEnded = false
    static var burstSize: Int { 32 }
    static var txQueueSize: Int { 4096 }

    init(pool: NetBufPool) {
        self.pool = pool
        burst = .allocate(capacity: Self.burstSize)
        txQueue = .allocate(capacity: Self.txQueueSize)
    }

    mutating func enqueue(_ buf: NetBuf) -> Bool {
        guard txCount < Self.txQueueSize else { return false }
        txQueue[(txHead + txCount) & (Self.txQueueSize - 1)] = buf
        txCount += 1
        return true
    }
}

/// Real lwIP (Debian's liblwip 2.1.3, raw API, single-threaded: no tcpip thread) as an Ethernet
/// netif over any UKNetdev device: lwIP does ARP, IPv4 (reassembly included), ICMP and UDP.
///
/// Zero copy both ways where the memory allows. RX: each frame's NetBuf becomes a custom pbuf
/// whose struct sits in the NetBuf's headroom (no allocation), returned to its pool when lwIP
/// frees it. TX: a UDP payload in a NetBuf with headroom goes to lwIP as a pbuf over that memory
/// and lwIP writes its headers in front of it; the frame reaches the device as that same NetBuf.
/// Frames lwIP builds in its own memory (ARP, ICMP replies) are copied into a NetBuf.
///
/// `poll` is the whole engine: one RX burst into lwIP, lwIP's timers, then what lwIP sent to the
/// device. lwIP's state is global: one netif per process.
public struct LwIPNetif: ~Copyable {
    @usableFromInline let state: UnsafeMutablePointer<LwIPNetifState>
    nonisolated(unsafe) static var exists = false

    public init(pool: NetBufPool, mac: MACAddress, ip: IPv4Address, prefixLength: Int, mtu: Int = 1500) throws(LwIPError) {
        guard !Self.exists else { throw .anotherNetifExists }
        uk_lwip_init { header in NetBuf(header: header!).release() }
        let state = UnsafeMutablePointer<LwIPNetifState>.allocate(capacity: 1)
        state.initialize(to: LwIPNetifState(pool: pool))
        var macBytes = (UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0))
        let netif = withUnsafeMutableBytes(of: &macBytes) { bytes in
            mac.store(to: bytes.baseAddress!)
            return uk_lwip_netif_add(ip.value.bigEndian, Int32(prefixLength), bytes.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                     UInt16(mtu), LwIPNetif.output, UnsafeMutableRawPointer(state))
        }
        guard let netif else {
            state.deinitialize(count: 1)
            state.deallocate()
            throw .netifRefused
        }
        state.pointee.netif = netif
        self.state = state
        Self.exists = true
    }

    /// pbufs over NetBufs that lwIP has not freed (process-wide; 0 once a netif is gone).
    public static var pbufsLive: UInt64 {
        var c = uk_lwip_counters()
        uk_lwip_counters(&c)
        return c.pbufs_live
    }

    deinit {
        // ARP's queue goes with the netif; partial datagrams in reassembly are aged out now,
        // so every NetBuf lwIP held is back in its pool.
        uk_lwip_netif_remove(state.pointee.netif)
        uk_lwip_drain()
        var head = state.pointee.txHead
        for _ in 0..<state.pointee.txCount {
            state.pointee.txQueue[head].release()
            head = (head + 1) & (LwIPNetifState.txQueueSize - 1)
        }
        state.pointee.burst.deallocate()
        state.pointee.txQueue.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
        Self.exists = false
    }

    /// lwIP's link output: the frame as a NetBuf on the transmit queue.
    static let output: uk_lwip_output_fn = { context, netbuf, frame, length, pbuf in
        let s = context!.assumingMemoryBound(to: LwIPNetifState.self)
        let count = Int(length)
        func dropped(_ buf: NetBuf?) -> Int32 {
            buf?.release()
            s.pointee.stats.framesOutDropped &+= 1
            return -1
        }
        if let netbuf {
            // The frame lies in this NetBuf: take a reference (lwIP frees its pbuf, and with it
            // its reference, once it is done) and point the NetBuf at the frame.
            let buf = NetBuf(header: netbuf)
            buf.retain()
            let room = buf.data - buf.headroom
            guard (try? buf.reset(headroom: frame! - room)) != nil, (try? buf.setLength(count)) != nil,
                  s.pointee.enqueue(buf) else { return dropped(buf) }
            s.pointee.stats.framesOutZeroCopy &+= 1
            return 0
        }
        // A frame in lwIP's own memory (ARP, ICMP): copied into a buffer of ours.
        guard let buf = s.pointee.pool.allocate() else { return dropped(nil) }
        guard count <= buf.tailroom, (try? buf.setLength(count)) != nil else { return dropped(buf) }
        _ = uk_lwip_copy_frame(pbuf, buf.data, UInt16(count))
        guard s.pointee.enqueue(buf) else { return dropped(buf) }
        s.pointee.stats.framesOutCopied &+= 1
        return 0
    }

    /// One RX burst from `device` into lwIP (its UDP handlers run inside), lwIP's due timers, and
    /// what lwIP sent, to the device. Returns the frames received.
    @discardableResult
    public func poll<Device: NetDevice & ~Copyable>(_ device: inout Device) -> Int {
        let s = state
        let result = device.rxBurst(queue: 0, into: UnsafeMutableBufferPointer(start: s.pointee.burst, count: LwIPNetifState.burstSize))
        let n = result.count
        if result.status.contains(.endOfInput) { s.pointee.inputEnded = true }
        for i in 0..<n { input(s.pointee.burst[i]) }
        uk_lwip_check_timeouts()
        flush(&device)
        return n
    }

    /// True once the device said its input is all delivered (`BurstStatus.endOfInput`).
    public var inputEnded: Bool { state.pointee.inputEnded }

    /// One frame into lwIP, which owns it from here.
    public func input(_ buf: NetBuf) {
        var frame = buf
        if buf.next != nil {
            // lwIP's input here takes one contiguous frame: copy a chain into one buffer.
            guard let flat = state.pointee.pool.allocate(), buf.packetLength <= flat.tailroom,
                  (try? flat.setLength(buf.packetLength)) != nil else {
                state.pointee.stats.framesInDropped &+= 1
                buf.release()
                return
            }
            _ = buf.copyOut(into: UnsafeMutableRawBufferPointer(start: flat.data, count: flat.length))
            buf.release()
            frame = flat
            state.pointee.stats.framesLinearised &+= 1
        }
        guard frame.length <= Int(UInt16.max) else {
            state.pointee.stats.framesInDropped &+= 1
            frame.release()
            return
        }
        state.pointee.stats.framesIn &+= 1
        uk_lwip_input(state.pointee.netif, frame.header, frame.data - frame.headroom, frame.data, UInt16(frame.length), 1)
    }

    /// Sends what lwIP queued until the device refuses more.
    public func flush<Device: NetDevice & ~Copyable>(_ device: inout Device) {
        let s = state
        while s.pointee.txCount > 0 {
            let run = min(s.pointee.txCount, LwIPNetifState.txQueueSize - s.pointee.txHead)
            let sent = device.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: s.pointee.txQueue + s.pointee.txHead, count: run)).count
            s.pointee.txHead = (s.pointee.txHead + sent) & (LwIPNetifState.txQueueSize - 1)
            s.pointee.txCount -= sent
            if sent < run { return }
        }
    }

    /// Frames lwIP sent that the device has not taken yet.
    public var pendingTransmit: Int { state.pointee.txCount }

    /// The bridge's counters and the C glue's.
    public var stats: LwIPBridgeStats {
        var s = state.pointee.stats
        var c = uk_lwip_counters()
        uk_lwip_counters(&c)
        s.pbufsLive = c.pbufs_live
        s.rxPbufs = c.rx_pbufs
        s.rxPbufsOnHeap = c.rx_pbufs_heap
        s.udpSentInPlace = c.tx_pbufs
        s.udpSentCopied = c.tx_pbufs_copied
        s.udpChained = c.udp_chained
        s.peersGleaned = c.peers_gleaned
        s.inputErrors = c.input_errors
        return s
    }

    var rawNetif: UnsafeMutableRawPointer { state.pointee.netif! }
}

/// A UDP port bound on the netif's address (lwIP's raw API). `receive` runs inside
/// `LwIPNetif.poll` for each datagram: the payload, its length, the source address (network
/// order) and port; the payload is valid during the call only.
public struct LwIPUDPSocket: ~Copyable {
    let raw: UnsafeMutableRawPointer

    public typealias Receive = @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer?, UInt16, UInt32, UInt16) -> Void

    public init(on netif: borrowing LwIPNetif, port: UInt16, context: UnsafeMutableRawPointer?, receive: Receive) throws(LwIPError) {
        guard let raw = uk_lwip_udp_bind(netif.rawNetif, port, receive, context) else { throw .udpBindRefused(port: port) }
        self.raw = raw
    }

    /// A socket handle for use inside a receive callback (the socket itself stays the owner's).
    public var handle: LwIPUDPSocketHandle { LwIPUDPSocketHandle(raw: raw) }

    deinit { uk_lwip_udp_remove(raw) }
}

/// Sends on a bound socket; valid while its `LwIPUDPSocket` lives.
public struct LwIPUDPSocketHandle {
    let raw: UnsafeMutableRawPointer

    /// Sends the datagram whose payload is `payload`'s data to `address:port` (network-order
    /// address, as the receive callback gives it). lwIP writes its headers into the headroom in
    /// front (zero copy) when there is room, else copies. The buffer is lwIP's from here, sent or
    /// not. False if lwIP refused it.
    @discardableResult
    public func send(_ payload: NetBuf, toAddress address: UInt32, port: UInt16) -> Bool {
        uk_lwip_udp_send(raw, payload.header, payload.data - payload.headroom, payload.data, UInt16(truncatingIfNeeded: payload.length),
                         address, port) == 0
    }

    /// Headroom a payload needs for lwIP to send it in place.
    public static var headroomForZeroCopy: Int { Int(uk_lwip_udp_headroom()) }
}
