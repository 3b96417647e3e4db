import UKNetdev

/// memcached 1.6.18's meta protocol (proto_text.c: process_mget_command, process_mset_command,
/// process_mdelete_command, process_marithmetic_command, process_meta_command, and `mn`): the
/// same flags, the same checks in the same order, the same replies and error strings.
///
/// A reply line is built in `line` (the engine's scratch) and appended whole; a base64 key (`b`)
/// is decoded into `keyScratch`. Nothing is allocated. Errors go out with `out(_:noreply: false)`:
/// memcached's out_errstring sends them even under q.
extension MemcachedEngine {
    /// What `_meta_flag_preparse` collects from the flag tokens.
    struct MetaFlags {
        var hasError = false
        var noUpdate = false
        var locked = false
        var vivify = false
        var value = false
        var setStale = false
        var noReply = false
        var hasCas = false
        var newTTL = false
        var keyBinary = false
        var mode: UInt8 = 0
        var exptime: UInt32 = 0
        var autovivifyExptime: UInt32 = 0
        var recacheTime: UInt32 = 0
        var clientFlags: UInt32 = 0
        var casUnique: UInt64 = 0
        var delta: UInt64 = 0
        var initial: UInt64 = 0
    }

    /// Longest opaque token (`O...`) and most tokens a meta command may have (memcached's
    /// MFLAG_MAX_OPAQUE_LENGTH and MFLAG_MAX_OPT_LENGTH).
    static var maxOpaqueLength: Int { 32 }
    static var maxMetaTokens: Int { 20 }

    /// The two-letter meta commands; nil if `tokens[0]` is not one (it is then a text command).
    mutating func metaCommand<S: ResponseSink>(_ ntokens: Int, rest: UnsafeRawPointer, end: UnsafeRawPointer, now: UInt32,
                                              _ sink: inout S) -> Flow? {
        guard tokens[0].length == 2, tokens[0].start.load(as: UInt8.self) == UInt8(ascii: "m") else { return nil }
        switch tokens[0].start.load(fromByteOffset: 1, as: UInt8.self) {
        case UInt8(ascii: "g"): metaGet(ntokens, now: now, &sink)
        case UInt8(ascii: "s"): return metaSet(ntokens, rest: rest, end: end, now: now, &sink)
        case UInt8(ascii: "d"): metaDelete(ntokens, now: now, &sink)
        case UInt8(ascii: "a"): metaArithmetic(ntokens, now: now, &sink)
        case UInt8(ascii: "e"): metaDebug(ntokens, now: now, &sink)
        case UInt8(ascii: "n"):
            // mn: memcached writes out everything it has stacked.
            out("MN", noreply: false, &sink)
            sink.flush()
        default:
            return error(rest, &sink)
        }
        return .continueAt(rest)
    }

    // MARK: Flags

