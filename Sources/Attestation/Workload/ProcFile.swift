#if canImport(Glibc)
    import Glibc
#endif

/// Reads a small `/proc` file in one go with `open`/`read`: attestation reads two or three per call, and going
/// through Foundation's file and string machinery cost more than the rest of a cached FetchJWTSVID.
enum ProcFile {
    /// The file's bytes (at most `limit`), or nil when it cannot be opened (the process is gone).
    static func read(_ path: String, limit: Int = 64 << 10) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        var count = 0
        while true {
            if count == bytes.count {
                guard bytes.count < limit else { break }
                bytes.append(contentsOf: repeatElement(0, count: bytes.count))
            }
            let read = bytes.withUnsafeMutableBytes { buffer in
                Glibc.read(descriptor, buffer.baseAddress! + count, buffer.count - count)
            }
            if read < 0 && errno == EINTR { continue }
            guard read > 0 else { break }
            count += read
        }
        bytes.removeLast(bytes.count - count)
        return bytes
    }

    /// The unsigned decimal numbers of `line`, separated by spaces or tabs; nil if anything else is there.
    static func numbers(_ line: ArraySlice<UInt8>) -> [UInt64]? {
        var values: [UInt64] = []
        var current: UInt64? = nil
        for byte in line {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let (times, overflow1) = (current ?? 0).multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
                guard !overflow1, !overflow2 else { return nil }
                current = sum
            case UInt8(ascii: " "), UInt8(ascii: "\t"):
                if let value = current { values.append(value) }
                current = nil
            default: return nil
            }
        }
        if let value = current { values.append(value) }
        return values
    }
}
