import CDPDK
import Glibc
import UKNetdev

/// Why DPDK could not give us a device; each says what to change.
public enum DPDKError: Error, Equatable, CustomStringConvertible {
    /// rte_eal_init failed: `reason` is DPDK's (rte_errno), with the arguments it was given.
    case ealInit(arguments: [String], reason: String)
    /// EAL runs once per process: a second device asked for other EAL arguments.
    case ealAlreadyInitialized(with: [String], asked: [String])
    /// No port at this index (`--port=N`), with what is there.
    case noPort(index: Int, available: [Int], arguments: [String])
    /// The NetBuf header layout the C shim writes differs from UKNetdev's: a build mismatch.
    case layoutMismatch
    /// A queue or port call failed: which, DPDK's code and reason.
    case portCall(String, port: Int, code: Int32, reason: String)
    /// A pool for DPDK could not be made (EAL's memory: `-m`).
    case poolMemory(bytes: Int)
    case badOption(String)

    public var description: String {
        switch self {
        case .ealInit(let args, let reason):
            return "DPDK's EAL did not start (\(reason)) with the arguments '\(args.joined(separator: " "))'"
                + (reason.contains("not found") || reason.contains("No such")
                   ? " (a --vdev names a driver that is not installed? Debian ships the PMDs in librte-net-*)" : "")
        case .ealAlreadyInitialized(let with, let asked):
            return "DPDK's EAL already runs with '\(with.joined(separator: " "))' in this process; '\(asked.joined(separator: " "))' cannot start a second one"
        case .noPort(let index, let available, let args):
            return available.isEmpty
                ? "DPDK found no port: give one with --vdev (e.g. --vdev=net_null0) or a PCI device (EAL arguments: '\(args.joined(separator: " "))')"
                : "DPDK has no port \(index) (ports: \(available.map { "--port=\($0)" }.joined(separator: ", ")))"
        case .layoutMismatch:
            return "the DPDK shim's NetBuf layout differs from UKNetdev's (rebuild)"
        case .portCall(let what, let port, let code, let reason):
            return "DPDK port \(port): \(what) failed: \(reason) (\(code))"
        case .poolMemory(let bytes):
            return "DPDK could not give \(bytes >> 20) MiB for the packet pool: raise EAL's -m (e.g. -m 512)"
        case .badOption(let text):
            return text
        }
    }
}

/// The process's DPDK environment: EAL (once per process), and the pools whose buffers DPDK
/// can carry as mbufs.
public enum DPDK {
    nonisolated(unsafe) static var ealArguments: [String]?
    /// Pools made by `makePool` (their states): a NetBuf from one of these is an mbuf already.
    @usableFromInline nonisolated(unsafe) static var mbufPools: [UnsafeMutablePointer<NetBufPoolState>] = []

    /// Starts EAL with `arguments` (a program name is put in front); again with the same
    /// arguments it does nothing. EAL pins the calling thread to its main lcore's CPU (`-l`), what
    /// a polling program wants; `pinCallingThread: false` puts the thread's CPUs back (a library
    /// user, a test runner whose threads run other work).
    public static func initialize(arguments: [String], pinCallingThread: Bool = true) throws(DPDKError) {
        if let running = ealArguments {
            guard running == arguments else { throw .ealAlreadyInitialized(with: running, asked: arguments) }
            return
        }
        var layout = [UInt16](repeating: 0, count: 14)
        uk_dpdk_netbuf_layout(&layout)
        guard layout == NetBufLayout.offsets else { throw .layoutMismatch }
        let argv = ["uknet"] + arguments
        let rc = withCStrings(argv) { uk_dpdk_eal_init(Int32(argv.count), $0, pinCallingThread ? 0 : 1) }
        guard rc >= 0 else { throw .ealInit(arguments: arguments, reason: String(cString: uk_dpdk_strerror(uk_dpdk_errno()))) }
        ealArguments = arguments
    }

    /// Adds a virtual device to the running EAL (what `--vdev` would have: "net_null2",
    /// "net_virtio_user1,path=SOCK") and returns its port index.
    public static func attach(device: String) throws(DPDKError) -> Int {
        guard ealArguments != nil else { throw .badOption("DPDK.attach(device:) needs DPDK.initialize first") }
        var port: UInt16 = 0
        let rc = uk_dpdk_attach(device, &port)
        guard rc >= 0 else { throw .portCall("attaching '\(device)'", port: -1, code: rc, reason: String(cString: uk_dpdk_strerror(-rc))) }
        return Int(port)
    }

    /// The ports EAL found (from --vdev, or PCI devices bound to a DPDK driver).
    public static var portCount: Int { Int(uk_dpdk_port_count()) }

    /// The ids of the attached ports. Not always 0..<portCount: closing a virtual device frees its
    /// id, and hot-plugging takes the lowest free one.
    public static var portIDs: [Int] {
        var ids = [UInt16](repeating: 0, count: 64)
        let n = Int(uk_dpdk_port_ids(&ids, Int32(ids.count)))
        if n > ids.count {
            ids = [UInt16](repeating: 0, count: n)
            _ = uk_dpdk_port_ids(&ids, Int32(n))
        }
        return ids.prefix(n).map { Int($0) }
    }

    /// A pool whose buffers DPDK ports carry without copying: its slab in DPDK's memory (so every
    /// PMD, a vhost-user backend included, reaches it), each header with room for an mbuf in
    /// front (256-byte alignment leaves 192 bytes). Needs `initialize` first.
    public static func makePool(count: Int, roomSize: Int = 2048, headroom: Int = 128,
                                threading: NetBufPool.Threading = .singleThread) throws -> NetBufPool {
        guard roomSize <= Int(UInt16.max) else { throw DPDKError.badOption("DPDK buffers hold at most 65535 bytes (room \(roomSize))") }
        let alignment = 256
        let bytes = NetBufPool.regionSize(count: count, roomSize: roomSize, alignment: alignment)
        guard let slab = uk_dpdk_zmalloc(bytes, alignment) else { throw DPDKError.poolMemory(bytes: bytes) }
        let device = deviceBase(of: slab)
        let pool = try NetBufPool(count: count, region: UnsafeMutableRawBufferPointer(start: slab, count: bytes), deviceAddress: device,
                                  roomSize: roomSize, headroom: headroom, alignment: alignment, threading: threading)
        mbufPools.append(pool.state)
        return pool
    }

    /// Destroys a pool `makePool` made (refused while buffers are out) and frees its slab.
    public static func destroyPool(_ pool: NetBufPool) throws {
        let slab = pool.state.pointee.slab
        try pool.destroy()
        mbufPools.removeAll { $0 == pool.state }
        uk_dpdk_free(slab)
    }

    /// The IOVA DPDK gives `address` (the virtual address in IOVA-as-VA mode).
    static func deviceBase(of address: UnsafeMutableRawPointer) -> UInt64 {
        if uk_dpdk_iova_is_va() != 0 { return UInt64(UInt(bitPattern: address)) }
        let iova = uk_dpdk_virt2iova(address)
        return iova == UInt64.max ? UInt64(UInt(bitPattern: address)) : iova
    }

    @inlinable @inline(__always)
    static func isMbufPool(_ state: UnsafeMutablePointer<NetBufPoolState>) -> Bool {
        for p in mbufPools where p == state { return true }
        return false
    }

    static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let copies = strings.map { strdup($0) }
        defer { for c in copies { free(c) } }
        let pointers = copies.map { UnsafePointer<CChar>($0) }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

func getpidValue() -> Int32 { getpid() }
