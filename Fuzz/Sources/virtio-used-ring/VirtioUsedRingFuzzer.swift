import FuzzSupport
import UKNetdev
import VirtioNet
import VirtioNetEmulator

// A fuzzed device writing the used ring: `VirtioNetDevice` over the in-process
// `EmulatedVirtioNet`, the input a script of device and driver actions. The device side does
// what a device may do with the rings it was given (write used entries with any id and length,
// publish any used index, write any bytes anywhere in the used ring, write into the buffers it
// was posted, take what is available and keep it, go away and come back); the driver side bursts. The driver must never crash, hand out a
// buffer whose data leaves its room, or release one twice; on every stop, and after the input,
// every buffer is back in the pool and (once the driver is gone) all device memory freed. ASan
// catches any access out of bounds of the rings and the driver's own memory.
//
// Input: a set-up byte (bit 0 MRG_RXBUF, bit 1 GUEST_CSUM, bit 2 CSUM offered; bits 3-5 ring
// size 2 << n; bit 6 reconnect when the device comes back; bit 7 a liveness check on every
// burst), then actions, each an opcode byte and its operands (see `step`).

let pool = try! NetBufPool(count: 96, roomSize: 2048, headroom: 128)
let burst = UnsafeMutablePointer<NetBuf>.allocate(capacity: 64)
let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 17, alignment: 64)
let descriptors = UnsafeMutablePointer<EmulatedDescriptor>.allocate(capacity: 256)
/// What the reads add up to, kept so that none is optimised away.
var observed: UInt32 = 0

typealias Device = VirtioNetDevice<EmulatedTransport>

/// Reads a received packet whole (every segment) and checks where its data lies.
func consume(_ buf: NetBuf) {
    checkBounds(buf, "virtio: a received packet")
    let n = buf.copyOut(into: scratch)
    if n > 0 { observed &+= InternetChecksum.sum(scratch.baseAddress!, count: n) }
    buf.release()
}

/// TX frames made from the input: plain, chained, a clone (read-only: sent with its header
/// apart), short of headroom, or asking for checksums at fuzzed offsets.
func makeTransmitFrame(_ input: inout FuzzInput) -> (frame: NetBuf, origin: NetBuf?)? {
    let kind = input.byte()
    let length = Int(input.u16() % 1900)
    guard let buf = pool.allocate() else { return nil }
    if kind & 0x08 != 0 { try? buf.reset(headroom: Int(kind >> 4)) }   // headroom 0...15: no room for the header
    try? buf.setLength(min(length, buf.capacity - buf.headroom))
    let fill = input.bytes(min(buf.length, 64))
    if let base = fill.baseAddress { buf.data.copyMemory(from: base, byteCount: fill.count) }
    if kind & 0x01 != 0 {
        buf.flags.insert(.needsChecksum)
        buf.checksumRequest = (Int(input.u16()), Int(input.byte()))
    }
    if kind & 0x02 != 0 { buf.flags.insert(.needsIPv4Checksum) }
    if kind & 0x04 != 0, let tail = pool.allocate() {
        try? tail.setLength(Int(input.byte()) * 4)
        do { try buf.chain(tail) } catch { tail.release() }
    }
    guard kind & 0x80 != 0 && kind & 0x08 == 0 else { return (buf, nil) }
    guard let clone = buf.clone(using: pool) else {
        buf.release()
        return nil
    }
    return (clone, buf)
}

func transmit(_ input: inout FuzzInput, _ dev: inout Device) {
    let count = Int(input.byte() % 9)
    var origins: [(NetBuf, [UInt8])] = []
    var n = 0
    while n < count {
        guard let (frame, origin) = makeTransmitFrame(&input) else { break }
        burst[n] = frame
        n += 1
        if let origin {
            origins.append((origin, Array(UnsafeRawBufferPointer(origin.unsafeBytes))))
        }
    }
    let sent = dev.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: burst, count: n)).count
    guard sent <= n else { fatalError("virtio: txBurst took \(sent) of \(n) frames") }
    for i in sent..<n { burst[i].release() }
    // A clone's data is shared and read-only: sending it must not write into it.
    for (origin, bytes) in origins {
        if Array(UnsafeRawBufferPointer(origin.unsafeBytes)) != bytes { fatalError("virtio: sending a clone changed its data") }
        origin.release()
    }
}

/// The device writes a packet into the next posted RX buffer as it likes (header fields, the
/// number of merged buffers, any length it reports), staying within the buffer it was given.
func deviceWritesRx(_ input: inout FuzzInput, _ emu: EmulatedVirtioNet, publish: Bool) {
    let flags = input.byte()
    let buffers = input.u16()
    let csumStart = input.u16(), csumOffset = input.u16()
    let reported = input.u32()
    let frame = input.chunk()
    guard let (head, n) = emu.takeAvailable(0, into: descriptors, max: 1), n == 1 else { return }
    let d = descriptors[0]
    guard d.length >= 12, let p = UnsafeMutableRawPointer(bitPattern: UInt(d.address)) else { return }
    p.storeBytes(of: flags, as: UInt8.self)
    p.storeBytes(of: UInt8(0), toByteOffset: 1, as: UInt8.self)
    p.storeBytes(of: UInt32(0), toByteOffset: 2, as: UInt32.self)
    p.storeBytes(of: csumStart, toByteOffset: 6, as: UInt16.self)
    p.storeBytes(of: csumOffset, toByteOffset: 8, as: UInt16.self)
    p.storeBytes(of: buffers, toByteOffset: 10, as: UInt16.self)
    let written = min(frame.count, d.length - 12)
    if written > 0 { (p + 12).copyMemory(from: frame.baseAddress!, byteCount: written) }
    // Honest (what was written), or any length at all: a lie the driver must catch.
    let length = reported & 0x8000_0000 != 0 ? reported & 0x7FFF_FFFF : UInt32(12 + written)
    emu.putUsed(0, id: UInt32(head), length: length, publish: publish)
}

