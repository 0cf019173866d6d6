import Foundation
import Synchronization
import Testing

@testable import LanyardAgent

#if canImport(Glibc)
    import Glibc
#endif

@Suite("lanyard helper: the versioned certificate directory")
struct CertificateDirectoryTests {
    static func makeDirectory() -> String {
        let path = "/tmp/lanyard-certdir-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The mode of the file a name resolves to (through the symlinks).
    static func mode(_ path: String) -> Int? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        let target = String(cString: resolved)
        return (try? FileManager.default.attributesOfItem(atPath: target))?[.posixPermissions] as? Int
    }

    @Test("names resolve through ..data; modes are applied on every write; two versions are kept")
    func layout() throws {
        let path = Self.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let directory = CertificateDirectory(path: path)
        let umask = Glibc.umask(0o077)
        defer { Glibc.umask(umask) }
        for round in 0..<4 {
            try directory.publish([
                .init(name: "cert.pem", content: Data("cert \(round)".utf8), mode: 0o644),
                .init(name: "key.pem", content: Data("key \(round)".utf8), mode: 0o600),
                .init(name: "federated/partner.org.pem", content: Data("partner \(round)".utf8), mode: 0o644),
            ])
            #expect(try String(contentsOfFile: path + "/cert.pem", encoding: .utf8) == "cert \(round)")
            #expect(
                try String(contentsOfFile: path + "/federated/partner.org.pem", encoding: .utf8) == "partner \(round)"
            )
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: path + "/key.pem") == "..data/key.pem")
            // Whatever the umask, and whatever an operator did to the previous version.
            #expect(Self.mode(path + "/cert.pem") == 0o644)
            #expect(Self.mode(path + "/key.pem") == 0o600)
            chmod(path + "/cert.pem", 0o600)
            let versions = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasPrefix("..v-") }
            #expect(versions.count == min(round + 1, 2), "versions: \(versions)")
        }
    }

    @Test("a file another tool left in place is replaced by the link; an unpublished version is cleaned up")
    func takeover() throws {
        let path = Self.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("old".utf8).write(to: URL(fileURLWithPath: path + "/cert.pem"))
        // What a crash mid-write leaves: a version directory nobody published.
        try FileManager.default.createDirectory(
            atPath: path + "/..v-1.000000000-dead",
            withIntermediateDirectories: true
        )
        let directory = CertificateDirectory(path: path)
        try directory.publish([.init(name: "cert.pem", content: Data("new".utf8), mode: 0o644)])
        #expect(try String(contentsOfFile: path + "/cert.pem", encoding: .utf8) == "new")
        #expect(!FileManager.default.fileExists(atPath: path + "/..v-1.000000000-dead"))
    }

    @Test("a reader resolving the files while sets are published always reads one complete set")
    func concurrentReader() async throws {
        let path = Self.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let directory = CertificateDirectory(path: path)
        try directory.publish([
            .init(name: "a", content: Data("0".utf8), mode: 0o644),
            .init(name: "b", content: Data("0".utf8), mode: 0o644),
        ])
        let done = Atomic(false)
        // However the test ends, the reader stops (it runs on a thread of its own, which cancellation cannot reach).
        defer { done.store(true, ordering: .relaxed) }
        let readsSoFar = Atomic(0)
        let reading = Task {
            await onThread { () -> (reads: Int, mixed: Int) in
                var reads = 0, mixed = 0
                while !done.load(ordering: .relaxed) {
                    // Through ..data once, as the layout tells readers who need a set.
                    guard let version = directory.currentVersion,
                        let a = try? String(contentsOfFile: path + "/" + version + "/a", encoding: .utf8),
                        let b = try? String(contentsOfFile: path + "/" + version + "/b", encoding: .utf8)
                    else { continue }
                    reads += 1
                    readsSoFar.store(reads, ordering: .relaxed)
                    if a != b || a.isEmpty { mixed += 1 }
                }
                return (reads, mixed)
            }
        }
        // At least 300 sets, and on until the reader has read 200 times while they change (a loaded machine may
        // start it late).
        let published = await onThread { () -> String? in
            var round = 0
            while round < 300 || (readsSoFar.load(ordering: .relaxed) < 200 && round < 20_000) {
                round += 1
                let content = Data(String(repeating: "\(round % 10)", count: 4096 * (1 + round % 3)).utf8)
                do {
                    try directory.publish([
                        .init(name: "a", content: content, mode: 0o644),
                        .init(name: "b", content: content, mode: 0o644),
                    ])
                } catch {
                    return "\(error)"
                }
            }
            return nil
        }
        #expect(published == nil)
        done.store(true, ordering: .relaxed)
        let (reads, mixed) = await reading.value
        #expect(reads >= 200)
        #expect(mixed == 0)
    }

    @Test("cert_dir must exist; a failed write leaves the published set")
    func failures() throws {
        #expect(throws: CertificateDirectory.WriteError.self) {
            try CertificateDirectory(path: "/nonexistent/lanyard").publish([
                .init(name: "a", content: Data(), mode: 0o600)
            ])
        }
        let path = Self.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let directory = CertificateDirectory(path: path)
        try directory.publish([.init(name: "a", content: Data("good".utf8), mode: 0o644)])
        // A name that cannot be created inside the version (a file where a directory must go) fails the write.
        #expect(throws: CertificateDirectory.WriteError.self) {
            try directory.publish([
                .init(name: "x", content: Data("file".utf8), mode: 0o644),
                .init(name: "x/y", content: Data("under a file".utf8), mode: 0o644),
            ])
        }
        #expect(try String(contentsOfFile: path + "/a", encoding: .utf8) == "good")
        let versions = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasPrefix("..v-") }
        #expect(versions.count == 1)
    }
}
