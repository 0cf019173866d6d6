public import Logging
import Synchronization

/// The log level every handler follows, so a reload can change it for loggers that already exist.
public final class LogLevelBox: Sendable {
    private let level: Mutex<Logger.Level>

    public init(_ level: Logger.Level) {
        self.level = Mutex(level)
    }

    public var current: Logger.Level {
        get { level.withLock { $0 } }
        set { level.withLock { $0 = newValue } }
    }
}

/// Wraps a handler so its level is always the box's.
public struct LevelFollowingLogHandler: LogHandler {
    var inner: any LogHandler
    let box: LogLevelBox

    public init(_ inner: any LogHandler, box: LogLevelBox) {
        self.inner = inner
        self.box = box
    }

    public var logLevel: Logger.Level {
        get { box.current }
        set {}
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        var inner = inner
        inner.logLevel = .trace
        inner.log(event: event)
    }
}
