import Testing
import TestSupport
import UKNetdev

@Suite struct NetBufTests {
    @Test func freshBufferGeometry() throws {
        try withPool(roomSize: 2048, headroom: 128) { pool in
            let b = try #require(pool.allocate())
            #expect(b.headroom == 128)
            #expect(b.length == 0)
            #expect(b.packetLength == 0)
            #expect(b.capacity == 2048)
            #expect(b.tailroom == 2048 - 128)
            #expect(b.refcount == 1)
            #expect(b.segmentCount == 1)
            #expect(b.next == nil)
            #expect(!b.isClone)
            #expect(b.pool == pool)
            #expect(pool.inUse == 1)
            b.release()
        }
    }

    @Test func metadataSurvivesCloneAndIsResetOnAllocation() throws {
        try withPool(count: 2) { pool in
            let clonePool = try NetBufPool(count: 1, roomSize: 64, headroom: 0)
            let b = try #require(pool.allocate())
            b.flags = [.needsChecksum, .checksumValid]
            b.checksumRequest = (start: 34, offset: 6)
            b.userTag = 0xDEAD_BEEF
            let c = try #require(b.clone(using: clonePool))
            #expect(c.flags == [.needsChecksum, .checksumValid])
            #expect(c.checksumRequest == (start: 34, offset: 6))
            #expect(c.userTag == 0xDEAD_BEEF)
            c.release()
            b.release()
            let again = try #require(pool.allocate())
            #expect(again == b, "the stack hands back the buffer just freed")
            #expect(again.flags == [])
            #expect(again.checksumRequest == (start: 0, offset: 0))
            #expect(again.userTag == 0)
            #expect(again.segmentCount == 1 && again.length == 0 && again.headroom == 128)
            again.release()
            try clonePool.destroy()
        }
    }

    @Test func headroomBounds() throws {
        try withPool(headroom: 64) { pool in
            let b = try #require(pool.allocate())
            defer { b.release() }
            try b.setLength(10)
            let start = b.data
            let p = try b.prepend(64)
            #expect(p == start - 64)
            #expect(b.headroom == 0)
            #expect(b.length == 74)
            #expect(b.packetLength == 74)
            #expect(throws: NetBufError.noHeadroom(requested: 1, available: 0)) { try b.prepend(1) }
            #expect(b.length == 74, "a refused prepend changes nothing")
            #expect(throws: NetBufError.noHeadroom(requested: -1, available: 0)) { try b.prepend(-1) }
            try b.strip(70)
            #expect(b.length == 4)
            #expect(b.headroom == 70)
            #expect(throws: NetBufError.beyondData(requested: 5, available: 4)) { try b.strip(5) }
        }
    }

    @Test func tailroomBounds() throws {
        try withPool(roomSize: 256, headroom: 56) { pool in
            let b = try #require(pool.allocate())
            defer { b.release() }
            let p = try b.append(200)
            #expect(p == b.data)
            #expect(b.tailroom == 0)
            #expect(throws: NetBufError.noTailroom(requested: 1, available: 0)) { try b.append(1) }
            try b.trim(150)
            #expect(b.length == 50)
            #expect(b.packetLength == 50)
            #expect(throws: NetBufError.beyondData(requested: 51, available: 50)) { try b.trim(51) }
            #expect(throws: NetBufError.self) { try b.setLength(201) }
            try b.setLength(200)
            try b.reset(headroom: 0)
            #expect(b.tailroom == 256)
            #expect(throws: NetBufError.self) { try b.reset(headroom: 257) }
        }
    }

    @Test func bytesRoundTripAndSpans() throws {
        try withPool { pool in
            let b = try #require(pool.allocate())
            defer { b.release() }
            let message: [UInt8] = Array(0..<100)
            try message.withUnsafeBytes { try b.copyIn($0) }
            let sum = b.withBytes { span in
                var s = 0
                for i in 0..<span.byteCount { s += Int(span.unsafeLoad(fromByteOffset: i, as: UInt8.self)) }
                return s
            }
            #expect(sum == message.reduce(0) { $0 + Int($1) })
            try b.withMutableBytes { span in span.storeBytes(of: UInt8(0xAA), toByteOffset: 99, as: UInt8.self) }
            var out = [UInt8](repeating: 0, count: 100)
            let n = out.withUnsafeMutableBytes { b.copyOut(into: $0) }
            #expect(n == 100)
            #expect(out[98] == 98)
            #expect(out[99] == 0xAA)
        }
    }

