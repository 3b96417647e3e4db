import UKNetdev

/// Storage, arithmetic, delete, touch and flush_all, as memcached 1.6.18's proto_text.c does
/// them (process_update_command, complete_nread_ascii, do_store_item, do_add_delta, ...).
extension MemcachedEngine {
    enum StoreCommand { case set, add, replace, append, prepend, cas }

    /// memcached's realtime() on a client exptime, as absolute Unix time (0 = never).
    /// Negative means "already expired"; above 30 days it is absolute Unix time.
    func realtime(_ exptime: Int64, now: UInt32) -> UInt32 {
        let e = exptime < 0 ? 2_592_001 : exptime
        if e == 0 { return 0 }
        if e > 2_592_000 {
            // An absolute time before the process started counts as long past.
            return e <= Int64(startTime) ? 1 : UInt32(truncatingIfNeeded: min(e, Int64(UInt32.max)))
        }
        return now &+ UInt32(e)
    }

    mutating func update<S: ResponseSink>(_ command: StoreCommand, _ ntokens: Int, rest: UnsafeRawPointer,
                                          end: UnsafeRawPointer, now: UInt32, _ sink: inout S) -> Flow {
        switch command {
        case .set: stats.count(.set)
        case .add: stats.count(.add)
        case .replace: stats.count(.replace)
        case .append: stats.count(.append)
        case .prepend: stats.count(.prepend)
        case .cas: stats.count(.cas)
        }
        let quiet = noreply(ntokens)
        let key = tokens[1]
        // Failures before the data is read leave the data line to be parsed as a command, as in
        // memcached (which then answers it with ERROR).
        guard key.length <= ItemStore.maxKeyLength else {
            stats.errors &+= 1
            out("CLIENT_ERROR bad command line format", noreply: quiet, &sink)
            return .continueAt(rest)
        }
        guard let flags = parseFlags(tokens[2]), let exptimeValue = parseInt32(tokens[3]), let vlen = parseInt32(tokens[4]) else {
            stats.errors &+= 1
            out("CLIENT_ERROR bad command line format", noreply: quiet, &sink)
            return .continueAt(rest)
        }
        var casUnique: UInt64 = 0
        if command == .cas {
            guard let c = parseUInt64(tokens[5]) else {
                stats.errors &+= 1
                out("CLIENT_ERROR bad command line format", noreply: quiet, &sink)
                return .continueAt(rest)
            }
            casUnique = c
        }
        guard vlen >= 0, vlen <= Int64(Int32.max) - 2 else {
            stats.errors &+= 1
            out("CLIENT_ERROR bad command line format", noreply: quiet, &sink)
            return .continueAt(rest)
        }
        let valueLength = Int(vlen)
        let available = end - rest
        // memcached's item limit (-I 1m).
        let tooLarge = ItemStore.memcachedSize(keyLength: key.length, flags: flags, valueLength: valueLength) > 1 << 20
        let dataEnd = rest + min(available, valueLength + 2)
        let exptime = realtime(exptimeValue, now: now)
        let item: ItemStore.Item
        do throws(ItemStore.AllocationFailure) {
            if tooLarge { throw .tooLarge }
            item = try store.allocate(key: key.start, keyLength: key.length, valueLength: valueLength,
                                      flags: flags, exptime: exptime, now: now)
        } catch {
            stats.errors &+= 1
            if error == .tooLarge {
                stats.storeTooLarge &+= 1
                out("SERVER_ERROR object too large for cache", noreply: quiet, &sink)
            } else {
                stats.storeNoMemory &+= 1
                out("SERVER_ERROR out of memory storing object", noreply: quiet, &sink)
            }
            // memcached never leaves a stale value behind a failed set.
            if command == .set { store.remove(key.start, key.length, now: now) }
            // memcached swallows the data; here only what this datagram holds of it.
            return .continueAt(dataEnd)
        }
        stats.setCmds &+= 1
        // The data and its "\r\n" must be in this datagram.
        guard available >= valueLength + 2,
              (rest + valueLength).load(as: UInt8.self) == 13, (rest + valueLength + 1).load(as: UInt8.self) == 10 else {
            store.discard(item)
            stats.errors &+= 1
            out("CLIENT_ERROR bad data chunk", noreply: quiet, &sink)
            if available < valueLength + 2 { stats.dataBeyondDatagram &+= 1 }
            return .continueAt(dataEnd)
        }
        item.value.copyMemory(from: rest, byteCount: valueLength)
        switch storeItem(item, command, casUnique: casUnique, now: now) {
        case .stored: out("STORED", noreply: quiet, &sink)
        case .exists: out("EXISTS", noreply: quiet, &sink)
        case .notFound: out("NOT_FOUND", noreply: quiet, &sink)
        case .notStored: out("NOT_STORED", noreply: quiet, &sink)
        case .outOfMemory: out("SERVER_ERROR out of memory storing object", noreply: quiet, &sink)
        }
        return .continueAt(dataEnd)
    }

