import CDPDK
import UKNetdev

/// A DPDK port (any PMD: null, pcap, ring, memif, vhost, virtio_user, tap, af_packet, af_xdp, a
/// real NIC) as a UKNetdev device, with no copy between mbufs and NetBufs either way.
///
/// Why this way (of the three the DPDK issue lists): a NetBuf *is* an mbuf. Pools made by
/// `DPDK.makePool` leave 192 bytes in front of every NetBuf header, room for the mbuf's 128, so
/// each slot is `[rte_mbuf | NetBuf header = the mbuf's private area | data room = its buffer]`,
/// in DPDK's memory. RX hands the port "facade" mempools whose get takes NetBufs from the queue's
/// allocator and whose put releases them (uk_dpdk.c); a received mbuf becomes its NetBuf by
/// pointer arithmetic, and TX gives a NetBuf's own mbuf to the port. So there is no per-packet
/// attach/detach and no second allocator: the NetBufPool stays the one owner of every buffer
/// and its counters stay exact, and the ownership rule is unchanged (DPDK freeing a sent mbuf
/// is the NetBuf's release). Attaching external buffers to mbufs per packet (the other two
/// ways) costs a header and a callback per packet and, for virtio_user, memory DPDK can share.
///
/// Buffers that are not from such a pool, are shared (refcount above 1), clones, external or
/// chained are sent as a copy into a buffer from the first RX queue's allocator (counted:
/// `tx_copied`), the original released once the copy is taken.
public struct DPDKDevice: NetDevice, ~Copyable {
    public let port: UInt16
    public let info: DeviceInfo
    /// The PMD's name (net_null, net_pcap, ...).
    public let driver: String
    @usableFromInline let portInfo: uk_dpdk_port_info
    @usableFromInline var lifecycle = DeviceLifecycle()
    public var state: DeviceState { lifecycle.state }
    @usableFromInline let rxStats = QueueStatsTable(count: DeviceLifecycle.maxQueues)
    @usableFromInline let txStats = QueueStatsTable(count: DeviceLifecycle.maxQueues)
    @usableFromInline var rxFacades: [OpaquePointer?] = []
    @usableFromInline var txFacade: OpaquePointer?
    @usableFromInline var copyAllocator: RxBufferAllocator?
    @usableFromInline var started = false
    @usableFromInline var txCopied: UInt64 = 0
    @usableFromInline var txDroppedUnsendable: UInt64 = 0
    /// Frames a finite input (net_pcap's rx_pcap) holds: once as many have come in (or were
    /// dropped by the PMD), RX says `endOfInput`.
    @usableFromInline let finiteInput: UInt64?
    @usableFromInline var received: UInt64 = 0
    /// RX frames whose partial L4 checksum was completed in software.
    @usableFromInline var rxChecksumsCompleted: UInt64 = 0
    nonisolated(unsafe) static var facadesMade = 0

    /// Port `port` of the running EAL (`DPDK.initialize` first). `finiteInput`: the frame count of
    /// a finite RX source, when known.
    public init(port: Int, finiteInput: UInt64? = nil) throws(DPDKError) {
        guard port >= 0, port <= Int(UInt16.max), uk_dpdk_port_is_valid(UInt16(port)) != 0 else {
            throw .noPort(index: port, available: DPDK.portIDs, arguments: DPDK.ealArguments ?? [])
        }
        var pi = uk_dpdk_port_info()
        let rc = uk_dpdk_port_info(UInt16(port), &pi)
        guard rc == 0 else { throw .portCall("rte_eth_dev_info_get", port: port, code: rc, reason: Self.reason(rc)) }
        self.port = UInt16(port)
        portInfo = pi
        driver = withUnsafeBytes(of: pi.driver) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let mac = withUnsafeBytes(of: pi.mac) { MACAddress($0[0], $0[1], $0[2], $0[3], $0[4], $0[5]) }
        var features: DeviceFeatures = []
        if pi.tx_checksum != 0 { features.insert(.txChecksumOffload) }
        if pi.rx_checksum != 0 { features.insert(.rxChecksumOffload) }
        func limits(_ min: UInt16, _ max: UInt16, _ align: UInt16) -> DescriptorLimits {
            DescriptorLimits(min: Swift.max(Int(min), 1), max: max == 0 ? 1 << 15 : Int(max), alignment: Swift.max(Int(align), 1))
        }
        info = DeviceInfo(maxRxQueues: Swift.min(Int(pi.max_rx_queues), DeviceLifecycle.maxQueues),
                          maxTxQueues: Swift.min(Int(pi.max_tx_queues), DeviceLifecycle.maxQueues),
                          mac: mac == MACAddress(0, 0, 0, 0, 0, 0) ? nil : mac,
                          link: LinkStatus(up: pi.link_up != 0 || pi.link_speed_mbps == 0, speedMbps: pi.link_speed_mbps),
                          mtu: Int(pi.mtu), features: features,
                          rxDescriptors: limits(pi.rx_desc_min, pi.rx_desc_max, pi.rx_desc_align),
                          txDescriptors: limits(pi.tx_desc_min, pi.tx_desc_max, pi.tx_desc_align))
        self.finiteInput = finiteInput
    }

