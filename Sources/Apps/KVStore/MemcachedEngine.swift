import UKNetdev

/// memcached's text protocol (1.6.18) over one UDP datagram's payload: parses each command
/// line, runs it against the `ItemStore`, and writes replies byte-identical to memcached's
/// into a `ResponseSink`. Follows proto_text.c: the same tokenizer (spaces only, at most 24
/// tokens), the same checks in the same order, the same error strings.
///
/// Where memcached's UDP handling is broken, each datagram stands alone here: a value that
/// would continue into the next datagram gets `CLIENT_ERROR bad data chunk`, and an oversized
/// set swallows only the rest of its own datagram.
public struct MemcachedEngine {
    public var store: ItemStore
    public var stats = KVCommandStats()
    /// memcached's -A: the `shutdown` command ends the store (the program asks
    /// `shutdownRequested`), with no reply, as memcached closes the connection. Off: ERROR.
    public var shutdownEnabled = false
    public private(set) var shutdownRequested = false
    /// What `stats` reports about the process (pid, CPU time, address and port).
    public var environment = StatsEnvironment()
    /// memcached reports one connection (its UDP socket) until the first `stats reset`.
    var statsWereReset = false
    /// Whether commands that change the store run; off for an untrusted source when the store
    /// has an allow list (`SourcePolicy`): they get `SourceGuard.refusedWrite`.
    public var writesAllowed = true
    /// Time the store treats as "process start" for absolute expiry (memcached's process_started).
    public let startTime: UInt32

    let tokens: UnsafeMutablePointer<Token>
    static var maxTokens: Int { 24 }
    /// Scratch: a meta reply line (two base64 keys, twenty flags, a value's digits), a decoded
    /// base64 key, and the digits of an incr/decr result.
    let line: UnsafeMutableRawPointer
    static var lineCapacity: Int { 2048 }
    let keyScratch: UnsafeMutableRawPointer
    let deltaDigits: UnsafeMutableRawPointer
    public static let version: StaticString = "VERSION 1.6.18"

    public init(memoryBytes: Int, startTime: UInt32) {
        store = ItemStore(memoryBytes: memoryBytes)
        self.startTime = startTime
        tokens = .allocate(capacity: MemcachedEngine.maxTokens + 1)
        line = .allocate(byteCount: MemcachedEngine.lineCapacity, alignment: 8)
        keyScratch = .allocate(byteCount: 256, alignment: 8)
        deltaDigits = .allocate(byteCount: 32, alignment: 8)
    }

    public func deallocate() {
        tokens.deallocate()
        line.deallocate()
        keyScratch.deallocate()
        deltaDigits.deallocate()
        store.deallocate()
    }

    /// Back to the state `init` left: no items, zero counters, `shutdown` not requested
    /// (`shutdownEnabled` and `writesAllowed` as they are). Allocates nothing.
    public mutating func removeAll() {
        store.removeAll()
        stats = KVCommandStats()
        shutdownRequested = false
        statsWereReset = false
    }

    /// A token: where it starts in the line and how long it is.
    struct Token {
        var start: UnsafeRawPointer
        var length: Int
    }

    /// Runs every complete command line in `payload` (the datagram after its 8-byte header).
    public mutating func execute<S: ResponseSink>(_ payload: UnsafeRawPointer, count: Int, now: UInt32, into sink: inout S) {
        var cursor = payload
        let end = payload + count
        var commandsInBatch = 0
        var batchLimit = 21   // memcached -R 20: a flush after the 21st command, then every 20
        while cursor < end {
            guard let newline = findByte(10, from: cursor, to: end) else {
                // memcached waits for the rest of a line; a datagram never brings it. Past 2 KiB it
                // gives up on anything but a multiget and drops what it had stacked.
                stats.incompleteLines &+= 1
                if end - cursor > 2048 && !startsLikeMultiget(cursor, end) { sink.discardUnflushed() }
                break
            }
            var lineEnd = newline
            if newline - cursor > 1 && (newline - 1).load(as: UInt8.self) == 13 { lineEnd = newline - 1 }
            let next = newline + 1
            let flow = runCommand(cursor, lineEnd - cursor, rest: next, end: end, now: now, sink: &sink)
            guard case .continueAt(let p) = flow else { break }
            cursor = p
            commandsInBatch += 1
            if commandsInBatch == batchLimit {
                sink.flush()
                commandsInBatch = 0
                batchLimit = 20
            }
        }
        sink.flush()
    }