    /// memcached's _meta_flag_preparse over the tokens from `start`; returns the error text
    /// for a failure (the last one seen, or `nil` for the caller's default when the failing
    /// flag sets none), and `failed`.
    mutating func preparse(_ ntokens: Int, from start: Int, now: UInt32, _ flags: inout MetaFlags) -> (failed: Bool, error: StaticString?) {
        var seen: (UInt64, UInt64) = (0, 0)   // one bit per ASCII code below 127
        var message: StaticString? = nil
        var i = start
        while i < ntokens - 1 {
            let t = tokens[i]
            let o = t.start.load(as: UInt8.self)
            let bit: UInt64 = 1 << UInt64(o & 63)
            let already = o < 64 ? seen.0 & bit != 0 : seen.1 & bit != 0
            if o >= 127 || already { return (true, "CLIENT_ERROR duplicate flag") }
            if o < 64 { seen.0 |= bit } else { seen.1 |= bit }
            let argument = Token(start: t.start + 1, length: t.length - 1)
            switch o {
            case UInt8(ascii: "b"):
                let decoded = base64Decode(tokens[1].start, tokens[1].length, into: keyScratch)
                if decoded == 0 {
                    message = "CLIENT_ERROR error decoding key"
                    flags.hasError = true
                }
                tokens[1] = Token(start: UnsafeRawPointer(keyScratch), length: decoded)
                flags.keyBinary = true
            case UInt8(ascii: "N"):
                flags.locked = true
                flags.vivify = true
                if let e = parseInt32(argument) { flags.autovivifyExptime = realtime(e, now: now) } else {
                    message = "CLIENT_ERROR bad token in command line format"
                    flags.hasError = true
                }
            case UInt8(ascii: "T"):
                flags.locked = true
                if let e = parseInt32(argument) {
                    flags.exptime = realtime(e, now: now)
                    flags.newTTL = true
                } else {
                    message = "CLIENT_ERROR bad token in command line format"
                    flags.hasError = true
                }
            case UInt8(ascii: "R"):
                flags.locked = true
                if let e = parseInt32(argument) { flags.recacheTime = realtime(e, now: now) } else {
                    message = "CLIENT_ERROR bad token in command line format"
                    flags.hasError = true
                }
            case UInt8(ascii: "l"), UInt8(ascii: "h"):
                flags.locked = true
            case UInt8(ascii: "O"), UInt8(ascii: "P"), UInt8(ascii: "L"), UInt8(ascii: "k"), UInt8(ascii: "s"),
                 UInt8(ascii: "t"), UInt8(ascii: "c"), UInt8(ascii: "f"):
                break
            case UInt8(ascii: "v"): flags.value = true
            case UInt8(ascii: "u"): flags.noUpdate = true
            case UInt8(ascii: "q"): flags.noReply = true
            case UInt8(ascii: "F"):
                // safe_strtoul: a 32-bit result of strtoul.
                if let f = parseUInt64(argument) { flags.clientFlags = UInt32(truncatingIfNeeded: f) } else { flags.hasError = true }
            case UInt8(ascii: "C"):
                if let c = parseUInt64(argument) {
                    flags.casUnique = c
                    flags.hasCas = true
                } else {
                    message = "CLIENT_ERROR bad token in command line format"
                    flags.hasError = true
                }
            case UInt8(ascii: "M"):
                if t.length != 2 {
                    message = "CLIENT_ERROR incorrect length for M token"
                    flags.hasError = true
                } else {
                    flags.mode = t.start.load(fromByteOffset: 1, as: UInt8.self)
                }
            case UInt8(ascii: "J"):
                if let v = parseUInt64(argument) { flags.initial = v } else {
                    message = "CLIENT_ERROR invalid numeric initial value"
                    flags.hasError = true
                }
            case UInt8(ascii: "D"):
                if let v = parseUInt64(argument) { flags.delta = v } else {
                    message = "CLIENT_ERROR invalid numeric delta value"
                    flags.hasError = true
                }
            case UInt8(ascii: "I"):
                flags.setStale = true
            default:
                return (true, "CLIENT_ERROR invalid flag")
            }
            i += 1
        }
        return (flags.hasError, message)
    }

    // MARK: The reply line

    /// Appends to the reply line being built in `line` (at most `lineCapacity` bytes: two
    /// base64 keys and twenty flags fit).
    func put(_ text: StaticString, at n: inout Int) {
        (line + n).copyMemory(from: text.utf8Start, byteCount: text.utf8CodeUnitCount)
        n += text.utf8CodeUnitCount
    }

    func put(_ bytes: UnsafeRawPointer, _ count: Int, at n: inout Int) {
        (line + n).copyMemory(from: bytes, byteCount: count)
        n += count
    }

    func put(decimal value: UInt64, at n: inout Int) {
        n += writeDecimal(value, to: line + n)
    }

    /// " <flag letter>"
    func put(flag: UInt8, at n: inout Int) {
        line.storeBytes(of: 32, toByteOffset: n, as: UInt8.self)
        line.storeBytes(of: flag, toByteOffset: n + 1, as: UInt8.self)
        n += 2
    }