    @Test func chainsAndUnchain() throws {
        try withPool { pool in
            let a = try #require(pool.allocate()), b = try #require(pool.allocate()), c = try #require(pool.allocate())
            try a.setLength(10)
            try b.setLength(20)
            try c.setLength(30)
            try b.chain(c)
            #expect(b.packetLength == 50)
            #expect(b.segmentCount == 2)
            try a.chain(b)
            #expect(a.packetLength == 60)
            #expect(a.segmentCount == 3)
            #expect(a.next == b)
            #expect(b.next == c)
            #expect(throws: NetBufError.chainLoop) { try a.chain(c) }
            #expect(throws: NetBufError.chainLoop) { try a.chain(a) }
            #expect(throws: NetBufError.chained) { try a.setLength(5) }
            // Prepending on the head counts in the chain's length.
            try a.prepend(4)
            #expect(a.packetLength == 64)
            var bytes = [UInt8](repeating: 0, count: 64)
            #expect(bytes.withUnsafeMutableBytes { a.copyOut(into: $0) } == 64)
            let rest = try #require(a.unchain())
            #expect(rest == b)
            #expect(a.packetLength == 14)
            #expect(a.segmentCount == 1)
            #expect(rest.packetLength == 50)
            #expect(rest.segmentCount == 2)
            try a.chain(rest)
            #expect(pool.inUse == 3)
            a.release()   // frees the whole chain
            #expect(pool.inUse == 0)
        }
    }

    @Test func refcountsOnChains() throws {
        try withPool { pool in
            let a = try #require(pool.allocate()), b = try #require(pool.allocate())
            try a.chain(b)
            a.retain()
            #expect(a.refcount == 2)
            #expect(b.refcount == 2)
            a.release()
            #expect(pool.inUse == 2)
            #expect(a.refcount == 1)
            a.release()
            #expect(pool.inUse == 0)
        }
    }

    @Test func cloneSharesDataAndKeepsOriginAlive() throws {
        try withPool(count: 8) { pool in
            let clonePool = try NetBufPool(count: 4, roomSize: 64, headroom: 0)
            defer { #expect(throws: Never.self) { try clonePool.destroy() } }
            let a = try #require(pool.allocate()), b = try #require(pool.allocate())
            try [UInt8](repeating: 1, count: 40).withUnsafeBytes { try a.copyIn($0) }
            try [UInt8](repeating: 2, count: 60).withUnsafeBytes { try b.copyIn($0) }
            try a.chain(b)
            let c = try #require(a.clone(using: clonePool))
            #expect(c.isClone)
            #expect(c.packetLength == 100)
            #expect(c.segmentCount == 2)
            #expect(c.data == a.data, "by reference: the same bytes")
            #expect(c.next?.data == b.data)
            #expect(a.refcount == 2)
            #expect(c.deviceAddress == a.deviceAddress)
            #expect(throws: NetBufError.readOnlyClone) { try c.prepend(1) }
            #expect(throws: NetBufError.readOnlyClone) { try c.append(1) }
            #expect(throws: NetBufError.readOnlyClone) { try c.withMutableBytes { _ in } }
            a.release()
            #expect(pool.inUse == 2, "the clone keeps the origin's rooms")
            var out = [UInt8](repeating: 0, count: 100)
            #expect(out.withUnsafeMutableBytes { c.copyOut(into: $0) } == 100)
            #expect(out[39] == 1 && out[40] == 2)
            c.release()
            #expect(pool.inUse == 0)
            #expect(clonePool.inUse == 0)
            // A clone header, once freed, is an ordinary buffer again.
            let d = try #require(clonePool.allocate())
            #expect(!d.isClone)
            #expect(d.capacity == 64)
            d.release()
        }
    }

    @Test func cloneFailsCleanlyWhenPoolRunsOut() throws {
        try withPool { pool in
            let clonePool = try NetBufPool(count: 1, roomSize: 64, headroom: 0)
            let a = try #require(pool.allocate()), b = try #require(pool.allocate())
            try a.chain(b)
            #expect(a.clone(using: clonePool) == nil)
            #expect(clonePool.inUse == 0)
            #expect(a.refcount == 1 && b.refcount == 1)
            a.release()
            try clonePool.destroy()
        }
    }
}

@Suite struct NetBufPoolTests {
    @Test func exhaustionAndCounters() throws {
        try withPool(count: 4) { pool in
            var held: [NetBuf] = []
            for _ in 0..<4 { held.append(try #require(pool.allocate())) }
            #expect(pool.allocate() == nil)
            #expect(pool.allocationFailures == 1)
            #expect(pool.highWater == 4)
            #expect(Set(held.map(\.index)) == Set(0..<4))
            for b in held { b.release() }
            #expect(pool.highWater == 4)
        }
    }

    @Test func bulkAllocationIsPartialWhenShort() throws {
        try withPool(count: 10) { pool in
            var bufs = [NetBuf](repeating: NetBuf(header: UnsafeMutableRawPointer(bitPattern: 64)!), count: 16)
            let n = bufs.withUnsafeMutableBufferPointer { pool.allocateBulk(into: $0) }
            #expect(n == 10)
            #expect(pool.allocationFailures == 6)
            #expect(Set(bufs[0..<10].map(\.index)).count == 10)
            bufs.withUnsafeMutableBufferPointer { NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: $0[0..<10])) }
        }
    }

