public import Logging

/// `log_level`: swift-log's levels, spelled as they are in the file.
public enum LogLevelSetting: String, Sendable, Equatable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical

    public var level: Logger.Level {
        switch self {
        case .trace: .trace
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        case .critical: .critical
        }
    }
}

/// `log_format`: lines for people (`text`, or the journal's fields under systemd) or one JSON object per line.
public enum LogFormat: String, Sendable, Equatable, CaseIterable {
    case text, json
}
