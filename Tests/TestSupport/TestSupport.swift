// Helpers every test target uses: a caller-owned burst array and a pool that must be whole again
// when the test is done.
import Foundation
import Testing
import UKNetdev

/// A caller-owned burst array of `NetBuf` handles.
public final class Burst {
    public let storage: UnsafeMutableBufferPointer<NetBuf>
    public init(_ n: Int) {
        storage = .allocate(capacity: n)
        storage.initialize(repeating: NetBuf(header: UnsafeMutableRawPointer(bitPattern: 64)!))
    }
    deinit { storage.deallocate() }
    public func prefix(_ n: Int) -> UnsafeMutableBufferPointer<NetBuf> { UnsafeMutableBufferPointer(rebasing: storage[0..<n]) }
    public func suffix(from i: Int) -> UnsafeMutableBufferPointer<NetBuf> { UnsafeMutableBufferPointer(rebasing: storage[i...]) }
    public subscript(i: Int) -> NetBuf {
        get { storage[i] }
        set { storage[i] = newValue }
    }
}

/// Runs `body` with a fresh pool and checks, afterwards, that every buffer came back and the
/// pool can be torn down.
public func withPool(count: Int = 256, roomSize: Int = 2048, headroom: Int = 128,
                     threading: NetBufPool.Threading = .singleThread,
                     _ body: (NetBufPool) throws -> Void) throws {
    let pool = try NetBufPool(count: count, roomSize: roomSize, headroom: headroom, threading: threading)
    try body(pool)
    #expect(pool.inUse == 0, "buffers leaked")
    #expect(pool.available == count)
    #expect(pool.invalidReleases == 0, "a buffer was released twice")
    try pool.destroy()
}

/// A directory of its own under /tmp (`/tmp/uknet-<purpose>-XXXXXX`), removed with everything
/// in it when this goes away.
public final class TemporaryDirectory {
    public let path: String
    public init(purpose: String = "test") {
        var template = Array("/tmp/uknet-\(purpose)-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }
    public func file(_ name: String) -> String { path + "/" + name }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Two ring endpoints, started: what the generator sends on `a` arrives on `b`.
public func ringPair(slots: Int = 1024) throws -> RingDevice.Pair {
    var ring = RingDevice.pair(slots: slots)
    try ring.a.bringUp(rx: RxQueueConfig(descriptors: slots), tx: TxQueueConfig(descriptors: slots))
    try ring.b.bringUp(rx: RxQueueConfig(descriptors: slots), tx: TxQueueConfig(descriptors: slots))
    return ring
}
