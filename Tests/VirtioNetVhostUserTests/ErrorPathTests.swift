// The connection's failures, provoked with real sockets: nothing at the path, a dead socket
// file, and scripted backends that close, fall silent or answer wrongly.
import Foundation
import Testing
import TestSupport
import UKNetdevLinux
import VirtioNet
import VirtioNetVhostUser
#if canImport(Glibc)
import Glibc
#endif

/// A value a backend thread hands to the test.
final class Box<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// The error `body` throws; fails the test if it throws none, or another kind.
func vhostError(_ body: () throws -> Void) -> VhostUserError? {
    do {
        try body()
        Issue.record("no error thrown")
        return nil
    } catch let error as VhostUserError {
        return error
    } catch {
        Issue.record("not a VhostUserError: \(error)")
        return nil
    }
}

@Suite struct ConnectErrorTests {
    @Test func noSocketFileNamesThePathAndTheBackend() {
        let dir = TemporaryDirectory(purpose: "vhost")
        let path = dir.file("absent.sock")
        let error = vhostError { _ = try VhostUserConnection(path: path) }
        #expect(error == .noSocket(path: path))
        #expect(error?.description.contains(path) == true)
        #expect(error?.description.contains("dpdk-testpmd --vdev net_vhost0,iface=\(path)") == true)
        // A missing directory on the way is the same thing to the user.
        #expect(vhostError { _ = try VhostUserConnection(path: dir.file("no/such.sock")) } == .noSocket(path: dir.file("no/such.sock")))
    }

    @Test func aSocketFileNobodyListensOnIsRefused() {
        let dir = TemporaryDirectory(purpose: "vhost")
        let path = dir.file("stale.sock")
        close(bindUnixSocket(path))   // the file stays, as a crashed backend leaves it
        let error = vhostError { _ = try VhostUserConnection(path: path) }
        #expect(error == .connectionRefused(path: path))
        #expect(error?.description.contains(path) == true)
    }

    @Test func aRegularFileIsNotASocket() throws {
        let dir = TemporaryDirectory(purpose: "vhost")
        let path = dir.file("plain")
        try Data("x".utf8).write(to: URL(fileURLWithPath: path))
        #expect(vhostError { _ = try VhostUserConnection(path: path) } == .notASocket(path: path))
    }

    @Test func aPathLongerThanSunPathIsRefusedBeforeConnecting() {
        let path = "/tmp/" + String(repeating: "x", count: 120) + ".sock"
        let error = vhostError { _ = try VhostUserConnection(path: path) }
        #expect(error == .pathTooLong(path: path, limit: 107))
        #expect(error?.description.contains("at most 107") == true)
    }
}

@Suite struct BackendMisbehaviourTests {
    @Test func aBackendThatClosesGivesDisconnected() throws {
        let dir = TemporaryDirectory(purpose: "vhost")
        let backend = FakeBackend(path: dir.file("b.sock")) { _ in }
        var connection = try VhostUserConnection(path: backend.path)
        #expect(backend.finish())
        let alive = connection.isAlive()
        #expect(!alive)
        let error = vhostError { _ = try connection.getFeatures() }
        #expect(error == .disconnected(path: backend.path))
        #expect(error?.description == "vhost-user backend at \(backend.path) closed the connection")
        // And it stays that way.
        #expect(vhostError { try connection.setOwner() } == .disconnected(path: backend.path))
    }

    @Test func aBackendThatClosesMidReplyGivesDisconnected() throws {
        let dir = TemporaryDirectory(purpose: "vhost")
        let backend = FakeBackend(path: dir.file("b.sock")) { peer in
            guard let m = peer.receive() else { return }
            peer.send(request: m.request, payload: [1, 2, 3, 4], size: 8)   // announces 8, sends 4
        }
        var connection = try VhostUserConnection(path: backend.path)
        #expect(vhostError { _ = try connection.getFeatures() } == .disconnected(path: backend.path))
    }

