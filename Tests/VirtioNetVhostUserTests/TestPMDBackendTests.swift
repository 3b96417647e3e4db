// The frontend against a real backend: DPDK's net_vhost in dpdk-testpmd, which logs every
// vhost-user message it reads, says when the device is ready and when its peer went away.
import Foundation
import Testing
import TestSupport
import UKNetdevLinux
import VirtioNet
import VirtioNetVhostUser
#if canImport(Glibc)
import Glibc
#endif

/// Connects to testpmd's vhost-user socket once it listens (it logs "binding succeeded" just
/// before listen(2), so a refusal right after is retried briefly).
func connectToTestPMD(_ testpmd: TestPMD, path: String) throws -> VhostUserConnection {
    #expect(testpmd.waitForLog("(\(path)) binding succeeded", timeout: 15), "testpmd did not create its socket:\n\(testpmd.log)")
    let deadline = Processes.monotonic() + 3
    while true {
        let failure: VhostUserError
        do {
            return try VhostUserConnection(path: path)
        } catch {
            failure = error   // (a `catch .case where` per case here crashed the 6.3.1 compiler)
        }
        let early = failure == .connectionRefused(path: path) || failure == .noSocket(path: path)
        guard early && Processes.monotonic() < deadline else { throw failure }
        usleep(20_000)
    }
}

/// A split virtqueue's three parts, zeroed, in the shared memory (no ring logic: just room).
struct RingMemory {
    var desc: UInt64
    var avail: UInt64
    var used: UInt64
    init(size: Int, in memory: SharedMemory) throws {
        let d = try #require(memory.allocate(bytes: 16 * size, alignment: 16))
        let a = try #require(memory.allocate(bytes: 6 + 2 * size, alignment: 2))
        let u = try #require(memory.allocate(bytes: 6 + 8 * size, alignment: 4))
        desc = memory.deviceAddress(of: d.baseAddress!)
        avail = memory.deviceAddress(of: a.baseAddress!)
        used = memory.deviceAddress(of: u.baseAddress!)
    }
}

@Suite(.serialized, .enabled(if: TestPMD.isAvailable, "dpdk-testpmd is not installed (Debian package dpdk-dev; make test installs it)"))
struct TestPMDBackendTests {
    @Test func fullSetUpMakesTheDeviceReadyAndClosingIsSeen() throws {
        let dir = TemporaryDirectory(purpose: "vhost")
        let path = dir.file("vhost.sock")
        let testpmd = try TestPMD(vdevs: ["net_vhost0,iface=\(path)"], testpmdArguments: ["--forward-mode=rxonly"], directory: dir)
        defer { testpmd.stop() }
        var connection = try connectToTestPMD(testpmd, path: path)

        let features = try connection.getFeatures()
        #expect(features & VirtioFeatures.version1.rawValue != 0)
        #expect(features & VirtioFeatures.mrgRxbuf.rawValue != 0)
        #expect(features & VirtioFeatures.vhostUserProtocolFeatures.rawValue != 0)
        let protocolFeatures = try connection.getProtocolFeatures()
        #expect(protocolFeatures & VhostUserProtocolFeatures.replyAck != 0)
        // REPLY_ACK on: every message below is acknowledged, so a refusal shows up as an error
        // at the request that caused it.
        try connection.setProtocolFeatures(protocolFeatures & (VhostUserProtocolFeatures.multiqueue | VhostUserProtocolFeatures.replyAck))
        try connection.setOwner()
        let queues = try connection.getQueueNum()
        #expect(queues >= 1)
        try connection.setFeatures(VirtioFeatures.version1.rawValue | VirtioFeatures.mrgRxbuf.rawValue | VirtioFeatures.vhostUserProtocolFeatures.rawValue)
        print("net_vhost offers features 0x\(String(features, radix: 16)) (\(VirtioFeatures(rawValue: features).description)), "
              + "protocol features 0x\(String(protocolFeatures, radix: 16)) (\(VhostUserProtocolFeatures.describe(protocolFeatures))), "
              + "\(queues) queue(s)")

        let memory = try SharedMemory(size: 16 << 20)
        try connection.setMemTable([memory.vhostUserRegion])
        let ringSize = 256
        var eventFDs: [EventFD] = []
        for index: UInt32 in [0, 1] {
            let ring = try RingMemory(size: ringSize, in: memory)
            let kick = try EventFD()
            let call = try EventFD()
            eventFDs += [kick, call]
            try connection.setVringNum(index: index, num: UInt32(ringSize))
            try connection.setVringBase(index: index, base: 0)
            try connection.setVringAddr(index: index, desc: ring.desc, used: ring.used, avail: ring.avail)
            try connection.setVringKick(index: index, fd: kick.fd)
            try connection.setVringCall(index: index, fd: call.fd)
            try connection.setVringEnable(index: index, enabled: true)
        }
        let prefix = "VHOST_CONFIG: (\(path)) "
        #expect(testpmd.waitForLog(prefix + "virtio is now ready for processing.", timeout: 5), "not ready:\n\(testpmd.log)")
        let alive = connection.isAlive()
        #expect(alive)

        for (message, count) in [("GET_FEATURES", 1), ("GET_PROTOCOL_FEATURES", 1), ("SET_PROTOCOL_FEATURES", 1),
                                 ("SET_OWNER", 1), ("GET_QUEUE_NUM", 1), ("SET_FEATURES", 1), ("SET_MEM_TABLE", 1),
                                 ("SET_VRING_NUM", 2), ("SET_VRING_BASE", 2), ("SET_VRING_ADDR", 2),
                                 ("SET_VRING_KICK", 2), ("SET_VRING_CALL", 2), ("SET_VRING_ENABLE", 2)] {
            #expect(testpmd.occurrences(of: prefix + "read message VHOST_USER_\(message)\n") == count, "VHOST_USER_\(message)")
        }

        _ = consume connection
        #expect(testpmd.waitForLog(prefix + "vhost peer closed", timeout: 5), "no disconnect seen:\n\(testpmd.log)")
        #expect(testpmd.stop() == .code(0))
        #expect(testpmd.statistics[0] == TestPMDPortStatistics(rxPackets: 0, txPackets: 0))
    }

