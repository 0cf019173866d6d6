import Foundation

/// Runs `body` on a thread of its own and waits for it: busy loops and blocking file I/O in a test must not hold one
/// of the few threads of Swift's cooperative pool, which every other test running in parallel needs.
func onThread<Result: Sendable>(_ body: @escaping @Sendable () -> Result) async -> Result {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}
