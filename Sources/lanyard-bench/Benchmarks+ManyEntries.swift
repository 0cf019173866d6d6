import Foundation

/// The cost of entry count on the RPC path: the same calls against an agent with 10 entries and one with 10,000,
/// one of them matching the caller in both (the selector index keeps a caller's view proportional to the entries
/// that could match it).
extension Benchmarks {
    mutating func manyEntries() async throws {
        let count = quick ? 2000 : 10_000
        say("RPCs with \(count) entries against 10, one matching the caller in both")
        let calls = quick ? 300 : 2000
        let streams = quick ? 100 : 600
        // Both agents run at once and are measured in alternating rounds, so drift in the machine's speed falls on
        // both alike.
        var agents: [Int: AgentProcess] = [:]
        for entries in [10, count] {
            let home = try fresh("entries-\(entries)")
            agents[entries] = try await AgentProcess(
                binary: lanyard,
                directory: home,
                config: Self.config(home, entries: entries),
                timeout: 600
            )
        }
        defer { agents.values.forEach { $0.stop() } }
        var jwt: [Int: LatencySample] = [:]
        var x509: [Int: LatencySample] = [:]
        for _ in 0..<4 {
            for (entries, agent) in agents.sorted(by: { $0.key < $1.key }) {
                let calls = try await Self.timedFetchJWT(socket: agent.socketPath, clients: 1, calls: calls / 4)
                jwt[entries, default: LatencySample()].nanoseconds += calls.nanoseconds
                let first = try await Self.firstX509Message(socket: agent.socketPath, count: streams / 4)
                x509[entries, default: LatencySample()].nanoseconds += first.nanoseconds
            }
        }
        var results: [Int: (jwt: Double, x509: Double)] = [:]
        for entries in agents.keys {
            results[entries] = (jwt[entries]?.percentile(0.5) ?? 0, x509[entries]?.percentile(0.5) ?? 0)
        }
        guard let small = results[10], let large = results[count] else { return }
        add(
            Figure(
                name: "FetchJWTSVID p50, 1 client, \(count) entries (floor: 10 entries)",
                value: large.jwt,
                unit: "us",
                floor: small.jwt,
                ratio: large.jwt / small.jwt,
                target: "<= 1.1x floor",
                met: large.jwt <= 1.1 * small.jwt
            )
        )
        add(
            Figure(
                name: "FetchX509SVID first message p50, \(count) entries (floor: 10 entries)",
                value: large.x509,
                unit: "us",
                floor: small.x509,
                ratio: large.x509 / small.x509,
                target: "<= 1.1x floor",
                met: large.x509 <= 1.1 * small.x509
            )
        )
    }
}
