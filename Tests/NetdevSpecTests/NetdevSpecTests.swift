import Foundation
import Testing
import NetdevSpec
import PcapNet
import TestSupport
import UKNetdev

/// Sends `count` frames, then receives until nothing more comes (or the device says so), and
/// reports what it saw; generic, so it runs on whatever concrete device the spec opened.
struct SendThenReceive: NetDeviceVisitor {
    var count: Int
    let pool: NetBufPool
    var deviceTypeName = ""

    struct Result: Equatable {
        var sent = 0
        var received: [Int] = []   // frame lengths, in order
        var stats = DeviceStats()
    }

    mutating func visit<D: NetDevice & ~Copyable>(_ device: inout D) throws -> Result {
        deviceTypeName = String(describing: D.self)
        #expect(device.state == .running(rxQueues: 1, txQueues: 1))
        let burst = UnsafeMutableBufferPointer<NetBuf>.allocate(capacity: 8)
        defer { burst.deallocate() }
        var result = Result()
        var left = count
        while left > 0 {
            let n = pool.allocateBulk(into: UnsafeMutableBufferPointer(rebasing: burst[0..<min(8, left)]))
            for i in 0..<n { try burst[i].setLength(60 + result.sent + i) }
            let taken = device.txBurst(queue: 0, from: UnsafeMutableBufferPointer(rebasing: burst[0..<n])).count
            NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[taken..<n]))
            result.sent += taken
            left -= taken
        }
        for _ in 0..<1000 {
            let r = device.rxBurst(queue: 0, into: burst)
            for i in 0..<r.count { result.received.append(burst[i].packetLength) }
            NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst[0..<r.count]))
            if !r.status.contains(.more) && r.count == 0 { break }
        }
        result.stats = device.stats
        return result
    }
}

