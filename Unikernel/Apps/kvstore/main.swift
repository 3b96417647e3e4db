// The KV store as a unikernel: the same engine (Sources/Apps/KVStore), host stack and virtio
// driver as the hosted `kvstore`, over the legacy virtio-pci transport, one polling loop.
//
// Command line (QEMU -append):
//   netdev.ip=A.B.C.D[/prefix]   the store's address (required; Unikraft's parameter)
//   netdev.mac=XX:XX:XX:XX:XX:XX  override the NIC's MAC
//   kv.port=N                    UDP port (default 11211)
//   kv.memory=MB                 item memory (default 16)
//   kv.buffers=N                 packet buffers (default 512: the RX ring's 256 and room for replies)
//   kv.packets=N                 stop after N frames received (default: run until kv.seconds)
//   kv.seconds=S                 stop after S seconds (default: none)
//   kv.shutdown=1                memcached's -A: a `shutdown` request (over UDP) stops the store
//   kv.idle=US                   after 1,000 empty polls, give the CPU back for US microseconds (a
//                                local APIC timer wakes it), as the hosted store naps; 0: never (default)
//   kv.allow=A.B.C.D/N           a trusted prefix besides the store's own (repeatable); with one,
//                                writes from other sources are refused (the amplification guard)
//   kv.max_reply_ratio=N         replies to an untrusted source at most N times its request (10; 0: no limit)
//   kv.source_budget=BYTES       reply bytes per second to one untrusted source (1048576; 0: no budget)
// Returns 0 after a clean shutdown, 2 for a bad command line, 3 when no NIC is found or it fails.
import CUKHardware
import HostStack
import KernelCommandLine
import KVStore
import UKNetdev
import UKPlatform
import VirtioNet
import VirtioNetGuest

func seconds(_ ns: UInt64) -> String {
    let us = ns / 1000
    let frac = us % 1_000_000
    var f = String(frac)
    while f.utf8.count < 6 { f = "0" + f }
    return String(us / 1_000_000) + "." + f
}

/// Port and MMIO accesses so far: each a VM exit under KVM.
func exits() -> UInt64 { uk_pio_count &+ uk_mmio_count }

/// `quiet` on the command line: no milestones (each console byte is a VM exit), one line when ready.
nonisolated(unsafe) var quiet = false
nonisolated(unsafe) var idleMicroseconds = 0
/// Where the boot time went, in microseconds since the first instruction (said in the ready line).
nonisolated(unsafe) var phases: [(StaticString, UInt64)] = []
func phase(_ name: StaticString) { phases.append((name, (uk_monotonic_ns() &- uk_boot_ns()) / 1000)) }

func milestone(_ what: String) {
    if quiet { return }
    print("[" + seconds(uk_monotonic_ns() &- uk_boot_ns()) + "] " + what)
}

@_cdecl("uknet_kernel_main")
public func kernelMain(_ cmdline: UnsafePointer<CChar>?) -> Int32 {
    let line = KernelCommandLine(cString: cmdline.map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self) })
    quiet = line.contains("quiet")
    phase("main")
    milestone("kvstore: main")
    let config: KVServerConfig
    let limits: (packets: Int?, seconds: Int?)
    let macOverride: MACAddress?
    let buffers: Int
    do throws(KernelCommandLineError) {
        guard let ip = try line.ipv4("netdev.ip").get() else {
            throw KernelCommandLineError.missing(key: "netdev.ip", example: "netdev.ip=192.0.2.2/24")
        }
        macOverride = try line.mac("netdev.mac").get()
        let port = try line.integer("kv.port", in: 1...65535).get() ?? 11211
        let memory = try line.integer("kv.memory", in: 1...65536).get() ?? 16
        limits = (try line.integer("kv.packets", in: 1...Int(Int32.max)).get(), try line.integer("kv.seconds", in: 1...86400).get())
        buffers = try line.integer("kv.buffers", in: 320...65536).get() ?? 512
        var c = KVServerConfig(mac: MACAddress(0, 0, 0, 0, 0, 0), ip: ip.address, prefixLength: ip.prefix, port: UInt16(port),
                               memoryBytes: memory << 20)
        c.shutdownCommand = try line.integer("kv.shutdown", in: 0...1).get() == 1
        idleMicroseconds = try line.integer("kv.idle", in: 0...100_000).get() ?? 0
        c.sources.allow = try line.prefixes("kv.allow").get()
        c.sources.maxReplyRatio = try line.integer("kv.max_reply_ratio", in: 0...1_000_000).get() ?? c.sources.maxReplyRatio
        c.sources.budgetBytesPerSecond = try line.integer("kv.source_budget", in: 0...Int(UInt32.max)).get() ?? c.sources.budgetBytesPerSecond
        config = c
    } catch {
        print("kvstore: " + error.description)
        return 2
    }

    let exitsBefore = exits()
    phase("config")
    var store = StoreOnNIC(config: config, macOverride: macOverride, limits: limits, buffers: buffers, exitsBefore: exitsBefore)
    var problem = ""
    guard let status = GuestNIC.open(mmioCommandLineValues: line.values("virtio_mmio.device"), acpiRSDP: uk_acpi_rsdp(),
                                          mapMMIO: { uk_map_mmio($0, $1) == 0 }, visitor: &store, problem: &problem) else {
        print("kvstore: " + problem)
        return 3
    }
    return status
}

