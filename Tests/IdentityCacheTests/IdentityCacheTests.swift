import Foundation
import LanyardTestSupport
import Logging
import SPIFFE
import SPIFFECrypto
import Synchronization
import Testing
import Timing

@testable import IdentityCache

/// An upstream backed by an in-memory CA, counting what it signs.
final class FakeUpstream: IdentityUpstream, Sendable {
    let authority: CertificateAuthority
    let signed = Mutex(0)
    let current: Mutex<UpstreamState>

    init(entries: [RegistrationEntry], now: Date) throws {
        let trustDomain = try TrustDomain("example.org")
        authority = try CertificateAuthority.makeRoot(
            trustDomain: trustDomain,
            keyType: .ecP256,
            ttl: .seconds(86_400),
            now: now
        )
        current = Mutex(
            UpstreamState(
                entries: entries,
                bundle: SPIFFEBundle(trustDomain: trustDomain, x509Authorities: [authority.certificate.derEncoded]),
                federatedBundles: [:]
            )
        )
    }

    func set(entries: [RegistrationEntry]) { current.withLock { $0.entries = entries } }

    /// While true, every sync fails as an unreachable server's would.
    let unreachable = Mutex(false)
    /// How long each sync takes (real time), so overlapping passes would overlap here.
    let syncDuration = Mutex(Duration.zero)
    /// Syncs running now, and the most that ever ran at once.
    let syncsRunning = Mutex((now: 0, most: 0))

    /// Syncs started.
    let syncs = Mutex(0)

    func state(at now: Date) async throws -> UpstreamState {
        syncs.withLock { $0 += 1 }
        syncsRunning.withLock { $0 = (now: $0.now + 1, most: max($0.most, $0.now + 1)) }
        defer { syncsRunning.withLock { $0.now -= 1 } }
        let duration = syncDuration.withLock { $0 }
        if duration > .zero { try await Task.sleep(for: duration) }
        if unreachable.withLock({ $0 }) { throw CryptoError(.issuanceRefused, "upstream unreachable") }
        return current.withLock { $0 }
    }

    func signX509SVID(
        csr: CertificateSigningRequest,
        for entry: RegistrationEntry,
        at now: Date
    ) async throws -> [Certificate] {
        signed.withLock { $0 += 1 }
        return try authority.issueX509SVID(
            csr: csr,
            spiffeID: entry.spiffeID,
            ttl: entry.x509SVIDTTL ?? .seconds(100),
            now: now
        )
    }

    func signJWTSVID(for entry: RegistrationEntry, audience: [String], at now: Date) async throws -> JWTSVID {
        throw CryptoError(.issuanceRefused, "not used")
    }
}

func entry(_ path: String, _ selectors: [String], hint: String = "", revision: Int64 = 0) throws -> RegistrationEntry {
    RegistrationEntry(
        id: path,
        spiffeID: try SPIFFEID("spiffe://example.org\(path)"),
        selectors: Set(try selectors.map { try Selector($0) }),
        hint: hint,
        revision: revision
    )
}

