import UKNetdev

/// The store's memory: one arena allocated at start and never grown, carved into 1 MiB pages
/// that size classes take on demand (memcached's slab design), a chained hash table, and CLOCK
/// eviction within a class when it has no free chunk and no page is left. Nothing is allocated
/// per request.
///
/// Items are addressed by `ItemRef`: their arena offset / 8 as a UInt32 (0 is nil), so a chain
/// link costs 4 bytes and the arena can reach 32 GiB.
///
/// Chunk layout: a 34-byte header, then the item as memcached sends it for a get, the "reply
/// block": `VALUE <key> <flags> <bytes>\r\n<data>\r\n`, whose one's-complement sum is kept in the
/// header. A GET reply is then one copy and no second pass for its UDP checksum; the key and the
/// value are slices of the block.
public struct ItemStore {
    public typealias ItemRef = UInt32

    enum Header {
        static var hashNext: Int { 0 }     // UInt32 ItemRef: next in bucket, or in the free list
        static var flags: Int { 4 }        // UInt32: the client's flags
        static var cas: Int { 8 }          // UInt64
        static var exptime: Int { 16 }     // UInt32: absolute Unix time, 0 = never
        static var time: Int { 20 }        // UInt32: Unix time of the last store
        static var valueLength: Int { 24 } // UInt32
        static var keyLength: Int { 28 }   // UInt8
        static var sizeClass: Int { 29 }   // UInt8
        static var state: Int { 30 }       // UInt8: live, not referenced (CLOCK), not fetched, and the meta protocol's bits
        static var suffix: Int { 31 }      // UInt8: bytes of " <flags> <bytes>\r\n" after the key
        static var blockSum: Int { 32 }    // UInt16: one's-complement sum of the reply block, wire order
        static var size: Int { 34 }
        /// "VALUE " in front of the key.
        static var keyOffset: Int { size + 6 }
    }
    static var live: UInt8 { 1 }
    /// Kept inverted, so a hit tests both with one instruction and writes only the first time:
    /// not referenced since CLOCK's last pass, and never fetched (memcached's ITEM_FETCHED
    /// clear: mg h, me fetch). A linked item starts with both set.
    static var unreferenced: UInt8 { 2 }
    static var unfetched: UInt8 { 4 }
    /// memcached's item flags the meta protocol shows: a recache token handed out (mg W/Z),
    /// marked stale (md I, ms I: mg X), and a key that came base64-encoded (shown encoded
    /// again: mg k, me).
    public static var tokenSent: UInt8 { 8 }
    public static var stale: UInt8 { 16 }
    public static var binaryKey: UInt8 { 32 }

    public static var pageSize: Int { 1 << 20 }
    /// Largest key memcached accepts.
    public static var maxKeyLength: Int { 250 }

    /// One size class: chunk size, the pages it owns, its free list and its CLOCK hand.
    struct SizeClass {
        var chunkSize: Int
        var freeList: ItemRef = 0
        var pages: UnsafeMutablePointer<Int32>   // page numbers, in the order taken
        var pageCount = 0
        var liveItems = 0
        var hand = 0                             // CLOCK position: chunk number within this class
        /// Chunks of the newest page not yet handed out start at this index. Chunks are carved
        /// from a page as they are needed rather than all threaded onto the free list when it is
        /// taken: a class's first item touches one chunk, not a whole page.
        var uncarved = 0
        var chunksPerPage: Int { ItemStore.pageSize / chunkSize }
    }

    let arena: UnsafeMutableRawPointer
    let buckets: UnsafeMutablePointer<ItemRef>
    let bucketMask: UInt64
    var classes: UnsafeMutablePointer<SizeClass>
    let classCount: Int
    var pagesUsed = 0
    let pageLimit: Int

