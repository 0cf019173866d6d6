/// Durations as configuration strings: a sequence of a number and a unit, `ms`, `s`, `m` or `h`, such as `"90s"`,
/// `"5m"`, `"1h30m"` or `"500ms"` (Go's notation, which SPIRE users know).
enum DurationParser {
    static func parse(_ text: String) -> Duration? {
        guard !text.isEmpty else { return nil }
        var total: Duration = .zero
        var rest = Substring(text)
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, let value = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix { $0.isASCII && $0.isLetter }
            rest = rest.dropFirst(unit.count)
            switch unit {
            case "ms": total += .milliseconds(value)
            case "s": total += .seconds(value)
            case "m": total += .seconds(value * 60)
            case "h": total += .seconds(value * 3600)
            default: return nil
            }
        }
        return total
    }
}