    /// memcached's META_KEY: " k<key>", or " k<base64 key> b" for a binary key.
    func put(key: UnsafeRawPointer, _ length: Int, binary: Bool, at n: inout Int) {
        put(flag: UInt8(ascii: "k"), at: &n)
        if binary {
            n += base64Encode(key, length, into: line + n)
            put(" b", at: &n)
        } else {
            put(key, length, at: &n)
        }
    }

    /// The opaque token, if not too long: " O..." (false: too long).
    func put(opaque t: Token, at n: inout Int) -> Bool {
        guard t.length <= MemcachedEngine.maxOpaqueLength else { return false }
        line.storeBytes(of: 32, toByteOffset: n, as: UInt8.self)
        n += 1
        put(t.start, t.length, at: &n)
        return true
    }

    /// The O and k flags of a reply without an item (the request's key). False: an opaque too long.
    func putOpaqueAndKey(_ ntokens: Int, key: Token, binary: Bool, at n: inout Int) -> Bool {
        var i = 2
        while i < ntokens - 1 {
            switch tokens[i].start.load(as: UInt8.self) {
            case UInt8(ascii: "O"): if !put(opaque: tokens[i], at: &n) { return false }
            case UInt8(ascii: "k"): put(key: key.start, key.length, binary: binary, at: &n)
            default: break
            }
            i += 1
        }
        return true
    }

    /// " t<seconds left>" (" t-1": no expiry), as memcached's unsigned subtraction prints it.
    func put(ttlOf item: ItemStore.Item, now: UInt32, at n: inout Int) {
        put(flag: UInt8(ascii: "t"), at: &n)
        if item.exptime == 0 { put("-1", at: &n) } else { put(decimal: UInt64(item.exptime &- now), at: &n) }
    }

    func sendLine<S: ResponseSink>(_ n: Int, _ sink: inout S) {
        sink.append(UnsafeRawPointer(line), count: n)
        sink.append("\r\n")
    }

    // MARK: mg

