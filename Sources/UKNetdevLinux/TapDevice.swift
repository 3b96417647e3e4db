#if canImport(Glibc)
import Glibc
#endif
import CUKLinux
import UKNetdev

/// Why a TAP device could not be opened; `errno` is the system's.
public enum TapDeviceError: Error, Equatable {
    /// Empty, too long for an interface name (15 bytes), or containing '/', ':' or white space.
    case invalidName(String)
    /// Opening /dev/net/tun failed (ENOENT: no TUN/TAP support; EACCES: not allowed).
    case open(errno: Int32)
    /// TUNSETIFF failed (EPERM: creating interfaces needs CAP_NET_ADMIN; EBUSY: in use; EINVAL:
    /// the interface exists and is not a TAP).
    case attach(name: String, errno: Int32)
}

/// A Linux TAP interface as a device: what it transmits the kernel receives on the interface
/// `interfaceName`, and what the kernel sends there it receives. Frames are Ethernet frames as
/// on the wire (IFF_NO_PI), the file is non-blocking, one queue each way.
///
/// Opening creates the interface if it does not exist (it then disappears with the device);
/// bringing it up, addressing it or moving it into a network namespace is the caller's job
/// (the open file keeps working after the interface moves to another namespace).
///
/// RX reads one frame per read(2) (TAP offers nothing better) into buffers the device keeps
/// ready from the queue's allocator, until the kernel has no more or the burst is full; a frame
/// longer than the buffer's room is counted as an RX error and dropped. TX writes one frame per
/// write(2) (chains gathered into a scratch buffer allocated once) and frees what it sent; a
/// frame the kernel rejects (too short, interface gone) is counted as a TX error and freed,
/// not offered back. Event mode: `rxEventSource` is the TAP file itself, readable while frames
/// wait (level-triggered, so arming is a no-op). No allocation per packet.
public struct TapDevice: NetDevice, ~Copyable {
    /// Buffers taken from the allocator ahead of time, so an RX poll that finds nothing costs
    /// one read(2) and no allocator round trip.
    @usableFromInline struct RefillStash {
        let buffers: UnsafeMutablePointer<NetBuf>
        /// Buffers ready, on top of `buffers`.
        var count = 0
        /// How many one refill asks the allocator for.
        var refill = 0
        static var capacity: Int { 64 }
    }

    @usableFromInline final class Storage {
        let fd: Int32
        let name: String
        let stash: UnsafeMutablePointer<RefillStash>
        let allocator: UnsafeMutablePointer<RxBufferAllocator?>
        /// Where RX spills a frame too long for its buffer (to tell it from one that fits).
        let rxOverflow: UnsafeMutableRawBufferPointer
        /// Where TX gathers a chain into one frame.
        let txScratch: UnsafeMutableRawBufferPointer
        let rxStats = QueueStatsTable(count: 1)
        let txStats = QueueStatsTable(count: 1)

        init(fd: Int32, name: String) {
            self.fd = fd
            self.name = name
            stash = .allocate(capacity: 1)
            stash.initialize(to: RefillStash(buffers: .allocate(capacity: RefillStash.capacity)))
            allocator = .allocate(capacity: 1)
            allocator.initialize(to: nil)
            rxOverflow = .allocate(byteCount: 1 << 16, alignment: 64)
            txScratch = .allocate(byteCount: 1 << 16, alignment: 64)
        }

        /// Gives the refill buffers back to their pool.
        func drainStash() {
            let n = stash.pointee.count
            stash.pointee.count = 0
            NetBuf.releaseBulk(UnsafeMutableBufferPointer(start: stash.pointee.buffers, count: n))
        }

        deinit {
            drainStash()
            close(fd)
            stash.pointee.buffers.deallocate()
            stash.deallocate()
            allocator.deallocate()
            rxOverflow.deallocate()
            txScratch.deallocate()
            rxStats.deallocate()
            txStats.deallocate()
        }
    }

    @usableFromInline let storage: Storage
    @usableFromInline let fd: Int32
    @usableFromInline let stash: UnsafeMutablePointer<RefillStash>
    @usableFromInline let allocator: UnsafeMutablePointer<RxBufferAllocator?>
    @usableFromInline let rxOverflow: UnsafeMutableRawBufferPointer
    @usableFromInline let txScratch: UnsafeMutableRawBufferPointer
    @usableFromInline let rxStats: QueueStatsTable
    @usableFromInline let txStats: QueueStatsTable
    @usableFromInline var lifecycle = DeviceLifecycle()
    public var state: DeviceState { lifecycle.state }
    public let info: DeviceInfo

