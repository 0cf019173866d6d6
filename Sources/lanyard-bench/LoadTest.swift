import Foundation
import GRPCCore
import LanyardAgent
import LanyardProto
import Synchronization

/// `make load`: the real agent under 1,000 open FetchX509SVID streams and continuous unary calls for a minute while
/// its SVIDs rotate, sampling its memory and descriptors. It holds when no call fails, every stream sees every
/// rotation, and RSS and descriptors are flat: the same at the end as after warm-up, and back to idle once the
/// clients leave. Prints what it tried and what held; exits 1 otherwise.
///
///     lanyard-bench load --lanyard .build/release/lanyard [--seconds 60] [--streams 1000] [--unary-clients 8]
struct LoadTest {
    let lanyard: String
    let directory: String
    let seconds: Int
    let streams: Int
    let unaryClients: Int

    /// Counters the client tasks share.
    final class Tally: Sendable {
        let streamMessages = Atomic<Int>(0)
        let streamsOpen = Atomic<Int>(0)
        let streamFailures = Atomic<Int>(0)
        let unaryCalls = Atomic<Int>(0)
        let unaryFailures = Atomic<Int>(0)
        let firstError = Mutex<String?>(nil)
        /// Every distinct SVID the streams received: one per rotation.
        let serials = Mutex<Set<Data>>([])

        func streamFailed(_ error: any Error) {
            streamFailures.add(1, ordering: .relaxed)
            firstError.withLock { $0 = $0 ?? "\(error)" }
        }

        func unaryFailed(_ error: any Error) {
            unaryFailures.add(1, ordering: .relaxed)
            firstError.withLock { $0 = $0 ?? "\(error)" }
        }
    }

    struct Sample {
        var second: Int
        var rssKiB: Int
        var descriptors: Int
        var messages: Int
        var unaryCalls: Int
    }

