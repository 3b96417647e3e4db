import Foundation
import Testing
import TestSupport
import UKNetdev
import UKNetdevLinux

struct CommandFailed: Error, CustomStringConvertible {
    var description: String
}

/// Runs a command to completion; throws with its output if it fails.
@discardableResult
func command(_ arguments: String...) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw CommandFailed(description: "\(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(output)")
    }
    return output
}

/// Waits until `fd` is readable; false on timeout.
func waitReadable(_ fd: Int32, milliseconds: Int32) -> Bool {
    var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&pfd, 1, milliseconds) > 0
}

/// Receives from `tap` until a frame satisfies `match` (which sees each frame's bytes; the
/// others are released: IPv6 router solicitations and the like) or `seconds` pass.
func receive(_ tap: inout TapDevice, within seconds: Double, _ match: (NetBuf) -> Bool) -> NetBuf? {
    let burst = Burst(8)
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        guard let fd = tap.rxEventSource(queue: 0).fileDescriptor else { return nil }
        guard waitReadable(fd, milliseconds: 100) else { continue }
        let r = tap.rxBurst(queue: 0, into: burst.prefix(8))
        var found: NetBuf? = nil
        for i in 0..<r.count {
            if found == nil && match(burst[i]) { found = burst[i] } else { burst[i].release() }
        }
        if let found { return found }
    }
    return nil
}

let canUseTAP = getuid() == 0 && access("/dev/net/tun", R_OK | W_OK) == 0
let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"

@Suite(.serialized) struct TapDeviceTests {
    @Test func badNamesAreRefusedBeforeTheKernelIsAsked() {
        for name in ["", "sixteen-bytes-xx", "a/b", "a b", "tap:0"] {
            #expect(throws: TapDeviceError.invalidName(name)) { _ = try TapDevice(name: name) }
        }
    }

    @Test(.enabled(if: canUseTAP, "needs root (CAP_NET_ADMIN) and /dev/net/tun"))
    func attachingToAnInterfaceThatIsNotATAPFails() {
        #expect(throws: TapDeviceError.self) { _ = try TapDevice(name: "lo") }
    }

    /// The whole path, for real: a TAP created here, moved into a namespace of its own with
    /// 192.0.2.1/24 (TEST-NET-1). A datagram sent to 192.0.2.2 in there first makes the kernel
    /// ask for 192.0.2.2's MAC; this side answers as 192.0.2.2, then the datagram arrives. Then
    /// the other way: a frame built here reaches a socket in the namespace. Nothing touches eth0.
    @Test(.enabled(if: canUseTAP, "needs root (CAP_NET_ADMIN) and /dev/net/tun"))
    func arpThenUDPThroughANamespace() throws {
        let pid = getpid()
        let namespace = "uknet-test-\(pid)"
        let ifname = "uktap\(pid % 100_000)"
        _ = try? command("ip", "netns", "del", namespace)   // a leftover from a killed run
        try command("ip", "netns", "add", namespace)
        defer { _ = try? command("ip", "netns", "del", namespace) }

        let pool = try NetBufPool(count: 256)
        let small = try NetBufPool(count: 64, roomSize: 512, headroom: 64)
        defer {
            #expect(pool.inUse == 0, "buffers leaked")
            #expect(small.inUse == 0, "buffers leaked")
            try? pool.destroy()
            try? small.destroy()
        }
        // The device (and with it the interface, which is not persistent) goes before the pools.
        do {
            var tap = try TapDevice(name: ifname)
            #expect(tap.interfaceName == ifname)
            try tap.bringUp(rx: RxQueueConfig(descriptors: 32, allocator: pool.rxAllocator), tx: TxQueueConfig(descriptors: 32))
            #expect(tap.rxEventSource(queue: 0) == .fileDescriptor(tap.fileDescriptor))
            try tap.setRxEvents(queue: 0, enabled: true)
            // The interface is down: nothing to read, and no error either.
            let burst = Burst(8)
            #expect(tap.rxBurst(queue: 0, into: burst.prefix(8)) == BurstResult(count: 0, status: .success))
            // Writing to a down interface fails (EIO), as does a frame shorter than an Ethernet
            // header (EINVAL): taken, counted as errors and freed, never offered back forever.
            let held = pool.inUse   // buffers the device keeps ready for RX
            for (i, length) in [60, 10].enumerated() {
                burst[i] = try #require(pool.allocate())
                try burst[i].setLength(length)
            }
            #expect(tap.txBurst(queue: 0, from: burst.prefix(2)) == BurstResult(count: 2, status: [.success, .more]))
            #expect(tap.txQueueStats(0) == QueueStats(packets: 0, bytes: 0, errors: 2))
            #expect(pool.inUse == held)

            // Into the namespace: the open file keeps working there.
            try command("ip", "link", "set", ifname, "netns", namespace)
            try command("ip", "-n", namespace, "link", "set", "lo", "up")
            try command("ip", "-n", namespace, "addr", "add", "192.0.2.1/24", "dev", ifname)
            try command("ip", "-n", namespace, "link", "set", ifname, "up")

            let me = MACAddress("02:00:00:00:00:02")!
            let peerIP = IPv4Address("192.0.2.2")!, kernelIP = IPv4Address("192.0.2.1")!
            let message = "hello from the namespace"
            try command("ip", "netns", "exec", namespace, python, "-c", """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("192.0.2.1", 40000))
                s.sendto(b"\(message)", ("192.0.2.2", 50000))
                """)

            // 1. The kernel asks who has 192.0.2.2.
            let request = try #require(receive(&tap, within: 5) { buf in
                guard let eth = try? EthernetFrame(buf.unsafeBytes), eth.etherType == EtherType.arp,
                      let arp = try? ARPPacket(eth.payload) else { return false }
                return arp.operation == ARPPacket.Operation.request && arp.targetProtocol == peerIP
            }, "no ARP request for 192.0.2.2 arrived")
            let kernelMAC: MACAddress
            do {
                let eth = try EthernetFrame(request.unsafeBytes)
                let arp = try ARPPacket(eth.payload)
                #expect(eth.destination == .broadcast)
                #expect(arp.senderProtocol == kernelIP)
                #expect(arp.senderHardware == eth.source)
                kernelMAC = arp.senderHardware
                // 2. Answer it, in place: the request becomes our reply.
                arp.makeReply(hardware: me, address: peerIP)
                eth.reply(from: me)
            }
            burst[0] = request
            #expect(tap.txBurst(queue: 0, from: burst.prefix(1)) == BurstResult(count: 1, status: [.success, .more]))
            #expect(tap.txQueueStats(0).packets == 1 && tap.txQueueStats(0).errors == 2)