    mutating func metaGet<S: ResponseSink>(_ ntokens: Int, now: UInt32, _ sink: inout S) {
        guard ntokens >= 3 else { return out("ERROR", noreply: false, &sink) }
        guard tokens[1].length <= ItemStore.maxKeyLength else { return out("CLIENT_ERROR bad command line format", noreply: false, &sink) }
        guard ntokens <= MemcachedEngine.maxMetaTokens else { return out("CLIENT_ERROR options flags are too long", noreply: false, &sink) }
        var flags = MetaFlags()
        let parsed = preparse(ntokens, from: 2, now: now, &flags)
        if parsed.failed { return out(parsed.error ?? "CLIENT_ERROR bad command line format", noreply: false, &sink) }
        let key = tokens[1]
        var item = store.find(key.start, key.length, now: now)
        var created = false
        if item == nil && flags.vivify {
            // An empty item under the key (its expiry from N below), linked at once.
            if let fresh = try? store.allocate(key: key.start, keyLength: key.length, valueLength: 0, flags: 0, exptime: 0, now: now) {
                if flags.keyBinary { fresh.set(ItemStore.binaryKey) }
                store.link(fresh, now: now)
                item = fresh
                created = true
            }
        }
        var n = 0
        guard let item else {
            stats.generalMisses &+= 1
            put("EN", at: &n)
            guard putOpaqueAndKey(ntokens, key: key, binary: flags.keyBinary, at: &n) else {
                return out("CLIENT_ERROR opaque token too long", noreply: false, &sink)
            }
            if flags.noReply { return sink.skipResponse() }
            return sendLine(n, &sink)
        }
        if flags.value {
            put("VA ", at: &n)
            put(decimal: UInt64(item.valueLength), at: &n)
        } else {
            put("HD", at: &n)
        }
        var ttlSet = false
        var won = false
        var i = 2
        while i < ntokens - 1 {
            let t = tokens[i]
            switch t.start.load(as: UInt8.self) {
            case UInt8(ascii: "T"):
                ttlSet = true
                store.setExptime(item, flags.exptime)
            case UInt8(ascii: "N"):
                if created {
                    store.setExptime(item, flags.autovivifyExptime)
                    won = true
                }
            case UInt8(ascii: "R"):
                if !item.has(ItemStore.tokenSent) && !created && item.exptime != 0 && item.exptime < flags.recacheTime { won = true }
            case UInt8(ascii: "s"):
                put(flag: UInt8(ascii: "s"), at: &n)
                put(decimal: UInt64(item.valueLength), at: &n)
            case UInt8(ascii: "t"):
                put(ttlOf: item, now: now, at: &n)
            case UInt8(ascii: "c"):
                put(flag: UInt8(ascii: "c"), at: &n)
                put(decimal: item.cas, at: &n)
            case UInt8(ascii: "f"):
                put(flag: UInt8(ascii: "f"), at: &n)
                put(decimal: UInt64(item.flags), at: &n)
            case UInt8(ascii: "l"):
                put(flag: UInt8(ascii: "l"), at: &n)
                put(decimal: UInt64(UInt32(now &- item.time)), at: &n)
            case UInt8(ascii: "h"):
                put(flag: UInt8(ascii: "h"), at: &n)
                put(item.wasFetched ? "1" : "0", at: &n)
            case UInt8(ascii: "O"):
                // memcached reports this after it has applied the flags before it.
                guard put(opaque: t, at: &n) else { return out("CLIENT_ERROR opaque token too long", noreply: false, &sink) }
            case UInt8(ascii: "k"):
                put(key: item.key, item.keyLength, binary: item.has(ItemStore.binaryKey), at: &n)
            default:
                break
            }
            i += 1
        }
        if item.has(ItemStore.tokenSent) { put(flag: UInt8(ascii: "Z"), at: &n) }
        if item.has(ItemStore.stale) {
            put(flag: UInt8(ascii: "X"), at: &n)
            if !item.has(ItemStore.tokenSent) { won = true }
        }
        if won {
            put(flag: UInt8(ascii: "W"), at: &n)
            item.set(ItemStore.tokenSent)
        }
        sendLine(n, &sink)
        if flags.value {
            sink.append(UnsafeRawPointer(item.value), count: item.valueLength)
            sink.append("\r\n")
        }
        // memcached's bump, after the reply was built (h shows the state before this fetch).
        if !flags.noUpdate { item.markFetched() }
        if ttlSet { stats.touchHits &+= 1 } else { stats.generalHits &+= 1 }
    }

    // MARK: ms

