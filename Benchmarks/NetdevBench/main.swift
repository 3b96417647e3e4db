// netdev-bench: the core's data path in a tight loop, to set beside DPDK's rte_ring/rte_mempool
// doing the same work (Benchmarks/DPDKPeer). Run through Benchmarks/run-netdev-bench.sh, which
// also counts instructions and retain/release calls with callgrind.
//
//   netdev-bench MODE PACKETS
//   single-ring   one core: loopback ring, rx_burst(32) -> touch one byte -> tx_burst
//   single-null   one core: null device, rx_burst(32) (pool alloc + 60-byte template copy)
//                 -> touch -> tx_burst (bulk free)
//   two-core      forwarder on CPU 1 (rx, touch, tx) and reflector on CPU 0 joined by a ring
//                 pair, 512 packets circulating
//   two-core-pool generator on CPU 0 (bulk alloc, tx) -> sink on CPU 1 (rx, touch, bulk free
//                 into the same thread-safe pool)
//   single-virtio one core: VirtioNetDevice over an in-process emulated virtio device that loops
//                 TX back to RX (copying each frame, as a backend would): rx_burst(32) -> touch ->
//                 tx_burst, the driver's split-ring RX refill and TX reclaim included
//   single-dpdk   one core: DPDKDevice over DPDK's net_null (EAL without hugepages): rx_burst(32)
//                 (net_null fills mbufs that are our NetBufs, from the facade over our pool) ->
//                 touch -> tx_burst (net_null frees them: back through the facade)
//   class-per-packet  single-ring, but each packet is wrapped in a class instance as ixy.swift
//                 did: the negative control that shows what the checks catch and what it costs
//
// Prints: `swift MODE packets=N seconds=S mpps=M mallocs=K` (K: heap allocations during the
// measured loop, counted by an interposed malloc).
import BenchSupport
import DPDKNet
import Glibc
import UKNetdev
import VirtioNet
import VirtioNetEmulator

let burstSize = 32

func makeBurst() -> UnsafeMutableBufferPointer<NetBuf> {
    let b = UnsafeMutableBufferPointer<NetBuf>.allocate(capacity: burstSize)
    b.initialize(repeating: NetBuf(header: UnsafeMutableRawPointer(bitPattern: 64)!))
    return b
}

/// What a forwarder does with each packet here: one byte read and written.
@inline(__always)
func touchFirstByte(_ burst: UnsafeMutableBufferPointer<NetBuf>, _ n: Int) {
    var i = 0
    while i < n {
        let p = burst[i].data
        p.storeBytes(of: p.load(as: UInt8.self) &+ 1, as: UInt8.self)
        i &+= 1
    }
}

/// rx_burst -> touch one byte of each packet -> tx_burst, until `packets` have gone round.
/// Inlined into one non-generic function per device so callgrind can toggle on its name.
@inline(__always)
func forward<D: NetDevice & ~Copyable>(_ dev: inout D, _ burst: UnsafeMutableBufferPointer<NetBuf>, packets: Int) -> Int {
    var done = 0
    while done < packets {
        let n = dev.rxBurst(queue: 0, into: burst).count
        touchFirstByte(burst, n)
        var sent = 0
        while sent < n {
            sent &+= dev.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: burst.baseAddress! + sent, count: n &- sent)).count
        }
        done &+= n
        if n == 0 { break }  // nothing circulating: a setup error, not a hang
    }
    return done
}

@inline(never)
func swiftSingleRingLoop(_ dev: inout RingDevice, _ burst: UnsafeMutableBufferPointer<NetBuf>, packets: Int) -> Int {
    forward(&dev, burst, packets: packets)
}

@inline(never)
func swiftSingleDPDKLoop(_ dev: inout DPDKDevice, _ burst: UnsafeMutableBufferPointer<NetBuf>, packets: Int) -> Int {
    forward(&dev, burst, packets: packets)
}

@inline(never)
func swiftSingleNullLoop(_ dev: inout NullDevice, _ burst: UnsafeMutableBufferPointer<NetBuf>, packets: Int) -> Int {
    forward(&dev, burst, packets: packets)
}

