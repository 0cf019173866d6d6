import Attestation
import Endpoints
import Foundation
import Logging
import SPIFFE
import SPIFFECrypto
import Synchronization

/// `[audit] enabled`: one record the first time each identity is handed to a caller on a connection, so "who
/// received this certificate?" has an answer afterwards: caller pid, uid, gid and process start time, SPIFFE ID,
/// certificate serial (X509-SVIDs), entry ID, and the selectors `log_selectors` allows. Never a key or a token.
///
/// Records go to their own logger at notice level whatever `log_level` says: JSON lines on standard error, or
/// journal entries under systemd (`journalctl -u lanyard LANYARD_AUDIT=1`). An SVID renewed on an open stream is a
/// new certificate and gets its own record.
struct AuditTrail: Sendable {
    let logger: Logger
    let logSelectors: LogSelectors

    /// The audit logger the agent uses unless one is injected.
    static func defaultLogger() -> Logger {
        var logger = Logger(label: "lanyard.audit") { label in
            AgentLogHandler(label: label, sink: JournalEntry.isStandardErrorTheJournal ? .journal : .json)
        }
        logger.logLevel = .trace
        return logger
    }

    func handed(_ svids: [WorkloadX509SVID], to caller: AttestedCaller) {
        guard let connection = (caller.pin as? PinnedProcess)?.handed else { return }
        for svid in svids {
            let serial = (try? Certificate.chain(derConcatenated: svid.chainDER))?.first?.serialNumberHex ?? "unknown"
            guard connection.isNew(kind: "x509", entryID: svid.entryID, version: serial) else { continue }
            record(kind: "x509-svid", spiffeID: svid.spiffeID, entryID: svid.entryID, serial: serial, caller: caller)
        }
    }

    func handed(jwtFor spiffeID: SPIFFEID, entryID: String, audience: [String], to caller: AttestedCaller) {
        guard let connection = (caller.pin as? PinnedProcess)?.handed,
            connection.isNew(kind: "jwt", entryID: entryID, version: audience.sorted().joined(separator: " "))
        else { return }
        record(kind: "jwt-svid", spiffeID: spiffeID, entryID: entryID, audience: audience, caller: caller)
    }

    private func record(
        kind: String,
        spiffeID: SPIFFEID,
        entryID: String,
        serial: String? = nil,
        audience: [String]? = nil,
        caller: AttestedCaller
    ) {
        let process = caller.credentials
        var metadata: Logger.Metadata = [
            "lanyard.audit": "1",
            "svid.kind": "\(kind)",
            LogKey.spiffeID: "\(spiffeID)",
            LogKey.entryID: "\(entryID)",
            LogKey.callerPID: "\(process.pid)",
            LogKey.callerUID: "\(process.uid)",
            "caller.gid": "\(process.gid)",
            LogKey.selectors: "\(logSelectors.describe(caller.selectors))",
        ]
        if let start = ProcessPin.processStartTicks(pid: process.pid) { metadata["caller.start_ticks"] = "\(start)" }
        if let serial { metadata[LogKey.svidSerial] = "\(serial)" }
        if let audience { metadata["jwt.audience"] = "\(audience.sorted().joined(separator: " "))" }
        logger.notice("identity issued", metadata: metadata)
    }
}

/// What one connection was already handed, for the audit trail: the latest version (certificate serial, or JWT
/// audience) per entry and kind. Bounded by the entries the caller can see.
final class HandedIdentities: Sendable {
    private let latest = Mutex<[String: String]>([:])

    /// Whether this is new for the connection; remembers it.
    func isNew(kind: String, entryID: String, version: String) -> Bool {
        latest.withLock { latest in
            let key = kind + " " + entryID
            guard latest[key] != version else { return false }
            latest[key] = version
            return true
        }
    }
}