    @Test func releaseBulkHandlesMixedPoolsChainsAndShared() throws {
        try withPool(count: 8) { p1 in
            try withPool(count: 8) { p2 in
                let a = try #require(p1.allocate()), b = try #require(p2.allocate())
                let c = try #require(p1.allocate()), d = try #require(p1.allocate())
                let e = try #require(p2.allocate())
                try c.chain(d)
                e.retain()
                var list = [a, b, c, e, a]
                a.retain()
                list.withUnsafeMutableBufferPointer { NetBuf.releaseBulk($0) }
                #expect(p1.inUse == 0)
                #expect(p2.inUse == 1, "e still has one reference")
                #expect(e.refcount == 1)
                e.release()
                list.removeAll()
            }
        }
    }

    @Test func callerProvidedRegionAndDeviceAddresses() throws {
        let count = 16, room = 1024
        let bytes = NetBufPool.regionSize(count: count, roomSize: room)
        let region = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 4096)
        defer { region.deallocate() }
        let pool = try NetBufPool(count: count, region: region, deviceAddress: 0x1_0000_0000, roomSize: room, headroom: 64)
        let b = try #require(pool.allocate())
        let offset = b.data - UnsafeMutableRawPointer(region.baseAddress!)
        #expect(offset > 0 && offset < bytes)
        #expect(b.deviceAddress == 0x1_0000_0000 + UInt64(offset))
        #expect(pool.buffer(containing: b.deviceAddress) == b)
        #expect(pool.buffer(containing: b.deviceAddress + 100) == b)
        #expect(pool.buffer(containing: 0x1_0000_0000 + UInt64(bytes) + 4096) == nil)
        #expect(pool.buffer(containing: 0x10) == nil)
        #expect(throws: NetBufPoolError.buffersInUse(1)) { try pool.destroy() }
        b.release()
        try pool.destroy()
        // A region too small, or misaligned, is refused.
        #expect(throws: NetBufPoolError.regionTooSmall(needed: count * (64 + room), given: 100)) {
            _ = try NetBufPool(count: count, region: UnsafeMutableRawBufferPointer(rebasing: region[0..<100]), deviceAddress: 0, roomSize: room)
        }
        #expect(throws: NetBufPoolError.regionMisaligned(alignment: 64)) {
            _ = try NetBufPool(count: 1, region: UnsafeMutableRawBufferPointer(rebasing: region[8..<4096]), deviceAddress: 0, roomSize: 64, headroom: 0)
        }
    }

    @Test func alignmentOfDataRooms() throws {
        let pool = try NetBufPool(count: 5, roomSize: 1000, headroom: 0, alignment: 4096)
        var held: [NetBuf] = []
        for _ in 0..<5 {
            let b = try #require(pool.allocate())
            #expect(UInt(bitPattern: b.data) % 4096 == 0)
            held.append(b)
        }
        held.forEach { $0.release() }
        try pool.destroy()
    }

    @Test func invalidConfigurationsAreErrors() {
        #expect(throws: NetBufPoolError.invalidCount(0)) { _ = try NetBufPool(count: 0) }
        #expect(throws: NetBufPoolError.invalidAlignment(48)) { _ = try NetBufPool(count: 1, alignment: 48) }
        #expect(throws: NetBufPoolError.invalidRoom(roomSize: 64, headroom: 65)) { _ = try NetBufPool(count: 1, roomSize: 64, headroom: 65) }
    }

    @Test func rxAllocatorFillsFromThePool() throws {
        try withPool(count: 3) { pool in
            let alloc = pool.rxAllocator
            var bufs = [NetBuf](repeating: NetBuf(header: UnsafeMutableRawPointer(bitPattern: 64)!), count: 5)
            let n = bufs.withUnsafeMutableBufferPointer { alloc.allocate(into: $0) }
            #expect(n == 3)
            #expect(pool.inUse == 3)
            bufs.withUnsafeMutableBufferPointer { NetBuf.releaseBulk(UnsafeMutableBufferPointer(rebasing: $0[0..<3])) }
        }
    }
}
