#if canImport(Glibc)
import Glibc
#endif
import DPDKNet
import PcapNet
import UKNetdev
import UKNetdevLinux
import VirtioNet
import VirtioNetVhostUser

/// Generic code to run on whatever concrete device a spec names: `visit` is specialized for
/// each device type, so the device is never an existential (`any NetDevice`).
public protocol NetDeviceVisitor {
    associatedtype Result
    mutating func visit<D: NetDevice & ~Copyable>(_ device: inout D) throws -> Result
}

/// How `open` sets a device up.
public struct NetdevOpenOptions: Sendable {
    /// Ring slots asked for on each queue; fitted to the device's limits.
    public var descriptors: Int
    /// Timestamps of pcap files written (the device's TX file and the record file).
    public var timestamps: PcapTimestamps
    /// Faults injected between the device and the program (`--faults`): the device wrapped in a
    /// `FaultInjector` (inside the record wrapper, so a recording shows what the program saw).
    public var faults: FaultConfig?
    public init(descriptors: Int = 256, timestamps: PcapTimestamps = .realTime, faults: FaultConfig? = nil) {
        self.descriptors = descriptors
        self.timestamps = timestamps
        self.faults = faults
    }
}

/// Builds the device `spec` names, brings it up (one RX queue fed from `pool`, one TX queue),
/// runs `visitor` on it and stops it again (which flushes pcap files and gives buffers held for
/// RX back to `pool`). With `record`, the device is wrapped in a `PcapWriter` that records both
/// directions into that file. The device lives only inside this call: the visitor borrows it.
public func open<V: NetDeviceVisitor>(_ spec: NetdevSpec, pool: NetBufPool, record: String? = nil,
                                      options: NetdevOpenOptions = NetdevOpenOptions(),
                                      visitor: inout V) throws -> V.Result {
    switch spec {
    case .pcap(let rx, let tx):
        return try run(PcapDevice(rx: rx, tx: tx, timestamps: options.timestamps), pool: pool, record: record,
                       options: options, visitor: &visitor)
    case .tap(let name):
        return try run(TapDevice(name: name), pool: pool, record: record, options: options, visitor: &visitor)
    case .null:
        return try run(NullDevice(), pool: pool, record: record, options: options, visitor: &visitor)
    case .ring:
        return try run(RingDevice.loopback(), pool: pool, record: record, options: options, visitor: &visitor)
    case .vhostUser(let path, let queues, let reconnect):
        let memory = try PacketMemory.process()
        guard memory.shared.contains(pool.state.pointee.slab, length: pool.state.pointee.slabBytes) else {
            throw PacketMemoryError.poolOutsidePacketMemory
        }
        let device = try VhostUserNetDevice.vhostUser(path: path, queuePairs: queues, memory: memory, reconnectInterval: reconnect)
        printError("vhost-user \(path): \(device.negotiationSummary)")
        var watcher = BackendWatcher(inner: visitor, label: "vhost-user \(path)", lostMessage: "the vhost-user backend at \(path)")
        defer { visitor = watcher.inner }
        return try run(device, pool: pool, record: record, options: options, visitor: &watcher)
    case .dpdk(let eal, let port):
        try DPDK.initialize(arguments: eal)
        let device = try DPDKDevice(port: port, finiteInput: try finitePcapInput(eal))
        let offloads = [device.info.features.contains(.txChecksumOffload) ? "TX" : nil,
                        device.info.features.contains(.rxChecksumOffload) ? "RX" : nil].compactMap { $0 }
        printError("dpdk: port \(port) (\(device.driver))" + (device.info.mac.map { ", MAC \($0)" } ?? "")
                   + ", checksum offload: " + (offloads.isEmpty ? "none" : offloads.joined(separator: " and ")))
        var watcher = BackendWatcher(inner: visitor, label: "dpdk port \(port)", lostMessage: nil)
        defer { visitor = watcher.inner }
        return try run(device, pool: pool, record: record, options: options, visitor: &watcher)
    }
}

/// net_pcap's `rx_pcap=FILE` among EAL's --vdev arguments (without `infinite_rx=1`): the frames in
/// FILE, so the device can say when all of them came through (DPDK's PMD never says).
func finitePcapInput(_ eal: [String]) throws -> UInt64? {
    var total: UInt64? = nil
    for (i, word) in eal.enumerated() {
        var vdev = word
        if word == "--vdev", i + 1 < eal.count { vdev = eal[i + 1] } else if word.hasPrefix("--vdev=") { vdev = String(word.dropFirst(7)) } else { continue }
        guard vdev.hasPrefix("net_pcap") || vdev.hasPrefix("eth_pcap") else { continue }
        let args = vdev.split(separator: ",").map(String.init)
        if args.contains("infinite_rx=1") { return nil }
        for a in args where a.hasPrefix("rx_pcap=") {
            total = (total ?? 0) + (try pcapFrameCount(path: String(a.dropFirst(8))))
        }
    }
    return total
}

