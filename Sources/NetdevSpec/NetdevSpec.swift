import PcapNet
import UKNetdev
import UKNetdevLinux

/// A device named on a command line: `kind[:key=value,...]`.
///
/// - `pcap:rx=FILE,tx=FILE`: replay FILE on RX and/or write TX to FILE (at least one of the two)
/// - `tap:ifname=NAME`: a Linux TAP interface, created if absent
/// - `null`: TX frees, RX gives nothing (DPDK's net_null)
/// - `ring`: a loopback ring: what is transmitted is received
/// - `vhost-user:path=SOCK[,queues=N][,reconnect=S]`: a virtio-net device whose backend (a
///   vhost-user switch such as `dpdk-testpmd --vdev net_vhost0,iface=SOCK`) listens on the Unix
///   socket SOCK; N queue pairs (default 1); if the backend goes away, try every S seconds to
///   connect again (default: do not, end the run)
public enum NetdevSpec: Equatable, Sendable, CustomStringConvertible {
    case pcap(rx: String?, tx: String?)
    case tap(ifname: String)
    case null
    case ring
    /// `reconnect`: seconds between attempts to connect again when the backend went away (0:
    /// do not; the program then ends, reporting it).
    case vhostUser(path: String, queues: Int, reconnect: Double = 0)
    /// A DPDK port: EAL's arguments (split on spaces), and the port's index (`--port=N` among
    /// them, taken out before EAL sees them; 0 by default).
    case dpdk(eal: [String], port: Int)

    /// The kinds, as written on a command line.
    public static let kinds = ["pcap", "tap", "null", "ring", "vhost-user", "dpdk"]

    /// Parses `kind[:key=value,...]`; keys may come in any order, each at most once.
    public init(parsing text: String) throws(NetdevSpecError) {
        let (kind, rest) = Self.split(text, at: ":")
        guard !kind.isEmpty else { throw .empty }
        if kind == "dpdk" {
            // Everything after "dpdk:" is EAL's argument list, not key=value options.
            var eal: [String] = []
            var port = 0
            for word in (rest ?? "").split(separator: " ", omittingEmptySubsequences: true).map(String.init) {
                if word.hasPrefix("--port=") {
                    let value = String(word.dropFirst("--port=".count))
                    guard let n = Int(value), (0...1023).contains(n) else {
                        throw .invalidValue(kind: kind, key: "--port", value: value, expected: "a port index, 0...1023")
                    }
                    port = n
                } else {
                    eal.append(word)
                }
            }
            self = .dpdk(eal: eal, port: port)
            return
        }
        let options = try Self.options(rest ?? "", kind: kind)
        switch kind {
        case "pcap":
            try Self.allow(options, keys: ["rx", "tx"], kind: kind)
            let rx = options.first { $0.key == "rx" }?.value
            let tx = options.first { $0.key == "tx" }?.value
            guard rx != nil || tx != nil else { throw .missingKey(kind: kind, key: "rx or tx") }
            self = .pcap(rx: rx, tx: tx)
        case "tap":
            try Self.allow(options, keys: ["ifname"], kind: kind)
            guard let name = options.first(where: { $0.key == "ifname" })?.value else {
                throw .missingKey(kind: kind, key: "ifname")
            }
            self = .tap(ifname: name)
        case "null":
            try Self.allow(options, keys: [], kind: kind)
            self = .null
        case "ring":
            try Self.allow(options, keys: [], kind: kind)
            self = .ring
        case "vhost-user":
            try Self.allow(options, keys: ["path", "queues", "reconnect"], kind: kind)
            guard let path = options.first(where: { $0.key == "path" })?.value else {
                throw .missingKey(kind: kind, key: "path")
            }
            var queues = 1
            if let text = options.first(where: { $0.key == "queues" })?.value {
                guard let n = Int(text), (1...16).contains(n) else {
                    throw .invalidValue(kind: kind, key: "queues", value: text, expected: "1...16")
                }
                queues = n
            }
            var reconnect = 0.0
            if let text = options.first(where: { $0.key == "reconnect" })?.value {
                guard let s = Double(text), s >= 0, s <= 3600 else {
                    throw .invalidValue(kind: kind, key: "reconnect", value: text, expected: "seconds, 0...3600")
                }
                reconnect = s
            }
            self = .vhostUser(path: path, queues: queues, reconnect: reconnect)
        default:
            throw .unknownKind(kind)
        }
    }

    /// Whether the device waits for a backend that went away to come back (the programs then
    /// keep running through the outage).
    public var waitsForBackend: Bool {
        if case .vhostUser(_, _, let reconnect) = self { return reconnect > 0 }
        return false
    }

    /// The spec as it would be written (parses back to itself).
    public var description: String {
        switch self {
        case .pcap(let rx, let tx):
            return "pcap:" + [rx.map { "rx=\($0)" }, tx.map { "tx=\($0)" }].compactMap { $0 }.joined(separator: ",")
        case .tap(let name): return "tap:ifname=\(name)"
        case .null: return "null"
        case .ring: return "ring"
        case .vhostUser(let path, let queues, let reconnect):
            return "vhost-user:path=\(path)" + (queues == 1 ? "" : ",queues=\(queues)")
                + (reconnect == 0 ? "" : ",reconnect=\(reconnect)")
        case .dpdk(let eal, let port):
            return "dpdk:" + ((port == 0 ? [] : ["--port=\(port)"]) + eal).joined(separator: " ")
        }
    }

