import Foundation
import Testing
import TestSupport
import UKNetdev
import PcapNet

/// Writes `frames` through a TX-only PcapDevice in bursts of up to 16 and stops it (flushing).
func writePcap(_ path: String, _ frames: [NetBuf], timestamps: PcapTimestamps = .counting(startSeconds: 1_700_000_000, stepMicroseconds: 1000)) throws {
    var dev = try PcapDevice(rx: nil, tx: path, timestamps: timestamps)
    try dev.bringUp(rx: RxQueueConfig(descriptors: 64), tx: TxQueueConfig(descriptors: 64))
    let burst = Burst(16)
    var next = 0
    while next < frames.count {
        let n = min(16, frames.count - next)
        for i in 0..<n { burst[i] = frames[next + i] }
        let r = dev.txBurst(queue: 0, from: burst.prefix(n))
        #expect(r.count == n)
        #expect(r.status == [.success, .more])
        next += n
    }
    #expect(dev.txQueueStats(0).packets == UInt64(frames.count))
    dev.stop()
}

/// What a test reads off a PcapDevice after the fact (the device itself cannot be returned in
/// a tuple: it is noncopyable).
struct PcapReadSummary {
    let rxExhausted: Bool
    let rxTruncatedFrames: UInt64
    let rxReadFailure: String?
    let rxStats: QueueStats
    init(_ dev: borrowing PcapDevice) {
        rxExhausted = dev.rxExhausted
        rxTruncatedFrames = dev.rxTruncatedFrames
        rxReadFailure = dev.rxReadFailure
        rxStats = dev.rxQueueStats(0)
    }
    func rxQueueStats(_ queue: Int) -> QueueStats { rxStats }
}

/// Reads every frame of `path` with an RX-only PcapDevice, in bursts of `burstSize`.
func readPcap(_ path: String, pool: NetBufPool, burstSize: Int = 16) throws -> (frames: [[UInt8]], device: PcapReadSummary) {
    var dev = try PcapDevice(rx: path, tx: nil)
    try dev.bringUp(rx: RxQueueConfig(descriptors: 64, allocator: pool.rxAllocator), tx: TxQueueConfig(descriptors: 64))
    let burst = Burst(burstSize)
    var frames: [[UInt8]] = []
    var rounds = 0
    while !dev.rxExhausted && rounds < 100_000 {
        rounds += 1
        let r = dev.rxBurst(queue: 0, into: burst.prefix(burstSize))
        #expect(r.status.contains(.success))
        for i in 0..<r.count { frames.append(bytes(of: burst[i])) }
        NetBuf.releaseBulk(burst.prefix(r.count))
        // .more exactly while frames remain.
        let exhausted = dev.rxExhausted
        #expect(r.status.contains(.more) == !exhausted)
        #expect(r.status.contains(.endOfInput) == exhausted)
    }
    dev.stop()
    return (frames, PcapReadSummary(dev))
}

@Suite struct PcapDeviceTests {
    /// A file that cannot be opened is one readable line naming it (what `--netdev pcap:` prints).
    @Test func aMissingFileSaysWhichAndWhy() {
        do {
            _ = try PcapDevice(rx: "/nonexistent/uknet-in.pcap", tx: nil)
            Issue.record("opened a file that does not exist")
        } catch {
            #expect(error.description == "cannot open the pcap file: /nonexistent/uknet-in.pcap: No such file or directory", "\(error)")
        }
        #expect(PcapDeviceError.unsupportedLinkType(path: "raw.pcap", linkType: 12).description.contains("not Ethernet"))
    }

