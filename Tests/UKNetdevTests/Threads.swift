import Foundation

/// Hands a value to another thread; the test guarantees the two never use it at the same time
/// (or, for devices, use different ends of it).
final class SendableBox<T: ~Copyable>: @unchecked Sendable {
    var value: T
    init(_ value: consuming T) { self.value = value }
}

/// A real OS thread (the ring pair's whole point is crossing cores), joined by the test.
final class TestThread: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let body: () -> Void

    init(_ body: @escaping () -> Void) {
        self.body = body
        let thread = Thread { [self] in
            self.body()
            self.done.signal()
        }
        thread.start()
    }

    func join() { done.wait() }
}
