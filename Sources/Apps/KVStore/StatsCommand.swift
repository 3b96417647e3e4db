import UKNetdev

/// memcached 1.6.18's `stats` family (proto_text.c process_stat, memcached.c server_stats and
/// get_stats): the general statistics in memcached's field order, `stats reset`, `stats
/// settings`, `stats sizes`, and memcached's answers to what this store has no equivalent for.
///
/// Each field is either ours (a counter or setting of this store, with memcached's meaning) or
/// fixed (memcached's value for something this store does not have: connections, threads'
/// buffers, the LRU maintainer, the slab rebalancer, TLS), so that every tool that reads
/// memcached's `stats` finds every field it expects. README.md, "stats", lists which is which.
extension MemcachedEngine {
    /// What the general statistics need from outside the engine: the program fills it in.
    public struct StatsEnvironment {
        /// The process id (0 where there is none: the unikernel).
        public var processID: UInt32 = 0
        /// The process's CPU time (user, system) in microseconds, if the platform can say.
        public var cpuTime: (@convention(c) (UnsafeMutablePointer<UInt64>) -> Void)? = nil
        /// The UDP port and address the store serves (`stats settings`).
        public var udpPort: UInt16 = 11211
        public var interface: IPv4Address = .any
        public init() {}
    }

    /// `stats` and its arguments (`tokens` holds the line, `ntokens` its count plus one).
    mutating func statsCommand<S: ResponseSink>(_ ntokens: Int, now: UInt32, _ sink: inout S) {
        if ntokens == 2 {
            generalStats(now: now, &sink)
        } else if token(1, is: "reset") {
            resetStats()
            out("RESET", noreply: false, &sink)
        } else if token(1, is: "settings") {
            settingsStats(&sink)
        } else if token(1, is: "sizes") {
            // memcached tracks item sizes only when started with -o track_sizes; neither does this store.
            sink.append("STAT sizes_status disabled\r\nEND\r\n")
        } else if token(1, is: "detail") && ntokens < 4 {
            stats.errors &+= 1
            out("CLIENT_ERROR usage: stats detail on|off|dump", noreply: false, &sink)
        } else {
            // Unknown arguments, and those this store has nothing for (items, slabs, detail,
            // cachedump, conns): memcached's answer to an unknown one.
            stats.unsupported &+= 1
            out("ERROR", noreply: false, &sink)
        }
    }

    /// memcached's `stats reset`: the counters `stats` shows go back to zero; the store's
    /// contents and sizes (curr_items, bytes) stay. This program's own report counters
    /// (commands, errors, ...) are not memcached's and stay too.
    mutating func resetStats() {
        let kept = stats
        stats = KVCommandStats()
        stats.byCommand = kept.byCommand
        stats.commands = kept.commands
        stats.loneGets = kept.loneGets
        stats.loneGetsBeforeReset = kept.loneGets
        stats.errors = kept.errors
        stats.unsupported = kept.unsupported
        stats.incompleteLines = kept.incompleteLines
        stats.dataBeyondDatagram = kept.dataBeyondDatagram
        stats.refusedWrites = kept.refusedWrites
        store.resetCounters()
        statsWereReset = true
    }

