// The packet generator as a unikernel: the hosted `pktgen tx`'s engine (Sources/Apps/PktGen:
// frame template, TxGenerator from a prefilled pool) over the same virtio driver and transports
// as the KV store kernel. It sends, then reports and stops.
//
// Command line (QEMU -append):
//   pg.size=N            frame size with FCS, 64...1518 (default 64)
//   pg.count=N           frames to send (default 1,000,000)
//   pg.seconds=S         or stop after S seconds (whichever comes first; default 10)
//   pg.flows=N           source ports varied over N flows (default 1)
//   pg.src=A.B.C.D pg.dst=A.B.C.D   addresses (default 198.51.100.1 -> 198.51.100.2)
//   pg.dstmac=XX:...     destination MAC (default 02:00:00:00:00:20)
//   netdev.mac=XX:...    override the NIC's MAC (the source MAC)
// Returns 0 after sending, 2 for a bad command line, 3 without a usable NIC.
import HostStack
import KernelCommandLine
import PktGen
import UKNetdev
import UKPlatform
import VirtioNet
import VirtioNetGuest

struct Settings {
    var spec: FrameSpec
    var count: UInt64
    var seconds: Int
    var macOverride: MACAddress?
}

@_cdecl("uknet_kernel_main")
public func kernelMain(_ cmdline: UnsafePointer<CChar>?) -> Int32 {
    let line = KernelCommandLine(cString: cmdline.map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self) })
    var settings: Settings
    do throws(KernelCommandLineError) {
        let size = try line.integer("pg.size", in: 64...1518).get() ?? 64
        var spec = FrameSpec(frameLength: size - 4, flows: try line.integer("pg.flows", in: 1...65536).get() ?? 1)
        if let src = try line.ipv4("pg.src").get() { spec.source = src.address }
        if let dst = try line.ipv4("pg.dst").get() { spec.destination = dst.address }
        if let mac = try line.mac("pg.dstmac").get() { spec.destinationMAC = mac }
        settings = Settings(spec: spec, count: UInt64(try line.integer("pg.count", in: 1...Int(Int32.max)).get() ?? 1_000_000),
                            seconds: try line.integer("pg.seconds", in: 1...86400).get() ?? 10,
                            macOverride: try line.mac("netdev.mac").get())
    } catch {
        print("pktgen: " + error.description)
        return 2
    }
    var sender = Sender(settings: settings)
    var problem = ""
    guard let status = GuestNIC.open(mmioCommandLineValues: line.values("virtio_mmio.device"), acpiRSDP: uk_acpi_rsdp(),
                                          mapMMIO: { uk_map_mmio($0, $1) == 0 }, visitor: &sender, problem: &problem) else {
        print("pktgen: " + problem)
        return 3
    }
    return status
}

struct Sender: GuestNICVisitor {
    var settings: Settings

    mutating func visit<T: VirtioTransport & ~Copyable>(_ transport: consuming T, options: VirtioNetOptions, found: String) -> Int32 {
        print("pktgen: " + found)
        var device: VirtioNetDevice<T>
        do {
            device = try VirtioNetDevice(transport: transport, options: options)
        } catch {
            print("pktgen: virtio negotiation failed: " + error.description)
            return 3
        }
        if let mac = settings.macOverride ?? device.info.mac { settings.spec.sourceMAC = mac }
        guard let rxPool = try? NetBufPool(count: 320, roomSize: 2048, headroom: 128),
              let txPool = try? NetBufPool(count: 1024, roomSize: 2048, headroom: 128) else {
            print("pktgen: no memory for the packet pools (raise -m)")
            return 3
        }
        let size = min(device.info.rxDescriptors.max, 256)
        do {
            try device.bringUp(rx: RxQueueConfig(descriptors: size, allocator: rxPool.rxAllocator), tx: TxQueueConfig(descriptors: size))
        } catch {
            print("pktgen: device start failed")
            return 3
        }
        guard let template = try? FrameTemplate(settings.spec) else {
            print("pktgen: frame template refused")
            return 2
        }
        defer { template.deallocate() }
        guard var gen = try? TxGenerator(template: template, pool: txPool, burstSize: 32, prefilled: true) else {
            print("pktgen: generator set-up failed")
            return 3
        }
        let drain = UnsafeMutableBufferPointer<NetBuf>.allocate(capacity: 32)
        defer { drain.deallocate() }
        print("pktgen: sending \(settings.count) frames of \(settings.spec.frameLength + 4) bytes")
        let start = uk_monotonic_ns()
        let deadline = start + UInt64(settings.seconds) * 1_000_000_000
        var now = start
        var rounds = 0
        while gen.stats.packets < settings.count && now < deadline {
            _ = gen.send(on: &device, limit: Int(min(32, settings.count - gen.stats.packets)), now: now)
            rounds &+= 1
            if rounds & 63 == 0 {
                now = uk_monotonic_ns()
                let r = device.rxBurst(queue: 0, into: drain)   // whatever arrives is dropped
                NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: drain[0..<r.count]))
            }
        }
        let end = uk_monotonic_ns()
        let s = gen.stats
        let us = max((end - start) / 1000, 1)
        let kpps = s.packets * 1000 / us
        print("pktgen: sent \(s.packets) frames, \(s.bytes) bytes in \(us) us: \(kpps) kpps; device: tx packets \(device.txQueueStats(0).packets)")
        gen.deallocate()
        device.stop()
        return 0
    }
}