    deinit {
        if started { _ = uk_dpdk_stop(port) }
        if !closed { _ = uk_dpdk_close(port) }
        for f in rxFacades { uk_dpdk_facade_free(f) }
        uk_dpdk_facade_free(txFacade)
        rxStats.deallocate()
        txStats.deallocate()
    }

    static func reason(_ code: Int32) -> String { String(cString: uk_dpdk_strerror(code < 0 ? -code : code)) }

    public mutating func configure(_ config: DeviceConfig) throws(NetDeviceError) {
        try lifecycle.configure(config, info: info)
        let rc = uk_dpdk_configure(port, UInt16(config.rxQueues), UInt16(config.txQueues),
                                   info.features.contains(.txChecksumOffload) ? 1 : 0, info.features.contains(.rxChecksumOffload) ? 1 : 0)
        guard rc == 0 else { throw .backend(code: rc) }
        for f in rxFacades { uk_dpdk_facade_free(f) }
        rxFacades = Array(repeating: nil, count: config.rxQueues)
        if txFacade == nil {
            txFacade = uk_dpdk_facade_create(Self.facadeName(), 0, 0, nil, nil, releaseHeaders)
            guard txFacade != nil else { throw .backend(code: -uk_dpdk_errno()) }
        }
    }

    static func facadeName() -> String {
        facadesMade += 1
        return "uknet_\(getpidValue())_\(facadesMade)"
    }

    public mutating func setupRxQueue(_ queue: Int, _ config: RxQueueConfig) throws(NetDeviceError) {
        guard let allocator = config.allocator else { throw .missingAllocator }
        try lifecycle.setupRx(queue, descriptors: config.descriptors, info: info)
        // One buffer to learn the pool: it must be one DPDK.makePool made (room for the mbuf).
        var probe = NetBuf(header: UnsafeMutableRawPointer(bitPattern: 64)!)
        guard withUnsafeMutablePointer(to: &probe, { allocator.function(allocator.context, UnsafeMutableRawPointer($0), 1) }) == 1 else {
            throw .backend(code: -12)   // ENOMEM: the pool is empty
        }
        let pool = probe.pool
        let room = probe.capacity
        probe.release()
        guard DPDK.isMbufPool(pool.state) else { throw .notSupported }
        let delta = Int64(bitPattern: pool.state.pointee.deviceBase &- UInt64(UInt(bitPattern: pool.state.pointee.slab)))
        uk_dpdk_facade_free(rxFacades[queue])
        let facade = uk_dpdk_facade_create(Self.facadeName(), UInt16(room), delta, allocator.context,
                                           unsafeBitCast(allocator.function, to: uk_dpdk_alloc_fn.self), releaseHeaders)
        guard let facade else { throw .backend(code: -uk_dpdk_errno()) }
        rxFacades[queue] = facade
        let rc = uk_dpdk_rx_queue_setup(port, UInt16(queue), UInt16(config.descriptors), facade)
        guard rc == 0 else {
            throw .refused("DPDK port \(port) (\(driver)) refused RX queue \(queue): \(Self.reason(rc)) (\(rc)); it got \(config.descriptors) "
                           + "descriptors and buffers of \(room) bytes, and takes \(info.rxDescriptors.min)...\(info.rxDescriptors.max) descriptors "
                           + "and buffers of at least \(128 + Int(portInfo.min_rx_buffer)) bytes (DPDK's 128-byte headroom and the PMD's minimum): "
                           + "change the pool's buffer size or the descriptors (pktgen --descriptors)")
        }
        if copyAllocator == nil { copyAllocator = allocator }
    }

    public mutating func setupTxQueue(_ queue: Int, _ config: TxQueueConfig) throws(NetDeviceError) {
        try lifecycle.setupTx(queue, descriptors: config.descriptors, info: info)
        let rc = uk_dpdk_tx_queue_setup(port, UInt16(queue), UInt16(config.descriptors))
        guard rc == 0 else {
            throw .refused("DPDK port \(port) (\(driver)) refused TX queue \(queue): \(Self.reason(rc)) (\(rc)); it got \(config.descriptors) "
                           + "descriptors and takes \(info.txDescriptors.min)...\(info.txDescriptors.max) (pktgen --descriptors)")
        }
    }