    enum StoreResult { case stored, exists, notFound, notStored, outOfMemory }

    /// memcached's do_store_item for a filled, unlinked item. The key's chain is walked once:
    /// what is found there is replaced in place (`link(_:at:)`; freeing the new item changes
    /// no chain), except where an allocation, which may evict, comes in between.
    /// `casUnique`: for `.cas` the unique to match; for append and prepend (the meta protocol's
    /// ms with C) a unique the old item must have, 0 for none. `setStale` (ms I): a `.cas` with
    /// a unique below the item's stores anyway, marked stale, keeping the old expiry.
    mutating func storeItem(_ item: ItemStore.Item, _ command: StoreCommand, casUnique: UInt64, setStale: Bool = false,
                            now: UInt32) -> StoreResult {
        switch command {
        case .set:
            store.link(item, now: now)
            return .stored
        case .add, .replace:
            let found = store.locate(item.key, item.keyLength, now: now)
            guard (found.item == nil) == (command == .add) else {
                store.discard(item)
                return .notStored
            }
            store.link(item, at: found)
            return .stored
        case .cas:
            let found = store.locate(item.key, item.keyLength, now: now)
            guard let old = found.item else {
                stats.casMisses &+= 1
                store.discard(item)
                return .notFound
            }
            if setStale && casUnique != 0 && casUnique < old.cas {
                // memcached's CAS_STALE: the value goes in, stale, with the old item's expiry and token.
                store.setExptime(item, old.exptime)
                item.set(ItemStore.stale | (old.has(ItemStore.tokenSent) ? ItemStore.tokenSent : 0))
            } else if old.cas != casUnique {
                stats.casBadval &+= 1
                store.discard(item)
                return .exists
            }
            stats.casHits &+= 1
            store.link(item, at: found)
            return .stored
        case .append, .prepend:
            guard let old = store.find(item.key, item.keyLength, now: now) else {
                store.discard(item)
                return .notStored
            }
            guard casUnique == 0 || old.cas == casUnique else {
                store.discard(item)
                return .exists
            }
            // The joined value keeps the old item's flags and expiry.
            let total = old.valueLength + item.valueLength
            let joined: ItemStore.Item
            do {
                joined = try store.allocate(key: item.key, keyLength: item.keyLength, valueLength: total,
                                            flags: old.flags, exptime: old.exptime, now: now)
            } catch {
                store.discard(item)
                return .outOfMemory
            }
            // `old` may have been evicted to make room: look again.
            let found = store.locate(item.key, item.keyLength, now: now)
            guard let current = found.item else {
                store.discard(joined)
                store.discard(item)
                return .notStored
            }
            if command == .append {
                joined.value.copyMemory(from: current.value, byteCount: current.valueLength)
                (joined.value + current.valueLength).copyMemory(from: item.value, byteCount: item.valueLength)
            } else {
                joined.value.copyMemory(from: item.value, byteCount: item.valueLength)
                (joined.value + item.valueLength).copyMemory(from: current.value, byteCount: current.valueLength)
            }
            store.discard(item)
            store.link(joined, at: found)
            return .stored
        }
    }

    // MARK: incr / decr