    /// `stats`: server_stats then get_stats(NULL), as memcached prints them with its defaults
    /// (no extstore, no proxy, no TLS, no idle timeout; slab reassign, LRU crawler and
    /// maintainer on, so their fields are there).
    mutating func generalStats<S: ResponseSink>(now: UInt32, _ sink: inout S) {
        let s = stats
        var cpu: (UInt64, UInt64) = (0, 0)
        if let cpuTime = environment.cpuTime {
            withUnsafeMutableBytes(of: &cpu) { cpuTime($0.baseAddress!.assumingMemoryBound(to: UInt64.self)) }
        }
        stat("pid", UInt64(environment.processID), &sink)
        stat("uptime", UInt64(now &- startTime), &sink)
        stat("time", UInt64(now), &sink)
        stat("version", text: "1.6.18", &sink)
        stat("libevent", text: "none", &sink)
        stat("pointer_size", UInt64(MemoryLayout<Int>.size * 8), &sink)
        stat("rusage_user", microseconds: cpu.0, &sink)
        stat("rusage_system", microseconds: cpu.1, &sink)
        stat("max_connections", 1024, &sink)
        stat("curr_connections", 0, &sink)
        // memcached counts its UDP socket as one connection, until a reset.
        stat("total_connections", statsWereReset ? 0 : 1, &sink)
        stat("rejected_connections", 0, &sink)
        stat("connection_structures", 1, &sink)
        stat("response_obj_oom", 0, &sink)
        // memcached's one response object bundle, allocated before a reset and not counted after.
        stat("response_obj_count", statsWereReset ? 0 : 1, &sink)
        stat("response_obj_bytes", statsWereReset ? 0 : 16384, &sink)
        stat("read_buf_count", 1, &sink)
        stat("read_buf_bytes", 16384, &sink)
        stat("read_buf_bytes_free", 0, &sink)
        stat("read_buf_oom", 0, &sink)
        stat("reserved_fds", 5, &sink)
        stat("cmd_get", s.hits &+ s.misses, &sink)
        stat("cmd_set", s.setCmds, &sink)
        stat("cmd_flush", s.flushCmds, &sink)
        stat("cmd_touch", s.touchHits &+ s.touchMisses, &sink)
        stat("cmd_meta", s.metaCmds, &sink)
        stat("get_hits", s.hits, &sink)
        stat("get_misses", s.misses, &sink)
        stat("get_expired", store.getExpired, &sink)
        stat("get_flushed", store.getFlushed, &sink)
        stat("delete_misses", s.deleteMisses, &sink)
        stat("delete_hits", s.deleteHits, &sink)
        stat("incr_misses", s.incrMisses, &sink)
        stat("incr_hits", s.incrHits, &sink)
        stat("decr_misses", s.decrMisses, &sink)
        stat("decr_hits", s.decrHits, &sink)
        stat("cas_misses", s.casMisses, &sink)
        stat("cas_hits", s.casHits, &sink)
        stat("cas_badval", s.casBadval, &sink)
        stat("touch_hits", s.touchHits, &sink)
        stat("touch_misses", s.touchMisses, &sink)
        stat("store_too_large", s.storeTooLarge, &sink)
        stat("store_no_memory", s.storeNoMemory, &sink)
        stat("auth_cmds", 0, &sink)
        stat("auth_errors", 0, &sink)
        stat("bytes_read", s.bytesRead, &sink)
        stat("bytes_written", s.bytesWritten, &sink)
        stat("limit_maxbytes", UInt64(store.memoryLimit), &sink)
        stat("accepting_conns", 1, &sink)
        stat("listen_disabled_num", 0, &sink)
        stat("time_in_listen_disabled_us", 0, &sink)
        stat("threads", 1, &sink)
        stat("conn_yields", 0, &sink)
        stat("hash_power_level", UInt64(store.hashPower), &sink)
        stat("hash_bytes", UInt64(store.hashBytes), &sink)
        stat("hash_is_expanding", 0, &sink)
        stat("slab_reassign_rescues", 0, &sink)
        stat("slab_reassign_chunk_rescues", 0, &sink)
        stat("slab_reassign_evictions_nomem", 0, &sink)
        stat("slab_reassign_inline_reclaim", 0, &sink)
        stat("slab_reassign_busy_items", 0, &sink)
        stat("slab_reassign_busy_deletes", 0, &sink)
        stat("slab_reassign_running", 0, &sink)
        stat("slabs_moved", 0, &sink)
        stat("lru_crawler_running", 0, &sink)
        stat("lru_crawler_starts", 0, &sink)
        stat("lru_maintainer_juggles", 0, &sink)
        stat("malloc_fails", 0, &sink)
        stat("log_worker_dropped", 0, &sink)
        stat("log_worker_written", 0, &sink)
        stat("log_watcher_skipped", 0, &sink)
        stat("log_watcher_sent", 0, &sink)
        stat("log_watchers", 0, &sink)
        stat("unexpected_napi_ids", 0, &sink)
        stat("round_robin_fallback", 0, &sink)
        stat("bytes", UInt64(store.bytes), &sink)
        stat("curr_items", UInt64(store.items), &sink)
        stat("total_items", store.totalItems, &sink)
        stat("slab_global_page_pool", 0, &sink)
        stat("expired_unfetched", 0, &sink)
        stat("evicted_unfetched", 0, &sink)
        stat("evicted_active", 0, &sink)
        stat("evictions", store.evictions, &sink)
        stat("reclaimed", store.expiredUnlinked, &sink)
        stat("crawler_reclaimed", 0, &sink)
        stat("crawler_items_checked", 0, &sink)
        stat("lrutail_reflocked", 0, &sink)
        stat("moves_to_cold", 0, &sink)
        stat("moves_to_warm", 0, &sink)
        stat("moves_within_lru", 0, &sink)
        stat("direct_reclaims", 0, &sink)
        stat("lru_bumps_dropped", 0, &sink)
        sink.append("END\r\n")
    }

