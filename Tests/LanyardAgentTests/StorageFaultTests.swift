import Foundation
import LanyardAgent
import LanyardProto
import LanyardTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `data_dir` on a disk that is full or read-only, made real with a small tmpfs: the agent reports the cause, never
/// leaves half-written state, and what it stored before stays intact and usable.
@Suite("Storage faults: a full or read-only data_dir", .serialized, .timeLimit(.minutes(5)))
struct StorageFaultTests {
    static let entry = WorkloadAPIIntegrationTests.rootEntry

    static func requireRoot() -> Bool {
        if getuid() == 0 { return true }
        print("skipped: the storage fault tests mount a tmpfs and need root")
        return false
    }

    /// A tmpfs of `kilobytes` mounted at `path` (created), unmounted by `unmount`.
    struct Tmpfs {
        let path: String

        init(at path: String, kilobytes: Int) async throws {
            self.path = path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            let mounted = try await LanyardCLI.runTool(
                ["/bin/mount", "-t", "tmpfs", "-o", "size=\(kilobytes)k,mode=0755", "tmpfs", path]
            )
            guard mounted.status == 0 else { throw TestAgentError("mount failed: \(mounted.stderr)") }
        }

        /// Fills the file system to the last byte; returns the filler's path.
        @discardableResult
        func fill() -> String {
            let filler = path + "/filler"
            let descriptor = open(filler, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            let block = [UInt8](repeating: 0, count: 4096)
            while block.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) > 0 {}
            // The last partial block.
            while block.withUnsafeBytes({ write(descriptor, $0.baseAddress, 1) }) > 0 {}
            close(descriptor)
            return filler
        }

        func remount(readOnly: Bool) async throws {
            let result = try await LanyardCLI.runTool(
                ["/bin/mount", "-o", "remount,\(readOnly ? "ro" : "rw")", path]
            )
            guard result.status == 0 else { throw TestAgentError("remount failed: \(result.stderr)") }
        }

        func unmount() async {
            _ = try? await LanyardCLI.runTool(["/bin/umount", "-l", path])
        }
    }

