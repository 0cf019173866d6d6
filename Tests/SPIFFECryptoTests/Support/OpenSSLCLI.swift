import Foundation
import LanyardTestSupport

/// Runs the `openssl` command-line tool in a scratch directory, for interop checks in both directions.
struct OpenSSLCLI {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "lanyard-openssl-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func write(_ name: String, _ text: String) throws {
        try Data(text.utf8).write(to: directory.appendingPathComponent(name))
    }

    func write(_ name: String, _ data: Data) throws {
        try data.write(to: directory.appendingPathComponent(name))
    }

    func read(_ name: String) throws -> String {
        try String(decoding: Data(contentsOf: directory.appendingPathComponent(name)), as: UTF8.self)
    }

    func readData(_ name: String) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent(name))
    }

    /// Runs `openssl arguments…` in the scratch directory and returns its exit status and combined output.
    @discardableResult
    func run(_ arguments: String...) async throws -> (status: Int32, output: String) {
        try await run(arguments)
    }

    @discardableResult
    func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let outcome = try await ChildProcess.run(["/usr/bin/openssl"] + arguments, directory: directory.path)
        return (outcome.status, outcome.output)
    }
}
