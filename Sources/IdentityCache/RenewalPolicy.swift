package import Foundation

/// When to renew an SVID: at a point drawn between 40% and 48% of its lifetime, so renewals of many SVIDs
/// spread out instead of arriving together, and a fresh SVID always reaches workloads before the old one
/// passes half-life.
package struct RenewalPolicy: Sendable {
    /// The earliest and latest fractions of the lifetime at which renewal happens.
    package var window: ClosedRange<Double>

    package init(window: ClosedRange<Double> = 0.4...0.48) {
        self.window = window
    }

    /// The renewal time for an SVID valid from `notBefore` to `notAfter`; `jitter` in 0...1 picks the point in the window.
    package func renewalTime(notBefore: Date, notAfter: Date, jitter: Double) -> Date {
        let fraction = window.lowerBound + (window.upperBound - window.lowerBound) * min(max(jitter, 0), 1)
        return notBefore + notAfter.timeIntervalSince(notBefore) * fraction
    }

    /// A JWT-SVID is reused until half its lifetime has passed.
    package func isJWTReusable(issuedAt: Date, expiresAt: Date, at now: Date) -> Bool {
        now < issuedAt + expiresAt.timeIntervalSince(issuedAt) / 2
    }
}