struct StoreOnNIC: GuestNICVisitor {
    let config: KVServerConfig
    let macOverride: MACAddress?
    let limits: (packets: Int?, seconds: Int?)
    let buffers: Int
    let exitsBefore: UInt64
    mutating func visit<T: VirtioTransport & ~Copyable>(_ transport: consuming T, options: VirtioNetOptions, found: String) -> Int32 {
        milestone(found + " (" + String(exits() - exitsBefore) + " exits)")
        return serve(transport, options: options, config: config, macOverride: macOverride, limits: limits, buffers: buffers,
                     exitsBefore: exitsBefore)
    }
}

/// The store on the NIC behind `transport`, until the packet or time limit.
func serve<T: VirtioTransport & ~Copyable>(_ transport: consuming T, options: VirtioNetOptions, config: KVServerConfig,
                                           macOverride: MACAddress?, limits: (packets: Int?, seconds: Int?),
                                           buffers: Int, exitsBefore: UInt64) -> Int32 {
    phase("nic")
    var device: VirtioNetDevice<T>
    do {
        device = try VirtioNetDevice(transport: transport, options: options)
    } catch {
        print("kvstore: virtio negotiation failed: " + error.description)
        return 3
    }
    if !quiet { print(device.negotiationSummary) }
    var serverConfig = config
    guard let mac = macOverride ?? device.info.mac else {
        print("kvstore: the NIC has no MAC address: give netdev.mac=")
        return 2
    }
    serverConfig.mac = mac

    phase("negotiated")
    guard let pool = try? NetBufPool(count: buffers, roomSize: 2048, headroom: 128) else {
        print("kvstore: no memory for the packet pool (raise -m)")
        return 3
    }
    phase("pool")
    let size = min(device.info.rxDescriptors.max, 256)   // the pool keeps buffers for the app beyond the ring
    do {
        try device.bringUp(rx: RxQueueConfig(descriptors: size, allocator: pool.rxAllocator), tx: TxQueueConfig(descriptors: size))
    } catch {
        print("kvstore: device start failed")
        return 3
    }
    phase("device up")
    let startNs = uk_monotonic_ns()
    let server: KVServer
    do {
        server = try KVServer(pool: pool, config: serverConfig, now: UInt32(truncatingIfNeeded: startNs / 1_000_000_000))
    } catch {
        print("kvstore: no memory for the store (raise -m or lower kv.memory)")
        return 3
    }
    var store = KVServerOnDevice(server: server, device: device)
    phase("store")
    let readyNs = uk_monotonic_ns() &- uk_boot_ns()
    let readyExits = exits()
    // Always said (the tests and the demo wait for it), with the guest time taken before printing.
    print("[" + seconds(readyNs) + "] kvstore: ready on \(serverConfig.ip.description):\(serverConfig.port) mac \(mac.description) "
          + "(guest time \(readyNs / 1000) us; \(readyExits - exitsBefore) port/MMIO exits since main, \(readyExits) since boot)")
    var split = "boot phases (us since the first instruction):"
    for (name, us) in phases {
        split += " " + String(decoding: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), as: UTF8.self)
            + " " + String(us)
    }
    print(split)

    let deadline = limits.seconds.map { startNs + UInt64($0) * 1_000_000_000 } ?? UInt64.max
    let packetLimit = UInt64(limits.packets ?? Int(Int32.max))
    var rounds = 0
    var now = startNs
    var empty = 0
    // The hosted store's meter (BusyTime): one TSC read per poll, a poll's end the next one's start.
    var busy = BusyTime()
    var pollStart = uk_tsc()
    while store.server.stats.framesReceived < packetLimit && now < deadline && !store.server.engine.shutdownRequested {
        let n = store.poll(now: UInt32(truncatingIfNeeded: now / 1_000_000_000))
        var pollEnd = uk_tsc()
        if n != 0 {
            busy.add(poll: uk_tsc_to_ns(pollEnd &- pollStart))
            empty = 0
        } else if idleMicroseconds > 0 {
            empty &+= 1
            if empty >= 1000 {
                _ = uk_idle(UInt64(idleMicroseconds) * 1000)
                empty = 0
                pollEnd = uk_tsc()   // the nap is not the next poll's
            }
        }
        pollStart = pollEnd
        rounds &+= 1
        if rounds & 63 == 0 { now = uk_monotonic_ns() }
    }
    store.flush()
    let s = store.server.stats
    let why = store.server.engine.shutdownRequested ? "a shutdown request" : (now >= deadline ? "kv.seconds" : "kv.packets")
    milestone("kvstore: shutdown (" + why + ") after " + String(s.framesReceived) + " frames")
    print("stats: requests \(s.requests), replies \(s.replyDatagrams), lone GETs \(store.server.engine.stats.loneGets), ARP replies \(s.host.arpReplies), ICMP echo replies \(s.host.icmpReplies), drops \(s.host.totalDrops &+ s.drops.total)")
    let e = store.server.engine.stats
    print("engine: commands \(e.allCommands), get hits \(e.hits), get misses \(e.misses), errors \(e.errors)")
    print("exits: \(exits() - exitsBefore) port/MMIO accesses since main")
    print(busy.reportLine(requests: s.requests))
    return 0
}
