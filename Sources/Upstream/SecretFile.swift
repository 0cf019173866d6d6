import SPIFFE
import Foundation

/// Files that hold a secret (a join token, or a configuration file with one in it) must be readable by their owner
/// only: anyone who can read a join token can attest as this node once.
public enum SecretFile {
    /// Why `path` is not private enough, or nil when it is (or cannot be examined; reading it will say why).
    public static func exposure(of path: String) -> String? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let permissions = attributes[.posixPermissions] as? Int
        else { return nil }
        let mode = permissions & 0o777
        guard mode & 0o077 != 0 else { return nil }
        let readers = [(mode & 0o070 != 0, "its group"), (mode & 0o007 != 0, "every user")].filter(\.0).map(\.1)
        return "\(path) has mode 0\(String(mode, radix: 8)), so \(readers.joined(separator: " and ")) can read it"
    }

    /// The trimmed contents of a private secret file; throws when it is missing, empty or readable by others.
    static func read(_ path: String, key: String) throws(UpstreamError) -> String {
        if let exposure = exposure(of: path) {
            throw UpstreamError(.attestation, "\(key): \(exposure); chmod 0600 it (owned by the agent's user)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UpstreamError(.attestation, "\(key): cannot read \(path)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw UpstreamError(.attestation, "\(key): \(path) is empty") }
        return text
    }
}