    /// Next cas unique; every store and every change takes one (memcached's get_cas_id).
    var nextCas: UInt64 = 1
    /// flush_all: items stored at or before `flushedBefore` are dead once it is in the past;
    /// an immediate flush kills items whose cas is below `flushedCasBelow` (same-second stores).
    var flushedBefore: UInt32 = 0
    var flushedCasBelow: UInt64 = 0

    public private(set) var evictions: UInt64 = 0
    /// Dead items (expired or flushed) the eviction sweep took back (memcached's reclaimed).
    public private(set) var expiredUnlinked: UInt64 = 0
    /// Lookups that found their key's item expired, or killed by flush_all, and freed it
    /// (memcached's get_expired and get_flushed, counted by every command that looks a key up).
    public private(set) var getExpired: UInt64 = 0
    public private(set) var getFlushed: UInt64 = 0
    public private(set) var items = 0
    /// Items ever linked (memcached's total_items).
    public private(set) var totalItems: UInt64 = 0
    /// The items' sizes as memcached counts them (its `bytes`: `memcachedSize`).
    public private(set) var bytes = 0

    /// What an item takes in memcached 1.6.18 (ITEM_ntotal with cas on): its 48-byte header,
    /// 8 for the cas, key and NUL, 4 for nonzero flags, value and "\r\n". Its -I 1m limit and
    /// its `bytes` statistic use it.
    @inline(__always)
    public static func memcachedSize(keyLength: Int, flags: UInt32, valueLength: Int) -> Int {
        48 + 8 + keyLength + 1 + (flags != 0 ? 4 : 0) + valueLength + 2
    }

    /// A store with `memoryBytes` of item memory (at least 1 MiB).
    public init(memoryBytes: Int) {
        let pages = max(1, memoryBytes / ItemStore.pageSize)
        pageLimit = pages
        // One spare page-sized slot so offset 0 (nil) is never an item.
        arena = .allocate(byteCount: (pages + 1) * ItemStore.pageSize, alignment: 64)
        // About one bucket per 64 bytes of memory, at most 2^26.
        var n = 1024
        while n < pages * (ItemStore.pageSize / 64) && n < 1 << 26 { n <<= 1 }
        buckets = .allocate(capacity: n)
        buckets.initialize(repeating: 0, count: n)
        bucketMask = UInt64(n - 1)
        // Classes from 64 bytes, growing by 1.25, rounded to 8; the last is a whole page.
        var sizes: [Int] = []
        var size = 64
        while size < ItemStore.pageSize / 2 {
            sizes.append(size)
            size = (size * 5 / 4 + 7) & ~7
        }
        sizes.append(ItemStore.pageSize)
        classCount = sizes.count
        classes = .allocate(capacity: sizes.count)
        for (i, s) in sizes.enumerated() {
            let pagesOfClass = UnsafeMutablePointer<Int32>.allocate(capacity: pages)
            (classes + i).initialize(to: SizeClass(chunkSize: s, pages: pagesOfClass, uncarved: ItemStore.pageSize / s))
        }
    }

    /// Frees all memory; the store must not be used afterwards.
    public func deallocate() {
        for i in 0..<classCount { classes[i].pages.deallocate() }
        classes.deallocate()
        buckets.deallocate()
        arena.deallocate()
    }

    /// Empties the store at once, as if just made: every item and page given back, counters and
    /// cas numbers from the start. The arena stays (its pages already touched stay resident),
    /// so a store can be reused without allocating.
    public mutating func removeAll() {
        buckets.update(repeating: 0, count: Int(bucketMask) + 1)
        for i in 0..<classCount {
            classes[i].freeList = 0
            classes[i].pageCount = 0
            classes[i].liveItems = 0
            classes[i].hand = 0
            classes[i].uncarved = classes[i].chunksPerPage
        }
        pagesUsed = 0
        nextCas = 1
        flushedBefore = 0
        flushedCasBelow = 0
        evictions = 0
        expiredUnlinked = 0
        getExpired = 0
        getFlushed = 0
        items = 0
        totalItems = 0
        bytes = 0
    }

    // MARK: Items