    mutating func metaSet<S: ResponseSink>(_ ntokens: Int, rest: UnsafeRawPointer, end: UnsafeRawPointer, now: UInt32,
                                          _ sink: inout S) -> Flow {
        guard ntokens >= 3 else {
            out("ERROR", noreply: false, &sink)
            return .continueAt(rest)
        }
        guard tokens[1].length <= ItemStore.maxKeyLength, ntokens != 3 else {
            out("CLIENT_ERROR bad command line format", noreply: false, &sink)
            return .continueAt(rest)
        }
        guard ntokens <= MemcachedEngine.maxMetaTokens else {
            out("CLIENT_ERROR options flags too long", noreply: false, &sink)
            return .continueAt(rest)
        }
        // Errors before the length is known leave the data to be read as a command, as in memcached.
        guard let length = parseInt32(tokens[2]), length >= 0, length <= Int64(Int32.max) - 2 else {
            out("CLIENT_ERROR bad command line format", noreply: false, &sink)
            return .continueAt(rest)
        }
        let valueLength = Int(length)
        let dataEnd = rest + min(end - rest, valueLength + 2)
        var flags = MetaFlags()
        let parsed = preparse(ntokens, from: 3, now: now, &flags)
        if parsed.failed {
            // memcached swallows the data after an error.
            out(parsed.error ?? "CLIENT_ERROR bad command line format", noreply: false, &sink)
            return .continueAt(dataEnd)
        }
        var opaqueTooLong = false
        var i = 3
        while i < ntokens - 1 {
            if tokens[i].start.load(as: UInt8.self) == UInt8(ascii: "O") && tokens[i].length > MemcachedEngine.maxOpaqueLength {
                opaqueTooLong = true
            }
            i += 1
        }
        var command: StoreCommand
        switch flags.mode {
        case 0, UInt8(ascii: "S"): command = .set
        case UInt8(ascii: "E"): command = .add
        case UInt8(ascii: "A"): command = .append
        case UInt8(ascii: "P"): command = .prepend
        case UInt8(ascii: "R"): command = .replace
        default:
            out("CLIENT_ERROR invalid mode for ms M token", noreply: false, &sink)
            return .continueAt(dataEnd)
        }
        // A unique makes set and replace a cas; add ignores it; append and prepend check it.
        if flags.hasCas && (command == .set || command == .replace) { command = .cas }
        if opaqueTooLong {
            out("CLIENT_ERROR opaque token too long", noreply: false, &sink)
            return .continueAt(dataEnd)
        }
        let key = tokens[1]
        let item: ItemStore.Item
        do throws(ItemStore.AllocationFailure) {
            if ItemStore.memcachedSize(keyLength: key.length, flags: flags.clientFlags, valueLength: valueLength) > 1 << 20 {
                throw .tooLarge
            }
            item = try store.allocate(key: key.start, keyLength: key.length, valueLength: valueLength, flags: flags.clientFlags,
                                      exptime: flags.exptime, now: now)
        } catch {
            if error == .tooLarge {
                stats.storeTooLarge &+= 1
                out("SERVER_ERROR object too large for cache", noreply: false, &sink)
            } else {
                stats.storeNoMemory &+= 1
                out("SERVER_ERROR out of memory storing object", noreply: false, &sink)
            }
            // No stale value left behind a failed store, whatever the mode.
            store.remove(key.start, key.length, now: now)
            return .continueAt(dataEnd)
        }
        if flags.keyBinary { item.set(ItemStore.binaryKey) }
        stats.setCmds &+= 1
        guard end - rest >= valueLength + 2,
              (rest + valueLength).load(as: UInt8.self) == 13, (rest + valueLength + 1).load(as: UInt8.self) == 10 else {
            store.discard(item)
            stats.errors &+= 1
            if end - rest < valueLength + 2 { stats.dataBeyondDatagram &+= 1 }
            out("CLIENT_ERROR bad data chunk", noreply: false, &sink)
            return .continueAt(dataEnd)
        }
        item.value.copyMemory(from: rest, byteCount: valueLength)
        let result = storeItem(item, command, casUnique: flags.hasCas ? flags.casUnique : 0,
                               setStale: flags.setStale && command == .cas, now: now)
        var n = 0
        switch result {
        case .stored: put("HD", at: &n)
        case .exists: put("EX", at: &n)
        case .notFound: put("NF", at: &n)
        case .notStored: put("NS", at: &n)
        case .outOfMemory:
            out("SERVER_ERROR out of memory storing object", noreply: false, &sink)
            return .continueAt(dataEnd)
        }
        // The item as stored (append and prepend store a joined copy): its cas and key flag.
        let stored = result == .stored ? store.find(key.start, key.length, now: now) : nil
        i = 3
        while i < ntokens - 1 {
            switch tokens[i].start.load(as: UInt8.self) {
            case UInt8(ascii: "O"): _ = put(opaque: tokens[i], at: &n)
            case UInt8(ascii: "k"): put(key: key.start, key.length, binary: flags.keyBinary, at: &n)
            case UInt8(ascii: "c"):
                put(flag: UInt8(ascii: "c"), at: &n)
                put(decimal: stored?.cas ?? 0, at: &n)
            default: break
            }
            i += 1
        }
        if result == .stored && flags.noReply {
            sink.skipResponse()
        } else {
            sendLine(n, &sink)
        }
        return .continueAt(dataEnd)
    }

    // MARK: md