    /// Opens the TAP interface `name` (created if absent; a template such as "uktap%d" lets the
    /// kernel pick a free number). Creating interfaces needs CAP_NET_ADMIN. `mtu` is what the
    /// device reports; the interface's own MTU is set with `ip link`.
    public init(name: String, mtu: Int = 1500) throws(TapDeviceError) {
        let limit = Int(uk_ifnamsiz()) - 1
        guard !name.isEmpty, name.utf8.count <= limit,
              !name.utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 }) else {
            throw .invalidName(name)
        }
        let fd = Glibc.open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .open(errno: errno) }
        var actual = [CChar](repeating: 0, count: limit + 1)
        let failure = uk_tap_attach(fd, name, &actual)
        guard failure == 0 else {
            close(fd)
            throw .attach(name: name, errno: failure)
        }
        storage = Storage(fd: fd, name: actual.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        self.fd = fd
        stash = storage.stash
        allocator = storage.allocator
        rxOverflow = storage.rxOverflow
        txScratch = storage.txScratch
        rxStats = storage.rxStats
        txStats = storage.txStats
        let limits = DescriptorLimits(min: 1, max: 4096)
        info = DeviceInfo(maxRxQueues: 1, maxTxQueues: 1, mtu: mtu, features: [.rxEvents, .scatterGather],
                          rxDescriptors: limits, txDescriptors: limits)
    }

    /// The interface's name as the kernel knows it.
    public var interfaceName: String { storage.name }
    /// The TAP file: readable while frames wait.
    public var fileDescriptor: Int32 { fd }

    public mutating func configure(_ config: DeviceConfig) throws(NetDeviceError) {
        try lifecycle.configure(config, info: info)
    }

    public mutating func setupRxQueue(_ queue: Int, _ config: RxQueueConfig) throws(NetDeviceError) {
        guard config.allocator != nil else { throw .missingAllocator }
        try lifecycle.setupRx(queue, descriptors: config.descriptors, info: info)
        storage.drainStash()   // buffers from an earlier setup's allocator go home first
        allocator.pointee = config.allocator
        stash.pointee.refill = min(config.descriptors, RefillStash.capacity)
    }

    public mutating func setupTxQueue(_ queue: Int, _ config: TxQueueConfig) throws(NetDeviceError) {
        try lifecycle.setupTx(queue, descriptors: config.descriptors, info: info)
    }

    public mutating func start() throws(NetDeviceError) { try lifecycle.start() }

    /// Stops the data path and gives the buffers kept for RX back to their pool.
    public mutating func stop() {
        lifecycle.stop()
        storage.drainStash()
    }

    public mutating func rxBurst(queue: Int, into packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard lifecycle.canReceive(on: queue), let out = packets.baseAddress,
              let allocator = allocator.pointee else { return .refused }
        var n = 0
        var bytes = 0
        var status: BurstStatus = .success
        while n < packets.count {
            if stash.pointee.count == 0 {
                let got = allocator.allocate(into: UnsafeMutableBufferPointer(start: stash.pointee.buffers, count: stash.pointee.refill))
                stash.pointee.count = got
                guard got > 0 else {
                    status.insert(.underrun)
                    break
                }
            }
            let buf = stash.pointee.buffers[stash.pointee.count &- 1]
            let room = buf.capacity &- buf.headroom
            let r = uk_read_frame(fd, buf.data, room, rxOverflow.baseAddress, rxOverflow.count)
            if r < 0 {
                if r == -Int(EINTR) { continue }
                // EAGAIN: nothing more waits. Anything else (the interface went away): an error.
                if r != -Int(EAGAIN) { rxStats.recordErrors(queue, 1) }
                break
            }
            guard r <= room else {
                rxStats.recordErrors(queue, 1)   // longer than the buffer: dropped, buffer kept
                continue
            }
            buf.unsafeSetLength(r)   // a single buffer from the allocator; checked above
            stash.pointee.count &-= 1
            out[n] = buf
            n &+= 1
            bytes &+= r
        }
        // A full burst may have left frames behind.
        if n == packets.count && n > 0 { status.insert(.more) }
        rxStats.record(queue, packets: n, bytes: bytes)
        return BurstResult(count: n, status: status)
    }

    public mutating func txBurst(queue: Int, from packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard lifecycle.canTransmit(on: queue), let src = packets.baseAddress else { return .refused }
        var n = 0
        var sent = 0
        var bytes = 0
        var full = false
        while n < packets.count {
            let p = src[n]
            let length = p.packetLength
            let r: Int
            if p.next == nil {
                r = uk_write_frame(fd, p.data, p.length)
            } else if length <= txScratch.count {
                r = uk_write_frame(fd, txScratch.baseAddress, p.copyOut(into: txScratch))
            } else {
                r = -Int(EMSGSIZE)
            }
            if r == -Int(EINTR) { continue }
            if r == -Int(EAGAIN) {
                full = true   // the caller keeps this one and the rest
                break
            }
            if r >= 0 {
                sent &+= 1
                bytes &+= length
            }
            n &+= 1
        }
        txStats.record(queue, packets: sent, bytes: bytes)
        if n > sent { txStats.recordErrors(queue, n &- sent) }
        NetBuf.releaseBulk(UnsafeMutableBufferPointer(start: src, count: n))
        return BurstResult(count: n, status: full ? .success : [.success, .more])
    }

    public func rxQueueStats(_ queue: Int) -> QueueStats { rxStats[queue] }
    public func txQueueStats(_ queue: Int) -> QueueStats { txStats[queue] }

    /// The TAP file is level-triggered: readable whenever frames wait. Nothing to arm.
    public mutating func setRxEvents(queue: Int, enabled: Bool) throws(NetDeviceError) {
        guard lifecycle.isRxQueue(queue) else { throw .invalidQueue(queue) }
    }

    public func rxEventSource(queue: Int) -> RxEventSource {
        lifecycle.isRxQueue(queue) ? .fileDescriptor(fd) : .none
    }
}