    mutating func arithmetic<S: ResponseSink>(incr: Bool, _ ntokens: Int, now: UInt32, _ sink: inout S) {
        stats.count(incr ? .incr : .decr)
        let quiet = noreply(ntokens)
        let key = tokens[1]
        guard key.length <= ItemStore.maxKeyLength else {
            stats.errors &+= 1
            out("CLIENT_ERROR bad command line format", noreply: quiet, &sink)
            return
        }
        guard let delta = parseUInt64(tokens[2]) else {
            stats.errors &+= 1
            out("CLIENT_ERROR invalid numeric delta argument", noreply: quiet, &sink)
            return
        }
        switch addDelta(key, incr: incr, delta: delta, casUnique: 0, now: now) {
        case .notFound, .casMismatch:
            if incr { stats.incrMisses &+= 1 } else { stats.decrMisses &+= 1 }
            out("NOT_FOUND", noreply: quiet, &sink)
        case .nonNumeric:
            stats.errors &+= 1
            out("CLIENT_ERROR cannot increment or decrement non-numeric value", noreply: quiet, &sink)
        case .outOfMemory:
            out("SERVER_ERROR out of memory", noreply: quiet, &sink)
        case .changed(_, let count):
            if quiet {
                sink.skipResponse()
            } else {
                sink.append(UnsafeRawPointer(deltaDigits), count: count)
                sink.append("\r\n")
            }
        }
    }

    enum DeltaResult {
        /// The item now holding the result (its digits in `deltaDigits`, `count` of them).
        case changed(ItemStore.Item, count: Int)
        case notFound, casMismatch, nonNumeric, outOfMemory
    }

    /// memcached's do_add_delta: the item under `key` (if `casUnique` is not 0, only with that
    /// unique) gets its value plus or minus `delta` (decr stops at 0), in place and padded with
    /// spaces when the digits fit, else in a new item. Counts the hit.
    mutating func addDelta(_ key: Token, incr: Bool, delta: UInt64, casUnique: UInt64, now: UInt32) -> DeltaResult {
        guard let item = store.find(key.start, key.length, now: now) else { return .notFound }
        if casUnique != 0 && item.cas != casUnique { return .casMismatch }
        // A value longer than 20 digits cannot be a 64-bit number; memcached parses it as a C
        // string that ends at its "\r\n".
        guard item.valueLength <= 20, let value = parseUInt64(Token(start: item.value, length: item.valueLength)) else {
            return .nonNumeric
        }
        if incr { stats.incrHits &+= 1 } else { stats.decrHits &+= 1 }
        let result = incr ? value &+ delta : (delta > value ? 0 : value - delta)
        let n = writeDecimal(result, to: deltaDigits)
        if n <= item.valueLength {
            // In place, padded with spaces to the old length (memcached's memset ' ').
            item.value.copyMemory(from: deltaDigits, byteCount: n)
            (item.value + n).initializeMemory(as: UInt8.self, repeating: 32, count: item.valueLength - n)
            store.valueChanged(item)
            return .changed(item, count: n)
        }
        guard let fresh = try? store.allocate(key: item.key, keyLength: item.keyLength, valueLength: n,
                                              flags: item.flags, exptime: item.exptime, now: now) else { return .outOfMemory }
        fresh.value.copyMemory(from: deltaDigits, byteCount: n)
        store.link(fresh, now: now)
        return .changed(fresh, count: n)
    }

    // MARK: delete, touch, flush_all

    mutating func delete<S: ResponseSink>(_ ntokens: Int, now: UInt32, _ sink: inout S) {
        stats.count(.delete)
        var quiet = false
        if ntokens > 3 {
            let holdIsZero = token(2, is: "0")
            quiet = noreply(ntokens)
            let valid = (ntokens == 4 && (holdIsZero || quiet)) || (ntokens == 5 && holdIsZero && quiet)
            guard valid else {
                stats.errors &+= 1
                out("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]", noreply: quiet, &sink)
                return
            }
        }
        let key = tokens[1]
        guard key.length <= ItemStore.maxKeyLength else {
            stats.errors &+= 1
            out("CLIENT_ERROR bad command line format", noreply: quiet, &sink)
            return
        }
        if store.remove(key.start, key.length, now: now) {
            stats.deleteHits &+= 1
            out("DELETED", noreply: quiet, &sink)
        } else {
            stats.deleteMisses &+= 1
            out("NOT_FOUND", noreply: quiet, &sink)
        }
    }

    mutating func touch<S: ResponseSink>(_ ntokens: Int, now: UInt32, _ sink: inout S) {
        stats.count(.touch)
        let quiet = noreply(ntokens)
        let key = tokens[1]
        guard key.length <= ItemStore.maxKeyLength else {
            stats.errors &+= 1
            out("CLIENT_ERROR bad command line format", noreply: quiet, &sink)
            return
        }
        guard let e = parseInt32(tokens[2]) else {
            stats.errors &+= 1
            out("CLIENT_ERROR invalid exptime argument", noreply: quiet, &sink)
            return
        }
        if let item = store.fetch(key.start, key.length, now: now) {
            store.setExptime(item, realtime(e, now: now))
            stats.touchHits &+= 1
            out("TOUCHED", noreply: quiet, &sink)
        } else {
            stats.touchMisses &+= 1
            out("NOT_FOUND", noreply: quiet, &sink)
        }
    }