            // 3. Now the datagram the ARP request held back arrives.
            let datagram = try #require(receive(&tap, within: 5) { buf in
                guard let eth = try? EthernetFrame(buf.unsafeBytes), eth.etherType == EtherType.ipv4,
                      let ip = try? IPv4Packet(eth.payload), ip.protocolNumber == IPProtocol.udp,
                      let udp = try? UDPDatagram(ip.payload) else { return false }
                return udp.destinationPort == 50000
            }, "the UDP datagram did not arrive after the ARP reply")
            do {
                let eth = try EthernetFrame(datagram.unsafeBytes)
                let ip = try IPv4Packet(eth.payload)
                let udp = try UDPDatagram(ip.payload)
                #expect(eth.destination == me)
                #expect(eth.source == kernelMAC)
                #expect(ip.source == kernelIP && ip.destination == peerIP)
                #expect(ip.isHeaderChecksumValid)
                #expect(udp.sourcePort == 40000)
                #expect(udp.isChecksumValid(source: kernelIP, destination: peerIP))
                #expect(String(decoding: UnsafeRawBufferPointer(udp.payload), as: UTF8.self) == message)
            }
            datagram.release()
            #expect(tap.rxQueueStats(0).packets >= 2)

            // 4. The other way: a datagram built here reaches a socket in the namespace.
            let receiver = Process()
            receiver.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            receiver.arguments = ["ip", "netns", "exec", namespace, python, "-c", """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("192.0.2.1", 40001))
                s.settimeout(5)
                print("ready", flush=True)
                data, peer = s.recvfrom(2048)
                print(data.decode(), peer[0], peer[1], flush=True)
                """]
            let output = Pipe()
            receiver.standardOutput = output
            try receiver.run()
            let ready = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
            #expect(ready.hasPrefix("ready"))
            let reply = "hello from UKNet"
            let frame = try #require(pool.allocate())
            let replyBytes = Array(reply.utf8)
            try replyBytes.withUnsafeBytes { bytes in try frame.copyIn(bytes) }
            try frame.prependUDPHeaders(UDPFlow(sourceMAC: me, destinationMAC: kernelMAC, source: peerIP, destination: kernelIP,
                                                sourcePort: 50000, destinationPort: 40001))
            burst[0] = frame
            #expect(tap.txBurst(queue: 0, from: burst.prefix(1)).count == 1)
            receiver.waitUntilExit()
            let heard = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(receiver.terminationStatus == 0)
            // (Python may write "ready" and its newline separately.)
            #expect(ready + heard == "ready\n\(reply) 192.0.2.2 50000\n")

            // 5. Frames longer than the RX buffers are counted and dropped; smaller ones still come.
            tap.stop()
            try tap.configure(DeviceConfig())
            try tap.setupRxQueue(0, RxQueueConfig(descriptors: 8, allocator: small.rxAllocator))
            try tap.setupTxQueue(0, TxQueueConfig(descriptors: 8))
            try tap.start()
            #expect(pool.inUse == 0, "setting RX up again gave the old pool's buffers back")
            let errorsBefore = tap.rxQueueStats(0).errors
            try command("ip", "netns", "exec", namespace, python, "-c", """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.sendto(b"x" * 1000, ("192.0.2.2", 50001))
                s.sendto(b"small", ("192.0.2.2", 50002))
                """)
            let smallOne = try #require(receive(&tap, within: 5) { buf in
                guard let eth = try? EthernetFrame(buf.unsafeBytes), let ip = try? IPv4Packet(eth.payload),
                      let udp = try? UDPDatagram(ip.payload) else { return false }
                return udp.destinationPort == 50002
            })
            smallOne.release()
            #expect(tap.rxQueueStats(0).errors == errorsBefore + 1)
            tap.stop()
            #expect(small.inUse == 0, "stop gave the RX buffers back")
        }
    }
}