/// ixy.swift's shape: a class instance per packet. Only the control mode uses it.
final class PacketObject {
    let buffer: NetBuf
    init(_ buffer: NetBuf) { self.buffer = buffer }
    @inline(never) func touch() {
        let p = buffer.data
        p.storeBytes(of: p.load(as: UInt8.self) &+ 1, as: UInt8.self)
    }
}

@inline(never)
func swiftClassPerPacketLoop(_ dev: inout RingDevice, _ burst: UnsafeMutableBufferPointer<NetBuf>, packets: Int) -> Int {
    var done = 0
    while done < packets {
        let n = dev.rxBurst(queue: 0, into: burst).count
        var objects: [PacketObject] = []
        objects.reserveCapacity(n)
        for i in 0..<n { objects.append(PacketObject(burst[i])) }
        for o in objects { o.touch() }
        var sent = 0
        while sent < n {
            sent &+= dev.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: burst.baseAddress! + sent, count: n &- sent)).count
        }
        done &+= n
        if n == 0 { break }
    }
    return done
}

struct Measurement {
    var packets: Int
    var seconds: Double
    var mallocs: UInt64
}

func measure(_ body: () -> Int) -> Measurement {
    let m0 = malloc_counter_calls()
    let t0 = now()
    let packets = body()
    let t1 = now()
    let m1 = malloc_counter_calls()
    return Measurement(packets: packets, seconds: t1 - t0, mallocs: m1 - m0)
}

func report(_ mode: String, _ m: Measurement) {
    let mpps = Double(m.packets) / m.seconds / 1e6
    print("swift \(mode) packets=\(m.packets) seconds=\(fixed3(m.seconds)) mpps=\(fixed3(mpps)) mallocs=\(m.mallocs)")
}

func fillFrames(_ pool: NetBufPool, _ count: Int, into dev: inout RingDevice) {
    let burst = makeBurst()
    defer { burst.deallocate() }
    var left = count
    while left > 0 {
        let n = pool.allocateBulk(into: UnsafeMutableBufferPointer(rebasing: burst[0..<min(burstSize, left)]))
        guard n > 0 else { fail("pool too small") }
        for i in 0..<n { try! burst[i].setLength(64) }
        guard dev.txBurst(queue: 0, from: UnsafeMutableBufferPointer(rebasing: burst[0..<n])).count == n else { fail("ring too small") }
        left -= n
    }
}

func drain(_ dev: inout RingDevice) {
    let burst = makeBurst()
    defer { burst.deallocate() }
    while case let n = dev.rxBurst(queue: 0, into: burst).count, n > 0 {
        NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[0..<n]))
    }
}

func upQueues<D: NetDevice & ~Copyable>(_ dev: inout D, allocator: RxBufferAllocator? = nil) {
    do {
        try dev.bringUp(rx: RxQueueConfig(descriptors: 1024, allocator: allocator), tx: TxQueueConfig(descriptors: 1024))
    } catch {
        fail("device setup: \(error)")
    }
}

func singleRing(packets: Int, classPerPacket: Bool = false) -> Measurement {
    let pool = try! NetBufPool(count: 2048, roomSize: 2048, threading: .singleThread)
    var dev = RingDevice.loopback(slots: 1024)
    upQueues(&dev)
    fillFrames(pool, 512, into: &dev)
    let burst = makeBurst()
    let m = measure {
        classPerPacket ? swiftClassPerPacketLoop(&dev, burst, packets: packets) : swiftSingleRingLoop(&dev, burst, packets: packets)
    }
    drain(&dev)
    burst.deallocate()
    guard pool.inUse == 0 else { fail("leaked \(pool.inUse) buffers") }
    try! pool.destroy()
    return m
}

func singleDPDK(packets: Int) -> Measurement {
    do {
        try DPDK.initialize(arguments: ["--no-huge", "-m", "256", "--no-pci", "-l", "0", "--log-level=lib.eal:error",
                                        "--file-prefix=uknet-netdev-bench-\(getpid())", "--vdev=net_null0"])
        let pool = try DPDK.makePool(count: 2048, roomSize: 2048)
        var dev = try DPDKDevice(port: 0)
        upQueues(&dev, allocator: pool.rxAllocator)
        let burst = makeBurst()
        let m = measure { swiftSingleDPDKLoop(&dev, burst, packets: packets) }
        dev.stop()
        burst.deallocate()
        guard pool.inUse == 0 else { fail("leaked \(pool.inUse) buffers") }
        return m
    } catch {
        fail("DPDK: \(error)")
    }
}