    @Test func aSilentBackendTimesOutWithinTheConfiguredTime() throws {
        let dir = TemporaryDirectory(purpose: "vhost")
        let backend = FakeBackend(path: dir.file("b.sock")) { peer in
            while peer.receive() != nil {}   // reads, never answers, until the frontend goes
        }
        var connection = try VhostUserConnection(path: backend.path, replyTimeout: .milliseconds(300))
        let alive = connection.isAlive()
        #expect(alive)
        let start = Processes.monotonic()
        let error = vhostError { _ = try connection.getFeatures() }
        let elapsed = Processes.monotonic() - start
        #expect(error == .timeout(request: .getFeatures, path: backend.path, after: .milliseconds(300)))
        #expect(error?.description.contains("did not answer VHOST_USER_GET_FEATURES") == true)
        #expect(elapsed >= 0.25 && elapsed < 2, "timed out after \(elapsed) s")
        // A late reply could still arrive: the stream is out of step, and says so.
        if case .unusable(let path, _)? = vhostError({ _ = try connection.getProtocolFeatures() }) {
            #expect(path == backend.path)
        } else {
            Issue.record("a request after a timeout was not refused as unusable")
        }
    }

    /// A backend that answers GET_FEATURES with `reply`; the error the frontend reports.
    func malformedReply(_ reply: @escaping @Sendable (BackendPeer, UInt32) -> Void) throws -> VhostUserError? {
        let dir = TemporaryDirectory(purpose: "vhost")
        let backend = FakeBackend(path: dir.file("b.sock")) { peer in
            guard let m = peer.receive() else { return }
            reply(peer, m.request)
            _ = peer.receive()   // until the frontend closes
        }
        var connection = try VhostUserConnection(path: backend.path, replyTimeout: .seconds(2))
        return vhostError { _ = try connection.getFeatures() }
    }

    @Test func aReplyToAnotherRequestIsAProtocolError() throws {
        let error = try malformedReply { peer, _ in peer.sendU64(request: 2, 0) }
        guard case .malformedReply(.getFeatures, _, .wrongRequest(received: 2))? = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(error!.description.contains("malformed reply to VHOST_USER_GET_FEATURES: it answers VHOST_USER_SET_FEATURES instead"))
    }

    @Test func aShortPayloadIsAProtocolError() throws {
        let error = try malformedReply { peer, request in peer.send(request: request, payload: [0, 0, 0, 0]) }
        guard case .malformedReply(.getFeatures, _, .wrongPayloadSize(received: 4, expected: 8))? = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(error!.description.contains("its payload is 4 bytes, expected 8"))
    }

    @Test func aReplyWithoutTheReplyFlagOrVersionIsAProtocolError() throws {
        let noFlag = try malformedReply { peer, request in peer.sendU64(request: request, 0, flags: 0x1) }
        guard case .malformedReply(_, _, .notMarkedAsReply(flags: 0x1))? = noFlag else {
            Issue.record("got \(String(describing: noFlag))")
            return
        }
        let version2 = try malformedReply { peer, request in peer.sendU64(request: request, 0, flags: 0x2 | 0x4) }
        guard case .malformedReply(_, _, .unsupportedVersion(flags: 0x6))? = version2 else {
            Issue.record("got \(String(describing: version2))")
            return
        }
    }

    @Test func aHugeAnnouncedPayloadIsRefusedWithoutReadingIt() throws {
        let error = try malformedReply { peer, request in peer.send(request: request, payload: [], size: 0xFFFF_FFFF) }
        guard case .malformedReply(_, _, .wrongPayloadSize(received: 0xFFFF_FFFF, expected: 8))? = error else {
            Issue.record("got \(String(describing: error))")
            return
        }
    }

