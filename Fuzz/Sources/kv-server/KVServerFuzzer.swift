import FuzzSupport
import HostStack
import KVStore
import UKNetdev

// The KV server's whole receive path: a `KVServer` as new (made once, `reset` for each run) polls
// a device that delivers the fuzz input as frames (the lone-GET and echo fast paths, the host
// stack, reassembly, memcached over UDP, the reply writer), and every frame it sends is checked
// (within its buffer, our MAC and address, checksums that verify) and released. Once the input is
// used up and the server has flushed, every buffer must be back in the pool, and again after the
// device has stopped.
//
// With bit 6 of the configuration set, the input runs twice: as given, then with every frame a
// read-only clone, which no fast path takes (the lone GET, the echo in place, replies written
// over their request): the frames sent must be the same, byte for byte, as the fast paths
// promise, unless either run ran short of buffers (then they may differ).
//
// Input: one configuration byte, then frame records (`FrameRecord`: [control][length: 2 bytes,
// big-endian][frame]). Configuration: bit 0 echo mode instead of memcached; bit 1 the device
// takes one frame per TX burst (partial flushes); bits 2-4 frames per RX burst (1 << n); bit 5
// memcached's `shutdown` command enabled; bit 6 the two runs compared.

let mac = MACAddress(0x02, 0, 0, 0, 0, 0x02)
let ip = IPv4Address(192, 0, 2, 2)
let pool = try! NetBufPool(count: 512, roomSize: 2048, headroom: 128)

/// A device whose RX is the fuzz input, one frame per record, and whose TX checks and frees.
struct FuzzDevice: NetDevice, ~Copyable {
    var input: FuzzInput
    let pool: NetBufPool
    let framesPerBurst: Int
    /// Frames TX takes per burst (Int.max: all).
    let takenPerBurst: Int
    /// Every frame delivered as a read-only clone.
    let clones: Bool
    /// The frames sent, when recording; frames lost for want of buffers.
    var sent: [[UInt8]]? = nil
    var lost = 0
    var clock: UInt32 = 1000
    var lifecycle = DeviceLifecycle()
    var state: DeviceState { lifecycle.state }
    let info = DeviceInfo(maxRxQueues: 1, maxTxQueues: 1, mtu: 9000, features: [.scatterGather],
                          rxDescriptors: DescriptorLimits(min: 1, max: 4096), txDescriptors: DescriptorLimits(min: 1, max: 4096))

    init(input: FuzzInput, pool: NetBufPool, framesPerBurst: Int, takenPerBurst: Int, clones: Bool, recording: Bool) {
        self.input = input
        self.pool = pool
        self.framesPerBurst = framesPerBurst
        self.takenPerBurst = takenPerBurst
        self.clones = clones
        if recording { sent = [] }
    }

    mutating func configure(_ config: DeviceConfig) throws(NetDeviceError) { try lifecycle.configure(config, info: info) }
    mutating func setupRxQueue(_ queue: Int, _ config: RxQueueConfig) throws(NetDeviceError) {
        try lifecycle.setupRx(queue, descriptors: config.descriptors, info: info)
    }
    mutating func setupTxQueue(_ queue: Int, _ config: TxQueueConfig) throws(NetDeviceError) {
        try lifecycle.setupTx(queue, descriptors: config.descriptors, info: info)
    }
    mutating func start() throws(NetDeviceError) { try lifecycle.start() }
    mutating func stop() { lifecycle.stop() }

    mutating func rxBurst(queue: Int, into packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard lifecycle.canReceive(on: queue), let out = packets.baseAddress else { return .refused }
        var n = 0
        while n < min(packets.count, framesPerBurst) && !input.isAtEnd {
            var record = FrameRecord.read(&input)
            if record.advancesClock { clock &+= 16 }
            if clones { record = FrameRecord(control: record.control | 0x08, bytes: record.bytes) }
            // A frame the pool cannot hold now is lost, as on a wire.
            guard let buf = record.buffer(from: pool) else {
                lost += 1
                continue
            }
            out[n] = buf
            n += 1
        }
        return BurstResult(count: n, status: input.isAtEnd ? [.success, .endOfInput] : [.success, .more])
    }