    /// Every file under `path` with its bytes, to compare before and after.
    static func snapshot(_ path: String) -> [String: Data] {
        var files: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: path)
        while let name = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path + "/" + name, isDirectory: &isDirectory),
                !isDirectory.boolValue
            {
                files[name] = FileManager.default.contents(atPath: path + "/" + name)
            }
        }
        return files
    }

    @Test("a first start on a full disk fails with the cause and leaves no half-written files")
    func fullDiskAtFirstStart() async throws {
        guard Self.requireRoot() else { return }
        let directory = TestAgent.makeDirectory()
        let disk = try await Tmpfs(at: directory + "/data", kilobytes: 64)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        disk.fill()
        let config = try writeConfig(directory, socket: directory + "/api.sock", entries: Self.entry)
        let agent = try await AgentProcess(["run", "--config", config], directory: directory)
        let status = await agent.waitForExit(timeout: 30)
        #expect(status == 1, "log: \(agent.log)")
        #expect(agent.log.contains("No space left on device"), "log: \(agent.log)")
        let left = Self.snapshot(disk.path).keys.filter { $0 != "filler" }
        #expect(left.isEmpty, "files left behind: \(left)")
        await disk.unmount()
    }

    @Test("stored state on a read-only disk loads and serves the same trust bundle")
    func readOnlyDataDirectory() async throws {
        guard Self.requireRoot() else { return }
        let directory = TestAgent.makeDirectory()
        let disk = try await Tmpfs(at: directory + "/data", kilobytes: 1024)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try await TestAgent.start(Self.entry, directory: directory)
        let bundles = try await first.client.fetchX509Bundles().bundles
        await first.stop()
        let stored = Self.snapshot(disk.path)
        try await disk.remount(readOnly: true)
        let second = try await TestAgent.start(Self.entry, directory: directory)
        #expect(try await second.client.fetchX509Bundles().bundles == bundles)
        #expect(try await second.client.fetchX509SVID().svids.count == 1)
        await second.stop()
        #expect(Self.snapshot(disk.path) == stored)
        await disk.unmount()
    }

    @Test(
        "a root rotation on a full disk waits: SVIDs keep renewing, stored state intact, rotation after space returns"
    )
    func fullDiskAtRootRotation() async throws {
        guard Self.requireRoot() else { return }
        let directory = TestAgent.makeDirectory()
        let disk = try await Tmpfs(at: directory + "/data", kilobytes: 1024)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logs = LogCapture()
        // A 16 s root rotates at 8 s; SVIDs of 2 s renew about every second. The agent's clock is moved from one
        // wake-up of its rotation loop to the next.
        let clock = ManualClock()
        let agent = try await TestAgent.start(
            Self.entry,
            directory: directory,
            logs: logs,
            upstream: "[upstream.local]\nca_ttl = \"16s\"\nx509_svid_ttl = \"2s\"",
            clock: clock
        )
        let before = Self.snapshot(disk.path)
        let initialBundle = try await agent.client.fetchX509Bundles().bundles["spiffe://example.org"] ?? Data()
        let filler = disk.fill()
        // Past the root's half-life, SVIDs are still renewed by the current root, and the rotation was refused.
        var serials = Set<Data>()
        let end = clock.uptime + .seconds(11)
        while clock.uptime < end {
            try await clock.waitForSleepers()
            let response = try await agent.client.fetchX509SVID()
            serials.insert(response.svids.first?.x509Svid ?? Data())
            clock.advanceToNextWake()
        }
        #expect(serials.count >= 6, "SVIDs seen while the disk was full: \(serials.count)")
        #expect(logs.all.contains { $0.contains("cannot rotate the signing root") && $0.contains("No space left") })
        #expect(Self.snapshot(disk.path).filter { $0.key != "filler" } == before, "stored state changed on a full disk")
        #expect(try await agent.client.fetchX509Bundles().bundles.count == 1)

        // Space returns: the next root is written whole and published.
        unlink(filler)
        var published = false
        for _ in 0..<20 where !published {
            try await clock.waitForSleepers()
            let bundle = try await agent.client.fetchX509Bundles().bundles["spiffe://example.org"] ?? Data()
            published = bundle.count > initialBundle.count
            if !published { clock.advanceToNextWake() }
        }
        #expect(published, "no second root after space returned")
        let after = Self.snapshot(disk.path).keys
        #expect(after.filter { $0.hasSuffix(".pem") }.count == 2, "\(after.sorted())")
        // Per generation: the root's key, the JWT key and the WIT key.
        #expect(after.filter { $0.hasSuffix(".key") }.count == 6, "\(after.sorted())")
        #expect(!after.contains { $0.contains(".tmp-") }, "\(after.sorted())")
        await agent.stop()
        await disk.unmount()
    }

    @Test("fleet mode: an agent SVID renewed while the disk is full is used from memory and stored once space returns")
    func fullDiskAtAgentRenewal() async throws {
        guard Self.requireRoot() else { return }
        let clock = ManualClock()
        let server = try await SPIREUpstreamIntegrationTests.startServer(agentSVIDTTL: .seconds(4), clock: clock)
        try server.addEntry(spiffeID: "spiffe://example.org/web", selectors: ["unix:uid:0"])
        let directory = TestAgent.makeDirectory()
        let disk = try await Tmpfs(at: directory + "/data", kilobytes: 1024)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logs = LogCapture()
        let agent = try await TestAgent.start(
            "",
            directory: directory,
            logs: logs,
            upstream: try SPIREUpstreamIntegrationTests.upstream(server, directory: directory),
            clock: clock
        )
        let time = clock.autoAdvance()
        defer { time.cancel() }
        let path = disk.path + "/agent/agent-identity.json"
        let stored = FileManager.default.contents(atPath: path)
        #expect(stored != nil)
        let filler = disk.fill()
        // Renewals at half-life (2 s) happen, cannot be stored, and are used: calls keep authenticating.
        #expect(try await SPIREUpstreamIntegrationTests.eventually { server.count("RenewAgent") >= 2 })
        #expect(logs.all.contains { $0.contains("cannot store the agent identity") && $0.contains("No space left") })
        #expect(FileManager.default.contents(atPath: path) == stored, "the stored identity changed on a full disk")
        #expect(!Self.snapshot(disk.path).keys.contains { $0.contains(".tmp-") })
        // Past the stored SVID's own expiry, the agent still syncs with the renewed one from memory.
        let past = clock.uptime + .seconds(3)
        #expect(try await SPIREUpstreamIntegrationTests.eventually { clock.uptime >= past })
        let syncs = server.count("SyncAuthorizedEntries")
        #expect(
            try await SPIREUpstreamIntegrationTests.eventually { server.count("SyncAuthorizedEntries") > syncs + 1 }
        )
        #expect(try await agent.client.fetchX509SVID().svids.count == 1)
        #expect(server.count("AttestAgent") == 1, "a join-token agent must never need to attest again")
        time.cancel()

        unlink(filler)
        let recovery = clock.autoAdvance()
        defer { recovery.cancel() }
        #expect(
            try await SPIREUpstreamIntegrationTests.eventually {
                FileManager.default.contents(atPath: path) != stored
            }
        )
        recovery.cancel()
        await agent.stop()
        // A restart uses the identity stored after recovery, without attesting.
        let again = try await TestAgent.start(
            "",
            directory: directory,
            upstream: try SPIREUpstreamIntegrationTests.upstream(server, directory: directory),
            clock: clock
        )
        #expect(try await again.client.fetchX509SVID().svids.count == 1)
        #expect(server.count("AttestAgent") == 1)
        await again.stop()
        await disk.unmount()
        await server.stop()
    }
}