    mutating func metaDelete<S: ResponseSink>(_ ntokens: Int, now: UInt32, _ sink: inout S) {
        guard ntokens >= 3 else { return out("ERROR", noreply: false, &sink) }
        guard tokens[1].length <= ItemStore.maxKeyLength else { return out("CLIENT_ERROR bad command line format", noreply: false, &sink) }
        guard ntokens <= MemcachedEngine.maxMetaTokens else { return out("CLIENT_ERROR options flags too long", noreply: false, &sink) }
        var flags = MetaFlags()
        if preparse(ntokens, from: 2, now: now, &flags).failed { return out("CLIENT_ERROR invalid or duplicate flag", noreply: false, &sink) }
        let key = tokens[1]
        var n = 2   // the status goes in front
        guard putOpaqueAndKey(ntokens, key: key, binary: flags.keyBinary, at: &n) else {
            return out("CLIENT_ERROR opaque token too long", noreply: false, &sink)
        }
        var quiet = false
        if let item = store.find(key.start, key.length, now: now) {
            if flags.hasCas && item.cas != flags.casUnique {
                stats.deleteMisses &+= 1
                line.copyMemory(from: ("EX" as StaticString).utf8Start, byteCount: 2)
            } else if flags.setStale {
                // Invalidate: kept, stale, a new cas, the token free for the next client.
                if flags.newTTL { store.setExptime(item, flags.exptime) }
                item.set(ItemStore.stale)
                item.clear(ItemStore.tokenSent)
                store.valueChanged(item)
                quiet = flags.noReply
                line.copyMemory(from: ("HD" as StaticString).utf8Start, byteCount: 2)
            } else {
                stats.deleteHits &+= 1
                store.remove(key.start, key.length, now: now)
                quiet = flags.noReply
                line.copyMemory(from: ("HD" as StaticString).utf8Start, byteCount: 2)
            }
        } else {
            stats.deleteMisses &+= 1
            line.copyMemory(from: ("NF" as StaticString).utf8Start, byteCount: 2)
        }
        if quiet { return sink.skipResponse() }
        sendLine(n, &sink)
    }

    // MARK: ma

