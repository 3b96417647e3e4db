import KernelCommandLine
import Testing
import UKNetdev

@Suite struct KernelCommandLineTests {
    @Test func wordsAndTypedValues() throws {
        let line = KernelCommandLine("  netdev.ip=192.0.2.2/24 netdev.mac=02:00:00:00:00:02\tkv.port=11212 quiet kv.port=11211 ")
        #expect(line.count == 5)
        #expect(line.contains("quiet") && line.value("quiet") == "")
        #expect(line.value("kv.port") == "11211", "the last value wins")
        #expect(line.values("kv.port") == ["11212", "11211"])
        let ip = try line.ipv4("netdev.ip").get()
        #expect(ip?.address == IPv4Address(192, 0, 2, 2) && ip?.prefix == 24)
        #expect(try line.mac("netdev.mac").get() == MACAddress(2, 0, 0, 0, 0, 2))
        #expect(try line.integer("kv.port", in: 1...65535).get() == 11211)
        #expect(try line.integer("kv.memory", in: 1...4096).get() == nil, "absent: nil, not an error")
    }

    @Test func unikraftsLongerNetdevIPFormKeepsTheAddress() throws {
        let ip = try KernelCommandLine("netdev.ip=198.51.100.7/25:198.51.100.1:8.8.8.8").ipv4("netdev.ip").get()
        #expect(ip?.address == IPv4Address(198, 51, 100, 7) && ip?.prefix == 25)
    }

    @Test func badValuesSayWhatIsWrong() {
        let line = KernelCommandLine("netdev.ip=192.0.2.300 netdev.mac=02:00 kv.port=0 a=1/40")
        #expect(line.ipv4("netdev.ip") == .failure(.invalid(key: "netdev.ip", value: "192.0.2.300", expected: "A.B.C.D[/prefix]")))
        #expect(line.ipv4("a") == .failure(.invalid(key: "a", value: "1/40", expected: "A.B.C.D[/prefix]")))
        if case .failure(let e) = line.mac("netdev.mac") {
            #expect(e.description == "bad command line value netdev.mac=02:00: expected XX:XX:XX:XX:XX:XX")
        } else { Issue.record("a short MAC was accepted") }
        #expect(line.integer("kv.port", in: 1...65535) == .failure(.invalid(key: "kv.port", value: "0", expected: "a number 1...65535")))
    }

    @Test func repeatedPrefixes() {
        let line = KernelCommandLine("kv.allow=198.51.100.0/24 kv.allow=203.0.113.7 x=1")
        #expect(line.prefixes("kv.allow") == .success([IPv4Prefix("198.51.100.0/24")!, IPv4Prefix("203.0.113.7/32")!]))
        #expect(line.prefixes("none") == .success([]))
        #expect(KernelCommandLine("kv.allow=1.2.3.4/24 kv.allow=1.2.3/8").prefixes("kv.allow")
                == .failure(.invalid(key: "kv.allow", value: "1.2.3/8", expected: "A.B.C.D/N")))
    }

    @Test func aNULTerminatedLineIsReadUpToItsEnd() {
        let bytes: [UInt8] = Array("kv.seconds=5 x=y".utf8) + [0] + Array("junk=1".utf8)
        let line = bytes.withUnsafeBufferPointer { KernelCommandLine(cString: $0.baseAddress) }
        #expect(line.count == 2 && line.value("x") == "y" && line.value("junk") == nil)
        #expect(KernelCommandLine(cString: nil).count == 0)
    }
}