    /// `stats settings`: this store's settings where it has them, memcached's defaults for the
    /// rest (threads, TLS, extstore, LRU tuning: nothing here to set).
    func settingsStats<S: ResponseSink>(_ sink: inout S) {
        stat("maxbytes", UInt64(store.memoryLimit), &sink)
        stat("maxconns", 1024, &sink)
        stat("tcpport", 0, &sink)
        stat("udpport", UInt64(environment.udpPort), &sink)
        sink.append("STAT inter ")
        for i in 0..<4 {
            if i > 0 { sink.append(".") }
            sink.appendDecimal(UInt64((environment.interface.value >> UInt32(24 - 8 * i)) & 0xFF))
        }
        sink.append("\r\n")
        stat("verbosity", 0, &sink)
        stat("oldest", 0, &sink)
        stat("evictions", text: "on", &sink)
        stat("domain_socket", text: "NULL", &sink)
        stat("umask", 700, &sink)
        stat("shutdown_command", text: shutdownEnabled ? "yes" : "no", &sink)
        stat("growth_factor", text: "1.25", &sink)
        stat("chunk_size", 48, &sink)
        stat("num_threads", 1, &sink)
        stat("num_threads_per_udp", 1, &sink)
        stat("stat_key_prefix", text: ":", &sink)
        stat("detail_enabled", text: "no", &sink)
        stat("reqs_per_event", 20, &sink)
        stat("cas_enabled", text: "yes", &sink)
        stat("tcp_backlog", 1024, &sink)
        stat("binding_protocol", text: "auto-negotiate", &sink)
        stat("auth_enabled_sasl", text: "no", &sink)
        stat("auth_enabled_ascii", text: "no", &sink)
        stat("item_size_max", 1 << 20, &sink)
        stat("maxconns_fast", text: "yes", &sink)
        stat("hashpower_init", 0, &sink)
        stat("slab_reassign", text: "yes", &sink)
        stat("slab_automove", 1, &sink)
        stat("slab_automove_ratio", text: "0.80", &sink)
        stat("slab_automove_window", 30, &sink)
        stat("slab_chunk_max", 524288, &sink)
        stat("lru_crawler", text: "yes", &sink)
        stat("lru_crawler_sleep", 100, &sink)
        stat("lru_crawler_tocrawl", 0, &sink)
        stat("tail_repair_time", 0, &sink)
        stat("flush_enabled", text: "yes", &sink)
        stat("dump_enabled", text: "yes", &sink)
        stat("hash_algorithm", text: "murmur3", &sink)
        stat("lru_maintainer_thread", text: "yes", &sink)
        stat("lru_segmented", text: "yes", &sink)
        stat("hot_lru_pct", 20, &sink)
        stat("warm_lru_pct", 40, &sink)
        stat("hot_max_factor", text: "0.20", &sink)
        stat("warm_max_factor", text: "2.00", &sink)
        stat("temp_lru", text: "no", &sink)
        stat("temporary_ttl", 61, &sink)
        stat("idle_timeout", 0, &sink)
        stat("watcher_logbuf_size", 262144, &sink)
        stat("worker_logbuf_size", 65536, &sink)
        stat("read_buf_mem_limit", 0, &sink)
        stat("track_sizes", text: "no", &sink)
        stat("inline_ascii_response", text: "no", &sink)
        stat("ext_item_size", 512, &sink)
        stat("ext_item_age", 4294967295, &sink)
        stat("ext_low_ttl", 0, &sink)
        stat("ext_recache_rate", 2000, &sink)
        stat("ext_wbuf_size", 4194304, &sink)
        stat("ext_compact_under", 0, &sink)
        stat("ext_drop_under", 0, &sink)
        stat("ext_max_sleep", 1000000, &sink)
        stat("ext_max_frag", text: "0.80", &sink)
        stat("slab_automove_freeratio", text: "0.010", &sink)
        stat("ext_drop_unread", text: "no", &sink)
        stat("ssl_enabled", text: "no", &sink)
        stat("ssl_chain_cert", text: "(null)", &sink)
        stat("ssl_key", text: "(null)", &sink)
        stat("ssl_verify_mode", 0, &sink)
        stat("ssl_keyformat", 1, &sink)
        stat("ssl_ciphers", text: "NULL", &sink)
        stat("ssl_ca_cert", text: "NULL", &sink)
        stat("ssl_wbuf_size", 16384, &sink)
        stat("ssl_session_cache", text: "no", &sink)
        stat("ssl_kernel_tls", text: "no", &sink)
        stat("ssl_min_version", text: "tlsv1.2", &sink)
        stat("num_napi_ids", text: "(null)", &sink)
        stat("memory_file", text: "(null)", &sink)
        sink.append("END\r\n")
    }
}

/// One "STAT name value\r\n" line. The three `stat`s are free functions kept out of line: as
/// methods called from a mutating one, each of ninety calls copied the engine into a stack slot
/// of its own (a 54-KiB frame, which overran the unikernel's 64-KiB stack).
@inline(never)
fileprivate func stat<S: ResponseSink>(_ name: StaticString, _ value: UInt64, _ sink: inout S) {
    sink.append("STAT ")
    sink.append(name)
    sink.append(" ")
    sink.appendDecimal(value)
    sink.append("\r\n")
}

@inline(never)
fileprivate func stat<S: ResponseSink>(_ name: StaticString, text: StaticString, _ sink: inout S) {
    sink.append("STAT ")
    sink.append(name)
    sink.append(" ")
    sink.append(text)
    sink.append("\r\n")
}

/// Seconds and microseconds as memcached prints CPU time ("%ld.%06ld").
@inline(never)
fileprivate func stat<S: ResponseSink>(_ name: StaticString, microseconds: UInt64, _ sink: inout S) {
    sink.append("STAT ")
    sink.append(name)
    sink.append(" ")
    sink.appendDecimal(microseconds / 1_000_000)
    sink.append(".")
    let fraction = microseconds % 1_000_000
    var scale: UInt64 = 100_000
    while scale > 1 && fraction < scale {
        sink.append("0")
        scale /= 10
    }
    if fraction != 0 { sink.appendDecimal(fraction) }
    sink.append("\r\n")
}