    mutating func metaArithmetic<S: ResponseSink>(_ ntokens: Int, now: UInt32, _ sink: inout S) {
        guard ntokens >= 3 else { return out("ERROR", noreply: false, &sink) }
        guard tokens[1].length <= ItemStore.maxKeyLength else { return out("CLIENT_ERROR bad command line format", noreply: false, &sink) }
        guard ntokens <= MemcachedEngine.maxMetaTokens else { return out("CLIENT_ERROR options flags too long", noreply: false, &sink) }
        var flags = MetaFlags()
        flags.delta = 1
        if preparse(ntokens, from: 2, now: now, &flags).failed { return out("CLIENT_ERROR invalid or duplicate flag", noreply: false, &sink) }
        let key = tokens[1]
        let incr: Bool
        switch flags.mode {
        case 0, UInt8(ascii: "I"), UInt8(ascii: "+"): incr = true
        case UInt8(ascii: "D"), UInt8(ascii: "-"): incr = false
        default: return out("CLIENT_ERROR invalid mode for ma M token", noreply: false, &sink)
        }
        var n = 0
        var item: ItemStore.Item? = nil
        var created = false
        var digits = 0
        switch addDelta(key, incr: incr, delta: flags.delta, casUnique: flags.casUnique, now: now) {
        case .changed(let changed, let count):
            item = changed
            digits = count
        case .nonNumeric:
            return out("CLIENT_ERROR cannot increment or decrement non-numeric value", noreply: false, &sink)
        case .outOfMemory:
            return out("SERVER_ERROR out of memory", noreply: false, &sink)
        case .casMismatch:
            put("EX", at: &n)
        case .notFound:
            if flags.vivify {
                digits = writeDecimal(flags.initial, to: deltaDigits)
                guard let fresh = try? store.allocate(key: key.start, keyLength: key.length, valueLength: digits, flags: 0,
                                                      exptime: 0, now: now) else {
                    return out("SERVER_ERROR Out of memory allocating new item", noreply: false, &sink)
                }
                fresh.value.copyMemory(from: deltaDigits, byteCount: digits)
                _ = storeItem(fresh, .add, casUnique: 0, now: now)
                item = fresh
                created = true
            } else {
                if incr { stats.incrMisses &+= 1 } else { stats.decrMisses &+= 1 }
                put("NF", at: &n)
            }
        }
        guard let item else {
            guard putOpaqueAndKey(ntokens, key: key, binary: flags.keyBinary, at: &n) else {
                return out("CLIENT_ERROR opaque token too long", noreply: false, &sink)
            }
            return sendLine(n, &sink)
        }
        if flags.value {
            put("VA ", at: &n)
            put(decimal: UInt64(digits), at: &n)
        } else {
            put("HD", at: &n)
        }
        var i = 2
        while i < ntokens - 1 {
            let t = tokens[i]
            switch t.start.load(as: UInt8.self) {
            case UInt8(ascii: "c"):
                put(flag: UInt8(ascii: "c"), at: &n)
                put(decimal: item.cas, at: &n)
            case UInt8(ascii: "t"): put(ttlOf: item, now: now, at: &n)
            case UInt8(ascii: "T"): store.setExptime(item, flags.exptime)
            case UInt8(ascii: "N"): if created { store.setExptime(item, flags.autovivifyExptime) }
            case UInt8(ascii: "O"):
                guard put(opaque: t, at: &n) else { return out("CLIENT_ERROR opaque token too long", noreply: false, &sink) }
            case UInt8(ascii: "k"): put(key: key.start, key.length, binary: flags.keyBinary, at: &n)
            default: break
            }
            i += 1
        }
        if flags.value {
            put("\r\n", at: &n)
            put(deltaDigits, digits, at: &n)
        }
        if flags.noReply && !created {
            sink.skipResponse()
        } else {
            sendLine(n, &sink)
        }
    }

    // MARK: me

    /// `me <key> [b]`: memcached's debug line for an item, or EN. memcached's own fields where
    /// they are its arithmetic on our item: exp (now - expiry, -1 for none), la (seconds since
    /// stored), cas, fetch, cls (the class memcached's default slabs would put it in), size
    /// (memcached's item size).
    mutating func metaDebug<S: ResponseSink>(_ ntokens: Int, now: UInt32, _ sink: inout S) {
        guard ntokens >= 3, tokens[1].length <= ItemStore.maxKeyLength else {
            return out("CLIENT_ERROR bad command line format", noreply: false, &sink)
        }
        var key = tokens[1]
        if ntokens >= 4 && tokens[2].length == 1 && tokens[2].start.load(as: UInt8.self) == UInt8(ascii: "b") {
            let decoded = base64Decode(key.start, key.length, into: keyScratch)
            guard decoded != 0 else { return out("CLIENT_ERROR bad command line format", noreply: false, &sink) }
            key = Token(start: UnsafeRawPointer(keyScratch), length: decoded)
        }
        // memcached counts the ones that get this far.
        stats.metaCmds &+= 1
        guard let item = store.find(key.start, key.length, now: now) else { return out("EN", noreply: false, &sink) }
        var n = 0
        put("ME ", at: &n)
        if item.has(ItemStore.binaryKey) {
            n += base64Encode(item.key, item.keyLength, into: line + n)
        } else {
            put(item.key, item.keyLength, at: &n)
        }
        put(" exp=", at: &n)
        if item.exptime == 0 {
            put("-1", at: &n)
        } else {
            let e = Int64(Int32(truncatingIfNeeded: now &- item.exptime))
            if e < 0 { put("-", at: &n) }
            put(decimal: e.magnitude, at: &n)
        }
        put(" la=", at: &n)
        put(decimal: UInt64(UInt32(now &- item.time)), at: &n)
        put(" cas=", at: &n)
        put(decimal: item.cas, at: &n)
        put(item.wasFetched ? " fetch=yes" : " fetch=no", at: &n)
        let size = ItemStore.memcachedSize(keyLength: item.keyLength, flags: item.flags, valueLength: item.valueLength)
        put(" cls=", at: &n)
        put(decimal: UInt64(MemcachedEngine.memcachedSlabClass(size)), at: &n)
        put(" size=", at: &n)
        put(decimal: UInt64(size), at: &n)
        sendLine(n, &sink)
    }