    public mutating func start() throws(NetDeviceError) {
        guard !closed else { throw .invalidState(lifecycle.state) }
        try lifecycle.start()
        let rc = uk_dpdk_start(port)
        guard rc == 0 else {
            _ = lifecycle.stop()
            throw .backend(code: rc)
        }
        started = true
        // A peer that connects (memif, vhost, virtio_user) brings the link up a moment after the
        // start: wait for it, as testpmd does, or the first frames go nowhere.
        linkUpAtStart = uk_dpdk_wait_link(port, 5000) != 0
    }

    /// Whether the link was up (within 5 s) after `start`.
    public private(set) var linkUpAtStart = false

    /// Stops the port: the PMD frees its RX rings' mbufs (back to their pools through the
    /// facades). PMDs that keep them across a stop (virtio_user frees them only when the port
    /// closes) get the port closed, so that every buffer is back: such a port cannot start again
    /// in this process (`start` then refuses).
    public mutating func stop() {
        guard lifecycle.stop() else { return }
        if started { _ = uk_dpdk_stop(port) }
        started = false
        flushCaches()
        var held: UInt64 = 0
        for f in rxFacades where f != nil { held &+= uk_dpdk_facade_outstanding(f) }
        if held > 0 && !closed {
            _ = uk_dpdk_close(port)
            closed = true
            flushCaches()
        }
    }

    /// Every facade's lcore cache back to the pools.
    mutating func flushCaches() {
        for f in rxFacades where f != nil { uk_dpdk_facade_flush(f) }
        uk_dpdk_facade_flush(txFacade)
    }

    /// Set once `stop` had to close the port.
    public private(set) var closed = false

    @inlinable
    public mutating func rxBurst(queue: Int, into packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard lifecycle.canReceive(on: queue), let out = packets.baseAddress else { return .refused }
        let want = UInt16(truncatingIfNeeded: Swift.min(packets.count, Int(UInt16.max)))
        var partial: UInt16 = 0
        let n = Int(uk_dpdk_rx(port, UInt16(truncatingIfNeeded: queue), UnsafeMutableRawPointer(out).assumingMemoryBound(to: UnsafeMutableRawPointer?.self), want, &partial))
        if partial != 0 { completePartialChecksums(out, count: n) }
        if n > 0 { rxStats.record(queue, packets: n, bytes: NetBuf.totalLength(out, count: n)) }
        received &+= UInt64(n)
        if let finiteInput, n == 0, inputEnded(finiteInput) {
            return BurstResult(count: 0, status: [.success, .endOfInput])
        }
        return BurstResult(count: n, status: n == packets.count ? [.success, .more] : .success)
    }

    /// Frames whose L4 checksum a virtio peer left partial (the shim marked them): completed in
    /// software, so the application sees what a wire would carry, as VirtioNet does.
    @usableFromInline @inline(never)
    mutating func completePartialChecksums(_ packets: UnsafeMutablePointer<NetBuf>, count: Int) {
        let partialBit = OffloadFlags(rawValue: UInt16(UK_DPDK_CSUM_PARTIAL))
        for i in 0..<count where packets[i].flags.contains(partialBit) {
            let buf = packets[i]
            buf.flags.remove(partialBit)
            let (start, offset) = buf.checksumRequest
            if buf.completePartialChecksum(start: start, offset: offset) { rxChecksumsCompleted &+= 1 }
        }
    }

    /// All of a finite input is in: delivered, or dropped by the PMD (no buffer, missed).
    @usableFromInline
    func inputEnded(_ total: UInt64) -> Bool {
        if received >= total { return true }
        var s = uk_dpdk_stats()
        guard uk_dpdk_stats(port, &s) == 0 else { return false }
        return s.ipackets + s.imissed + s.rx_nombuf + s.ierrors >= total
    }

    @inlinable
    public mutating func txBurst(queue: Int, from packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard lifecycle.canTransmit(on: queue), let src = packets.baseAddress, let facade = txFacade else { return .refused }
        let n = packets.count
        var sent = 0
        while sent < n {
            // A run of buffers the port can take as they are (their own mbufs), from one pool.
            let first = src[sent]
            guard isSendable(first) else {
                guard sendCopy(of: first, queue: queue, facade: facade) else { break }
                sent &+= 1
                continue
            }
            let pool = first.pool.state
            var end = sent &+ 1
            while end < n && src[end].pool.state == pool && Self.isSingleOwnSegment(src[end]) { end &+= 1 }
            let delta = Int64(bitPattern: pool.pointee.deviceBase &- UInt64(UInt(bitPattern: pool.pointee.slab)))
            var bytes: UInt64 = 0
            let took = Int(uk_dpdk_tx(port, UInt16(truncatingIfNeeded: queue), facade, delta,
                                      UnsafeRawPointer(src + sent).assumingMemoryBound(to: UnsafeMutableRawPointer?.self),
                                      UInt16(truncatingIfNeeded: end &- sent), &bytes))
            txStats.record(queue, packets: took, bytes: Int(bytes))
            sent &+= took
            if sent < end { break }   // the port's ring is full
        }
        return BurstResult(count: sent, status: sent == n ? [.success, .more] : .success)
    }