    static func split(_ text: String, at separator: Character) -> (String, String?) {
        guard let i = text.firstIndex(of: separator) else { return (text, nil) }
        return (String(text[..<i]), String(text[text.index(after: i)...]))
    }

    static func options(_ text: String, kind: String) throws(NetdevSpecError) -> [(key: String, value: String)] {
        var result: [(key: String, value: String)] = []
        guard !text.isEmpty else { return result }
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let (key, value) = split(String(item), at: "=")
            guard !key.isEmpty else { throw .malformedOption(kind: kind, option: String(item)) }
            guard let value, !value.isEmpty else { throw .missingValue(kind: kind, key: key) }
            guard !result.contains(where: { $0.key == key }) else { throw .duplicateKey(kind: kind, key: key) }
            result.append((key, value))
        }
        return result
    }

    static func allow(_ options: [(key: String, value: String)], keys: [String], kind: String) throws(NetdevSpecError) {
        if let unknown = options.first(where: { !keys.contains($0.key) }) {
            throw .unknownKey(kind: kind, key: unknown.key, allowed: keys)
        }
    }
}

/// Why a device spec was refused.
public enum NetdevSpecError: Error, Equatable, CustomStringConvertible {
    case empty
    case unknownKind(String)
    case unknownKey(kind: String, key: String, allowed: [String])
    case missingKey(kind: String, key: String)
    case missingValue(kind: String, key: String)
    case duplicateKey(kind: String, key: String)
    /// An option that is not `key=value` (e.g. `=x` or an empty item between commas).
    case malformedOption(kind: String, option: String)
    case invalidValue(kind: String, key: String, value: String, expected: String)

    public var description: String {
        switch self {
        case .empty: "empty device spec (expected one of: \(NetdevSpec.kinds.joined(separator: ", ")))"
        case .unknownKind(let k): "unknown device kind '\(k)' (expected one of: \(NetdevSpec.kinds.joined(separator: ", ")))"
        case .unknownKey(let k, let key, let allowed):
            allowed.isEmpty ? "'\(k)' takes no options, got '\(key)'"
                : "unknown option '\(key)' for '\(k)' (expected: \(allowed.joined(separator: ", ")))"
        case .missingKey(let k, let key): "'\(k)' needs \(key)=..."
        case .missingValue(let k, let key): "option '\(key)' of '\(k)' has no value"
        case .duplicateKey(let k, let key): "option '\(key)' of '\(k)' given twice"
        case .malformedOption(let k, let o): "option '\(o)' of '\(k)' is not key=value"
        case .invalidValue(let k, let key, let v, let expected): "option '\(key)' of '\(k)' is '\(v)', expected \(expected)"
        }
    }
}

extension FaultConfig {
    /// The keys of `--faults`: probabilities 0...1 (`drop`, `duplicate`, `corrupt`, `reorder`,
    /// `stall`), `seed`, and `on=rx|tx|both` (default both).
    public static let keys = ["drop", "duplicate", "corrupt", "reorder", "stall", "seed", "on"]

    /// Parses `--faults drop=P,duplicate=P,corrupt=P,reorder=P,stall=P[,seed=N][,on=rx|tx|both]`.
    public init(parsing text: String) throws(NetdevSpecError) {
        let kind = "faults"
        let options = try NetdevSpec.options(text, kind: kind)
        try NetdevSpec.allow(options, keys: Self.keys, kind: kind)
        guard !options.isEmpty else { throw .missingKey(kind: kind, key: "one of " + Self.keys.joined(separator: ", ")) }
        func rate(_ key: String) throws(NetdevSpecError) -> Double {
            guard let text = options.first(where: { $0.key == key })?.value else { return 0 }
            guard let p = Double(text), p >= 0, p <= 1 else {
                throw .invalidValue(kind: kind, key: key, value: text, expected: "a probability, 0...1")
            }
            return p
        }
        var seed: UInt64 = 1
        if let text = options.first(where: { $0.key == "seed" })?.value {
            guard let n = UInt64(text) else { throw .invalidValue(kind: kind, key: "seed", value: text, expected: "a number") }
            seed = n
        }
        var onRx = true, onTx = true
        if let text = options.first(where: { $0.key == "on" })?.value {
            switch text {
            case "rx": onTx = false
            case "tx": onRx = false
            case "both": break
            default: throw .invalidValue(kind: kind, key: "on", value: text, expected: "rx, tx or both")
            }
        }
        self.init(seed: seed, dropRate: try rate("drop"), duplicateRate: try rate("duplicate"), corruptRate: try rate("corrupt"),
                  reorderRate: try rate("reorder"), stallRate: try rate("stall"), onRx: onRx, onTx: onTx)
    }
}
