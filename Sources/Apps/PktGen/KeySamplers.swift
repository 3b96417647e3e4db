import UKNetdev

/// Picks the key of the next request (0..<keys). Generic, so a run pays no dynamic dispatch.
public protocol KeySampler {
    mutating func next(_ random: inout SplitMix64) -> Int
}

/// Every key equally likely.
public struct UniformKeys: KeySampler, Sendable {
    public let keys: Int
    public init(keys: Int) { self.keys = keys }
    @inline(__always)
    public mutating func next(_ random: inout SplitMix64) -> Int { random.below(keys) }
}

/// Zipf over ranks 0..<keys: P(rank k) proportional to 1/(k+1)^s. A cumulative table searched
/// by bisection (log2(keys) steps, no allocation per request). `power` is x^y from the platform
/// (Glibc's pow in a process): the engine itself stays free of libm.
public struct ZipfKeys: KeySampler {
    public let keys: Int
    public let exponent: Double
    let cumulative: UnsafeMutablePointer<Double>

    public init(keys: Int, exponent: Double, power: (Double, Double) -> Double) {
        self.keys = keys
        self.exponent = exponent
        cumulative = .allocate(capacity: keys)
        var total = 0.0
        for k in 0..<keys {
            total += 1 / power(Double(k + 1), exponent)
            cumulative[k] = total
        }
        for k in 0..<keys { cumulative[k] /= total }
        cumulative[keys - 1] = 1
    }

    public func deallocate() { cumulative.deallocate() }

    /// The probability of rank `k` (for tests and reports).
    public func probability(of k: Int) -> Double { k == 0 ? cumulative[0] : cumulative[k] - cumulative[k - 1] }

    public mutating func next(_ random: inout SplitMix64) -> Int {
        let u = Double(random.next() >> 11) * (1.0 / 9_007_199_254_740_992.0)   // [0, 1)
        var lo = 0, hi = keys - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] > u { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}