/// Runs the visitor on a vhost-user or DPDK device, then prints its extended counters (standard
/// error) and, for a backend that can go away (vhost-user), whether it went away during the run
/// (its traffic then stopped): the error goes to standard error and into `deviceLost`, the program
/// still prints what it measured, then exits with a failure status (`exitIfDeviceLost`).
struct BackendWatcher<Inner: NetDeviceVisitor>: NetDeviceVisitor {
    var inner: Inner
    /// How the counters line starts ("vhost-user SOCK", "dpdk port 0").
    let label: String
    /// For a device whose backend can go away (vhost-user): how to name it when it did.
    let lostMessage: String?
    mutating func visit<D: NetDevice & ~Copyable>(_ device: inout D) throws -> Inner.Result {
        let result = try inner.visit(&device)
        var counters: [String] = []
        device.extendedStats { name, queue, value in
            if value != 0 { counters.append("\(name)[\(queue)]=\(value)") }
        }
        printError(label + ": " + (counters.isEmpty ? "no extended counters above 0" : counters.joined(separator: " ")))
        if let lostMessage, !device.info.link.up {
            let s = device.stats
            let message = "error: \(lostMessage) went away mid-run "
                + "(\(s.rx.packets) packets received, \(s.tx.packets) sent before it did)"
            printError(message)
            deviceLost = message
        }
        return result
    }
}

/// Set when a device's backend went away during `open`'s run (the message printed then).
nonisolated(unsafe) public private(set) var deviceLost: String?

/// Ends the program with status 3 if a device's backend went away during the run: call it after
/// printing the results.
public func exitIfDeviceLost() {
    if deviceLost != nil { exit(3) }
}

/// One line to standard error (file descriptor 2), so the programs' standard output stays theirs.
func printError(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

extension NetdevSpec {
    /// A packet pool the device this spec names can carry without copying: in the process's
    /// shared packet memory for vhost-user (the backend maps it), on the heap otherwise.
    public func makePool(count: Int, roomSize: Int = 2048, headroom: Int = 128,
                         threading: NetBufPool.Threading = .singleThread) throws -> NetBufPool {
        if case .vhostUser = self {
            return try PacketMemory.process().makePool(count: count, roomSize: roomSize, headroom: headroom, threading: threading)
        }
        if case .dpdk(let eal, _) = self {
            try DPDK.initialize(arguments: eal)
            return try DPDK.makePool(count: count, roomSize: roomSize, headroom: headroom, threading: threading)
        }
        return try NetBufPool(count: count, roomSize: roomSize, headroom: headroom, threading: threading)
    }

    /// Destroys a pool `makePool` made (refused while buffers are out), giving its memory back.
    public func destroyPool(_ pool: NetBufPool) throws {
        if case .vhostUser = self {
            try PacketMemory.process().destroy(pool)
        } else if case .dpdk = self {
            try DPDK.destroyPool(pool)
        } else {
            try pool.destroy()
        }
    }
}

func run<D: NetDevice & ~Copyable, V: NetDeviceVisitor>(_ device: consuming D, pool: NetBufPool, record: String?,
                                                        options: NetdevOpenOptions, visitor: inout V) throws -> V.Result {
    if let faults = options.faults {
        var withoutFaults = options
        withoutFaults.faults = nil
        var reporter = FaultReporter(inner: visitor)
        defer { visitor = reporter.inner }
        return try run(FaultInjector(inner: device, config: faults), pool: pool, record: record, options: withoutFaults, visitor: &reporter)
    }
    guard let record else {
        var device = device
        return try bringUpAndVisit(&device, pool: pool, options: options, visitor: &visitor)
    }
    var recorded = try PcapWriter(inner: device, path: record, timestamps: options.timestamps)
    return try bringUpAndVisit(&recorded, pool: pool, options: options, visitor: &visitor)
}

/// Runs the visitor on a `FaultInjector`'s device, then says what the faults were (standard error).
struct FaultReporter<Inner: NetDeviceVisitor>: NetDeviceVisitor {
    var inner: Inner
    mutating func visit<D: NetDevice & ~Copyable>(_ device: inout D) throws -> Inner.Result {
        defer {
            if let line = faultLine(device) { printError(line) }
        }
        return try inner.visit(&device)
    }

    func faultLine<D: NetDevice & ~Copyable>(_ device: borrowing D) -> String? {
        var parts: [String] = []
        device.extendedStats { name, _, value in
            let n = "\(name)"
            if n.hasPrefix("faults_") { parts.append("\(n.dropFirst(7)) \(value)") }
        }
        return parts.isEmpty ? nil : "faults injected: " + parts.joined(separator: ", ")
    }
}

func bringUpAndVisit<D: NetDevice & ~Copyable, V: NetDeviceVisitor>(_ device: inout D, pool: NetBufPool, options: NetdevOpenOptions,
                                                        visitor: inout V) throws -> V.Result {
    let info = device.info
    try device.bringUp(rx: RxQueueConfig(descriptors: info.rxDescriptors.fitting(options.descriptors), allocator: pool.rxAllocator),
                       tx: TxQueueConfig(descriptors: info.txDescriptors.fitting(options.descriptors)))
    defer { device.stop() }
    return try visitor.visit(&device)
}

extension DescriptorLimits {
    /// The count nearest `wanted` that these limits accept (rounding down where they allow).
    func fitting(_ wanted: Int) -> Int {
        var n = Swift.max(min, Swift.min(max, wanted))
        n -= n % alignment
        if powerOfTwo {
            var p = 1
            while p * 2 <= n { p *= 2 }
            n = p
        }
        if n < min {  // rounding went below the minimum: take the smallest accepted count instead
            n = min
            while (try? check(n)) == nil && n < max { n += 1 }
        }
        return n
    }
}
