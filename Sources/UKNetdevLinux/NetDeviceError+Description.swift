import UKNetdev

/// NetDeviceError in words, for the programs' error lines (hosted: text for people stays out of
/// the Embedded core).
extension NetDeviceError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .invalidState(let state):
            let (rx, tx) = (state.rxQueues, state.txQueues)
            return "the device cannot do that now (\(rx) RX and \(tx) TX queues configured)"
        case .invalidQueueCount(let requested, let max): return "\(requested) queues asked for, the device has \(max)"
        case .invalidQueue(let q): return "no queue \(q)"
        case .invalidDescriptorCount(let requested, let limits):
            return "\(requested) descriptors asked for, the device takes \(limits.min)...\(limits.max)"
                + (limits.alignment > 1 ? " in multiples of \(limits.alignment)" : "") + (limits.powerOfTwo ? ", a power of two" : "")
        case .queueNotSetUp(let rx, let q): return "\(rx ? "RX" : "TX") queue \(q) was not set up before start"
        case .missingAllocator: return "an RX queue needs an allocator (a pool's rxAllocator)"
        case .notSupported: return "the device does not support that"
        case .backend(let code): return "the device's backend failed (code \(code))"
        case .refused(let why): return why
        }
    }
}