    mutating func flushAll<S: ResponseSink>(_ ntokens: Int, now: UInt32, _ sink: inout S) {
        stats.count(.flushAll)
        stats.flushCmds &+= 1
        let quiet = noreply(ntokens)
        var delay: Int64 = 0
        if ntokens != (quiet ? 3 : 2) {
            guard let d = parseInt32(tokens[1]) else {
                stats.errors &+= 1
                out("CLIENT_ERROR invalid exptime argument", noreply: quiet, &sink)
                return
            }
            delay = d
        }
        store.flush(at: delay > 0 ? realtime(delay, now: now) : nil, now: now)
        out("OK", noreply: quiet, &sink)
    }

    // MARK: Numbers, as memcached's safe_strto* on a C string

    /// strtoull's accepted prefix: spaces, sign, digits. Returns the magnitude, whether it was
    /// negative, and where parsing stopped; nil if no digits or out of range.
    func scanDecimal(_ t: Token) -> (magnitude: UInt64, negative: Bool, end: Int)? {
        var i = 0
        let n = t.length
        @inline(__always) func byte(_ k: Int) -> UInt8 { t.start.load(fromByteOffset: k, as: UInt8.self) }
        while i < n, isCSpace(byte(i)) { i += 1 }
        var negative = false
        if i < n, byte(i) == UInt8(ascii: "-") || byte(i) == UInt8(ascii: "+") {
            negative = byte(i) == UInt8(ascii: "-")
            i += 1
        }
        let digitsStart = i
        var value: UInt64 = 0
        var overflow = false
        while i < n {
            let d = byte(i) &- 48
            guard d < 10 else { break }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(d))
            overflow = overflow || o1 || o2
            value = s
            i += 1
        }
        guard i > digitsStart, !overflow else { return nil }
        return (value, negative, i)
    }

    /// What ends a number for memcached: the end of its C string (a NUL) or a space character.
    func endsNumber(_ t: Token, at i: Int) -> Bool {
        guard i < t.length else { return true }
        let c = t.start.load(fromByteOffset: i, as: UInt8.self)
        return c == 0 || isCSpace(c)
    }

    /// safe_strtoull.
    func parseUInt64(_ t: Token) -> UInt64? {
        guard let (m, negative, end) = scanDecimal(t), endsNumber(t, at: end) else { return nil }
        let v = negative ? 0 &- m : m
        if Int64(bitPattern: v) < 0 && negative { return nil }
        return v
    }

    /// safe_strtol: strtol's 64-bit long, then (as memcached stores it) truncated to int32;
    /// `4294967296` becomes 0 and `2147483648` becomes -2147483648.
    func parseInt32(_ t: Token) -> Int64? {
        guard let (m, negative, end) = scanDecimal(t), endsNumber(t, at: end) else { return nil }
        guard m <= UInt64(Int64.max) + (negative ? 1 : 0) else { return nil }  // strtol's ERANGE
        let v: Int64 = negative ? Int64(bitPattern: 0 &- m) : Int64(m)
        return Int64(Int32(truncatingIfNeeded: v))
    }

    /// safe_strtoul into the 32-bit client flags: strtoul's 64-bit value, truncated (so
    /// `4294967296` is 0); a negative value is refused unless it does not look negative as a
    /// signed long, which in practice only `-0` does.
    func parseFlags(_ t: Token) -> UInt32? {
        guard let (m, negative, end) = scanDecimal(t), endsNumber(t, at: end) else { return nil }
        let v = negative ? 0 &- m : m
        if Int64(bitPattern: v) < 0 && negative { return nil }
        return UInt32(truncatingIfNeeded: v)
    }
}

/// C's isspace in the "C" locale.
@inline(__always)
func isCSpace(_ c: UInt8) -> Bool { c == 32 || (c >= 9 && c <= 13) }