/// One action: an opcode byte (bits 0-3 the action, bit 7 the virtqueue: 0 RX, 1 TX; bit 6 set
/// leaves the used index unpublished) and its operands.
func step(_ input: inout FuzzInput, _ dev: inout Device, _ emu: EmulatedVirtioNet) {
    let op = input.byte()
    let queue = Int(op >> 7)            // 0: RX, 1: TX (virtqueues 0 and 1)
    let publish = op & 0x40 == 0
    switch op & 0x0F {
    case 0:
        // The device receives a frame honestly.
        let flags = input.byte(), csumStart = input.u16(), csumOffset = input.u16()
        let frame = input.chunk()
        if emu.queue(0).active {
            emu.receive(frame, headerFlags: flags, csumStart: csumStart, csumOffset: csumOffset, publish: publish)
        }
    case 1:
        // A used entry with any id and any length.
        let id = op & 0x20 != 0 ? input.u32() : UInt32(input.byte())
        let length = op & 0x10 != 0 ? input.u32() : UInt32(input.u16())
        if emu.queue(queue).active { emu.putUsed(queue, id: id, length: length, publish: publish) }
    case 2:
        // The used index: the device's own, or any value.
        let value = input.u16()
        if emu.queue(queue).active { emu.publishUsed(queue, value: op & 0x20 != 0 ? value : nil) }
    case 3:
        if emu.queue(0).active { deviceWritesRx(&input, emu, publish: publish) }
    case 4, 5:
        let max = 1 + Int(input.byte() % 64)
        let r = dev.rxBurst(queue: 0, into: UnsafeMutableBufferPointer(start: burst, count: max))
        guard r.count <= max else { fatalError("virtio: rxBurst returned \(r.count) packets for \(max) slots") }
        for i in 0..<r.count { consume(burst[i]) }
    case 6:
        transmit(&input, &dev)
    case 7:
        // The device sends back what it was given to transmit.
        let max = Int(input.byte())
        if emu.queue(1).active { emu.transmitted(max: max) { bytes, _ in observed &+= UInt32(bytes.count) } }
    case 8:
        let max = Int(input.byte())
        if emu.queue(0).active && emu.queue(1).active { emu.loopback(max: max) }
    case 9:
        // An empty TX burst: the driver takes back what the device finished.
        _ = dev.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: burst, count: 0))
    case 10:
        // The device takes available chains and keeps them (for now).
        let count = Int(input.byte() % 16)
        for _ in 0..<count where emu.queue(queue).active {
            guard emu.takeAvailable(queue, into: descriptors, max: 256) != nil else { break }
        }
    case 11:
        // Stopped, every buffer is back; started again (refused while the device is gone).
        dev.stop()
        requireFullPool(pool, "virtio: after a stop")
        try? dev.start()
    case 12:
        if op & 0x10 != 0 { emu.comeBack() } else { emu.disappear() }
    case 13:
        emu.setNotificationsWanted(queue, op & 0x10 != 0)
    case 15:
        // Any bytes anywhere in the used ring (flags, index, entries, avail_event).
        let offset = Int(input.u16())
        let bytes = input.bytes(Int(input.byte() % 16))
        let q = emu.queue(queue)
        if q.active, let base = bytes.baseAddress {
            let usedBytes = SplitRingLayout(size: q.size).usedBytes
            let start = offset % usedBytes
            q.used.advanced(by: start).copyMemory(from: base, byteCount: min(bytes.count, usedBytes - start))
        }
    default:
        // A stretch of polling: both bursts, as a program's loop does.
        for _ in 0..<Int(input.byte() % 8) {
            let r = dev.rxBurst(queue: 0, into: UnsafeMutableBufferPointer(start: burst, count: 32))
            for i in 0..<r.count { consume(burst[i]) }
            _ = dev.txBurst(queue: 0, from: UnsafeMutableBufferPointer(start: burst, count: 0))
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let setup = input.byte()
    var features: VirtioFeatures = [.version1, .mac, .status]
    if setup & 0x01 != 0 { features.insert(.mrgRxbuf) }
    if setup & 0x02 != 0 { features.insert(.guestCsum) }
    if setup & 0x04 != 0 { features.insert(.csum) }
    let ringSize = 2 << Int((setup >> 3) & 0x07)
    let emu = EmulatedVirtioNet(features: features, queuePairs: 1, maxQueueSize: 1024)
    do {
        let options = VirtioNetOptions(aliveCheckInterval: setup & 0x80 != 0 ? 1 : 1 << 16, reconnect: setup & 0x40 != 0)
        var dev = try Device(transport: emu.transport, options: options)
        try dev.bringUp(rx: RxQueueConfig(descriptors: ringSize, allocator: pool.rxAllocator),
                        tx: TxQueueConfig(descriptors: ringSize))
        while !input.isAtEnd { step(&input, &dev, emu) }
        dev.stop()
        requireFullPool(pool, "virtio: after the input, the device stopped")
    } catch {
        fatalError("virtio: the device did not come up: \(error)")
    }
    requireFullPool(pool, "virtio: after the driver")
    if emu.state.pointee.memoryBlocks != 0 {
        fatalError("virtio: \(emu.state.pointee.memoryBlocks) blocks of device memory not freed")
    }
    emu.deallocate()
    return 0
}
