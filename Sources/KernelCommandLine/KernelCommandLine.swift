import UKNetdev

/// A kernel command line (`-append` in QEMU): space-separated `key=value` words, Unikraft's
/// style (`netdev.ip=192.0.2.2/24 kv.port=11211`). Values are read by typed accessors that say
/// what is wrong with a value, so the kernel can print one clear line and stop. [Embedded]:
/// it works on bytes (comparing Swift Strings would pull in the Unicode tables), needs no libc.
public struct KernelCommandLine: Sendable {
    let bytes: [UInt8]
    /// Each word: where its key and value lie in `bytes` (no `=`: an empty value).
    let words: [(key: Range<Int>, value: Range<Int>)]

    /// Parses the NUL-terminated line at `text` (nil: empty). At most `limit` bytes are read.
    public init(cString text: UnsafePointer<UInt8>?, limit: Int = 4096) {
        var n = 0
        if let text { while n < limit && text[n] != 0 { n += 1 } }
        self.init(text.map { Array(UnsafeBufferPointer(start: $0, count: n)) } ?? [])
    }

    public init(_ text: StaticString) {
        self.init(Array(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)))
    }

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        var words: [(key: Range<Int>, value: Range<Int>)] = []
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
        var start = 0
        while start < bytes.count {
            while start < bytes.count && isSpace(bytes[start]) { start += 1 }
            var end = start
            while end < bytes.count && !isSpace(bytes[end]) { end += 1 }
            if end > start {
                var eq = start
                while eq < end && bytes[eq] != UInt8(ascii: "=") { eq += 1 }
                words.append(eq < end ? (start..<eq, (eq + 1)..<end) : (start..<end, end..<end))
            }
            start = end
        }
        self.words = words
    }

    /// How many words.
    public var count: Int { words.count }

    func matches(_ range: Range<Int>, _ key: StaticString) -> Bool {
        guard range.count == key.utf8CodeUnitCount else { return false }
        let k = key.utf8Start
        for i in 0..<range.count where bytes[range.lowerBound + i] != k[i] { return false }
        return true
    }

    /// The bytes of the last value given for `key` (later words override earlier ones, as on Linux).
    func valueRange(_ key: StaticString) -> Range<Int>? {
        var found: Range<Int>?
        for w in words where matches(w.key, key) { found = w.value }
        return found
    }

    public func contains(_ key: StaticString) -> Bool { valueRange(key) != nil }

    /// Every value given for `key`, in order (keys that may repeat: `virtio_mmio.device=`).
    public func values(_ key: StaticString) -> [String] {
        words.filter { matches($0.key, key) }.map { String(decoding: bytes[$0.value], as: UTF8.self) }
    }

    /// The value of `key` as text (for messages), or nil.
    public func value(_ key: StaticString) -> String? {
        valueRange(key).map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    /// A decimal number in `bytes[range]` (at most `maxDigits` digits).
    func number(_ range: Range<Int>, maxDigits: Int = 9) -> Int? {
        guard !range.isEmpty, range.count <= maxDigits else { return nil }
        var n = 0
        for i in range {
            let d = bytes[i] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            n = n * 10 + Int(d)
        }
        return n
    }

    /// `A.B.C.D[/prefix]` (prefix 24 when absent); Unikraft's longer `addr/mask:gw:dns` form gives
    /// its address part. The address is `IPv4Address`'s own parser's.
    public func ipv4(_ key: StaticString) -> Result<IPv4Interface?, KernelCommandLineError> {
        guard let range = valueRange(key) else { return .success(nil) }
        let bad = KernelCommandLineError.invalid(key: keyText(key), value: String(decoding: bytes[range], as: UTF8.self),
                                                 expected: "A.B.C.D[/prefix]")
        let end = range.first { bytes[$0] == UInt8(ascii: ":") } ?? range.upperBound
        let slash = (range.lowerBound..<end).first { bytes[$0] == UInt8(ascii: "/") }
        guard let address = IPv4Address(String(decoding: bytes[range.lowerBound..<(slash ?? end)], as: UTF8.self)) else {
            return .failure(bad)
        }
        guard let slash else { return .success(IPv4Interface(address: address, prefix: 24)) }
        guard let prefix = number((slash + 1)..<end, maxDigits: 2), prefix <= 32 else { return .failure(bad) }
        return .success(IPv4Interface(address: address, prefix: prefix))
    }

    /// `XX:XX:XX:XX:XX:XX`, by `MACAddress`'s own parser.
    public func mac(_ key: StaticString) -> Result<MACAddress?, KernelCommandLineError> {
        guard let range = valueRange(key) else { return .success(nil) }
        let text = String(decoding: bytes[range], as: UTF8.self)
        guard let m = MACAddress(text) else { return .failure(.invalid(key: keyText(key), value: text, expected: "XX:XX:XX:XX:XX:XX")) }
        return .success(m)
    }

    /// A whole number in `range`.
    public func integer(_ key: StaticString, in allowed: ClosedRange<Int>) -> Result<Int?, KernelCommandLineError> {
        guard let range = valueRange(key) else { return .success(nil) }
        guard let n = number(range, maxDigits: 12), allowed.contains(n) else {
            return .failure(.invalid(key: keyText(key), value: String(decoding: bytes[range], as: UTF8.self),
                                     expected: "a number \(allowed.lowerBound)...\(allowed.upperBound)"))
        }
        return .success(n)
    }

    /// Every `A.B.C.D/N` given for `key` (a key that may repeat), in order.
    public func prefixes(_ key: StaticString) -> Result<[IPv4Prefix], KernelCommandLineError> {
        var result: [IPv4Prefix] = []
        for text in values(key) {
            guard let p = IPv4Prefix(text) else { return .failure(.invalid(key: keyText(key), value: text, expected: "A.B.C.D/N")) }
            result.append(p)
        }
        return .success(result)
    }

    func keyText(_ key: StaticString) -> String {
        String(decoding: UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount), as: UTF8.self)
    }
}

/// An address and its prefix length (`192.0.2.2/24`).
public struct IPv4Interface: Equatable, Sendable {
    public var address: IPv4Address
    public var prefix: Int
    public init(address: IPv4Address, prefix: Int) {
        self.address = address
        self.prefix = prefix
    }
}

public enum KernelCommandLineError: Error, Equatable, CustomStringConvertible {
    case invalid(key: String, value: String, expected: String)
    case missing(key: String, example: String)
    /// Byte for byte (a String == would bring Unicode normalization tables into the kernel).
    public static func == (a: Self, b: Self) -> Bool {
        switch (a, b) {
        case let (.invalid(k1, v1, e1), .invalid(k2, v2, e2)):
            k1.utf8.elementsEqual(k2.utf8) && v1.utf8.elementsEqual(v2.utf8) && e1.utf8.elementsEqual(e2.utf8)
        case let (.missing(k1, x1), .missing(k2, x2)): k1.utf8.elementsEqual(k2.utf8) && x1.utf8.elementsEqual(x2.utf8)
        default: false
        }
    }

    public var description: String {
        switch self {
        case .invalid(let key, let value, let expected): "bad command line value \(key)=\(value): expected \(expected)"
        case .missing(let key, let example): "missing \(key)= on the command line (e.g. \(example))"
        }
    }
}