    @Test func replyAckAsksForAcknowledgementsAndReportsANack() throws {
        let dir = TemporaryDirectory(purpose: "vhost")
        let seenFlags = Box<[UInt32]>([])
        let backend = FakeBackend(path: dir.file("b.sock")) { peer in
            while let m = peer.receive() {
                seenFlags.value.append(m.flags)
                guard m.flags & 0x8 != 0 else { continue }
                // SET_OWNER is acknowledged, SET_FEATURES refused.
                peer.sendU64(request: m.request, m.request == 3 ? 0 : 1)
            }
        }
        var connection = try VhostUserConnection(path: backend.path, replyTimeout: .seconds(2))
        try connection.setProtocolFeatures(VhostUserProtocolFeatures.replyAck)
        try connection.setOwner()
        let error = vhostError { try connection.setFeatures(VirtioFeatures.version1.rawValue) }
        #expect(error == .rejected(request: .setFeatures, path: backend.path, status: 1))
        _ = consume connection
        #expect(backend.finish())
        // SET_PROTOCOL_FEATURES itself goes without need_reply; what follows carries it.
        #expect(seenFlags.value == [0x1, 0x9, 0x9])
    }
}

@Suite struct MessageTests {
    @Test func memoryTableAndVringFilesArriveWithTheirDescriptors() throws {
        let dir = TemporaryDirectory(purpose: "vhost")
        let memory = try SharedMemory(size: 1 << 20)
        let pattern = memory.allocate(bytes: 64, alignment: 64)!
        for i in 0..<64 { pattern[i] = UInt8(i ^ 0x5A) }
        let patternOffset = Int(bitPattern: pattern.baseAddress!) - Int(bitPattern: memory.base)

        struct Seen: Sendable {
            var regions: [VhostUserMemoryRegion] = []
            var tableFDs = 0
            var bytesThroughBackendMapping: [UInt8] = []
            var kick: (payload: [UInt8], fds: Int)?
            var call: (payload: [UInt8], fds: Int)?
        }
        let seen = Box(Seen())
        let backend = FakeBackend(path: dir.file("b.sock")) { peer in
            while let m = peer.receive() {
                defer { for fd in m.fds { close(fd) } }
                switch m.request {
                case 5:
                    let regions = (try? VhostUserMemoryTable.decode(m.payload)) ?? []
                    var s = seen.value
                    s.regions = regions
                    s.tableFDs = m.fds.count
                    // Map the descriptor as a backend does and read what the frontend wrote.
                    if let region = regions.first, let fd = m.fds.first,
                       let p = mmap(nil, Int(region.size), PROT_READ, MAP_SHARED, fd, off_t(region.mmapOffset)), p != MAP_FAILED {
                        let bytes = UnsafeRawBufferPointer(start: p + patternOffset, count: 64)
                        s.bytesThroughBackendMapping = Array(bytes)
                        munmap(p, Int(region.size))
                    }
                    seen.value = s
                case 12: seen.value.kick = (m.payload, m.fds.count)
                case 13: seen.value.call = (m.payload, m.fds.count)
                default: break
                }
            }
        }
        var connection = try VhostUserConnection(path: backend.path)
        try connection.setMemTable([memory.vhostUserRegion])
        let kick = try EventFD()
        try connection.setVringKick(index: 1, fd: kick.fd)
        try connection.setVringCall(index: 1, fd: nil)
        _ = consume connection
        #expect(backend.finish())

        let s = seen.value
        let base = UInt64(UInt(bitPattern: memory.base))
        #expect(s.regions == [VhostUserMemoryRegion(guestPhysicalAddress: base, size: UInt64(1 << 20), userspaceAddress: base, mmapOffset: 0, fd: -1)])
        #expect(s.tableFDs == 1)
        #expect(s.bytesThroughBackendMapping == (0..<64).map { UInt8($0 ^ 0x5A) })
        #expect(s.kick?.payload == [1, 0, 0, 0, 0, 0, 0, 0] && s.kick?.fds == 1)
        #expect(s.call?.payload == [1, 1, 0, 0, 0, 0, 0, 0] && s.call?.fds == 0, "no fd: bit 8 set, nothing attached")
    }

