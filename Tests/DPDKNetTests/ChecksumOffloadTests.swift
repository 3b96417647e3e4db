// Checksum offload across two real drivers: DPDK's net_virtio_user (a DPDKDevice in this process)
// and our VirtioNet over vhost-user, joined by testpmd's io switch between two net_vhost ports.
import DPDKNet
import Foundation
import Testing
import TestSupport
import UKNetdev
import VirtioNetVhostUser

@Suite(.serialized, .enabled(if: TestPMD.isAvailable, "dpdk-testpmd is not installed (Debian package dpdk-dev; make test installs it)"))
struct ChecksumOffloadTests {
    static let flow = UDPFlow(sourceMAC: MACAddress(2, 0, 0, 0, 0, 1), destinationMAC: MACAddress(2, 0, 0, 0, 0, 2),
                              source: IPv4Address(192, 0, 2, 1), destination: IPv4Address(192, 0, 2, 2),
                              sourcePort: 4000, destinationPort: 5000)

    /// A UDP frame whose checksums the device is asked to compute: the UDP field holds only the
    /// pseudo-header's sum (virtio's and DPDK's rule), the IPv4 header checksum is zero.
    static func frameWithOffloadedChecksums(_ pool: NetBufPool, payload: Int, tag: UInt8) throws -> NetBuf {
        let buf = try #require(pool.allocate())
        try buf.setLength(payload)
        for i in 0..<payload { buf.data.storeBytes(of: tag &+ UInt8(truncatingIfNeeded: i), toByteOffset: i, as: UInt8.self) }
        try buf.prependUDPHeaders(flow, udpChecksum: false)
        buf.data.storeBytes(of: UInt16(0), toByteOffset: 24, as: UInt16.self)
        let pseudo = InternetChecksum.pseudoHeaderSum(source: flow.source, destination: flow.destination, protocol: 17, length: 8 + payload)
        buf.data.storeBytes(of: UInt16(truncatingIfNeeded: InternetChecksum.fold(pseudo)).bigEndian, toByteOffset: 40, as: UInt16.self)
        buf.checksumRequest = (start: 34, offset: 6)
        buf.flags = OffloadFlags([.needsChecksum, .needsIPv4Checksum])
        return buf
    }

    /// What arrived: both checksums as a wire would carry them, the payload intact, flagged valid.
    static func checkArrived(_ buf: NetBuf, payload: Int, tag: UInt8, _ side: String) {
        let bytes = UnsafeMutableRawBufferPointer(start: buf.data, count: buf.length)
        guard let ip = try? IPv4Packet(UnsafeMutableRawBufferPointer(rebasing: bytes[14...])),
              let udp = try? UDPDatagram(ip.payload) else {
            Issue.record("\(side): not an IPv4/UDP frame (\(buf.length) bytes)")
            return
        }
        #expect(ip.isHeaderChecksumValid, "\(side): the IPv4 header checksum was not computed")
        #expect(udp.isChecksumValid(source: flow.source, destination: flow.destination), "\(side): the UDP checksum was not completed")
        #expect(buf.flags.contains(.checksumValid), "\(side): not flagged checksumValid")
        #expect(udp.payload.count == payload)
        #expect(udp.payload.enumerated().allSatisfy { $0.element == tag &+ UInt8(truncatingIfNeeded: $0.offset) }, "\(side): payload changed")
    }

    /// TX offload on each side, RX completion on the other. testpmd's net_vhost ports keep DPDK's
    /// legacy offload flags, so a NEEDS_CSUM frame leaves the switch still NEEDS_CSUM (what a host
    /// switch between two guests does); the receiving driver completes it in software.
    @Test func offloadedChecksumsArriveCompleteBothWays() throws {
        try InProcessEAL.started.get()
        let dir = TemporaryDirectory(purpose: "dpdk-csum")
        let dpdkSock = dir.file("dpdk.sock"), virtioSock = dir.file("virtio.sock")
        let testpmd = try TestPMD(vdevs: ["net_vhost0,iface=\(dpdkSock),legacy-ol-flags=1", "net_vhost1,iface=\(virtioSock),legacy-ol-flags=1"],
                                  testpmdArguments: ["--forward-mode=io"], forwardingCPU: 1, directory: dir)
        defer { _ = testpmd.stop() }
        #expect(testpmd.waitForLog("binding succeeded", count: 2, timeout: 20), "\(testpmd.log.suffix(2000))")

        let dpdkPool = try DPDK.makePool(count: 1024)
        let memory = try PacketMemory(size: 32 << 20)
        let virtioPool = try memory.makePool(count: 1024)
        let port = try DPDK.attach(device: "net_virtio_user7,path=\(dpdkSock)")
        var dpdk = try DPDKDevice(port: port)
        #expect(dpdk.info.features.contains(.txChecksumOffload) && dpdk.info.features.contains(.rxChecksumOffload),
                "net_virtio_user over net_vhost offers L4 checksum offload: \(dpdk.info.features)")
        try dpdk.bringUp(rx: RxQueueConfig(descriptors: 256, allocator: dpdkPool.rxAllocator), tx: TxQueueConfig(descriptors: 256))
        var virtio = try VhostUserNetDevice.vhostUser(path: virtioSock, memory: memory)
        #expect(virtio.info.features.contains(.txChecksumOffload) && virtio.info.features.contains(.rxChecksumOffload))
        try virtio.bringUp(rx: RxQueueConfig(descriptors: 256, allocator: virtioPool.rxAllocator), tx: TxQueueConfig(descriptors: 256))