/// Counters by command and outcome.
public struct KVCommandStats: Sendable {
    public enum Command: Int, CaseIterable, Sendable {
        case get, gets, gat, gats, set, add, replace, append, prepend, cas, delete, incr, decr, touch,
             version, verbosity, flushAll, quit
    }
    public var byCommand = InlineArray<18, UInt64>(repeating: 0)
    public var commands: UInt64 = 0
    /// Keys looked up by get, gets, bget and mg (not gat/gats, which count as touches): memcached's
    /// get_hits and get_misses, whose sum is its cmd_get. The lone-GET path's are in `loneGets`
    /// (a miss also in `loneMisses`), the general path's in `generalHits` and `generalMisses`.
    public var hits: UInt64 { generalHits &+ loneGetsSinceReset &- loneMisses }
    public var misses: UInt64 { generalMisses &+ loneMisses }
    public var generalHits: UInt64 = 0
    public var generalMisses: UInt64 = 0
    public var loneMisses: UInt64 = 0
    /// memcached's counters of the same names (`stats`). cmd_touch is touchHits + touchMisses
    /// (touch, gat, gats, and mg with T), as in memcached.
    public var touchHits: UInt64 = 0
    public var touchMisses: UInt64 = 0
    public var deleteHits: UInt64 = 0
    public var deleteMisses: UInt64 = 0
    public var incrHits: UInt64 = 0
    public var incrMisses: UInt64 = 0
    public var decrHits: UInt64 = 0
    public var decrMisses: UInt64 = 0
    public var casHits: UInt64 = 0
    public var casMisses: UInt64 = 0
    public var casBadval: UInt64 = 0
    /// Storage commands whose data was read (memcached's cmd_set: counted before the data is checked).
    public var setCmds: UInt64 = 0
    /// flush_all, counted before its arguments are checked (memcached's cmd_flush).
    public var flushCmds: UInt64 = 0
    /// Meta commands (mn, mg, ms, md, ma, me): memcached's cmd_meta.
    public var metaCmds: UInt64 = 0
    public var storeTooLarge: UInt64 = 0
    public var storeNoMemory: UInt64 = 0
    /// UDP payload bytes of every datagram longer than 8 bytes received, and of every reply
    /// datagram sent (memcached's bytes_read and bytes_written over UDP), lone GETs included.
    public var bytesRead: UInt64 { generalBytesRead &+ loneRequestUDPBytes &- 8 &* loneGetsSinceReset }
    public var bytesWritten: UInt64 { generalBytesWritten &+ loneReplyBlockBytes &+ 13 &* loneGetsSinceReset }
    /// The general path's share of them.
    public var generalBytesRead: UInt64 = 0
    public var generalBytesWritten: UInt64 = 0
    /// GETs answered by the server's lone-GET fast path, which counts them here (and their key
    /// in `hits` or `misses`) instead of in `commands` and `byCommand`: the accessors add them.
    /// Their bytes as that path has them at hand, so it adds one register each: UDP lengths
    /// (8-byte UDP header included) and item blocks (the reply is 8 + block + "END\r\n").
    public var loneGets: UInt64 = 0
    public var loneRequestUDPBytes: UInt64 = 0
    public var loneReplyBlockBytes: UInt64 = 0
    /// `loneGets` at the last `stats reset`: it resets memcached's counters (hits, bytes) but
    /// not this program's own (commands run), so `loneGets` runs on and this marks the reset.
    public var loneGetsBeforeReset: UInt64 = 0
    var loneGetsSinceReset: UInt64 { loneGets &- loneGetsBeforeReset }
    /// Command lines run, lone GETs included.
    public var allCommands: UInt64 { commands &+ loneGets }
    public var errors: UInt64 = 0
    public var unsupported: UInt64 = 0
    /// Lines without a terminator at the end of a datagram (no reply, as memcached).
    public var incompleteLines: UInt64 = 0
    /// Values that would have continued into another datagram.
    public var dataBeyondDatagram: UInt64 = 0
    /// Writes refused: an untrusted source, and the store has an allow list (`SourcePolicy`).
    public var refusedWrites: UInt64 = 0
    public init() {}
    public mutating func count(_ c: Command) { byCommand[c.rawValue] &+= 1 }
    /// Commands of one kind run (for `.get`, lone GETs included).
    public subscript(_ c: Command) -> UInt64 { c == .get ? byCommand[c.rawValue] &+ loneGets : byCommand[c.rawValue] }
}