    func run() async throws -> Bool {
        // 200 entries (one for this uid) whose 20 s SVIDs renew every 8 to 10 s: about six rotations a minute, each
        // pushed to every stream.
        let config = Benchmarks.config(directory, entries: 200) + "\n[upstream.local]\nx509_svid_ttl = \"20s\"\n"
        let agent = try await AgentProcess(binary: lanyard, directory: directory, config: config)
        defer { agent.stop() }
        let socket = agent.socketPath
        try await Task.sleep(for: .seconds(1))
        let idle = (rss: ProcessMemory.kib(pid: agent.pid), descriptors: ProcessMemory.openDescriptors(pid: agent.pid))
        say("load: agent pid \(agent.pid) ready; idle RSS \(idle.rss / 1024) MiB, \(idle.descriptors) descriptors")

        let tally = Tally()
        let clients = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<(streams / 50) {
                    group.addTask { await Self.streamClient(socket: socket, streams: 50, tally: tally) }
                }
                for _ in 0..<unaryClients {
                    group.addTask { await Self.unaryClient(socket: socket, tally: tally) }
                }
                try await group.waitForAll()
            }
        }
        var samples: [Sample] = []
        let started = ContinuousClock.now
        for second in stride(from: 5, through: seconds, by: 5) {
            try await Task.sleep(until: started + .seconds(second))
            let sample = Sample(
                second: second,
                rssKiB: ProcessMemory.kib(pid: agent.pid),
                descriptors: ProcessMemory.openDescriptors(pid: agent.pid),
                messages: tally.streamMessages.load(ordering: .relaxed),
                unaryCalls: tally.unaryCalls.load(ordering: .relaxed)
            )
            samples.append(sample)
            say(
                String(
                    format:
                        "  %3d s: RSS %.1f MiB, %d descriptors, %d streams open, %d stream messages, %d unary calls",
                    sample.second,
                    Double(sample.rssKiB) / 1024,
                    sample.descriptors,
                    tally.streamsOpen.load(ordering: .relaxed),
                    sample.messages,
                    sample.unaryCalls
                )
            )
        }
        let openAtEnd = tally.streamsOpen.load(ordering: .relaxed)
        clients.cancel()
        _ = try? await clients.value
        // The clients are gone: the agent gives back their descriptors.
        var released = ProcessMemory.openDescriptors(pid: agent.pid)
        for _ in 0..<50 where released > idle.descriptors {
            try await Task.sleep(for: .milliseconds(100))
            released = ProcessMemory.openDescriptors(pid: agent.pid)
        }
        let afterRSS = ProcessMemory.kib(pid: agent.pid)

        // Flat: the last sample against the first after warm-up (15 s), within 10 % or 4 MiB of RSS; descriptors at
        // the end no more than the most seen in the warm-up window (a sample can catch a file being read or written).
        let warm = samples.first { $0.second >= 15 } ?? samples[0]
        let warmDescriptors = samples.filter { (warm.second...warm.second + 15).contains($0.second) }.map(\.descriptors)
        let last = samples[samples.count - 1]
        let rssGrowth = last.rssKiB - warm.rssKiB
        let rssFlat = rssGrowth <= max(warm.rssKiB / 10, 4096)
        let descriptorsFlat = last.descriptors <= (warmDescriptors.max() ?? warm.descriptors)
        let rotations = tally.serials.withLock { $0.count } - 1
        let messages = tally.streamMessages.load(ordering: .relaxed)
        let everyRotation = messages >= streams * (rotations + 1)
        let unary = tally.unaryCalls.load(ordering: .relaxed)
        let failures = tally.streamFailures.load(ordering: .relaxed) + tally.unaryFailures.load(ordering: .relaxed)
        say(
            """
            load: \(seconds) s, \(openAtEnd) of \(streams) streams open at the end, \(unaryClients) unary clients
              rotations seen: \(rotations); stream messages: \(messages) (every stream saw every rotation: \(everyRotation ? "yes" : "NO"))
              unary calls: \(unary) (\(unary / max(seconds, 1)) per s); failed calls: \(failures)\(tally.firstError.withLock { $0 }.map { " (first: \($0))" } ?? "")
              RSS: idle \(idle.rss / 1024) MiB, at \(warm.second) s \(warm.rssKiB / 1024) MiB, at \(last.second) s \(last.rssKiB / 1024) MiB (\(rssGrowth >= 0 ? "+" : "")\(rssGrowth) KiB: \(rssFlat ? "flat" : "GROWING")), after the clients left \(afterRSS / 1024) MiB
              descriptors: idle \(idle.descriptors), at \(warm.second) s \(warm.descriptors), at \(last.second) s \(last.descriptors) (\(descriptorsFlat ? "flat" : "CHANGED")), after the clients left \(released)
            """
        )
        let held =
            failures == 0 && openAtEnd == streams && rotations >= 1 && everyRotation && rssFlat && descriptorsFlat
            && released <= idle.descriptors
        say("load: \(held ? "held" : "FAILED")")
        return held
    }

    /// `count` FetchX509SVID streams on one connection, each reading every update until cancelled.
    static func streamClient(socket: String, streams count: Int, tally: Tally) async {
        do {
            try await WorkloadAPIClient(socketPath: socket).withClient { api in
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<count {
                        group.addTask {
                            do {
                                try await api.fetchX509SVID(
                                    WorkloadAPI_X509SVIDRequest(),
                                    metadata: ["workload.spiffe.io": "true"]
                                ) {
                                    response in
                                    tally.streamsOpen.add(1, ordering: .relaxed)
                                    defer { tally.streamsOpen.subtract(1, ordering: .relaxed) }
                                    for try await message in response.messages {
                                        guard let svid = message.svids.first, !svid.x509Svid.isEmpty else {
                                            throw BenchError("a stream message without an SVID")
                                        }
                                        _ = tally.serials.withLock { $0.insert(svid.x509Svid) }
                                        tally.streamMessages.add(1, ordering: .relaxed)
                                    }
                                }
                                if !Task.isCancelled { tally.streamFailed(BenchError("a stream ended early")) }
                            } catch  where Task.isCancelled {
                            } catch {
                                tally.streamFailed(error)
                            }
                        }
                    }
                }
            }
        } catch  where Task.isCancelled {
        } catch {
            tally.streamFailed(error)
        }
    }

    /// FetchJWTSVID calls back to back until cancelled (each attests the caller and answers from the JWT cache).
    static func unaryClient(socket: String, tally: Tally) async {
        do {
            try await WorkloadAPIClient(socketPath: socket).withClient { api in
                var request = WorkloadAPI_JWTSVIDRequest()
                request.audience = ["load"]
                let metadata: Metadata = ["workload.spiffe.io": "true"]
                while !Task.isCancelled {
                    do {
                        let response = try await api.fetchJWTSVID(request, metadata: metadata)
                        guard !response.svids.isEmpty else { throw BenchError("no jwt-svid returned") }
                        tally.unaryCalls.add(1, ordering: .relaxed)
                    } catch  where Task.isCancelled {
                        return
                    } catch {
                        tally.unaryFailed(error)
                    }
                }
            }
        } catch  where Task.isCancelled {
        } catch {
            tally.unaryFailed(error)
        }
    }
}