        let burst = Burst(32)
        let count = 64
        // DPDK -> VirtioNet, then VirtioNet -> DPDK: frames of several sizes, odd ones included.
        func send<D: NetDevice & ~Copyable, R: NetDevice & ~Copyable>(from tx: inout D, pool: NetBufPool, to rx: inout R,
                                                                     _ side: String) throws {
            for i in 0..<count {
                let one = Burst(1)
                one[0] = try Self.frameWithOffloadedChecksums(pool, payload: 18 + i * 7, tag: UInt8(i))
                let deadline = Processes.monotonic() + 5
                while tx.txBurst(queue: 0, from: one.storage).count == 0 {
                    guard Processes.monotonic() < deadline else { one[0].release(); Issue.record("\(side): TX stuck"); return }
                }
            }
            var got = 0
            let deadline = Processes.monotonic() + 10
            while got < count && Processes.monotonic() < deadline {
                let r = rx.rxBurst(queue: 0, into: burst.storage)
                for j in 0..<r.count {
                    Self.checkArrived(burst[j], payload: 18 + (got + j) * 7, tag: UInt8(got + j), side)
                }
                NetBuf.releaseBulk(burst.prefix(r.count))
                got += r.count
                _ = tx.txBurst(queue: 0, from: burst.prefix(0))   // reclaim sent buffers
            }
            #expect(got == count, "\(side): \(got) of \(count) frames arrived; testpmd: \(testpmd.log.suffix(3000))")
        }
        // testpmd's net_vhost drops what arrives before both of its sides are ready: a probe goes
        // each way until one gets through, then the counted frames.
        func probe<D: NetDevice & ~Copyable, R: NetDevice & ~Copyable>(from tx: inout D, pool: NetBufPool, to rx: inout R) -> Bool {
            let deadline = Processes.monotonic() + 15
            while Processes.monotonic() < deadline {
                if let frame = pool.allocate() {
                    try? frame.setLength(60)
                    burst[0] = frame
                    if tx.txBurst(queue: 0, from: burst.prefix(1)).count == 0 { frame.release() }
                }
                let until = Processes.monotonic() + 0.05
                while Processes.monotonic() < until {
                    let r = rx.rxBurst(queue: 0, into: burst.storage)
                    NetBuf.releaseBulk(burst.prefix(r.count))
                    if r.count > 0 {
                        usleep(100_000)   // the probes still on their way
                        let rest = rx.rxBurst(queue: 0, into: burst.storage)
                        NetBuf.releaseBulk(burst.prefix(rest.count))
                        return true
                    }
                }
            }
            return false
        }
        #expect(probe(from: &dpdk, pool: dpdkPool, to: &virtio), "nothing from DPDK reached VirtioNet: \(testpmd.log.suffix(1500))")
        #expect(probe(from: &virtio, pool: virtioPool, to: &dpdk), "nothing from VirtioNet reached DPDK: \(testpmd.log.suffix(1500))")
        try send(from: &dpdk, pool: dpdkPool, to: &virtio, "DPDK TX -> VirtioNet RX")
        try send(from: &virtio, pool: virtioPool, to: &dpdk, "VirtioNet TX -> DPDK RX")
        var completed: UInt64 = 0
        dpdk.extendedStats { name, _, value in if "\(name)" == "rx_checksums_completed" { completed = value } }
        #expect(completed == UInt64(count), "DPDK's side completed every partial checksum")
        virtio.stop()
        dpdk.stop()
        #expect(dpdkPool.inUse == 0 && virtioPool.inUse == 0, "buffers not back: DPDK \(dpdkPool.inUse), VirtioNet \(virtioPool.inUse)")
    }
}