    /// At most 100 spaces, then "get " or "gets ".
    func startsLikeMultiget(_ start: UnsafeRawPointer, _ end: UnsafeRawPointer) -> Bool {
        var p = start
        while p < end && p.load(as: UInt8.self) == 32 { p += 1 }
        guard p - start <= 100 else { return false }
        func has(_ s: StaticString) -> Bool {
            end - p >= s.utf8CodeUnitCount && memoryEqual(p, UnsafeRawPointer(s.utf8Start), s.utf8CodeUnitCount)
        }
        return has("get ") || has("gets ")
    }

    enum Flow {
        case continueAt(UnsafeRawPointer)
        case stop
    }

    /// The first `byte` in [start, end), eight bytes at a time (the SWAR zero-byte test).
    @inline(__always)
    func findByte(_ byte: UInt8, from start: UnsafeRawPointer, to end: UnsafeRawPointer) -> UnsafeRawPointer? {
        let pattern = UInt64(byte) &* 0x0101_0101_0101_0101
        var p = start
        while end - p >= 8 {
            let x = p.loadUnaligned(as: UInt64.self) ^ pattern
            let found = (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080
            if found != 0 { return p + found.trailingZeroBitCount / 8 }
            p += 8
        }
        while p < end {
            if p.load(as: UInt8.self) == byte { return p }
            p += 1
        }
        return nil
    }

    /// The first space or NUL in [start, end) (a token's end), eight bytes at a time.
    @inline(__always)
    func findSpaceOrNul(from start: UnsafeRawPointer, to end: UnsafeRawPointer) -> UnsafeRawPointer {
        var p = start
        while end - p >= 8 {
            let w = p.loadUnaligned(as: UInt64.self)
            let s = w ^ 0x2020_2020_2020_2020
            let found = ((s &- 0x0101_0101_0101_0101) & ~s | (w &- 0x0101_0101_0101_0101) & ~w) & 0x8080_8080_8080_8080
            if found != 0 { return p + found.trailingZeroBitCount / 8 }
            p += 8
        }
        while p < end {
            let c = p.load(as: UInt8.self)
            if c == 32 || c == 0 { return p }
            p += 1
        }
        return end
    }

    /// Splits a line on spaces like memcached's tokenize_command; returns the token count
    /// including memcached's terminal empty token, and where unread input starts (nil when the
    /// whole line was split; set when it had more than 23 tokens).
    func tokenize(_ line: UnsafeRawPointer, _ length: Int) -> (count: Int, rest: UnsafeRawPointer?) {
        var n = 0
        var p = line
        let end = line + length
        while p < end {
            let c = p.load(as: UInt8.self)
            // memcached works on a C string: a NUL byte ends the line early.
            if c == 0 { break }
            if c == 32 {
                p += 1
                continue
            }
            let e = findSpaceOrNul(from: p, to: end)
            tokens[n] = Token(start: p, length: e - p)
            n += 1
            p = e
            if p < end && p.load(as: UInt8.self) == 0 { break }
            if n == MemcachedEngine.maxTokens - 1 && p < end {
                // memcached keeps at most 23 tokens: what follows the space after the 23rd is
                // left for the caller to tokenize again (even if it is only spaces).
                let rest = p + 1
                tokens[n] = Token(start: rest, length: 0)
                return (n + 1, rest < end && rest.load(as: UInt8.self) != 0 ? rest : nil)
            }
        }
        tokens[n] = Token(start: p, length: 0)
        return (n + 1, nil)
    }

    @inline(__always)
    func token(_ i: Int, is literal: StaticString) -> Bool {
        let t = tokens[i]
        return t.length == literal.utf8CodeUnitCount && memoryEqual(t.start, UnsafeRawPointer(literal.utf8Start), t.length)
    }

    /// memcached's set_noreply_maybe: a last token "noreply" suppresses the reply.
    func noreply(_ ntokens: Int) -> Bool { ntokens >= 2 && token(ntokens - 2, is: "noreply") }

    /// memcached's out_string: a response of `line` + "\r\n", or nothing under noreply.
    func out<S: ResponseSink>(_ line: StaticString, noreply: Bool, _ sink: inout S) {
        if noreply {
            sink.skipResponse()
            return
        }
        sink.append(line)
        sink.append("\r\n")
    }

    mutating func runCommand<S: ResponseSink>(_ line: UnsafeRawPointer, _ length: Int, rest: UnsafeRawPointer,
                                              end: UnsafeRawPointer, now: UInt32, sink: inout S) -> Flow {
        sink.beginResponse()
        stats.commands &+= 1
        let c0 = length > 0 ? line.load(as: UInt8.self) : 0
        let (ntokens, more) = tokenize(line, length)
        guard ntokens >= 2, tokens[0].length >= 2 else { return error(rest, &sink) }
        if !writesAllowed && changesStore() { return refuseWrite(ntokens, rest: rest, end: end, &sink) }
        if c0 == UInt8(ascii: "m"), let flow = metaCommand(ntokens, rest: rest, end: end, now: now, &sink) { return flow }
        switch c0 {
        case UInt8(ascii: "g"):
            guard ntokens >= 3 else { return error(rest, &sink) }
            if token(0, is: "get") { return get(more, lineEnd: line + length, cas: false, touch: false, rest: rest, now: now, &sink) }
            if token(0, is: "gets") { return get(more, lineEnd: line + length, cas: true, touch: false, rest: rest, now: now, &sink) }
            if token(0, is: "gat") { return get(more, lineEnd: line + length, cas: false, touch: true, rest: rest, now: now, &sink) }
            if token(0, is: "gats") { return get(more, lineEnd: line + length, cas: true, touch: true, rest: rest, now: now, &sink) }
            return error(rest, &sink)
        case UInt8(ascii: "s"):
            if token(0, is: "set") {
                guard ntokens == 6 || ntokens == 7 else { return error(rest, &sink) }
                return update(.set, ntokens, rest: rest, end: end, now: now, &sink)
            }
            if token(0, is: "stats") {
                statsCommand(ntokens, now: now, &sink)
                return .continueAt(rest)
            }
            if token(0, is: "shutdown") {
                shutdown(ntokens, &sink)
                return .continueAt(rest)
            }
            if token(0, is: "slabs") { return unsupported(rest, &sink) }
            return error(rest, &sink)
        case UInt8(ascii: "a"):
            if token(0, is: "add") || token(0, is: "append") {
                guard ntokens == 6 || ntokens == 7 else { return error(rest, &sink) }
                return update(token(0, is: "add") ? .add : .append, ntokens, rest: rest, end: end, now: now, &sink)
            }
            return error(rest, &sink)
        case UInt8(ascii: "c"):
            if token(0, is: "cas") {
                guard ntokens == 7 || ntokens == 8 else { return error(rest, &sink) }
                return update(.cas, ntokens, rest: rest, end: end, now: now, &sink)
            }
            if token(0, is: "cache_memlimit") { return unsupported(rest, &sink) }
            return error(rest, &sink)
        case UInt8(ascii: "i"):
            if token(0, is: "incr") {
                guard ntokens == 4 || ntokens == 5 else { return error(rest, &sink) }
                arithmetic(incr: true, ntokens, now: now, &sink)
                return .continueAt(rest)
            }
            return error(rest, &sink)
        case UInt8(ascii: "d"):
            if token(0, is: "delete") {
                guard ntokens >= 3 && ntokens <= 5 else { return error(rest, &sink) }
                delete(ntokens, now: now, &sink)
                return .continueAt(rest)
            }
            if token(0, is: "decr") {
                guard ntokens == 4 || ntokens == 5 else { return error(rest, &sink) }
                arithmetic(incr: false, ntokens, now: now, &sink)
                return .continueAt(rest)
            }
            return error(rest, &sink)
        case UInt8(ascii: "t"):
            if token(0, is: "touch") {
                guard ntokens == 4 || ntokens == 5 else { return error(rest, &sink) }
                touch(ntokens, now: now, &sink)
                return .continueAt(rest)
            }
            return error(rest, &sink)
        default:
            break
        }
        if token(0, is: "prepend") || token(0, is: "replace") {
            guard ntokens == 6 || ntokens == 7 else { return error(rest, &sink) }
            return update(token(0, is: "prepend") ? .prepend : .replace, ntokens, rest: rest, end: end, now: now, &sink)
        }
        if token(0, is: "bget") {
            guard ntokens >= 3 else { return error(rest, &sink) }
            return get(more, lineEnd: line + length, cas: false, touch: false, rest: rest, now: now, &sink)
        }
        if token(0, is: "flush_all") {
            guard ntokens >= 2 && ntokens <= 4 else { return error(rest, &sink) }
            flushAll(ntokens, now: now, &sink)
            return .continueAt(rest)
        }
        if token(0, is: "version") {
            stats.count(.version)
            out(MemcachedEngine.version, noreply: false, &sink)
            return .continueAt(rest)
        }
        if token(0, is: "quit") {
            // memcached closes the "connection": an empty response, nothing more of this datagram
            // is read. (memcached keeps that state for the rest of its life; here it ends with
            // the datagram.)
            stats.count(.quit)
            return .stop
        }
        if token(0, is: "verbosity") {
            guard ntokens == 3 || ntokens == 4 else { return error(rest, &sink) }
            stats.count(.verbosity)
            // The level is parsed (and ignored: there is no log here), as memcached does.
            if parseFlags(tokens[1]) == nil {
                stats.errors &+= 1
                out("CLIENT_ERROR bad command line format", noreply: noreply(ntokens), &sink)
            } else {
                out("OK", noreply: noreply(ntokens), &sink)
            }
            return .continueAt(rest)
        }
        if token(0, is: "refresh_certs") {
            // memcached without TLS, as this store is.
            stats.unsupported &+= 1
            out("Error TLS not enabled", noreply: false, &sink)
            return .continueAt(rest)
        }
        if token(0, is: "lru_crawler") || token(0, is: "watch") || token(0, is: "lru") || token(0, is: "misbehave") {
            return unsupported(rest, &sink)
        }
        let last = tokens[ntokens - 2]
        if last.length >= 5 && memoryEqual(last.start, UnsafeRawPointer(("HTTP/" as StaticString).utf8Start), 5) {
            // memcached drops an HTTP client's connection, and what it had stacked, without a word.
            stats.errors &+= 1
            sink.discardUnflushed()
            return .stop
        }
        return error(rest, &sink)
    }


    /// Whether the command in `tokens` changes the store (or an item's expiry).
    func changesStore() -> Bool {
        storesData() || token(0, is: "incr") || token(0, is: "decr") || token(0, is: "delete") || token(0, is: "touch")
            || token(0, is: "gat") || token(0, is: "gats") || token(0, is: "flush_all") || token(0, is: "md") || token(0, is: "ma")
    }

    /// Whether the command in `tokens` is one whose data block follows its line.
    func storesData() -> Bool {
        token(0, is: "set") || token(0, is: "add") || token(0, is: "replace") || token(0, is: "append")
            || token(0, is: "prepend") || token(0, is: "cas") || token(0, is: "ms")
    }

    /// A write from a source that may not write: `SourceGuard.refusedWrite` (nothing under
    /// noreply), and a storage command's data, as far as this datagram holds it, skipped.
    mutating func refuseWrite<S: ResponseSink>(_ ntokens: Int, rest: UnsafeRawPointer, end: UnsafeRawPointer, _ sink: inout S) -> Flow {
        stats.refusedWrites &+= 1
        out(SourceGuard.refusedWrite, noreply: noreply(ntokens), &sink)
        // The data's length: ms <key> <length> ..., the others' fourth argument.
        let isMetaSet = token(0, is: "ms")
        guard storesData(), ntokens >= (isMetaSet ? 4 : 6), let vlen = parseInt32(tokens[isMetaSet ? 2 : 4]), vlen >= 0 else {
            return .continueAt(rest)
        }
        return .continueAt(rest + min(end - rest, Int(vlen) + 2))
    }

    /// memcached's process_shutdown_command: off (no -A) it answers every form with the same
    /// text; on, `shutdown` and `shutdown graceful` end the store (no reply: memcached closes
    /// the connection), anything else is an invalid mode.
    mutating func shutdown<S: ResponseSink>(_ ntokens: Int, _ sink: inout S) {
        guard shutdownEnabled else {
            stats.unsupported &+= 1
            out("ERROR: shutdown not enabled", noreply: false, &sink)
            return
        }
        if ntokens == 2 || (ntokens == 3 && token(1, is: "graceful")) {
            shutdownRequested = true
            sink.skipResponse()
        } else {
            stats.errors &+= 1
            out("CLIENT_ERROR invalid shutdown mode", noreply: false, &sink)
        }
    }

    mutating func error<S: ResponseSink>(_ rest: UnsafeRawPointer, _ sink: inout S) -> Flow {
        stats.errors &+= 1
        out("ERROR", noreply: false, &sink)
        return .continueAt(rest)
    }

    /// Commands memcached has and this store does not (stats, meta commands, admin): answered
    /// with ERROR and counted.
    mutating func unsupported<S: ResponseSink>(_ rest: UnsafeRawPointer, _ sink: inout S) -> Flow {
        stats.unsupported &+= 1
        out("ERROR", noreply: false, &sink)
        return .continueAt(rest)
    }

    // MARK: Retrieval

    mutating func get<S: ResponseSink>(_ more: UnsafeRawPointer?, lineEnd: UnsafeRawPointer, cas: Bool, touch: Bool,
                                       rest: UnsafeRawPointer, now: UInt32, _ sink: inout S) -> Flow {
        stats.count(touch ? (cas ? .gats : .gat) : (cas ? .gets : .get))
        var keyIndex = 1
        var exptime: UInt32 = 0
        if touch {
            guard let e = parseInt32(tokens[1]) else {
                stats.errors &+= 1
                out("CLIENT_ERROR invalid exptime argument", noreply: false, &sink)
                return .continueAt(rest)
            }
            exptime = realtime(e, now: now)
            keyIndex = 2
        }
        var more = more
        while true {
            while tokens[keyIndex].length != 0 {
                let key = tokens[keyIndex]
                guard key.length <= ItemStore.maxKeyLength else {
                    // memcached drops the responses it stacked, then reports the error.
                    stats.errors &+= 1
                    sink.discardUnflushed()
                    sink.beginResponse()
                    out("CLIENT_ERROR bad command line format", noreply: false, &sink)
                    return .continueAt(rest)
                }
                if let item = store.fetch(key.start, key.length, now: now) {
                    if touch {
                        store.setExptime(item, exptime)
                        stats.touchHits &+= 1
                    } else {
                        stats.generalHits &+= 1
                    }
                    appendValue(item, cas: cas, &sink)
                } else if touch {
                    stats.touchMisses &+= 1
                } else {
                    stats.generalMisses &+= 1
                }
                keyIndex += 1
                if tokens[keyIndex].length != 0 { sink.beginResponse() }
            }
            guard let r = more else { break }
            // More than 23 tokens: memcached tokenizes the remainder and starts a response.
            let t = tokenize(r, lineEnd - r)
            more = t.rest
            keyIndex = 0
            sink.beginResponse()
        }
        sink.append("END\r\n")
        sink.flush()
        return .continueAt(rest)
    }

    @inline(__always)
    func appendValue<S: ResponseSink>(_ item: ItemStore.Item, cas: Bool, _ sink: inout S) {
        guard cas else {
            // The item is kept as memcached sends it.
            sink.append(UnsafeRawPointer(item.block), count: item.blockLength)
            return
        }
        let lineLength = 6 + item.keyLength + item.suffixLength - 2
        sink.append(UnsafeRawPointer(item.block), count: lineLength)
        sink.append(" ")
        sink.appendDecimal(item.cas)
        sink.append("\r\n")
        sink.append(UnsafeRawPointer(item.value), count: item.valueLength + 2)
    }
}

