// Helpers every test target uses: a caller-owned burst array and a pool that must be whole again
// when the test is done.
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
                     _ body: (NetBufPool) throws -> Void) throws {
    let pool = try NetBufPool(count: count, roomSize: roomSize, headroom: headroom)
    try body(pool)
    #expect(pool.inUse == 0, "buffers leaked")
    #expect(pool.available == count)
    try pool.destroy()
}