    @Test func aBackendThatDiesIsNoticed() throws {
        let dir = TemporaryDirectory(purpose: "vhost")
        let path = dir.file("vhost.sock")
        let testpmd = try TestPMD(vdevs: ["net_vhost0,iface=\(path)"], testpmdArguments: ["--forward-mode=rxonly"],
                                  forwardingCPU: 0, directory: dir)
        defer { testpmd.stop() }
        var connection = try connectToTestPMD(testpmd, path: path)
        _ = try connection.getFeatures()
        var alive = connection.isAlive()
        #expect(alive)

        kill(testpmd.pid, SIGKILL)   // no goodbye: as a crash looks
        testpmd.stop()
        alive = connection.isAlive()
        #expect(!alive)
        #expect(throws: VhostUserError.disconnected(path: path)) { _ = try connection.getFeatures() }
    }
}

@Suite struct TestPMDStatisticsTests {
    @Test func finalForwardStatisticsWinOverPeriodicOnes() {
        let log = """
              ######################## NIC statistics for port 0  ########################
              RX-packets: 10         RX-missed: 0          RX-bytes:  640
              TX-packets: 3          TX-errors: 0          TX-bytes:  0
              ############################################################################
              ######################## NIC statistics for port 1  ########################
              RX-packets: 7          RX-missed: 0          RX-bytes:  640
              TX-packets: 8          TX-errors: 0          TX-bytes:  0
              ############################################################################
              ---------------------- Forward statistics for port 0  ----------------------
              RX-packets: 12             RX-dropped: 0             RX-total: 12
              TX-packets: 4              TX-dropped: 0             TX-total: 4
              ----------------------------------------------------------------------------
              +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
              RX-packets: 99             RX-dropped: 0             RX-total: 99
              TX-packets: 99             TX-dropped: 0             TX-total: 99
            """
        #expect(TestPMD.parseStatistics(log) == [0: TestPMDPortStatistics(rxPackets: 12, txPackets: 4),
                                                 1: TestPMDPortStatistics(rxPackets: 7, txPackets: 8)])
    }
}
