import Testing
import TestSupport
import UKNetdev

/// Double releases are caught, and buffers over memory another library owns go back to it.
@Suite struct BufferOwnershipTests {
    @Test func aDoubleReleaseIsCaughtAndTheStackStaysRight() throws {
        let pool = try NetBufPool(count: 2)
        let a = try #require(pool.allocate())
        let b = try #require(pool.allocate())
        a.release()
        a.release()   // the bug under test
        #expect(pool.invalidReleases == 1)
        #expect(pool.available == 1, "a pool of 2 with one buffer out has 1 free, not 2")
        let again = try #require(pool.allocate())
        #expect(again == a)
        #expect(pool.allocate() == nil, "the same buffer is not handed out twice")
        again.release()
        b.release()
        #expect(pool.available == 2)
        #expect(pool.invalidReleases == 1)
        try pool.destroy()
    }

    @Test func aDoubleReleaseInBulkIsCaught() throws {
        let pool = try NetBufPool(count: 4)
        let burst = Burst(4)
        #expect(pool.allocateBulk(into: burst.storage) == 4)
        let kept = burst[1]
        burst[1] = burst[0]   // the same buffer twice in one burst
        NetBuf.releaseBulk(burst.storage)
        #expect(pool.invalidReleases == 1)
        #expect(pool.available == 3)
        NetBuf.releaseBulk(burst.prefix(1))   // and once more, alone
        #expect(pool.invalidReleases == 2)
        #expect(pool.available == 3, "the free stack never holds a buffer twice")
        var seen: Set<NetBuf> = []
        while let b = pool.allocate() { #expect(seen.insert(b).inserted) }
        #expect(seen.count == 3)
        for b in seen { b.release() }
        kept.release()
        #expect(pool.available == 4)
        try pool.destroy()
    }

    @Test func aReleaseBeyondTheStackIsNeverWritten() throws {
        let pool = try NetBufPool(count: 1)
        let b = try #require(pool.allocate())
        b.release()
        // A header that claims to be in use while the stack is full: only a forged or raced
        // buffer looks like this. Its release must not write past the stack.
        b.retain()   // refcount 0 -> 1, as a racing releaser would see it
        b.release()
        #expect(pool.invalidReleases == 1)
        #expect(pool.available == 1)
        try pool.destroy()
    }

    @Test func aHandleKeptPastDestroyIsHarmless() throws {
        let pool = try NetBufPool(count: 2)
        let copy = pool
        let b = try #require(pool.allocate())
        #expect(throws: NetBufPoolError.buffersInUse(1)) { try copy.destroy() }
        b.release()
        try pool.destroy()
        #expect(copy.isDestroyed)
        #expect(copy.allocate() == nil)
        #expect(copy.available == 0 && copy.capacity == 0)
        let burst = Burst(4)
        #expect(copy.allocateBulk(into: burst.storage) == 0)
        try copy.destroy()   // twice: nothing happens
        #expect(copy.invalidReleases == 0)
    }

    @Test func aRetainedBufferIsFreedOnItsLastReleaseOnly() throws {
        try withPool(count: 1) { pool in
            let b = try #require(pool.allocate())
            #expect(b.isWritable)
            b.retain()
            #expect(!b.isWritable, "a second holder can see the bytes")
            b.release()
            #expect(pool.available == 0)
            #expect(b.isWritable)
            b.release()
            #expect(pool.available == 1)
        }
    }

    /// A stand-in for the other library: counts the releases of each of its objects.
    final class ForeignMemory {
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
        var released: [UnsafeMutableRawPointer?] = []
        var release: ExternalRelease {
            ExternalRelease(context: Unmanaged.passUnretained(self).toOpaque()) { context, token in
                Unmanaged<ForeignMemory>.fromOpaque(context!).takeUnretainedValue().released.append(token)
            }
        }
        deinit { bytes.deallocate() }
    }

    @Test func externalMemoryIsUsedInPlaceAndGivenBackOnce() throws {
        let foreign = ForeignMemory()
        let headers = try NetBufPool.headersOnly(count: 2)
        let token = UnsafeMutableRawPointer(bitPattern: 0x1234)
        for i in 0..<64 { foreign.bytes.storeBytes(of: UInt8(i), toByteOffset: 128 + i, as: UInt8.self) }
        let b = try headers.attach(room: foreign.bytes, capacity: 2048, dataOffset: 128, length: 64,
                                   deviceAddress: 0x8000_0000, release: foreign.release, token: token)
        #expect(b.isExternal)
        #expect(b.externalToken == token)
        #expect(b.data == foreign.bytes + 128, "no copy: the data is the foreign memory")
        #expect(b.length == 64 && b.packetLength == 64 && b.headroom == 128)
        #expect(b.deviceAddress == 0x8000_0000 + 128)
        #expect(b.isWritable)
        try b.prepend(14)
        #expect(b.deviceAddress == 0x8000_0000 + 114)
        #expect(b.unsafeBytes[14] == 0)

        // A clone (from an ordinary pool) reads the same memory and keeps it alive.
        try withPool(count: 1) { clones in
            let c = try #require(b.clone(using: clones))
            #expect(c.data == b.data)
            #expect(c.deviceAddress == b.deviceAddress)
            #expect(!b.isWritable && !c.isWritable)
            #expect(throws: NetBufError.readOnlyClone) { try c.prepend(1) }
            b.release()
            #expect(foreign.released.isEmpty, "the clone still reads it")
            c.release()
        }
        #expect(foreign.released == [token], "given back exactly once, on the last release")
        #expect(headers.available == 2)
        try headers.destroy()
    }

    @Test func readOnlyExternalMemoryRefusesWrites() throws {
        let foreign = ForeignMemory()
        let headers = try NetBufPool.headersOnly(count: 1)
        let b = try headers.attach(room: foreign.bytes, capacity: 100, dataOffset: 20, length: 50,
                                   deviceAddress: 0, writable: false, release: foreign.release, token: nil)
        #expect(!b.isWritable)
        #expect(throws: NetBufError.readOnlyExternal) { try b.prepend(1) }
        #expect(throws: NetBufError.readOnlyExternal) { try b.append(1) }
        #expect(throws: NetBufError.readOnlyExternal) { try b.withMutableBytes { _ in } }
        try b.strip(10)   // moving the window over read-only data writes nothing
        #expect(b.length == 40)
        b.release()
        #expect(foreign.released.count == 1)
        try headers.destroy()
    }

    @Test func attachRefusesBadGeometryAndAnEmptyPool() throws {
        let foreign = ForeignMemory()
        let headers = try NetBufPool.headersOnly(count: 1)
        #expect(throws: NetBufError.invalidAttachment(capacity: 100, dataOffset: 60, length: 50)) {
            _ = try headers.attach(room: foreign.bytes, capacity: 100, dataOffset: 60, length: 50, deviceAddress: 0,
                                   release: foreign.release, token: nil)
        }
        let b = try headers.attach(room: foreign.bytes, capacity: 100, length: 0, deviceAddress: 0,
                                   release: foreign.release, token: nil)
        #expect(throws: NetBufError.poolEmpty) {
            _ = try headers.attach(room: foreign.bytes, capacity: 100, length: 0, deviceAddress: 0,
                                   release: foreign.release, token: nil)
        }
        #expect(foreign.released.isEmpty, "a refused attach leaves the memory with its owner")
        b.release()
        #expect(foreign.released.count == 1)
        // The header goes back clean: an ordinary buffer of its own 64-byte room next time.
        let plain = try #require(headers.allocate())
        #expect(!plain.isExternal && plain.capacity == 64)
        plain.release()
        #expect(foreign.released.count == 1)
        try headers.destroy()
    }

    @Test func externalSegmentsChainWithOwnOnes() throws {
        let foreign = ForeignMemory()
        let headers = try NetBufPool.headersOnly(count: 1)
        try withPool(count: 1) { pool in
            let head = try #require(pool.allocate())
            try head.setLength(10)
            let tail = try headers.attach(room: foreign.bytes, capacity: 64, length: 30, deviceAddress: 0,
                                          release: foreign.release, token: nil)
            try head.chain(tail)
            #expect(head.packetLength == 40 && head.segmentCount == 2)
            let burst = Burst(1)
            burst[0] = head
            NetBuf.releaseBulk(burst.storage)
            #expect(foreign.released.count == 1)
        }
        #expect(headers.available == 1)
        try headers.destroy()
    }
}
