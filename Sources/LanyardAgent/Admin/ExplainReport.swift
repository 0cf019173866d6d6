public import Foundation

/// `GET /v1/explain` (`lanyard explain --json`): attestation of one process run now as a dry run that issues
/// nothing, every entry checked against its selectors, and what the process would receive.
public struct ExplainReport: Codable, Sendable, Equatable {
    /// The caller explained: a live process, or (`hypothetical`) only a uid and gid.
    public struct Caller: Codable, Sendable, Equatable {
        public var pid: Int32?
        public var uid: UInt32
        public var gid: UInt32
        public var hypothetical: Bool
    }

    /// One attestor's answer and how long it took.
    public struct Attestor: Codable, Sendable, Equatable {
        public var name: String
        public var selectors: [String]
        public var milliseconds: Double
        public var error: String?
    }

    /// One entry: matched, or the selectors the caller lacks.
    public struct EntryMatch: Codable, Sendable, Equatable {
        public var entryId: String
        public var spiffeId: String
        public var matched: Bool
        public var missingSelectors: [String]
    }

    /// An identity the caller would receive, and whether its SVID is held now.
    public struct Identity: Codable, Sendable, Equatable {
        public var spiffeId: String
        public var entryId: String
        public var hint: String
        public var svidSerial: String?
        public var svidExpiry: Date?
    }

    public var apiVersion: String
    public var caller: Caller
    public var attestors: [Attestor]
    public var selectors: [String]
    public var entries: [EntryMatch]
    public var identities: [Identity]
    /// The Envoy SDS resource names the caller could ask for.
    public var sdsResources: [String]
    public var federatedBundles: [String]
    /// The answer in one line.
    public var verdict: String

    /// The text `lanyard explain` prints.
    public var text: String {
        var lines: [String] = []
        if caller.hypothetical {
            lines.append("caller: uid \(caller.uid), gid \(caller.gid) (hypothetical: unix credentials only)")
        } else {
            lines.append("caller: pid \(caller.pid ?? 0), uid \(caller.uid), gid \(caller.gid)")
        }
        for attestor in attestors {
            let time = String(format: "%.1f ms", attestor.milliseconds)
            if let error = attestor.error {
                lines.append("attestor \(attestor.name) (\(time)): FAILED: \(error)")
            } else {
                lines.append("attestor \(attestor.name) (\(time)): \(attestor.selectors.count) selectors")
                for selector in attestor.selectors { lines.append("  \(selector)") }
            }
        }
        lines.append("entries:")
        for entry in entries {
            if entry.matched {
                lines.append("  match     \(entry.spiffeId) (\(entry.entryId))")
            } else {
                lines.append(
                    "  no match  \(entry.spiffeId) (\(entry.entryId)): missing \(entry.missingSelectors.joined(separator: ", "))"
                )
            }
        }
        for identity in identities {
            var line = "identity: \(identity.spiffeId)"
            if !identity.hint.isEmpty { line += " hint \(identity.hint)" }
            if let serial = identity.svidSerial {
                line += ", SVID serial \(serial)"
            } else {
                line += ", SVID not held yet"
            }
            if let expiry = identity.svidExpiry { line += " until \(StatusReport.format(expiry))" }
            lines.append(line)
        }
        if !sdsResources.isEmpty { lines.append("sds resources: \(sdsResources.joined(separator: ", "))") }
        if !federatedBundles.isEmpty { lines.append("federated bundles: \(federatedBundles.joined(separator: ", "))") }
        lines.append("verdict: \(verdict)")
        return lines.joined(separator: "\n")
    }
}

/// `GET /v1/entries` (`lanyard entries --json`): every entry with its SVID's serial and expiry, never a key.
public struct EntriesReport: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var id: String
        public var spiffeId: String
        public var selectors: [String]
        public var x509SvidTtlSeconds: Double?
        public var jwtSvidTtlSeconds: Double?
        public var hint: String
        public var federatesWith: [String]
        public var dnsNames: [String]
        public var revision: Int64
        public var svidSerial: String?
        public var svidExpiry: Date?
    }

    public var apiVersion: String
    public var entries: [Entry]

    /// The text `lanyard entries` prints.
    public var text: String {
        var lines: [String] = ["\(entries.count) entries"]
        for entry in entries {
            lines.append("")
            lines.append("\(entry.spiffeId) (\(entry.id), revision \(entry.revision))")
            lines.append("  selectors: \(entry.selectors.joined(separator: ", "))")
            if !entry.hint.isEmpty { lines.append("  hint: \(entry.hint)") }
            if !entry.federatesWith.isEmpty {
                lines.append("  federates with: \(entry.federatesWith.joined(separator: ", "))")
            }
            if !entry.dnsNames.isEmpty { lines.append("  dns names: \(entry.dnsNames.joined(separator: ", "))") }
            if let ttl = entry.x509SvidTtlSeconds { lines.append("  x509-svid ttl: \(Int(ttl))s") }
            if let ttl = entry.jwtSvidTtlSeconds { lines.append("  jwt-svid ttl: \(Int(ttl))s") }
            if let serial = entry.svidSerial {
                lines.append(
                    "  SVID serial \(serial)" + (entry.svidExpiry.map { " until \(StatusReport.format($0))" } ?? "")
                )
            } else {
                lines.append("  SVID not held")
            }
        }
        return lines.joined(separator: "\n")
    }
}
