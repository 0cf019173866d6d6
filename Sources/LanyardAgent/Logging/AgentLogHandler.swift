import Foundation
public import Logging

/// Every logger of the agent: the level and metadata swift-log keeps per logger, each event written as its `sink`
/// wants it (``TextLogLine``, ``JSONLogLine`` or a ``JournalEntry``), with the logger's metadata and the event's
/// merged once here.
public struct AgentLogHandler: LogHandler {
    /// Where lines go: text or JSON on standard error, or structured entries to the journal.
    public enum Sink: Sendable {
        case text, json, journal

        /// `log_format`, with text going to the journal when systemd connected standard error to it.
        public init(_ format: LogFormat) {
            switch format {
            case .json: self = .json
            case .text: self = JournalEntry.isStandardErrorTheJournal ? .journal : .text
            }
        }
    }

    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    let label: String
    let sink: Sink

    public init(label: String, sink: Sink) {
        self.label = label
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let metadata = metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 })
        switch sink {
        case .text:
            FileHandle.standardError.write(Data(TextLogLine.line(for: event, label: label, metadata: metadata).utf8))
        case .json:
            if let line = JSONLogLine.line(for: event, label: label, metadata: metadata) {
                FileHandle.standardError.write(line)
            }
        case .journal:
            JournalEntry.send(event, label: label, metadata: metadata)
        }
    }
}