    @Test func framesWrittenReadBackByteForByte() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let path = dir.file("roundtrip.pcap")
        try withPool { pool in
            var expected: [[UInt8]] = []
            var frames: [NetBuf] = []
            for i in 0..<100 {
                let f = try udpFrame(pool, sequence: i, payload: 18 + (i * 37) % 1400)
                expected.append(bytes(of: f))
                frames.append(f)
            }
            try writePcap(path, frames)
            #expect(pool.inUse == 0, "TX freed what it wrote")
            let (got, dev) = try readPcap(path, pool: pool, burstSize: 7)
            #expect(got == expected)
            #expect(dev.rxQueueStats(0) == QueueStats(packets: 100, bytes: UInt64(expected.reduce(0) { $0 + $1.count })))
            #expect(dev.rxTruncatedFrames == 0)
            #expect(dev.rxReadFailure == nil)
        }
    }

    @Test func exhaustedOnlyAfterTheLastFrameAndPollingThenIsFree() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let path = dir.file("three.pcap")
        try withPool { pool in
            try writePcap(path, (0..<3).map { try udpFrame(pool, sequence: $0, payload: 20) })
            var dev = try PcapDevice(rx: path, tx: nil)
            try dev.bringUp(rx: RxQueueConfig(descriptors: 8, allocator: pool.rxAllocator), tx: TxQueueConfig(descriptors: 8))
            #expect(dev.rxExhausted == false)
            let burst = Burst(2)
            var r = dev.rxBurst(queue: 0, into: burst.prefix(2))
            #expect(r == BurstResult(count: 2, status: [.success, .more]))
            #expect(dev.rxExhausted == false)
            NetBuf.releaseBulk(burst.prefix(2))
            // The burst that delivers the last frame already says the file is done.
            r = dev.rxBurst(queue: 0, into: burst.prefix(2))
            #expect(r == BurstResult(count: 1, status: [.success, .endOfInput]))
            #expect(dev.rxExhausted == true)
            NetBuf.releaseBulk(burst.prefix(1))
            let failuresBefore = pool.allocationFailures
            for _ in 0..<10 { #expect(dev.rxBurst(queue: 0, into: burst.prefix(2)) == BurstResult(count: 0, status: [.success, .endOfInput])) }
            #expect(pool.allocationFailures == failuresBefore)
            #expect(pool.inUse == 0)
            dev.stop()
            // Not running: refused.
            #expect(dev.rxBurst(queue: 0, into: burst.prefix(2)) == .refused)
        }
    }

    @Test func aDryAllocatorLosesNoFrame() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let path = dir.file("underrun.pcap")
        var expected: [[UInt8]] = []
        try withPool { pool in
            let frames = try (0..<20).map { try udpFrame(pool, sequence: $0, payload: 30 + $0) }
            expected = frames.map(bytes(of:))
            try writePcap(path, frames)
        }
        // Five buffers for bursts of eight: every burst runs dry.
        try withPool(count: 5) { pool in
            var dev = try PcapDevice(rx: path, tx: nil)
            try dev.bringUp(rx: RxQueueConfig(descriptors: 8, allocator: pool.rxAllocator), tx: TxQueueConfig(descriptors: 8))
            let burst = Burst(8)
            var got: [[UInt8]] = []
            var underruns = 0
            while !dev.rxExhausted {
                let r = dev.rxBurst(queue: 0, into: burst.prefix(8))
                if r.status.contains(.underrun) {
                    underruns += 1
                    #expect(r.status.contains(.more), "the frame that found no buffer is still there")
                }
                for i in 0..<r.count { got.append(bytes(of: burst[i])) }
                // Hold the buffers through a second, starved poll before giving them back.
                let starved = dev.rxBurst(queue: 0, into: UnsafeMutableBufferPointer(rebasing: burst.storage[5..<8]))
                #expect(starved.count == 0)
                if !dev.rxExhausted { #expect(starved.status == [.success, .more, .underrun]) }
                NetBuf.releaseBulk(burst.prefix(r.count))
            }
            #expect(got == expected)
            #expect(underruns == 3)   // 5 + 5 + 5 with frames left over; the last 5 end the file
            dev.stop()
        }
    }

    @Test func oversizedFramesAreCountedAndSkipped() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let path = dir.file("big.pcap")
        var expected: [[UInt8]] = []
        try withPool { pool in
            let sizes = [100, 1400, 200, 1500, 300]
            let frames = try sizes.enumerated().map { try udpFrame(pool, sequence: $0.offset, payload: $0.element) }
            expected = frames.map(bytes(of:)).filter { $0.count <= 512 - 64 }
            try writePcap(path, frames)
        }
        // Rooms of 512 bytes, 64 of them headroom: the 1400- and 1500-byte frames cannot fit.
        try withPool(count: 16, roomSize: 512, headroom: 64) { pool in
            let (got, dev) = try readPcap(path, pool: pool, burstSize: 4)
            #expect(got == expected)
            #expect(dev.rxQueueStats(0).errors == 2)
            #expect(dev.rxQueueStats(0).packets == 3)
        }
    }

    @Test func truncatedCapturesAreDeliveredAsCaptured() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let path = dir.file("snap.pcap")
        var file = HandmadePcap(snapLength: 64)
        let whole = (0..<64).map { UInt8($0) }
        file.record(whole, length: 64)
        file.record(Array(whole[0..<60]), length: 1514)   // captured with a snapshot length of 60
        file.record([], length: 60)                       // nothing captured at all
        try file.write(to: path)
        try withPool { pool in
            let (got, dev) = try readPcap(path, pool: pool)
            #expect(got == [whole, Array(whole[0..<60]), []])
            #expect(dev.rxTruncatedFrames == 2)
            #expect(dev.rxQueueStats(0).errors == 0)
        }
    }

    @Test func aCutOffFileEndsRXWithAnErrorNotACrash() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let path = dir.file("cut.pcap")
        var file = HandmadePcap()
        file.record([UInt8](repeating: 0xAB, count: 60))
        file.record([UInt8](repeating: 0xCD, count: 60))
        file.data.removeLast(25)   // the second record loses its tail
        try file.write(to: path)
        try withPool { pool in
            let (got, dev) = try readPcap(path, pool: pool)
            #expect(got == [[UInt8](repeating: 0xAB, count: 60)])
            #expect(dev.rxExhausted == true)
            #expect(dev.rxQueueStats(0).errors == 1)
            let failure = try #require(dev.rxReadFailure)
            #expect(failure.contains("truncated"), "libpcap says: \(failure)")
        }
    }

    @Test func openingFailuresAreTyped() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let missing = dir.file("no-such.pcap")
        do {
            _ = try PcapDevice(rx: missing, tx: nil)
            Issue.record("opening a missing file succeeded")
        } catch {
            guard case .open(let path, let message) = error else { Issue.record("wrong error \(error)"); return }
            #expect(path == missing)
            #expect(message.contains("No such file"), "libpcap says: \(message)")
        }
        #expect(throws: PcapDeviceError.self) { _ = try PcapDevice(rx: nil, tx: dir.file("no-such-dir/out.pcap")) }
        // Not a pcap file at all.
        let text = dir.file("text.pcap")
        try Data("hello, this is not a capture file\n".utf8).write(to: URL(fileURLWithPath: text))
        #expect(throws: PcapDeviceError.self) { _ = try PcapDevice(rx: text, tx: nil) }
        // A capture of raw IP (LINKTYPE_RAW, 101 in the file; libpcap reports DLT_RAW, 12 on
        // Linux): no Ethernet frames in it.
        let raw = dir.file("raw.pcap")
        try HandmadePcap(linkType: 101).write(to: raw)
        #expect(throws: PcapDeviceError.unsupportedLinkType(path: raw, linkType: 12)) { _ = try PcapDevice(rx: raw, tx: nil) }
        // A failed RX open must not leave a half-made TX file behind it open.
        #expect(throws: PcapDeviceError.self) { _ = try PcapDevice(rx: missing, tx: dir.file("tx.pcap")) }
    }

    @Test func rxFileNeedsAnAllocator() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let path = dir.file("a.pcap")
        try HandmadePcap().write(to: path)
        var dev = try PcapDevice(rx: path, tx: nil)
        try dev.configure(DeviceConfig())
        #expect(throws: NetDeviceError.missingAllocator) { try dev.setupRxQueue(0, RxQueueConfig(descriptors: 16)) }
        // Without an RX file there is nothing to receive into: no allocator needed.
        var txOnly = try PcapDevice(rx: nil, tx: dir.file("b.pcap"))
        try txOnly.bringUp(rx: RxQueueConfig(descriptors: 16), tx: TxQueueConfig(descriptors: 16))
        #expect(txOnly.rxExhausted == true)
        let burst = Burst(4)
        #expect(txOnly.rxBurst(queue: 0, into: burst.prefix(4)) == BurstResult(count: 0, status: [.success, .endOfInput]))
        // The lifecycle is the shared one.
        #expect(throws: NetDeviceError.invalidQueueCount(requested: 2, max: 1)) { try dev.configure(DeviceConfig(rxQueues: 2, txQueues: 1)) }
    }

    @Test func withoutATXFileTransmittedPacketsAreDropsAndFreed() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let path = dir.file("in.pcap")
        try HandmadePcap().write(to: path)
        try withPool { pool in
            var dev = try PcapDevice(rx: path, tx: nil)
            try dev.bringUp(rx: RxQueueConfig(descriptors: 16, allocator: pool.rxAllocator), tx: TxQueueConfig(descriptors: 16))
            let burst = Burst(4)
            for i in 0..<4 { burst[i] = try udpFrame(pool, sequence: i, payload: 10) }
            #expect(dev.txBurst(queue: 0, from: burst.prefix(4)).count == 4)
            #expect(dev.txQueueStats(0) == QueueStats(packets: 0, bytes: 0, drops: 4))
            #expect(pool.inUse == 0)
            dev.stop()
        }
    }

    @Test func chainsAreWrittenWhole() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let path = dir.file("chain.pcap")
        try withPool { pool in
            let head = try udpFrame(pool, sequence: 7, payload: 0)
            let tail = try #require(pool.allocate())
            try tail.setLength(300)
            for i in 0..<300 { tail.data.storeBytes(of: UInt8(i & 0xFF), toByteOffset: i, as: UInt8.self) }
            try head.chain(tail)
            let expected = bytes(of: head)
            #expect(expected.count == 42 + 300)
            try writePcap(path, [head])
            #expect(pool.inUse == 0)
            let (got, _) = try readPcap(path, pool: pool)
            #expect(got == [expected])
        }
    }

    @Test func theDeviceFlushesWhenItGoesAway() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let path = dir.file("deinit.pcap")
        try withPool { pool in
            do {
                var dev = try PcapDevice(rx: nil, tx: path)
                try dev.bringUp(rx: RxQueueConfig(descriptors: 16), tx: TxQueueConfig(descriptors: 16))
                let burst = Burst(3)
                for i in 0..<3 { burst[i] = try udpFrame(pool, sequence: i, payload: 50) }
                #expect(dev.txBurst(queue: 0, from: burst.prefix(3)).count == 3)
                // No stop, no flush: the last copy going away must do it.
            }
            let (got, _) = try readPcap(path, pool: pool)
            #expect(got.count == 3)
        }
    }

    @Test(.enabled(if: tsharkPath != nil, "tshark is not installed (make test installs it)"))
    func tsharkDecodesWrittenFramesCleanly() throws {
        let dir = TemporaryDirectory(purpose: "pcap")
        let path = dir.file("tshark.pcap")
        var sizes: [Int] = []
        try withPool { pool in
            var frames: [NetBuf] = []
            for i in 0..<20 {
                let f = try udpFrame(pool, sequence: i, payload: 18 + i * 50)
                sizes.append(f.packetLength)
                frames.append(f)
            }
            try writePcap(path, frames, timestamps: .counting(startSeconds: 1_700_000_000, stepMicroseconds: 250))
        }
        let fields = try run(tsharkPath!, ["-r", path, "-T", "fields", "-E", "separator=,",
                                           "-e", "frame.len", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "ip.dst", "-e", "frame.time_epoch"])
        #expect(fields.status == 0, "\(fields.output)")
        let lines = fields.output.split(separator: "\n").filter { !$0.isEmpty && !$0.hasPrefix("Running as") }
        #expect(lines.count == 20)
        for (i, line) in lines.enumerated() {
            let f = line.split(separator: ",").map(String.init)
            guard f.count == 5 else { Issue.record("unexpected line \(line)"); continue }
            #expect(Int(f[0]) == sizes[i])
            #expect(f[1] == String(1000 + i))
            #expect(f[2] == "11211")
            #expect(f[3] == "192.0.2.2")
            #expect(f[4].hasPrefix(String(format: "1700000000.%06d", i * 250)), "timestamp \(f[4])")
        }
        try expectCleanDecode(path)
    }
}

/// Decodes `path` verbosely with checksum validation on; fails on anything tshark complains about.
func expectCleanDecode(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    guard let tshark = tsharkPath else { return }
    let verbose = try run(tshark, ["-r", path, "-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", "-V"])
    #expect(verbose.status == 0, sourceLocation: sourceLocation)
    for complaint in ["[Malformed", "Bad checksum", "incorrect", "Expert Info (Error", "Expert Info (Warning"] {
        #expect(!verbose.output.contains(complaint), "tshark: \(complaint)", sourceLocation: sourceLocation)
    }
    #expect(verbose.output.contains("[Checksum Status: Good]"), "tshark checked the checksums", sourceLocation: sourceLocation)
}