    /// One segment, sole owner, own data (not a clone, not external memory).
    @inlinable @inline(__always)
    static func isSingleOwnSegment(_ buf: NetBuf) -> Bool {
        buf.next == nil && buf.isWritable && !buf.isExternal
    }

    /// A single own segment from a pool with room for its mbuf. The last such pool is kept, so
    /// the process-wide list is consulted only when a burst brings buffers of another pool.
    @inlinable @inline(__always)
    mutating func isSendable(_ buf: NetBuf) -> Bool {
        guard Self.isSingleOwnSegment(buf) else { return false }
        let pool = buf.pool.state
        if pool == lastMbufPool { return true }
        guard DPDK.isMbufPool(pool) else { return false }
        lastMbufPool = pool
        return true
    }
    @usableFromInline var lastMbufPool: UnsafeMutablePointer<NetBufPoolState>?

    /// The rare path: `buf` copied (chains linearized) into a fresh buffer the port can take,
    /// sent; the original released once the copy is taken. False if the port took nothing (the
    /// original stays the caller's).
    @usableFromInline
    mutating func sendCopy(of buf: NetBuf, queue: Int, facade: OpaquePointer) -> Bool {
        guard let allocator = copyAllocator else { return false }
        var copy = NetBuf(header: UnsafeMutableRawPointer(bitPattern: 64)!)
        let got = withUnsafeMutablePointer(to: &copy) { allocator.function(allocator.context, UnsafeMutableRawPointer($0), 1) }
        guard got == 1 else { return false }
        let length = buf.packetLength
        guard length <= copy.tailroom else {
            // Cannot be sent by this port at all: a counted drop, never a crash.
            copy.release()
            buf.release()
            txDroppedUnsendable &+= 1
            txStats.recordDrops(queue, 1)
            return true
        }
        _ = buf.copyOut(into: UnsafeMutableRawBufferPointer(start: copy.data, count: length))
        copy.unsafeSetLength(length)
        copy.flags = buf.flags
        copy.checksumRequest = buf.checksumRequest
        var header: UnsafeMutableRawPointer? = copy.header
        let delta = Int64(bitPattern: copy.pool.state.pointee.deviceBase &- UInt64(UInt(bitPattern: copy.pool.state.pointee.slab)))
        var bytes: UInt64 = 0
        guard uk_dpdk_tx(port, UInt16(truncatingIfNeeded: queue), facade, delta, &header, 1, &bytes) == 1 else {
            copy.release()
            return false
        }
        txStats.record(queue, packets: 1, bytes: length)
        txCopied &+= 1
        buf.release()
        return true
    }

    public func rxQueueStats(_ queue: Int) -> QueueStats { rxStats[queue] }
    public func txQueueStats(_ queue: Int) -> QueueStats { txStats[queue] }

    /// The port's own counters (rte_eth_stats) and the copies this side made.
    public func extendedStats(_ body: (StaticString, Int, UInt64) -> Void) {
        var s = uk_dpdk_stats()
        if uk_dpdk_stats(port, &s) == 0 {
            body("port_rx_packets", -1, s.ipackets)
            body("port_tx_packets", -1, s.opackets)
            body("port_rx_bytes", -1, s.ibytes)
            body("port_tx_bytes", -1, s.obytes)
            body("port_rx_missed", -1, s.imissed)
            body("port_rx_errors", -1, s.ierrors)
            body("port_tx_errors", -1, s.oerrors)
            body("port_rx_nombuf", -1, s.rx_nombuf)
        }
        body("rx_checksums_completed", -1, rxChecksumsCompleted)
        body("tx_copied", -1, txCopied)
        body("tx_unsendable", -1, txDroppedUnsendable)
    }

    /// Buffers the port holds now (RX rings, TX not yet freed).
    public var buffersHeldByPort: UInt64 {
        var total: UInt64 = 0
        for f in rxFacades where f != nil { total &+= uk_dpdk_facade_outstanding(f) }
        if let txFacade { total &+= uk_dpdk_facade_outstanding(txFacade) }
        return total
    }
}

/// The facades' way back: DPDK freed these mbufs (sent, or an RX ring emptied at stop).
let releaseHeaders: uk_dpdk_release_fn = { headers, count in
    guard let headers else { return }
    let buffers = UnsafeMutablePointer(mutating: UnsafeRawPointer(headers).assumingMemoryBound(to: NetBuf.self))
    NetBuf.releaseBulk(UnsafeMutableBufferPointer(start: buffers, count: Int(count)))
}