@Suite struct NetdevSpecParsingTests {
    @Test func validSpecs() throws {
        #expect(try NetdevSpec(parsing: "null") == .null)
        #expect(try NetdevSpec(parsing: "ring") == .ring)
        #expect(try NetdevSpec(parsing: "tap:ifname=uktap0") == .tap(ifname: "uktap0"))
        #expect(try NetdevSpec(parsing: "pcap:rx=in.pcap,tx=out.pcap") == .pcap(rx: "in.pcap", tx: "out.pcap"))
        #expect(try NetdevSpec(parsing: "pcap:tx=/tmp/a b.pcap,rx=x") == .pcap(rx: "x", tx: "/tmp/a b.pcap"))
        #expect(try NetdevSpec(parsing: "pcap:rx=in.pcap") == .pcap(rx: "in.pcap", tx: nil))
        #expect(try NetdevSpec(parsing: "pcap:tx=out.pcap") == .pcap(rx: nil, tx: "out.pcap"))
        // A value may hold '=' and ':' (only the first '=' splits).
        #expect(try NetdevSpec(parsing: "pcap:rx=a=b:c") == .pcap(rx: "a=b:c", tx: nil))
        #expect(try NetdevSpec(parsing: "vhost-user:path=/tmp/v.sock") == .vhostUser(path: "/tmp/v.sock", queues: 1))
        #expect(try NetdevSpec(parsing: "vhost-user:queues=4,path=v.sock") == .vhostUser(path: "v.sock", queues: 4))
        #expect(try NetdevSpec(parsing: "vhost-user:path=v.sock,reconnect=0.5") == .vhostUser(path: "v.sock", queues: 1, reconnect: 0.5))
        #expect(try NetdevSpec(parsing: "vhost-user:path=v.sock,reconnect=1").waitsForBackend)
        #expect(try NetdevSpec(parsing: "vhost-user:path=v.sock").waitsForBackend == false)
        // dpdk: EAL's arguments split on spaces (any number of them), --port=N taken out.
        #expect(try NetdevSpec(parsing: "dpdk:--no-huge  -m 512 --vdev=net_pcap0,rx_pcap=a.pcap")
                == .dpdk(eal: ["--no-huge", "-m", "512", "--vdev=net_pcap0,rx_pcap=a.pcap"], port: 0))
        #expect(try NetdevSpec(parsing: "dpdk:-l 0 --port=2 --vdev=net_null0") == .dpdk(eal: ["-l", "0", "--vdev=net_null0"], port: 2))
        #expect(try NetdevSpec(parsing: "dpdk:") == .dpdk(eal: [], port: 0))
    }

    @Test func descriptionsParseBack() throws {
        for spec in [NetdevSpec.null, .ring, .tap(ifname: "t0"), .pcap(rx: "a", tx: nil), .pcap(rx: nil, tx: "b"), .pcap(rx: "a", tx: "b"),
                     .vhostUser(path: "/tmp/s", queues: 1), .vhostUser(path: "s", queues: 2), .vhostUser(path: "s", queues: 1, reconnect: 2),
                     .dpdk(eal: ["--no-huge", "--vdev=net_null0"], port: 0), .dpdk(eal: ["-l", "1"], port: 3)] {
            #expect(try NetdevSpec(parsing: spec.description) == spec)
        }
    }

    @Test func errorsSayWhatIsWrong() {
        let cases: [(String, NetdevSpecError)] = [
            ("", .empty),
            (":rx=a", .empty),
            ("virtio", .unknownKind("virtio")),
            ("dpdk:--port=x", .invalidValue(kind: "dpdk", key: "--port", value: "x", expected: "a port index, 0...1023")),
            ("dpdk:--port=-1", .invalidValue(kind: "dpdk", key: "--port", value: "-1", expected: "a port index, 0...1023")),
            ("PCAP:rx=a", .unknownKind("PCAP")),
            ("pcap", .missingKey(kind: "pcap", key: "rx or tx")),
            ("pcap:", .missingKey(kind: "pcap", key: "rx or tx")),
            ("pcap:rx=", .missingValue(kind: "pcap", key: "rx")),
            ("pcap:rx", .missingValue(kind: "pcap", key: "rx")),
            ("pcap:rx=a,rx=b", .duplicateKey(kind: "pcap", key: "rx")),
            ("pcap:rx=a,,tx=b", .malformedOption(kind: "pcap", option: "")),
            ("pcap:=a", .malformedOption(kind: "pcap", option: "=a")),
            ("pcap:rx=a,iface=b", .unknownKey(kind: "pcap", key: "iface", allowed: ["rx", "tx"])),
            ("tap", .missingKey(kind: "tap", key: "ifname")),
            ("vhost-user", .missingKey(kind: "vhost-user", key: "path")),
            ("vhost-user:queues=2", .missingKey(kind: "vhost-user", key: "path")),
            ("vhost-user:path=s,queues=0", .invalidValue(kind: "vhost-user", key: "queues", value: "0", expected: "1...16")),
            ("vhost-user:path=s,queues=x", .invalidValue(kind: "vhost-user", key: "queues", value: "x", expected: "1...16")),
            ("vhost-user:path=s,iface=t", .unknownKey(kind: "vhost-user", key: "iface", allowed: ["path", "queues", "reconnect"])),
            ("vhost-user:path=s,reconnect=-1", .invalidValue(kind: "vhost-user", key: "reconnect", value: "-1", expected: "seconds, 0...3600")),
            ("tap:name=x", .unknownKey(kind: "tap", key: "name", allowed: ["ifname"])),
            ("null:size=64", .unknownKey(kind: "null", key: "size", allowed: [])),
            ("ring:slots=8", .unknownKey(kind: "ring", key: "slots", allowed: [])),
        ]
        for (text, expected) in cases {
            #expect(throws: expected, "\(text)") { _ = try NetdevSpec(parsing: text) }
        }
        #expect(NetdevSpecError.unknownKind("virtio").description.contains("pcap, tap, null, ring, vhost-user, dpdk"))
        #expect(NetdevSpecError.unknownKey(kind: "null", key: "size", allowed: []).description == "'null' takes no options, got 'size'")
    }
}