func singleNull(packets: Int) -> Measurement {
    let pool = try! NetBufPool(count: 2048, roomSize: 2048, threading: .singleThread)
    var template = [UInt8](repeating: 0, count: 60)
    for i in 0..<60 { template[i] = UInt8(truncatingIfNeeded: i) }
    var dev = NullDevice(rxTemplate: template)
    upQueues(&dev, allocator: pool.rxAllocator)
    let burst = makeBurst()
    let m = measure { swiftSingleNullLoop(&dev, burst, packets: packets) }
    burst.deallocate()
    guard pool.inUse == 0 else { fail("leaked \(pool.inUse) buffers") }
    try! pool.destroy()
    return m
}

@inline(never)
func swiftForwardLoop(_ dev: inout RingDevice, _ burst: UnsafeMutableBufferPointer<NetBuf>, packets: Int) -> Int {
    forward(&dev, burst, packets: packets)
}

func twoCore(packets: Int) -> Measurement {
    let pool = try! NetBufPool(count: 2048, roomSize: 2048, threading: .threadSafe)
    let ring = RingDevice.pair(slots: 1024)
    var a = ring.a, b = ring.b
    upQueues(&a)
    upQueues(&b)
    fillFrames(pool, 512, into: &a)
    let stop = StopFlag()
    let reflectorSide = Shared(a)
    let deadline = now() + 60
    // The measured side starts once the other side has made its burst array: the malloc count
    // is process-wide, and that allocation must not fall inside the measured loop.
    let ready = StopFlag()
    let reflector = PinnedThread(cpu: 0) {
        let burst = makeBurst()
        ready.raise()
        var polls = 0
        while !stop.isRaised {
            let n = reflectorSide.value.rxBurst(queue: 0, into: burst).count
            var sent = 0
            while sent < n {
                sent += reflectorSide.value.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: burst.baseAddress! + sent, count: n - sent)).count
            }
            polls &+= 1
            if polls & 0xFFFFF == 0 && now() > deadline { break }
        }
        burst.deallocate()
    }
    var m = Measurement(packets: 0, seconds: 0, mallocs: 0)
    let forwarder = PinnedThread(cpu: 1) {
        let burst = makeBurst()
        while !ready.isRaised {}
        // Forward in slices so a 60 s wall-clock bound holds even if the reflector stalls.
        m = measure {
            var done = 0
            while done < packets && now() < deadline {
                done += swiftForwardLoop(&b, burst, packets: min(1 << 20, packets - done))
            }
            return done
        }
        stop.raise()
        burst.deallocate()
    }
    forwarder.join()
    reflector.join()
    drain(&reflectorSide.value)
    drain(&b)
    guard pool.inUse == 0 else { fail("leaked \(pool.inUse) buffers") }
    return m
}