    /// The slab class memcached 1.6.18 with its defaults (-n 48, -f 1.25, 512 KiB chunks at
    /// most) puts an item of `size` bytes in: classes from 96 bytes, each 1.25 times the last
    /// (rounded up to 8), the last one 512 KiB; larger items are chunked in the largest class.
    public static func memcachedSlabClass(_ size: Int) -> Int {
        var chunk = 96   // sizeof(item) + -n 48
        var id = 1
        while size > chunk {
            // memcached multiplies the aligned size, and stops (the last class: 512 KiB) once the
            // product reaches slab_chunk_max / factor.
            let next = Int(Double(chunk) * 1.25)
            id += 1
            if Double(next) >= 524_288.0 / 1.25 { return id }
            chunk = (next + 7) & ~7
        }
        return id
    }

    // MARK: base64, as memcached's base64.c treats it

    /// Decodes `count` bytes at `source` into `out`; returns the bytes written, 0 when the
    /// text is not base64 (memcached skips characters outside the alphabet, and needs a
    /// multiple of four of the rest).
    func base64Decode(_ source: UnsafeRawPointer, _ count: Int, into out: UnsafeMutableRawPointer) -> Int {
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): c - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): c - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"): 62
            case UInt8(ascii: "/"): 63
            case UInt8(ascii: "="): 0
            default: nil
            }
        }
        var symbols = 0
        for i in 0..<count where value(source.load(fromByteOffset: i, as: UInt8.self)) != nil { symbols += 1 }
        guard symbols != 0, symbols % 4 == 0 else { return 0 }
        var block: UInt32 = 0
        var inBlock = 0
        var padding = 0
        var n = 0
        for i in 0..<count {
            let c = source.load(fromByteOffset: i, as: UInt8.self)
            guard let v = value(c) else { continue }
            if c == UInt8(ascii: "=") { padding += 1 }
            block = block << 6 | UInt32(v)
            inBlock += 1
            if inBlock == 4 {
                out.storeBytes(of: UInt8(truncatingIfNeeded: block >> 16), toByteOffset: n, as: UInt8.self)
                out.storeBytes(of: UInt8(truncatingIfNeeded: block >> 8), toByteOffset: n + 1, as: UInt8.self)
                out.storeBytes(of: UInt8(truncatingIfNeeded: block), toByteOffset: n + 2, as: UInt8.self)
                n += 3
                inBlock = 0
                block = 0
                if padding > 0 {
                    guard padding <= 2 else { return 0 }
                    n -= padding
                    break
                }
            }
        }
        return n
    }

    /// Standard base64 with padding; returns the bytes written.
    func base64Encode(_ source: UnsafeRawPointer, _ count: Int, into out: UnsafeMutableRawPointer) -> Int {
        let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        let table = alphabet.utf8Start
        var n = 0
        var i = 0
        while i < count {
            let b0 = UInt32(source.load(fromByteOffset: i, as: UInt8.self))
            let b1 = i + 1 < count ? UInt32(source.load(fromByteOffset: i + 1, as: UInt8.self)) : 0
            let b2 = i + 2 < count ? UInt32(source.load(fromByteOffset: i + 2, as: UInt8.self)) : 0
            let triple = b0 << 16 | b1 << 8 | b2
            for k in 0..<4 {
                let c = k <= (count - i) ? table[Int(triple >> UInt32(18 - 6 * k) & 63)] : UInt8(ascii: "=")
                out.storeBytes(of: c, toByteOffset: n + k, as: UInt8.self)
            }
            n += 4
            i += 3
        }
        return n
    }
}