@Suite("Identity cache and rotation")
struct IdentityCacheTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    let logger = Logger(label: "test")

    @Test("renewal falls between 40% and 48% of the lifetime, counted from issuance")
    func renewalTiming() {
        let policy = RenewalPolicy()
        let start = Self.now
        let end = start + 100
        #expect(policy.renewalTime(notBefore: start, notAfter: end, jitter: 0) == start + 40)
        #expect(policy.renewalTime(notBefore: start, notAfter: end, jitter: 1) == start + 48)
        #expect(policy.renewalTime(notBefore: start, notAfter: end, jitter: 0.5) == start + 44)
        #expect(policy.isJWTReusable(issuedAt: start, expiresAt: end, at: start + 49))
        #expect(!policy.isJWTReusable(issuedAt: start, expiresAt: end, at: start + 50))
    }

    @Test("the rotator mints what is missing, nothing before renewal, and renews after it")
    func rotation() async throws {
        let upstream = try FakeUpstream(
            entries: [try entry("/a", ["unix:uid:1"]), try entry("/b", ["unix:uid:2"])],
            now: Self.now
        )
        let cache = IdentityCache(now: { Self.now })
        let rotator = SVIDRotator(cache: cache, upstream: upstream, logger: logger)
        #expect(await rotator.syncOnce(at: Self.now) == 2)
        #expect(cache.state.isPrimed)
        #expect(await rotator.syncOnce(at: Self.now + 39) == 0)
        let renewal = try #require(cache.state.nextRenewal)
        #expect(renewal >= Self.now + 40 && renewal <= Self.now + 48)
        #expect(await rotator.syncOnce(at: Self.now + 50) == 2)
        #expect(upstream.signed.withLock { $0 } == 4)
    }

    @Test("a restored snapshot keeps each SVID's renewal time and drops the expired ones; nothing is due early")
    func snapshotRestore() async throws {
        let upstream = try FakeUpstream(
            entries: [try entry("/a", ["unix:uid:1"]), try entry("/b", ["unix:uid:2"])],
            now: Self.now
        )
        let cache = IdentityCache(now: { Self.now })
        let rotator = SVIDRotator(cache: cache, upstream: upstream, logger: logger)
        #expect(await rotator.syncOnce(at: Self.now) == 2)
        let snapshot = try #require(cache.state.snapshot(at: Self.now))
        #expect(snapshot.svids.count == 2)

        var restored = CacheState()
        #expect(restored.restore(snapshot, at: Self.now + 10) == 2)
        #expect(restored.svids == cache.state.svids && restored.entries == cache.state.entries)
        #expect(restored.entriesDue(at: Self.now + 10).isEmpty, "a restart must not make SVIDs due")
        #expect(restored.restoredFrom == Self.now && !restored.lastSyncSucceeded)
        let generation = restored.generation

        // SVIDs that expired by the time of the restart are not served, and their entries are due at once.
        let lateTime = try #require(snapshot.svids.values.map(\.svid.expiresAt).max()) + 1
        var late = CacheState()
        #expect(late.restore(snapshot, at: lateTime) == 0)
        #expect(late.entriesDue(at: lateTime).map(\.id).sorted() == ["/a", "/b"])
        #expect(!late.isPrimed)

        // The first successful sync ends "restored"; an unchanged upstream leaves the generation alone.
        let rotatorAfterRestart = SVIDRotator(cache: cache, upstream: upstream, logger: logger)
        cache.update { state in
            state.restore(snapshot, at: Self.now + 10)
            return true
        }
        #expect(await rotatorAfterRestart.syncOnce(at: Self.now + 10) == 0)
        #expect(cache.state.restoredFrom == nil && cache.state.lastSyncSucceeded)
        #expect(generation > 0)
    }

    @Test("many due entries are minted in bounded batches, one upstream call and one stream update per batch")
    func batchedMinting() async throws {
        let count = SVIDRotator.batchSize * 2 + 44
        let entries = try (0..<count).map { try entry("/e\($0)", ["unix:uid:1"]) }
        let upstream = try FakeUpstream(entries: entries, now: Self.now)
        let cache = IdentityCache(now: { Self.now })
        let updates = Mutex<[Int]>([])
        let stream = cache.subscribe(selectors: [try Selector("unix:uid:1")]) { $0.identities.count }
        let reader = Task {
            for await seen in stream {
                updates.withLock { $0.append(seen) }
                if seen == count { return }
            }
        }
        let rotator = SVIDRotator(cache: cache, upstream: upstream, logger: logger)
        #expect(await rotator.syncOnce(at: Self.now) == count)
        await reader.value
        #expect(cache.state.svids.count == count)
        // The stream keeps only the newest view, so a slow reader may skip some; it never sees one per SVID.
        let seen = updates.withLock { $0 }
        #expect(seen.last == count)
        #expect(
            seen.allSatisfy { [0, SVIDRotator.batchSize, 2 * SVIDRotator.batchSize, count].contains($0) },
            "\(seen)"
        )
    }

    @Test("a cached SVID keeps its chain as one DER buffer and gives it back in PEM certificate by certificate")
    func issuedSVIDBytes() throws {
        let trustDomain = try TrustDomain("example.org")
        let root = try CertificateAuthority.makeRoot(
            trustDomain: trustDomain,
            keyType: .ecP256,
            ttl: .seconds(86_400),
            now: Self.now
        )
        let intermediate = try root.makeIntermediate(keyType: .ecP256, ttl: .seconds(3600), now: Self.now)
        let key = try PrivateKey(generating: .ecP256)
        let id = try SPIFFEID("spiffe://example.org/web")
        let csr = try CertificateSigningRequest(privateKey: key, spiffeID: id, dnsNames: [])
        let chain = try intermediate.issueX509SVID(csr: csr, spiffeID: id, ttl: .seconds(60), now: Self.now)
        #expect(chain.count == 2)
        let issued = try IssuedSVID(X509SVID(certificates: chain, privateKey: key), spiffeID: id)
        #expect(issued.chainDER == chain[0].derEncoded + chain[1].derEncoded)
        let fromPEM = try Certificate.chain(pemEncoded: issued.chainPEM)
        #expect(fromPEM.map(\.derEncoded) == chain.map(\.derEncoded))
        #expect(try PrivateKey(pemEncoded: issued.privateKeyPEM).pkcs8DER == key.pkcs8DER)
        #expect(!issued.description.contains(String(issued.privateKeyDER.base64EncodedString().prefix(16))))
        #expect(issued.description.contains("spiffe://example.org/web"))
        // A cut chain (never produced by OpenSSL) is handed back whole rather than dropped.
        #expect(IssuedSVID.elementRanges(issued.chainDER.dropLast(5)).count == 2)
        #expect(IssuedSVID.elementRanges(Data([0x30])).count == 1)
    }

    @Test("a changed revision re-mints; a removed entry disappears from the cache and from subscribers")
    func entryChanges() async throws {
        let a = try entry("/a", ["unix:uid:1"])
        let upstream = try FakeUpstream(entries: [a], now: Self.now)
        let cache = IdentityCache(now: { Self.now })
        let rotator = SVIDRotator(cache: cache, upstream: upstream, logger: logger)
        await rotator.syncOnce(at: Self.now)
        let stream = cache.subscribe(selectors: [try Selector("unix:uid:1")]) {
            $0.identities.map(\.entry.spiffeID.path)
        }
        var iterator = stream.makeAsyncIterator()
        #expect(await iterator.next() == ["/a"])

        var changed = a
        changed.revision = 7
        upstream.set(entries: [changed])
        #expect(await rotator.syncOnce(at: Self.now + 1) == 1)
        upstream.set(entries: [])
        await rotator.syncOnce(at: Self.now + 2)
        // The newest view wins for a slow reader: the entry is gone.
        #expect(await iterator.next() == [])
        #expect(cache.state.svids.isEmpty)
    }

    @Test("a caller sees only matching identities, in entry order, with repeated hints left out")
    func viewsAndHints() async throws {
        let entries = [
            try entry("/first", ["unix:uid:1"], hint: "web"),
            try entry("/second", ["unix:uid:1", "unix:gid:1"], hint: "web"),
            try entry("/third", ["unix:uid:1"], hint: "db"),
            try entry("/other", ["unix:uid:2"]),
        ]
        let upstream = try FakeUpstream(entries: entries, now: Self.now)
        let cache = IdentityCache(now: { Self.now })
        await SVIDRotator(cache: cache, upstream: upstream, logger: logger).syncOnce(at: Self.now)
        let view = cache.state.view(for: [try Selector("unix:uid:1"), try Selector("unix:gid:1")], at: Self.now)
        #expect(view.identities.map(\.entry.spiffeID.path) == ["/first", "/third"])
        #expect(cache.state.view(for: [try Selector("unix:uid:3")], at: Self.now).identities.isEmpty)
        #expect(cache.state.matchingEntries([try Selector("unix:uid:1")]).count == 2)
        // After a suspend or a clock step past their expiry, the same SVIDs are in no view until they are renewed.
        let expiry = try #require(cache.state.svids.values.map(\.svid.expiresAt).min())
        #expect(cache.state.view(for: [try Selector("unix:uid:1")], at: expiry).identities.isEmpty)
    }

    static func token(_ id: SPIFFEID, _ audience: [String], issued: Date = now, lifetime: TimeInterval = 100) -> JWTSVID
    {
        JWTSVID(
            token: "token-\(id.path)-\(audience.joined(separator: ","))",
            spiffeID: id,
            audience: audience,
            expiresAt: issued + lifetime,
            issuedAt: issued,
            claims: [:]
        )
    }

    @Test("JWT-SVIDs are cached by SPIFFE ID and sorted audience, until half their lifetime")
    func jwtCacheKeys() throws {
        let id = try SPIFFEID("spiffe://example.org/a")
        #expect(
            JWTSVIDCache.Key(spiffeID: id, audience: ["b", "a"])
                == JWTSVIDCache.Key(spiffeID: id, audience: ["a", "b", "a"])
        )
        #expect(
            JWTSVIDCache.Key(spiffeID: id, audience: ["a"]) != JWTSVIDCache.Key(spiffeID: id, audience: ["a", "b"])
        )
        let cache = IdentityCache(now: { Self.now })
        let key = JWTSVIDCache.Key(spiffeID: id, audience: ["a"])
        cache.jwtSVIDs.store(Self.token(id, ["a"]), for: key, at: Self.now)
        #expect(cache.jwtSVIDs.token(for: key, at: Self.now + 10) == "token-/a-a")
        #expect(cache.jwtSVIDs.token(for: key, at: Self.now + 50) == nil)
        // Removing the identity forgets its tokens.
        cache.update { state in
            state.apply(
                UpstreamState(entries: [], bundle: SPIFFEBundle(trustDomain: id.trustDomain), federatedBundles: [:])
            )
        }
        #expect(cache.jwtSVIDs.token(for: key, at: Self.now + 10) == nil)
        #expect(cache.jwtSVIDs.usage.count == 0)
    }

    @Test("the JWT-SVID cache holds at most its size: the least recently used token goes first")
    func jwtCacheIsBounded() throws {
        let id = try SPIFFEID("spiffe://example.org/a")
        let cache = JWTSVIDCache(maximumEntries: 100)
        for index in 0..<40_000 {
            let audience = ["audience-\(index)"]
            cache.store(Self.token(id, audience), for: .init(spiffeID: id, audience: audience), at: Self.now)
            // Keep the very first token in use: it must survive every eviction.
            _ = cache.token(for: .init(spiffeID: id, audience: ["audience-0"]), at: Self.now)
        }
        #expect(cache.usage.count == 100)
        #expect(cache.usage.evictions == 40_000 - 100)
        #expect(cache.token(for: .init(spiffeID: id, audience: ["audience-0"]), at: Self.now) != nil)
        #expect(cache.token(for: .init(spiffeID: id, audience: ["audience-1"]), at: Self.now) == nil)
        #expect(cache.token(for: .init(spiffeID: id, audience: ["audience-39999"]), at: Self.now) != nil)
    }

    @Test("the JWT-SVID cache is bounded in bytes too, and drops expired tokens before live ones")
    func jwtCacheBytesAndExpiry() throws {
        let id = try SPIFFEID("spiffe://example.org/a")
        let cache = JWTSVIDCache(maximumEntries: 1000, maximumBytes: 64 << 10)
        let long = String(repeating: "x", count: 1000)
        for index in 0..<500 {
            let audience = ["\(long)-\(index)"]
            cache.store(Self.token(id, audience), for: .init(spiffeID: id, audience: audience), at: Self.now)
        }
        #expect(cache.usage.bytes <= 64 << 10)
        #expect(cache.usage.count < 500)

        let small = JWTSVIDCache(maximumEntries: 3)
        small.store(Self.token(id, ["old"], lifetime: 10), for: .init(spiffeID: id, audience: ["old"]), at: Self.now)
        for audience in ["b", "c"] {
            small.store(Self.token(id, [audience]), for: .init(spiffeID: id, audience: [audience]), at: Self.now)
        }
        // "old" was used last, but it has expired by now + 20: it goes, not "b".
        _ = small.token(for: .init(spiffeID: id, audience: ["old"]), at: Self.now + 1)
        small.store(
            Self.token(id, ["d"], issued: Self.now + 20),
            for: .init(spiffeID: id, audience: ["d"]),
            at: Self.now + 20
        )
        #expect(small.usage.evictions == 0)
        #expect(small.token(for: .init(spiffeID: id, audience: ["b"]), at: Self.now + 20) != nil)
    }

    @Test("the backoff doubles from the interval to its ceiling, spread by its jitter")
    func backoffValues() {
        let backoff = Backoff(initial: .seconds(5), maximum: .seconds(40), jitter: 0.2)
        #expect(backoff.delay(afterFailures: 1, random: 0.5) == .seconds(5))
        #expect(backoff.delay(afterFailures: 2, random: 0.5) == .seconds(10))
        #expect(backoff.delay(afterFailures: 4, random: 0.5) == .seconds(40))
        #expect(backoff.delay(afterFailures: 60, random: 0.5) == .seconds(40))
        #expect(abs((backoff.delay(afterFailures: 1, random: 0) - .seconds(4)).timeInterval) < 1e-6)
        #expect(abs((backoff.delay(afterFailures: 1, random: 1) - .seconds(6)).timeInterval) < 1e-6)
        #expect(SVIDRotator.backoff(syncInterval: .seconds(30)).maximum == .seconds(60))
    }

    @Test("requested passes (reloads) run in the loop: they wake it, never overlap its own pass, and mint once")
    func requestedPasses() async throws {
        let clock = ManualClock(now: Self.now)
        let upstream = try FakeUpstream(entries: [try entry("/a", ["unix:uid:1"])], now: Self.now)
        upstream.syncDuration.withLock { $0 = .milliseconds(20) }
        let rotator = SVIDRotator(
            cache: IdentityCache(now: { Self.now }),
            upstream: upstream,
            logger: logger,
            clock: clock
        )
        let loop = Task { await rotator.run() }
        defer { loop.cancel() }
        try await clock.waitForSleepers()
        #expect(upstream.signed.withLock { $0 } == 1)
        let uptime = clock.uptime

        // Ten reloads at once while the loop sleeps and time stands still: the first pass mints the new entry and
        // answers every request made before it began; requests made during it are answered by the next pass, which
        // has nothing to mint.
        upstream.set(entries: [try entry("/a", ["unix:uid:1"]), try entry("/b", ["unix:uid:2"])])
        let minted = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<10 { group.addTask { await rotator.requestPass() } }
            return await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(minted.contains(1) && minted.allSatisfy { $0 <= 1 }, "\(minted)")
        #expect(upstream.signed.withLock { $0 } == 2, "an entry was minted twice")
        #expect(upstream.syncsRunning.withLock { $0.most } == 1, "two passes overlapped")
        #expect(clock.uptime == uptime, "the loop waited for its timer instead of the request")
        try await clock.waitForSleepers()
    }

    @Test(
        "the rotation loop backs off while the upstream fails, resets once it answers, and renews on time (clock moved)"
    )
    func rotationLoopOnAClock() async throws {
        let clock = ManualClock(now: Self.now)
        let upstream = try FakeUpstream(entries: [try entry("/a", ["unix:uid:1"])], now: Self.now)
        let cache = IdentityCache(now: { Self.now })
        let rotator = SVIDRotator(
            cache: cache,
            upstream: upstream,
            syncInterval: .seconds(5),
            logger: logger,
            clock: clock
        )
        let loop = Task { await rotator.run() }
        defer { loop.cancel() }
        // Healthy: the first pass mints; the loop then wakes every sync interval (the 100 s SVID renews at 40–48 s).
        try await clock.waitForSleepers()
        #expect(upstream.signed.withLock { $0 } == 1)
        #expect(clock.advanceToNextWake() == .seconds(5))
        try await clock.waitForSleepers()
        // Failing: 5, 10, 20, 40, 40 s (±20 %): doubling up to eight intervals.
        upstream.unreachable.withLock { $0 = true }
        var waits: [Duration] = []
        for _ in 0..<6 {
            try await clock.waitForSleepers()
            waits.append(clock.advanceToNextWake())
        }
        let nominal: [Double] = [5, 5, 10, 20, 40, 40]
        for (wait, expected) in zip(waits, nominal) {
            #expect(wait >= .seconds(expected * 0.8) && wait <= .seconds(expected * 1.2), "waits \(waits)")
        }
        // Back: the next pass succeeds and the loop returns to the sync interval.
        upstream.unreachable.withLock { $0 = false }
        try await clock.waitForSleepers()
        clock.advanceToNextWake()
        try await clock.waitForSleepers()
        #expect(clock.advanceToNextWake() <= .seconds(5))
        // The SVID (100 s, due at 40–48 s while the upstream was down) was renewed by the first pass after it came back.
        try await clock.waitForSleepers()
        #expect(upstream.signed.withLock { $0 } == 2, "renewed once, after the outage")
    }

    /// The first view of a subscriber: the entry IDs it holds.
    static func firstView(
        _ cache: IdentityCache,
        uid: Int
    ) async throws -> (ids: [String], stream: AsyncStream<[String]>) {
        let stream = cache.subscribe(selectors: [try Selector("unix:uid:\(uid)")]) { $0.identities.map(\.entry.id) }
        var iterator = stream.makeAsyncIterator()
        return (try #require(await iterator.next()), stream)
    }

    @Test(
        "a bounded cache mints only what callers ask for, in one signing round trip without a sync, and drops the least recently used"
    )
    func boundedCache() async throws {
        let clock = ManualClock(now: Self.now)
        let entries = try (1...5).map { try entry("/\($0)", ["unix:uid:\($0)"]) }
        let upstream = try FakeUpstream(entries: entries, now: Self.now)
        let cache = IdentityCache(svidLimit: 2, now: { Self.now })
        let rotator = SVIDRotator(cache: cache, upstream: upstream, logger: logger, clock: clock)
        let loop = Task { await rotator.run() }
        defer { loop.cancel() }
        try await clock.waitForSleepers()
        #expect(upstream.signed.withLock { $0 } == 0, "entries nobody asked for were minted")
        #expect(cache.state.isPrimed)
        let syncs = upstream.syncs.withLock { $0 }

        // A cold caller waits for its own SVID: one signing, no sync, no clock step.
        #expect(try await Self.firstView(cache, uid: 1).ids == ["/1"])
        #expect(upstream.signed.withLock { $0 } == 1)
        #expect(upstream.syncs.withLock { $0 } == syncs, "the on-demand mint waited for a sync")
        // Warm: served from the cache.
        #expect(try await Self.firstView(cache, uid: 1).ids == ["/1"])
        #expect(upstream.signed.withLock { $0 } == 1)
        // A third entry drops the least recently used, 2 (1 was used after it).
        _ = try await Self.firstView(cache, uid: 2)
        _ = try await Self.firstView(cache, uid: 1)
        _ = try await Self.firstView(cache, uid: 3)
        #expect(Set(cache.state.svids.keys) == ["/1", "/3"])
        #expect(upstream.signed.withLock { $0 } == 3)

        // An open stream's SVID outlives more recently used ones, and it gets its renewals.
        let (held, stream) = try await Self.firstView(cache, uid: 4)
        #expect(held == ["/4"])
        _ = try await Self.firstView(cache, uid: 5)
        _ = try await Self.firstView(cache, uid: 1)
        #expect(Set(cache.state.svids.keys) == ["/4", "/1"])
        // Only held SVIDs are renewed: past every renewal time, a pass signs two, not five.
        let signed = upstream.signed.withLock { $0 }
        #expect(
            try await clock.run(
                until: { cache.state.svids.values.allSatisfy { $0.svid.expiresAt > Self.now + 100 } },
                limit: .seconds(60)
            )
        )
        #expect(upstream.signed.withLock { $0 } == signed + 2)
        #expect(Set(cache.state.svids.keys) == ["/4", "/1"])
        withExtendedLifetime(stream) {}
    }

    @Test("the bound is hard: streams that need more SVIDs than it allows do not grow the cache past it")
    func boundedCacheIsHard() async throws {
        let clock = ManualClock(now: Self.now)
        let entries = try (1...3).map { try entry("/\($0)", ["unix:uid:\($0)"]) }
        let upstream = try FakeUpstream(entries: entries, now: Self.now)
        let cache = IdentityCache(svidLimit: 1, now: { Self.now })
        let rotator = SVIDRotator(cache: cache, upstream: upstream, logger: logger, clock: clock)
        let loop = Task { await rotator.run() }
        defer { loop.cancel() }
        try await clock.waitForSleepers()
        var streams: [AsyncStream<[String]>] = []
        for uid in 1...3 {
            let (ids, stream) = try await Self.firstView(cache, uid: uid)
            #expect(ids == ["/\(uid)"])
            streams.append(stream)
            #expect(cache.state.svids.count == 1)
        }
        var state = cache.state
        #expect(state.evictBeyondLimit(protecting: []) == 0)
        withExtendedLifetime(streams) {}
    }

    @Test("the selector index finds exactly the entries a scan finds, in entry order")
    func selectorIndexMatchesScan() throws {
        var random = SystemRandomNumberGenerator()
        let pool = try (0..<12).map { try Selector("unix:uid:\($0)") } + (0..<6).map { try Selector("k8s:ns:n\($0)") }
        let entries = try (0..<2000).map { index in
            let count = Int.random(in: 1...3, using: &random)
            return RegistrationEntry(
                id: "e\(index)",
                spiffeID: try SPIFFEID("spiffe://example.org/e\(index)"),
                selectors: Set((0..<count).map { _ in pool.randomElement(using: &random)! })
            )
        }
        var state = CacheState()
        _ = state.apply(
            UpstreamState(
                entries: entries,
                bundle: SPIFFEBundle(trustDomain: try TrustDomain("example.org")),
                federatedBundles: [:]
            )
        )
        for _ in 0..<500 {
            let caller = Set(
                (0..<Int.random(in: 0...6, using: &random)).map { _ in pool.randomElement(using: &random)! }
            )
            let scanned = entries.indices.filter { entries[$0].matches(caller) }
            #expect(state.matchingPositions(caller) == scanned, "caller \(caller.sorted())")
        }
    }

    @Test("a view among 10,000 entries examines only the entries indexed under the caller's selectors")
    func viewExaminesOnlyCandidates() throws {
        // Every entry shares `unix:gid:0` and `k8s:ns:default`; each has its own uid. A caller holding the shared
        // selectors and one uid must not make the 10,000 entries candidates.
        let shared = [try Selector("unix:gid:0"), try Selector("k8s:ns:default")]
        let entries = try (0..<10_000).map { index in
            RegistrationEntry(
                id: "e\(index)",
                spiffeID: try SPIFFEID("spiffe://example.org/e\(index)"),
                selectors: Set(shared + [try Selector("unix:uid:\(index)")])
            )
        }
        var state = CacheState()
        _ = state.apply(
            UpstreamState(
                entries: entries,
                bundle: SPIFFEBundle(trustDomain: try TrustDomain("example.org")),
                federatedBundles: [:]
            )
        )
        let caller = Set(shared + [try Selector("unix:uid:4242")])
        #expect(state.candidatePositions(caller) == [4242])
        #expect(state.matchingPositions(caller) == [4242])
        #expect(state.candidatePositions(Set(shared)).isEmpty)
        #expect(state.matchingEntries(caller).map(\.id) == ["e4242"])
    }

    @Test("every subscriber gets every change, and finishing ends the streams")
    func fanOut() async throws {
        let upstream = try FakeUpstream(entries: [try entry("/a", ["unix:uid:1"])], now: Self.now)
        let cache = IdentityCache(now: { Self.now })
        let rotator = SVIDRotator(cache: cache, upstream: upstream, logger: logger)
        let streams = try (0..<5).map { _ in
            cache.subscribe(selectors: [try Selector("unix:uid:1")]) { $0.identities.count }
        }
        #expect(cache.subscriberCount == 5)
        await rotator.syncOnce(at: Self.now)
        cache.finishAll()
        for stream in streams {
            var last = -1
            for await count in stream { last = count }
            #expect(last == 1)
        }
    }
}