    @inline(__always)
    func pointer(_ ref: ItemRef) -> UnsafeMutableRawPointer { arena + Int(ref) &<< 3 }
    @inline(__always)
    func ref(_ p: UnsafeMutableRawPointer) -> ItemRef { ItemRef(truncatingIfNeeded: (p - arena) &>> 3) }

    /// A stored item, valid until the next store, delete or eviction.
    @frozen
    public struct Item {
        public let base: UnsafeMutableRawPointer
        init(_ base: UnsafeMutableRawPointer) { self.base = base }
        public var flags: UInt32 { base.load(fromByteOffset: Header.flags, as: UInt32.self) }
        public var cas: UInt64 { base.load(fromByteOffset: Header.cas, as: UInt64.self) }
        public var exptime: UInt32 { base.load(fromByteOffset: Header.exptime, as: UInt32.self) }
        public var keyLength: Int { Int(base.load(fromByteOffset: Header.keyLength, as: UInt8.self)) }
        public var valueLength: Int { Int(base.load(fromByteOffset: Header.valueLength, as: UInt32.self)) }
        public var key: UnsafeMutableRawPointer { base + Header.keyOffset }
        var suffixLength: Int { Int(base.load(fromByteOffset: Header.suffix, as: UInt8.self)) }
        public var value: UnsafeMutableRawPointer { base + Header.keyOffset + keyLength + suffixLength }
        /// `VALUE <key> <flags> <bytes>\r\n<data>\r\n`, exactly as a get sends it.
        public var block: UnsafeMutableRawPointer { base + Header.size }
        public var blockLength: Int { 6 + keyLength + suffixLength + valueLength + 2 }
        /// The block's one's-complement sum (16 bits, wire order), for UDP checksums.
        public var blockSum: UInt32 { UInt32(base.load(fromByteOffset: Header.blockSum, as: UInt16.self)) }
        /// Unix time of its store (memcached's it->time, as mg l and me la read it).
        public var time: UInt32 { base.load(fromByteOffset: Header.time, as: UInt32.self) }
        /// Whether it was fetched since stored (memcached's ITEM_FETCHED), and marking it so.
        public var wasFetched: Bool { !has(ItemStore.unfetched) }
        public func markFetched() { clear(ItemStore.unfetched) }
        /// Whether any of `bits` (`ItemStore.tokenSent`, ...) is set.
        public func has(_ bits: UInt8) -> Bool { base.load(fromByteOffset: Header.state, as: UInt8.self) & bits != 0 }
        public func set(_ bits: UInt8) {
            base.storeBytes(of: base.load(fromByteOffset: Header.state, as: UInt8.self) | bits, toByteOffset: Header.state, as: UInt8.self)
        }
        public func clear(_ bits: UInt8) {
            base.storeBytes(of: base.load(fromByteOffset: Header.state, as: UInt8.self) & ~bits, toByteOffset: Header.state, as: UInt8.self)
        }
    }

