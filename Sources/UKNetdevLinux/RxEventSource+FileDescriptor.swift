import UKNetdev

/// In a Linux process, a device's RX event source is a file descriptor that becomes readable
/// when packets arrive (an eventfd, a TAP's fd). The core contract only knows "a platform
/// handle"; this is its hosted spelling.
extension RxEventSource {
    public static func fileDescriptor(_ fd: Int32) -> RxEventSource { .platformHandle(Int(fd)) }

    /// The file descriptor to poll, if this source is one.
    public var fileDescriptor: Int32? {
        if case .platformHandle(let handle) = self { Int32(truncatingIfNeeded: handle) } else { nil }
    }
}