func twoCorePool(packets: Int) -> Measurement {
    let pool = try! NetBufPool(count: 4096, roomSize: 2048, threading: .threadSafe)
    let ring = RingDevice.pair(slots: 1024)
    var a = ring.a, b = ring.b
    upQueues(&a)
    upQueues(&b)
    let stop = StopFlag()
    let generatorSide = Shared(a)
    let deadline = now() + 60
    let ready = StopFlag()   // as in twoCore: the generator's setup stays out of the measured loop
    let generator = PinnedThread(cpu: 0) {
        let burst = makeBurst()
        ready.raise()
        var held = 0
        var polls = 0
        while !stop.isRaised {
            if held < burstSize {
                let got = pool.allocateBulk(into: UnsafeMutableBufferPointer(rebasing: burst[held..<burstSize]))
                for i in held..<(held + got) { try! burst[i].setLength(64) }
                held += got
            }
            let sent = generatorSide.value.txBurst(queue: 0, from: UnsafeMutableBufferPointer(rebasing: burst[0..<held])).count
            if sent < held { for i in sent..<held { burst[i - sent] = burst[i] } }
            held -= sent
            polls &+= 1
            if polls & 0xFFFFF == 0 && now() > deadline { break }
        }
        NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[0..<held]))
        burst.deallocate()
    }
    var m = Measurement(packets: 0, seconds: 0, mallocs: 0)
    let sink = PinnedThread(cpu: 1) {
        let burst = makeBurst()
        while !ready.isRaised {}
        m = measure {
            var done = 0
            var polls = 0
            while done < packets {
                let n = b.rxBurst(queue: 0, into: burst).count
                var i = 0
                while i < n {
                    let p = burst[i].data
                    p.storeBytes(of: p.load(as: UInt8.self) &+ 1, as: UInt8.self)
                    i += 1
                }
                NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[0..<n]))
                done += n
                polls &+= 1
                if polls & 0xFFFFF == 0 && now() > deadline { break }
            }
            return done
        }
        stop.raise()
        burst.deallocate()
    }
    sink.join()
    generator.join()
    drain(&b)
    guard pool.inUse == 0 else { fail("leaked \(pool.inUse) buffers") }
    return m
}

/// The driver's loop; the emulated device's side (`loopback`) runs in between, as a backend on
/// another core would. callgrind subtracts the device's share (see check-hotpath.sh).
@inline(never)
func swiftSingleVirtioLoop(_ dev: inout VirtioNetDevice<EmulatedTransport>, _ emu: EmulatedVirtioNet,
                           _ burst: UnsafeMutableBufferPointer<NetBuf>, packets: Int) -> Int {
    var done = 0
    while done < packets {
        let n = dev.rxBurst(queue: 0, into: burst).count
        touchFirstByte(burst, n)
        var sent = dev.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: burst.baseAddress!, count: n)).count
        while sent < n {
            emu.loopback(max: 1024)
            sent &+= dev.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: burst.baseAddress! + sent, count: n &- sent)).count
        }
        emu.loopback(max: burstSize)
        done &+= n
        if n == 0 { break }  // nothing circulating: a setup error, not a hang
    }
    return done
}

func singleVirtio(packets: Int) -> Measurement {
    let pool = try! NetBufPool(count: 4096, roomSize: 2048, threading: .singleThread)
    let emu = EmulatedVirtioNet(maxQueueSize: 1024)
    var dev = try! VirtioNetDevice(transport: emu.transport)
    upQueues(&dev, allocator: pool.rxAllocator)
    // 512 frames circulating.
    let burst = makeBurst()
    for _ in 0..<(512 / burstSize) {
        let n = pool.allocateBulk(into: burst, length: 64)
        guard dev.txBurst(queue: 0, from: UnsafeMutableBufferPointer(rebasing: burst[0..<n])).count == n else { fail("virtio ring too small") }
        emu.loopback(max: n)
    }
    let m = measure { swiftSingleVirtioLoop(&dev, emu, burst, packets: packets) }
    dev.stop()
    burst.deallocate()
    _ = consume dev
    emu.deallocate()
    guard pool.inUse == 0 else { fail("leaked \(pool.inUse) buffers") }
    try! pool.destroy()
    return m
}

let args = CommandLine.arguments
guard args.count == 3, let packets = Int(args[2]), packets > 0 else {
    fail("usage: netdev-bench single-ring|single-null|single-virtio|two-core|two-core-pool|class-per-packet PACKETS")
}
switch args[1] {
case "single-ring": report("single-ring", singleRing(packets: packets))
case "single-null": report("single-null", singleNull(packets: packets))
case "single-dpdk": report("single-dpdk", singleDPDK(packets: packets))
case "two-core": report("two-core", twoCore(packets: packets))
case "two-core-pool": report("two-core-pool", twoCorePool(packets: packets))
case "class-per-packet": report("class-per-packet", singleRing(packets: packets, classPerPacket: true))
case "single-virtio": report("single-virtio", singleVirtio(packets: packets))
default: fail("unknown mode \(args[1])")
}
