import ArgumentParser

/// The `lanyard` command: argument parsing and dispatch only; the work lives in the library modules.
@main
struct Lanyard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lanyard",
        abstract: "A SPIFFE workload identity agent for Linux.",
        version: "0.1.0-dev"
    )
}