    mutating func txBurst(queue: Int, from packets: UnsafeMutableBufferPointer<NetBuf>) -> BurstResult {
        guard lifecycle.canTransmit(on: queue) else { return .refused }
        let taken = min(packets.count, takenPerBurst)
        for i in 0..<taken {
            checkSentFrame(packets[i], mac: mac, ip: ip, "kv-server: a sent frame")
            sent?.append(Array(UnsafeRawBufferPointer(packets[i].unsafeBytes)))
            packets[i].release()
        }
        return BurstResult(count: taken, status: .success)
    }

    func rxQueueStats(_ queue: Int) -> QueueStats { QueueStats() }
    func txQueueStats(_ queue: Int) -> QueueStats { QueueStats() }
}

/// One server per configuration the input can ask for (echo mode, `shutdown` enabled), made once
/// and `reset` at the start of every run: making one per run cost a fresh store arena each, whose
/// page faults were a fifth of the target's time. `reset` leaves the state `init` left.
let servers: UnsafeMutablePointer<KVServer> = .allocate(capacity: 4)
nonisolated(unsafe) var serverMade = [false, false, false, false]

func server(for settings: UInt8, now: UInt32) -> UnsafeMutablePointer<KVServer> {
    let echo = settings & 0x01 != 0, shutdown = settings & 0x20 != 0
    let k = (echo ? 1 : 0) + (shutdown ? 2 : 0)
    if !serverMade[k] {
        var config = KVServerConfig(mac: mac, ip: ip, prefixLength: 24, port: 11211, memoryBytes: 1 << 20,
                                    reassemblySlots: 4, reassemblyTimeout: 30, mode: echo ? .echo : .memcached)
        config.shutdownCommand = shutdown
        do { (servers + k).initialize(to: try KVServer(pool: pool, config: config, now: now)) } catch {
            fatalError("kv-server: no server: \(error)")
        }
        serverMade[k] = true
    }
    servers[k].reset()
    return servers + k
}

/// One run of the input through a server as new; the frames sent (when recording), and whether
/// the run had every buffer it wanted.
func run(_ input: FuzzInput, settings: UInt8, clones: Bool, recording: Bool) -> (sent: [[UInt8]]?, complete: Bool) {
    var device = FuzzDevice(input: input, pool: pool, framesPerBurst: 1 << Int((settings >> 2) & 0x07),
                            takenPerBurst: settings & 0x02 != 0 ? 1 : Int.max, clones: clones, recording: recording)
    do {
        try device.bringUp(rx: RxQueueConfig(descriptors: 256), tx: TxQueueConfig(descriptors: 256))
    } catch { fatalError("kv-server: the fuzz device did not start: \(error)") }
    let server = server(for: settings, now: device.clock)
    // Every poll takes at least one record or sends at least one frame, so this ends.
    while !(server.pointee.inputEnded && server.pointee.pendingTransmit == 0) {
        let now = device.clock
        server.pointee.poll(&device, now: now)
    }
    requireFullPool(pool, "kv-server: after the input, the server flushed")
    let stats = server.pointee.stats
    let complete = device.lost == 0 && stats[.noBuffer] == 0 && stats[.noBufferForReply] == 0 && stats[.txQueueFull] == 0
        && stats[.echoTooLarge] == 0
    device.stop()
    requireFullPool(pool, "kv-server: after the run")
    return (device.sent, complete)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let settings = input.byte()
    let compared = settings & 0x40 != 0
    let given = run(input, settings: settings, clones: false, recording: compared)
    guard compared else { return 0 }
    let cloned = run(input, settings: settings, clones: true, recording: true)
    guard given.complete && cloned.complete, let a = given.sent, let b = cloned.sent else { return 0 }
    for i in 0..<max(a.count, b.count) where i >= a.count || i >= b.count || a[i] != b[i] {
        fatalError("kv-server: sent frame \(i) differs between the fast paths (\(a.count) frames) and the general path "
                   + "(\(b.count)): \(i < a.count ? a[i].prefix(64) : []) vs \(i < b.count ? b[i].prefix(64) : [])")
    }
    return 0
}