@Suite struct NetdevSpecOpenTests {
    @Test func faultsParseFromACommandLine() throws {
        let c = try FaultConfig(parsing: "drop=0.01,duplicate=0.02,corrupt=0.5,reorder=1,stall=0,seed=7,on=rx")
        #expect(c == FaultConfig(seed: 7, dropRate: 0.01, duplicateRate: 0.02, corruptRate: 0.5, reorderRate: 1, onRx: true, onTx: false))
        #expect(try FaultConfig(parsing: "drop=0.1").seed == 1)
        for (text, message) in [("", "needs one of drop"), ("drop=2", "a probability, 0...1"), ("drop=-0.1", "a probability"),
                                ("lose=0.1", "lose"), ("seed=x", "a number"), ("on=up", "rx, tx or both"), ("drop=0.1,drop=0.2", "drop")] {
            #expect(throws: NetdevSpecError.self, "\(text)") { try FaultConfig(parsing: text) }
            do { _ = try FaultConfig(parsing: text) } catch { #expect("\(error)".contains(message), "\(text): \(error)") }
        }
    }

    /// A device opened with faults: the injector sits between it and the program, and what it
    /// did shows in the device's statistics.
    @Test func openWithFaultsWrapsTheDevice() throws {
        struct Drain: NetDeviceVisitor {
            let pool: NetBufPool
            mutating func visit<D: NetDevice & ~Copyable>(_ device: inout D) throws -> (received: Int, dropped: UInt64) {
                let burst = Burst(32)
                var received = 0
                for _ in 0..<100 {
                    let n = pool.allocateBulk(into: burst.storage, length: 60)
                    let sent = device.txBurst(queue: 0, from: burst.prefix(n)).count
                    NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: burst.storage[sent..<n]))
                    let r = device.rxBurst(queue: 0, into: burst.storage)
                    received += r.count
                    NetBuf.releaseBulk(burst.prefix(r.count))
                }
                var dropped: UInt64 = 0
                device.extendedStats { name, _, value in if "\(name)" == "faults_dropped" { dropped = value } }
                return (received, dropped)
            }
        }
        let pool = try NetBufPool(count: 256, roomSize: 2048, headroom: 128)
        var visitor = Drain(pool: pool)
        let r = try open(.ring, pool: pool, options: NetdevOpenOptions(faults: try FaultConfig(parsing: "drop=0.25,seed=3,on=rx")), visitor: &visitor)
        #expect(r.dropped > 400 && r.received == 3200 - Int(r.dropped), "\(r)")
        #expect(pool.inUse == 0)
    }

    @Test func ringLoopsBack() throws {
        try withPool { pool in
            var visitor = SendThenReceive(count: 20, pool: pool)
            let result = try open(.ring, pool: pool, visitor: &visitor)
            #expect(visitor.deviceTypeName == "RingDevice", "the visitor saw the concrete type")
            #expect(result.sent == 20)
            #expect(result.received == (0..<20).map { 60 + $0 })
        }
    }

    @Test func nullSwallows() throws {
        try withPool { pool in
            var visitor = SendThenReceive(count: 20, pool: pool)
            let result = try open(.null, pool: pool, visitor: &visitor)
            #expect(visitor.deviceTypeName == "NullDevice")
            #expect(result.sent == 20 && result.received.isEmpty)
            #expect(result.stats.tx.packets == 20)
        }
    }

    @Test func pcapWritesThenReplays() throws {
        let dir = TemporaryDirectory(purpose: "spec")
        let file = dir.file("t.pcap")
        try withPool { pool in
            var writer = SendThenReceive(count: 10, pool: pool)
            let written = try open(NetdevSpec(parsing: "pcap:tx=\(file)"), pool: pool, visitor: &writer)
            #expect(writer.deviceTypeName == "PcapDevice")
            #expect(written.sent == 10 && written.received.isEmpty)
            // Replay it (and write the new TX to another file).
            var reader = SendThenReceive(count: 3, pool: pool)
            let replayed = try open(.pcap(rx: file, tx: dir.file("u.pcap")), pool: pool, visitor: &reader)
            #expect(replayed.received == (0..<10).map { 60 + $0 })
            #expect(replayed.stats.tx.packets == 3)
        }
    }

    @Test func recordWrapsAnyDeviceInAPcapWriter() throws {
        let dir = TemporaryDirectory(purpose: "spec")
        let record = dir.file("record.pcap")
        try withPool { pool in
            var visitor = SendThenReceive(count: 5, pool: pool)
            let result = try open(.ring, pool: pool, record: record, visitor: &visitor)
            #expect(visitor.deviceTypeName == "PcapWriter<RingDevice>")
            #expect(result.received.count == 5)
            // Both directions went to the file: 5 out, 5 back in.
            var replay = SendThenReceive(count: 0, pool: pool)
            let recorded = try open(.pcap(rx: record, tx: nil), pool: pool, visitor: &replay)
            #expect(recorded.received == (0..<5).map { 60 + $0 } + (0..<5).map { 60 + $0 })
        }
    }

    @Test func openingErrorsPassThrough() throws {
        try withPool { pool in
            var visitor = SendThenReceive(count: 1, pool: pool)
            #expect(throws: PcapDeviceError.self) {
                _ = try open(.pcap(rx: "/nonexistent-uknet/in.pcap", tx: nil), pool: pool, visitor: &visitor)
            }
            #expect(throws: PcapDeviceError.self) {
                _ = try open(.null, pool: pool, record: "/nonexistent-uknet/r.pcap", visitor: &visitor)
            }
        }
    }

    @Test(.enabled(if: getuid() == 0 && access("/dev/net/tun", R_OK | W_OK) == 0, "needs root (CAP_NET_ADMIN) and /dev/net/tun"))
    func tapOpensAndGivesItsBuffersBack() throws {
        // The interface stays down (nothing is sent anywhere) and disappears with the device.
        let name = "ukspec\(getpid() % 100_000)"
        try withPool { pool in
            var visitor = SendThenReceive(count: 0, pool: pool)
            let result = try open(.tap(ifname: name), pool: pool, visitor: &visitor)
            #expect(visitor.deviceTypeName == "TapDevice")
            #expect(result.received.isEmpty)
        }
    }
}
