import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The libFuzzer entry points. One binary serves every target; `LANYARD_FUZZ_TARGET` picks which parser a run feeds
/// (libFuzzer's flags, corpus folders and crash files work as usual). `LANYARD_FUZZ_SEEDS=<Fuzz folder>` writes
/// fresh fixtures and seed inputs instead and exits.
enum LanyardFuzz {
    nonisolated(unsafe) static var target: FuzzTarget = .spiffeID
    nonisolated(unsafe) static var fixtures: FuzzFixtures?
    /// Inputs run and inputs the parser accepted, printed at exit: a run that accepts nothing never got past the
    /// first check, and says so.
    nonisolated(unsafe) static var inputs = 0
    nonisolated(unsafe) static var accepted = 0

    static func initialize() {
        let environment = ProcessInfo.processInfo.environment
        let folder = environment["LANYARD_FUZZ_DIR"] ?? "Fuzz"
        if let seeds = environment["LANYARD_FUZZ_SEEDS"] {
            do {
                try FuzzFixtures.writeSeeds(into: seeds, configPath: seeds + "/../config/lanyard.toml")
                print("wrote fixtures and seeds into \(seeds)")
                exit(0)
            } catch {
                fail("cannot write seeds: \(error)")
            }
        }
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
        guard let name = environment["LANYARD_FUZZ_TARGET"], let chosen = FuzzTarget(rawValue: name) else {
            fail("set LANYARD_FUZZ_TARGET to one of: \(names)")
        }
        target = chosen
        do {
            fixtures = try FuzzFixtures(directory: folder + "/fixtures")
        } catch {
            fail("cannot load the fixtures from \(folder)/fixtures (set LANYARD_FUZZ_DIR): \(error)")
        }
        atexit {
            print("lanyard-fuzz \(LanyardFuzz.target.rawValue): \(LanyardFuzz.inputs) inputs, \(LanyardFuzz.accepted) accepted")
        }
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("lanyard-fuzz: \(message)\n".utf8))
        exit(2)
    }
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
    LanyardFuzz.initialize()
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let fixtures = LanyardFuzz.fixtures else { return 0 }
    LanyardFuzz.inputs += 1
    if LanyardFuzz.target.run(Data(bytes: data, count: size), fixtures: fixtures) { LanyardFuzz.accepted += 1 }
    return 0
}