    @Test func encodingIsLittleEndianAndExact() throws {
        let message = VhostUserMessage(request: .setVringAddr, payload: VhostUserVringAddress(
            index: 1, flags: 0, descriptorTable: 0x1122_3344_5566_7788, usedRing: 2, availableRing: 3, log: 0).encoded())
        let bytes = message.encoded()
        #expect(bytes.count == 12 + 40)
        #expect(Array(bytes[0..<12]) == [9, 0, 0, 0, 1, 0, 0, 0, 40, 0, 0, 0])
        #expect(Array(bytes[12..<24]) == [1, 0, 0, 0, 0, 0, 0, 0, 0x88, 0x77, 0x66, 0x55])
        #expect(try VhostUserVringAddress.decode(Array(bytes[12...])) == VhostUserVringAddress(
            index: 1, flags: 0, descriptorTable: 0x1122_3344_5566_7788, usedRing: 2, availableRing: 3, log: 0))
        #expect(VhostUserMemoryTable.encode([VhostUserMemoryRegion(guestPhysicalAddress: 1, size: 2, userspaceAddress: 3, mmapOffset: 4, fd: 9)]).count == 8 + 32)
        #expect(throws: VhostUserMalformedReply.truncated(needed: 8, available: 7)) { try VhostUserU64.decode([0, 0, 0, 0, 0, 0, 0]) }
        #expect(throws: VhostUserMalformedReply.tooManyRegions(9)) { try VhostUserMemoryTable.decode([9, 0, 0, 0, 0, 0, 0, 0]) }
        #expect(VhostUserRequest(rawValue: 99).description == "vhost-user request 99")
        #expect(VirtioFeatures(rawValue: 0x1_4000_8000).description == "MRG_RXBUF PROTOCOL_FEATURES VERSION_1")
    }

    @Test func sharedMemoryIsABoundedBumpAllocator() throws {
        let memory = try SharedMemory(size: 10_000)
        #expect(memory.size == 12_288, "rounded up to whole pages")
        let a = memory.allocate(bytes: 3, alignment: 1)!
        let b = memory.allocate(bytes: 100, alignment: 16)!
        #expect(UInt(bitPattern: b.baseAddress!) % 16 == 0)
        #expect(b.baseAddress! >= a.baseAddress! + 3)
        #expect(b.allSatisfy { $0 == 0 })
        #expect(memory.contains(b.baseAddress!, length: 100))
        #expect(memory.contains(memory.base, length: memory.size))
        #expect(!memory.contains(memory.base, length: memory.size + 1))
        #expect(!memory.contains(memory.base - 1, length: 1))
        #expect(memory.allocate(bytes: memory.size, alignment: 1) == nil, "too big: nil, nothing taken")
        let rest = memory.allocate(bytes: memory.remaining, alignment: 1)!
        #expect(rest.baseAddress! + rest.count == memory.base + memory.size)
        #expect(memory.allocate(bytes: 1, alignment: 1) == nil)
        #expect(memory.allocate(bytes: Int.max, alignment: 4096) == nil)
        #expect(throws: SharedMemoryError.invalidSize(0)) { _ = try SharedMemory(size: 0) }
    }
}

/// A backend without a feature the driver cannot work without: refused at set-up with a
/// message that names the backend and the feature, before any memory is handed over.
@Suite struct RequiredFeatureTests {
    @Test func aBackendWithoutVersion1IsRefusedClearly() throws {
        let dir = TemporaryDirectory(purpose: "vhost")
        let backend = FakeBackend(path: dir.file("legacy.sock")) { peer in
            // A legacy-only backend: MRG_RXBUF, no VERSION_1, no protocol features.
            while let m = peer.receive() {
                if m.request == 1 { peer.sendU64(request: 1, VirtioFeatures.mrgRxbuf.rawValue) }   // GET_FEATURES
                if m.request == 5 { return }   // SET_MEM_TABLE: too far, the driver must stop before it
            }
        }
        let memory = try PacketMemory(size: 8 << 20)
        var message = ""
        do {
            _ = try VhostUserNetDevice.vhostUser(path: backend.path, memory: memory)
            Issue.record("a backend without VERSION_1 was accepted")
        } catch {
            message = "\(error)"
        }
        #expect(message == "vhost-user backend at \(backend.path): the device does not offer VERSION_1, which this driver requires",
                "\(message)")
        #expect(backend.finish())
    }
}
