// The smallest unikernel app: proves the boot and platform layer from the Swift side, and is what
// scripts/unikernel-check.sh boots. Prints the command line it got, the heap, and the clock
// advancing (a spin of `spin=MS` milliseconds, 1 by default, by uk_monotonic_ns, with the TSC
// ticks it took beside the number the calibrated rate predicts), and one MMIO read (microvm's
// virtio-mmio magic). Returns 0; with the word `fail` on the command line 3; with `trap` it traps
// (fatalError), which the platform reports and turns into status 121.
import UKPlatform

@_cdecl("uknet_kernel_main")
public func helloMain(_ cmdline: UnsafePointer<CChar>) -> Int32 {
    let start = uk_monotonic_ns()
    print("hello: Embedded Swift, \((start &- uk_boot_ns()) / 1000) us after the first instruction")
    let args = Words(cmdline)
    write("hello: cmdline \"")
    uk_console_write(cmdline, args.length)
    write("\" (\(args.count) words)\n")

    // The heap: -m decides it. One allocation through posix_memalign, seen in the counter.
    let before = uk_heap_used()
    let block = UnsafeMutableRawPointer.allocate(byteCount: 64 * 1024, alignment: 4096)
    let during = uk_heap_used()
    block.deallocate()
    let returned = uk_heap_used() == before
    // The heap's last byte is mapped and writable (a page fault here would end the boot with 121).
    let last = UnsafeMutablePointer<UInt8>(bitPattern: uk_heap_base() + UInt(uk_heap_size()) - 1)!
    last.pointee = 0xA5
    let lastOK = last.pointee == 0xA5
    print("hello: heap \(uk_heap_size() / 1024) KiB at 0x\(hex(UInt64(uk_heap_base()))), RAM \(uk_ram_bytes() / 1024) KiB;"
          + " a 64 KiB block took \(during - before) bytes, returned: \(returned); last byte written: \(lastOK)")

    // The clock: spin by uk_monotonic_ns, count the TSC ticks it took.
    let ms = UInt64(args.value(of: "spin=") ?? 1)
    let hz = uk_tsc_hz()
    let t0 = uk_monotonic_ns(), c0 = uk_tsc()
    var spins: UInt64 = 0
    var now = t0
    while now &- t0 < ms * 1_000_000 && spins < 4_000_000_000 {   // bounded: ~1 s of pauses per 10^8
        uk_pause()
        spins += 1
        now = uk_monotonic_ns()
    }
    let ticks = uk_tsc() &- c0
    // The clock and the TSC are one counter: the ticks must match the nanoseconds the clock says
    // went by (within 5%: TCG's TSC wobbles at this scale), and those must be at least the spin.
    // Not the spin itself: a vCPU the host preempts mid-spin overshoots it (1.47 ms seen here).
    let elapsed = now &- t0
    let expected = elapsed * (hz / 1000) / 1_000_000
    let advanced = elapsed >= ms * 1_000_000 && ticks > expected - expected / 20 && ticks < expected + expected / 20 + hz / 10_000
    print("hello: clock: spun \(ms) ms by uk_monotonic_ns (\(now &- t0) ns): \(ticks) TSC ticks at \(hz / 1000) kHz,"
          + " \(expected) expected: " + (advanced ? "ok" : "WRONG"))

    // MMIO through the uncached 3-4 GiB window: microvm's first virtio-mmio slot reads "virt".
    let magic = uk_mmio_read32(0xFEB0_0000)
    print("hello: MMIO 0xfeb00000: 0x\(hex(UInt64(magic)))" + (magic == 0x7472_6976 ? " (virtio-mmio \"virt\")" : ""))

    if args.contains("trap") {
        print("hello: trapping as asked")
        fatalError("hello: trap")
    }
    let status: Int32 = !advanced ? 4 : args.contains("fail") ? 3 : 0
    print("hello: done in \((uk_monotonic_ns() &- start) / 1000) us, returning \(status)")
    return status
}

func write(_ s: String) {
    var s = s
    s.withUTF8 { uk_console_write(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), $0.count) }
}

func hex(_ v: UInt64) -> String {
    let digits: StaticString = "0123456789abcdef"
    var out = [UInt8]()
    var shift = 60
    while shift > 0 && v >> UInt64(shift) == 0 { shift -= 4 }
    while shift >= 0 {
        out.append(digits.utf8Start[Int((v >> UInt64(shift)) & 15)])
        shift -= 4
    }
    return String(decoding: out, as: UTF8.self)
}

/// The command line's space-separated words, compared as bytes (no String comparison: that would
/// bring the stdlib's Unicode tables into the image).
struct Words {
    let base: UnsafePointer<UInt8>
    let length: Int
    init(_ cmdline: UnsafePointer<CChar>) {
        base = UnsafeRawPointer(cmdline).assumingMemoryBound(to: UInt8.self)
        var n = 0
        while base[n] != 0 && n < 4096 { n += 1 }
        length = n
    }

    /// Each word as (start, length).
    func forEach(_ body: (Int, Int) -> Void) {
        var i = 0
        while i < length {
            while i < length && base[i] == 0x20 { i += 1 }
            let start = i
            while i < length && base[i] != 0x20 { i += 1 }
            if i > start { body(start, i - start) }
        }
    }

    var count: Int {
        var n = 0
        forEach { _, _ in n += 1 }
        return n
    }

    func matches(_ start: Int, _ text: StaticString, prefix: Bool, wordLength: Int) -> Bool {
        let n = text.utf8CodeUnitCount
        guard prefix ? wordLength >= n : wordLength == n else { return false }
        for k in 0..<n where base[start + k] != text.utf8Start[k] { return false }
        return true
    }

    func contains(_ word: StaticString) -> Bool {
        var found = false
        forEach { s, l in if matches(s, word, prefix: false, wordLength: l) { found = true } }
        return found
    }

    /// The decimal number after `key` (e.g. "spin=") in the first word that starts with it.
    func value(of key: StaticString) -> Int? {
        var result: Int?
        forEach { s, l in
            guard result == nil, matches(s, key, prefix: true, wordLength: l) else { return }
            var v = 0
            var k = key.utf8CodeUnitCount
            guard k < l else { return }
            while k < l, base[s + k] >= 0x30, base[s + k] <= 0x39, v < 1_000_000 {
                v = v * 10 + Int(base[s + k] - 0x30)
                k += 1
            }
            if k == l { result = v }
        }
        return result
    }
}