    @inline(__always)
    static func hash(_ key: UnsafeRawPointer, _ length: Int) -> UInt64 {
        // A multiply-xorshift mix over 8-byte words: fast for short keys, well spread.
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(length)
        var p = key
        var n = length
        while n >= 8 {
            h = (h ^ p.loadUnaligned(as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 29
            p += 8
            n -= 8
        }
        if n > 0 {
            var tail: UInt64 = 0
            if length >= 8 {
                // The last 8 bytes, overlapping the ones already mixed: one load.
                tail = (p + n - 8).loadUnaligned(as: UInt64.self)
            } else if n >= 4 {
                tail = UInt64(p.loadUnaligned(as: UInt32.self)) | UInt64(p.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)) << 32
            } else {
                tail = UInt64(p.load(as: UInt8.self)) | UInt64(p.load(fromByteOffset: n / 2, as: UInt8.self)) << 8
                    | UInt64(p.load(fromByteOffset: n - 1, as: UInt8.self)) << 16
            }
            h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
        }
        h ^= h >> 31
        h = h &* 0xBF58_476D_1CE4_E5B9
        return h ^ (h >> 32)
    }

    /// memcached's item_is_flushed and expiry test.
    @inline(__always)
    func isLive(_ p: UnsafeMutableRawPointer, now: UInt32) -> Bool {
        let exptime = p.load(fromByteOffset: Header.exptime, as: UInt32.self)
        if exptime != 0 && exptime <= now { return false }
        if flushedBefore != 0 && flushedBefore <= now {
            if p.load(fromByteOffset: Header.time, as: UInt32.self) <= flushedBefore { return false }
            let cas = p.load(fromByteOffset: Header.cas, as: UInt64.self)
            if flushedCasBelow != 0 && cas != 0 && cas < flushedCasBelow { return false }
        }
        return true
    }

    /// Frees an item a lookup found dead (already unlinked), counted as memcached counts it.
    /// Out of line: the lookup's hit path stays as short as it was.
    @inline(never)
    mutating func freeDead(_ p: UnsafeMutableRawPointer, now: UInt32) {
        if isFlushed(p, now: now) { getFlushed &+= 1 } else { getExpired &+= 1 }
        release(p)
    }

    /// memcached's item_is_flushed, which it tests before the expiry.
    func isFlushed(_ p: UnsafeMutableRawPointer, now: UInt32) -> Bool {
        guard flushedBefore != 0 && flushedBefore <= now else { return false }
        if p.load(fromByteOffset: Header.time, as: UInt32.self) <= flushedBefore { return true }
        let cas = p.load(fromByteOffset: Header.cas, as: UInt64.self)
        return flushedCasBelow != 0 && cas != 0 && cas < flushedCasBelow
    }

    /// The live item under `key`, or nil. Expired or flushed items found on the way are freed.
    public mutating func find(_ key: UnsafeRawPointer, _ length: Int, now: UInt32) -> Item? {
        locate(key, length, now: now).item
    }

    /// `find` for a fetch (get, gets, gat, gats, touch, mg): the item is also marked fetched,
    /// as memcached's bump marks it (mg h and me show it).
    public mutating func fetch(_ key: UnsafeRawPointer, _ length: Int, now: UInt32) -> Item? {
        locate(key, length, now: now, marking: ItemStore.unreferenced | ItemStore.unfetched).item
    }

    /// Where a key is in the hash table: its bucket, and the live item stored under it (if any)
    /// with the link that holds it (the bucket, or the next field of the item before it).
    /// Enough to replace or remove the item without walking its chain again, as long as no
    /// chain changes in between.
    struct Location {
        let bucket: UnsafeMutablePointer<ItemRef>
        let link: UnsafeMutablePointer<ItemRef>
        let item: Item?
    }

    /// `find`, keeping where the item was. Expired or flushed items found on the way are freed.
    @inline(__always)
    /// `marking`: the inverted bits a hit clears (referenced; fetched too for a fetch).
    mutating func locate(_ key: UnsafeRawPointer, _ length: Int, now: UInt32, marking: UInt8 = ItemStore.unreferenced) -> Location {
        let bucket = buckets + Int(ItemStore.hash(key, length) & bucketMask)
        var link = bucket
        var r = bucket.pointee
        while r != 0 {
            let p = pointer(r)
            let next = p.load(fromByteOffset: Header.hashNext, as: ItemRef.self)
            if Int(p.load(fromByteOffset: Header.keyLength, as: UInt8.self)) == length
                && memoryEqual(p + Header.keyOffset, key, length) {
                guard isLive(p, now: now) else {
                    link.pointee = next
                    freeDead(p, now: now)
                    return Location(bucket: bucket, link: link, item: nil)
                }
                let s = p.load(fromByteOffset: Header.state, as: UInt8.self)
                if s & marking != 0 { p.storeBytes(of: s & ~marking, toByteOffset: Header.state, as: UInt8.self) }
                return Location(bucket: bucket, link: link, item: Item(p))
            }
            link = (p + Header.hashNext).assumingMemoryBound(to: ItemRef.self)
            r = next
        }
        return Location(bucket: bucket, link: link, item: nil)
    }

    /// Removes `key`; returns whether a live item was there.
    @discardableResult
    public mutating func remove(_ key: UnsafeRawPointer, _ length: Int, now: UInt32) -> Bool {
        let found = locate(key, length, now: now)
        guard let item = found.item else { return false }
        found.link.pointee = item.base.load(fromByteOffset: Header.hashNext, as: ItemRef.self)
        release(item.base)
        return true
    }

    /// Takes `p` out of its chain, found by walking the chain (CLOCK eviction, which comes to
    /// an item by its chunk, not its key).
    mutating func unlink(_ p: UnsafeMutableRawPointer) {
        let length = Int(p.load(fromByteOffset: Header.keyLength, as: UInt8.self))
        var link = buckets + Int(ItemStore.hash(p + Header.keyOffset, length) & bucketMask)
        let target = ref(p)
        while link.pointee != 0 {
            if link.pointee == target {
                link.pointee = p.load(fromByteOffset: Header.hashNext, as: ItemRef.self)
                return
            }
            link = (pointer(link.pointee) + Header.hashNext).assumingMemoryBound(to: ItemRef.self)
        }
    }

    /// Returns an unlinked chunk to its class's free list.
    mutating func release(_ p: UnsafeMutableRawPointer) {
        let c = Int(p.load(fromByteOffset: Header.sizeClass, as: UInt8.self))
        p.storeBytes(of: 0, toByteOffset: Header.state, as: UInt8.self)
        p.storeBytes(of: classes[c].freeList, toByteOffset: Header.hashNext, as: ItemRef.self)
        classes[c].freeList = ref(p)
        uncount(p, c)
    }

    /// Takes an item out of the counts (freed, or evicted for its chunk's reuse).
    mutating func uncount(_ p: UnsafeMutableRawPointer, _ c: Int) {
        classes[c].liveItems -= 1
        items -= 1
        bytes -= ItemStore.memcachedSize(keyLength: Int(p.load(fromByteOffset: Header.keyLength, as: UInt8.self)),
                                         flags: p.load(fromByteOffset: Header.flags, as: UInt32.self),
                                         valueLength: Int(p.load(fromByteOffset: Header.valueLength, as: UInt32.self)))
    }

    // MARK: Storing

    public enum AllocationFailure: Error, Equatable {
        /// Bigger than the largest chunk.
        case tooLarge
        /// No free chunk, no page left, and nothing of this size to evict.
        case outOfMemory
    }


    func sizeClass(for bytes: Int) -> Int? {
        // Few classes (~40): a linear scan from the small end is cheap and branch-predictable.
        var c = 0
        while c < classCount {
            if classes[c].chunkSize >= bytes { return c }
            c += 1
        }
        return nil
    }

    /// A new, unlinked item holding `key` and room for `valueLength` bytes of value (filled by
    /// the caller before `link`). May evict.
    public mutating func allocate(key: UnsafeRawPointer, keyLength: Int, valueLength: Int, flags: UInt32,
                                  exptime: UInt32, now: UInt32) throws(AllocationFailure) -> Item {
        let suffix = 1 + decimalLength(UInt64(flags)) + 1 + decimalLength(UInt64(valueLength)) + 2
        guard let c = sizeClass(for: Header.keyOffset + keyLength + suffix + valueLength + 2) else { throw .tooLarge }
        let p = try takeChunk(c, now: now)
        p.storeBytes(of: 0, toByteOffset: Header.hashNext, as: ItemRef.self)
        p.storeBytes(of: flags, toByteOffset: Header.flags, as: UInt32.self)
        p.storeBytes(of: 0, toByteOffset: Header.cas, as: UInt64.self)
        p.storeBytes(of: exptime, toByteOffset: Header.exptime, as: UInt32.self)
        p.storeBytes(of: now, toByteOffset: Header.time, as: UInt32.self)
        p.storeBytes(of: UInt32(valueLength), toByteOffset: Header.valueLength, as: UInt32.self)
        p.storeBytes(of: UInt8(keyLength), toByteOffset: Header.keyLength, as: UInt8.self)
        p.storeBytes(of: UInt8(c), toByteOffset: Header.sizeClass, as: UInt8.self)
        p.storeBytes(of: 0, toByteOffset: Header.state, as: UInt8.self)
        p.storeBytes(of: UInt8(suffix), toByteOffset: Header.suffix, as: UInt8.self)
        // The reply block around the value: "VALUE <key> <flags> <bytes>\r\n" ... "\r\n".
        var w = p + Header.size
        for b in "VALUE ".utf8 {
            w.storeBytes(of: b, as: UInt8.self)
            w += 1
        }
        w.copyMemory(from: key, byteCount: keyLength)
        w += keyLength
        w.storeBytes(of: 32, as: UInt8.self)
        w += 1 + writeDecimal(UInt64(flags), to: w + 1)
        w.storeBytes(of: 32, as: UInt8.self)
        w += 1 + writeDecimal(UInt64(valueLength), to: w + 1)
        w.storeBytes(of: 13, as: UInt8.self)
        (w + 1).storeBytes(of: 10, as: UInt8.self)
        (w + 2 + valueLength).storeBytes(of: 13, as: UInt8.self)
        (w + 3 + valueLength).storeBytes(of: 10, as: UInt8.self)
        classes[c].liveItems += 1
        items += 1
        bytes += ItemStore.memcachedSize(keyLength: keyLength, flags: flags, valueLength: valueLength)
        return Item(p)
    }

    /// Frees an item from `allocate` that was never linked (e.g. a bad data chunk).
    public mutating func discard(_ item: Item) { release(item.base) }

    /// Makes `item` the one stored under its key, replacing (and freeing) any previous one, and
    /// gives it a new cas unique.
    public mutating func link(_ item: Item, now: UInt32) {
        link(item, at: locate(item.key, item.keyLength, now: now))
    }

    /// `link` where `locate` found the item's key, with no chain changed since: the item found
    /// there (if any) is replaced and freed, without another walk.
    mutating func link(_ item: Item, at place: Location) {
        let p = item.base
        updateBlockSum(item)
        if let old = place.item {
            place.link.pointee = old.base.load(fromByteOffset: Header.hashNext, as: ItemRef.self)
            release(old.base)
        }
        p.storeBytes(of: nextCas, toByteOffset: Header.cas, as: UInt64.self)
        nextCas &+= 1
        totalItems &+= 1
        // Bits set between allocate and link (a binary key, a stale value) stay.
        p.storeBytes(of: p.load(fromByteOffset: Header.state, as: UInt8.self) | ItemStore.live | ItemStore.unreferenced | ItemStore.unfetched,
                     toByteOffset: Header.state, as: UInt8.self)
        p.storeBytes(of: place.bucket.pointee, toByteOffset: Header.hashNext, as: ItemRef.self)
        place.bucket.pointee = ref(p)
    }

    /// The block's sum (`sum` folds it to 16 bits already).
    func updateBlockSum(_ item: Item) {
        let sum = InternetChecksum.sum(item.block, count: item.blockLength)
        item.base.storeBytes(of: UInt16(truncatingIfNeeded: sum), toByteOffset: Header.blockSum, as: UInt16.self)
    }

    /// After the value of a stored item changed in place (incr, decr): a new cas unique and a
    /// new block sum.
    public mutating func valueChanged(_ item: Item) {
        updateBlockSum(item)
        item.base.storeBytes(of: nextCas, toByteOffset: Header.cas, as: UInt64.self)
        nextCas &+= 1
    }

    /// Sets a stored item's expiry.
    public func setExptime(_ item: Item, _ exptime: UInt32) {
        item.base.storeBytes(of: exptime, toByteOffset: Header.exptime, as: UInt32.self)
    }

    /// memcached's flush_all: items stored before `time` (absolute Unix time; nil or not in the
    /// future: now) die once that time has come. An immediate flush also kills items stored
    /// earlier in the current second, through their cas (memcached's oldest_cas).
    public mutating func flush(at time: UInt32?, now: UInt32) {
        let newOldest = time ?? now
        flushedBefore = newOldest &- 1
        if flushedBefore <= now {
            flushedCasBelow = nextCas
            nextCas &+= 1
        }
    }

    mutating func takeChunk(_ c: Int, now: UInt32) throws(AllocationFailure) -> UnsafeMutableRawPointer {
        if classes[c].freeList != 0 {
            let p = pointer(classes[c].freeList)
            classes[c].freeList = p.load(fromByteOffset: Header.hashNext, as: ItemRef.self)
            return p
        }
        if classes[c].uncarved == classes[c].chunksPerPage {
            // Eviction sweeps every chunk of the class's pages: it starts only once all are carved.
            guard pagesUsed < pageLimit else { return try evict(from: c, now: now) }
            classes[c].pages[classes[c].pageCount] = Int32(pagesUsed)
            classes[c].pageCount += 1
            pagesUsed += 1
            classes[c].uncarved = 0
        }
        let page = Int(classes[c].pages[classes[c].pageCount - 1])
        let p = arena + (page + 1) * ItemStore.pageSize + classes[c].uncarved * classes[c].chunkSize
        classes[c].uncarved += 1
        return p   // allocate writes its whole header
    }

    /// CLOCK over the class's chunks: dead ones are reclaimed, referenced ones get a second
    /// chance, the first unreferenced live one is evicted.
    mutating func evict(from c: Int, now: UInt32) throws(AllocationFailure) -> UnsafeMutableRawPointer {
        let perPage = classes[c].chunksPerPage
        let total = classes[c].pageCount * perPage
        guard total > 0, classes[c].liveItems > 0 else { throw .outOfMemory }
        // Two sweeps clear every reference bit, so this ends.
        for _ in 0..<(2 * total + 1) {
            let n = classes[c].hand
            classes[c].hand = n + 1 == total ? 0 : n + 1
            let page = Int(classes[c].pages[n / perPage])
            let p = arena + (page + 1) * ItemStore.pageSize + (n % perPage) * classes[c].chunkSize
            let s = p.load(fromByteOffset: Header.state, as: UInt8.self)
            guard s & ItemStore.live != 0 else { continue }
            if s & ItemStore.unreferenced == 0 && isLive(p, now: now) {
                p.storeBytes(of: s | ItemStore.unreferenced, toByteOffset: Header.state, as: UInt8.self)
                continue
            }
            let wasLive = isLive(p, now: now)
            unlink(p)
            uncount(p, c)
            if wasLive { evictions &+= 1 } else { expiredUnlinked &+= 1 }
            return p
        }
        throw .outOfMemory
    }

    /// memcached's `stats reset` for the store's counters (not its contents or sizes).
    public mutating func resetCounters() {
        evictions = 0
        expiredUnlinked = 0
        getExpired = 0
        getFlushed = 0
        totalItems = 0
    }

    /// Memory accounting for statistics.
    public var memoryLimit: Int { pageLimit * ItemStore.pageSize }
    /// The hash table: log2 of its buckets and its size in bytes (memcached's hash_power_level, hash_bytes).
    public var hashPower: Int { (Int(bucketMask) + 1).trailingZeroBitCount }
    public var hashBytes: Int { (Int(bucketMask) + 1) * MemoryLayout<ItemRef>.size }
    public var pagesInUse: Int { pagesUsed }
    public var pageLimitCount: Int { pageLimit }
}
