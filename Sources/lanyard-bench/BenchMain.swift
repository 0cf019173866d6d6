import Foundation

/// `make bench`: measures every figure of the benchmark issue next to its floor, prints a table and writes JSON.
///
///     lanyard-bench --lanyard .build/release/lanyard --fake-kubelet .build/release/lanyard-fake-kubelet \
///         [--json bench-results.json] [--quick]
///     lanyard-bench floor-server SOCKET      (started by the benchmark itself)
///     lanyard-bench load [--lanyard BIN] [--seconds 60] [--streams 1000] [--unary-clients 8]   (`make load`)
@main
struct BenchMain {
    static func main() async throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "k8s-peak-child" {
            try await Benchmarks.measureColdAttestationPeak(arguments: Array(arguments.dropFirst()))
            return
        }
        if arguments.first == "cold-fetch-child", arguments.count == 2 {
            try await Benchmarks.coldFetchChild(socket: arguments[1])
            return
        }
        if arguments.first == "floor-server", arguments.count == 2 || arguments.count == 3 {
            try await FloorService.serve(
                socketPath: arguments[1],
                sdsResponse: arguments.count == 3 ? arguments[2] : nil
            )
            return
        }
        func value(_ name: String) -> String? {
            arguments.firstIndex(of: name).flatMap { arguments.indices.contains($0 + 1) ? arguments[$0 + 1] : nil }
        }
        let binDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let directory = "/tmp/lanyard-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        if arguments.first == "load" {
            let load = LoadTest(
                lanyard: value("--lanyard") ?? binDirectory + "/lanyard",
                directory: directory,
                seconds: value("--seconds").flatMap(Int.init) ?? 60,
                streams: value("--streams").flatMap(Int.init) ?? 1000,
                unaryClients: value("--unary-clients").flatMap(Int.init) ?? 8
            )
            let held = try await load.run()
            try? FileManager.default.removeItem(atPath: directory)
            exit(held ? 0 : 1)
        }
        var bench = Benchmarks(
            lanyard: value("--lanyard") ?? binDirectory + "/lanyard",
            fakeKubelet: value("--fake-kubelet") ?? binDirectory + "/lanyard-fake-kubelet",
            directory: directory,
            quick: arguments.contains("--quick")
        )
        let cpu =
            (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown cpu"
        let machine = "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu)"
        let commit = ProcessInfo.processInfo.environment["LANYARD_COMMIT"] ?? "unknown"
        say("lanyard benchmarks: \(machine); commit \(commit); \(Date())")
        // A section that fails is reported and the others still run.
        // `--only rpcs,memory` runs some sections (for profiling one of them).
        let only = value("--only").map { Set($0.split(separator: ",").map(String.init)) }
        func section(_ name: String, _ body: () async throws -> Void) async {
            guard only?.contains(name) ?? true else { return }
            do { try await body() } catch { say("  \(name) FAILED: \(error)") }
        }
        await section("startup") { try await bench.startup() }
        await section("rpcs") { try await bench.rpcs() }
        await section("validation") { try bench.validation() }
        await section("rotation") { try await bench.rotation() }
        await section("memory") { try await bench.memory() }
        await section("kubernetes") { try await bench.kubernetes() }
        await section("k8s-restart") { try await bench.podRestartStorm() }
        await section("entries") { try await bench.manyEntries() }
        await section("bounded") { try await bench.boundedCache() }
        await section("sds") { try await bench.sds() }
        await section("broker") { try await bench.broker() }
        await section("fleet") { try await bench.fleet() }

        struct Report: Encodable {
            var machine: String
            var commit: String
            var date: String
            var figures: [Figure]
        }
        let report = Report(
            machine: machine,
            commit: commit,
            date: ISO8601DateFormatter().string(from: Date()),
            figures: bench.figures
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let path = value("--json") ?? "bench-results.json"
        try encoder.encode(report).write(to: URL(fileURLWithPath: path))
        say("\n| figure | value | floor | ratio | target | met |\n|---|---|---|---|---|---|")
        for figure in bench.figures {
            let floor = figure.floor.map { String(format: "%.1f", $0) } ?? "—"
            let ratio = figure.ratio.map { String(format: "%.2f", $0) } ?? "—"
            let met = figure.met.map { $0 ? "yes" : "**no**" } ?? "—"
            say(
                "| \(figure.name) | \(String(format: "%.1f", figure.value)) \(figure.unit) | \(floor) | \(ratio) | \(figure.target) | \(met) |"
            )
        }
        say("\nwrote \(path)")
    }
}
