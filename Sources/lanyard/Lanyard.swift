import ArgumentParser
import Foundation
import LanyardAgent
import Logging
import SPIFFE

/// The `lanyard` command: argument parsing and dispatch only; the work lives in the library modules.
/// Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad configuration.
@main
struct Lanyard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lanyard",
        abstract: "A SPIFFE workload identity agent for Linux.",
        version: LanyardVersion.current,
        subcommands: [
            Run.self, API.self, Healthcheck.self, Config.self, Status.self, Explain.self, Entries.self, LogLevel.self,
            Helper.self,
        ]
    )

    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            let message = fullMessage(for: error)
            if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
            Foundation.exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }
}

/// Reports a runtime failure (a call that failed, an agent that is down) and gives exit code 1.
enum Failure {
    static func runtime(_ error: any Error) -> ExitCode {
        FileHandle.standardError.write(Data("lanyard: \(ClientCommands.describe(error))\n".utf8))
        return ExitCode(1)
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the agent.")

    @Option(help: "The configuration file.")
    var config: String = AgentConfig.defaultPath

    func run() async throws {
        let agentConfig: AgentConfig
        do {
            agentConfig = try AgentConfig.load(path: config)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(2)
        }
        // One level for every logger, so a reload can change it.
        let level = LogLevelBox(agentConfig.logLevel.level)
        // Under systemd, text logs go to the journal as structured entries; JSON stays JSON on standard error.
        let sink = AgentLogHandler.Sink(agentConfig.logFormat)
        LoggingSystem.bootstrap { label in
            LevelFollowingLogHandler(AgentLogHandler(label: label, sink: sink), box: level)
        }
        let logger = Logger(label: "lanyard")
        do {
            let metrics = Agent.bootstrapMetrics()
            try await Agent(
                config: agentConfig,
                configPath: config,
                logger: logger,
                logLevel: level,
                metricsRegistry: metrics
            ).run()
        } catch {
            logger.critical("agent failed", metadata: [LogKey.error: "\(error)"])
            throw ExitCode(1)
        }
    }
}

struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work with configuration files.",
        subcommands: [Check.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a configuration file; list every problem.")

        @Argument(help: "The configuration file.")
        var path: String

        func run() throws {
            do {
                let config = try AgentConfig.load(path: path)
                let templates = config.entryTemplates.isEmpty ? "" : ", \(config.entryTemplates.count) templated"
                print(
                    "\(path): valid (trust domain \(config.trustDomain), \(config.entries.count) entries\(templates))"
                )
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(2)
            }
        }
    }
}

/// `lanyard helper`: SVIDs as files for software that does not speak SPIFFE.
struct Helper: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Keep SVIDs and bundles as files, reloading the software that reads them.",
        subcommands: [RunHelper.self, Check.self]
    )

    struct RunHelper: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Fetch over the Workload API as this process's identity and keep the files current."
        )

        @Option(help: "The helper's configuration file.")
        var config: String

        @Flag(help: "Fetch, write every file and exit (0, or 1 when no identity could be had within once_timeout).")
        var once = false

        func run() async throws {
            let helperConfig: HelperConfig
            do {
                helperConfig = try HelperConfig.load(path: config)
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(2)
            }
            let sink = AgentLogHandler.Sink(.text)
            LoggingSystem.bootstrap { label in AgentLogHandler(label: label, sink: sink) }
            let logger = Logger(label: "lanyard-helper")
            let helper: SVIDFileHelper
            do {
                helper = try SVIDFileHelper(config: helperConfig, logger: logger)
            } catch {
                FileHandle.standardError.write(Data("lanyard helper: \(error)\n".utf8))
                throw ExitCode(2)
            }
            let status = once || !helperConfig.daemonMode ? await helper.runOnce() : await helper.run()
            if status != 0 { throw ExitCode(status) }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a helper configuration file.")

        @Argument(help: "The helper's configuration file.")
        var path: String

        func run() throws {
            do {
                let config = try HelperConfig.load(path: path)
                print("\(path): valid (writes to \(config.certDirectory), agent \(config.agentAddress))")
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(2)
            }
        }
    }
}

/// Options every client command shares.
struct SocketOptions: ParsableArguments {
    @Option(help: "The Workload API socket (default: $SPIFFE_ENDPOINT_SOCKET, else /run/lanyard/public/api.sock).")
    var socket: String?

    func client() throws -> WorkloadAPIClient {
        do {
            return WorkloadAPIClient(
                socketPath: try WorkloadAPIClient.resolveSocketPath(
                    explicit: socket,
                    environment: ProcessInfo.processInfo.environment
                )
            )
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

struct Healthcheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Exit 0 when the agent answers on its socket.")

    @OptionGroup var options: SocketOptions

    func run() async throws {
        let client = try options.client()
        do {
            try await client.ping()
            print("agent is healthy")
        } catch {
            throw Failure.runtime(error)
        }
    }
}

struct API: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Talk to the Workload API as a workload would.",
        subcommands: [Fetch.self, Validate.self, Watch.self]
    )

    struct Fetch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch SVIDs or bundles.",
            subcommands: [X509.self, JWT.self, WIT.self, Bundles.self]
        )
    }

    struct X509: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "x509", abstract: "Fetch X509-SVIDs.")

        @OptionGroup var options: SocketOptions
        @Option(help: "Write svid.N.pem, svid.N.key and bundle.N.pem into this directory.")
        var write: String?
        @Flag(help: "Print JSON (never the private key).")
        var json = false

        func run() async throws {
            do {
                print(try await ClientCommands.fetchX509(client: try options.client(), writeTo: write, json: json))
            } catch let error as ValidationError {
                throw error
            } catch {
                throw Failure.runtime(error)
            }
        }
    }

    struct JWT: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "jwt", abstract: "Fetch JWT-SVIDs.")

        @OptionGroup var options: SocketOptions
        @Option(help: "An audience; repeat for several.")
        var audience: [String] = []
        @Option(name: .customLong("spiffe-id"), help: "Only this identity.")
        var spiffeID: String?

        func validate() throws {
            guard !audience.isEmpty else { throw ValidationError("at least one --audience is required") }
        }

        func run() async throws {
            do {
                print(
                    try await ClientCommands.fetchJWT(
                        client: try options.client(),
                        audience: audience,
                        spiffeID: spiffeID
                    )
                )
            } catch let error as ValidationError {
                throw error
            } catch {
                throw Failure.runtime(error)
            }
        }
    }

    struct WIT: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "wit",
            abstract: "Fetch WIT-SVIDs (the token and its private key as a JWK)."
        )

        @OptionGroup var options: SocketOptions
        @Option(name: .customLong("spiffe-id"), help: "Only this identity.")
        var spiffeID: String?
        @Option(help: "Write wit_svid.N.jwt and wit_svid.N.key.jwk (0600) into this directory.")
        var write: String?

        func run() async throws {
            do {
                print(
                    try await ClientCommands.fetchWIT(client: try options.client(), spiffeID: spiffeID, writeTo: write)
                )
            } catch let error as ValidationError {
                throw error
            } catch {
                throw Failure.runtime(error)
            }
        }
    }

    struct Bundles: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fetch the X.509, JWT and WIT bundles.")

        @OptionGroup var options: SocketOptions

        func run() async throws {
            do {
                print(try await ClientCommands.fetchBundles(client: try options.client()))
            } catch let error as ValidationError {
                throw error
            } catch {
                throw Failure.runtime(error)
            }
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate SVIDs.", subcommands: [ValidateJWT.self])
    }

    struct ValidateJWT: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "jwt", abstract: "Validate a JWT-SVID.")

        @OptionGroup var options: SocketOptions
        @Option(help: "The audience the token must carry.")
        var audience: String
        @Option(help: "The token.")
        var token: String

        func run() async throws {
            do {
                print(
                    try await ClientCommands.validateJWT(client: try options.client(), audience: audience, token: token)
                )
            } catch let error as ValidationError {
                throw error
            } catch {
                throw Failure.runtime(error)
            }
        }
    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print every X509-SVID update until interrupted.")

        @OptionGroup var options: SocketOptions

        func run() async throws {
            do {
                // Unbuffered, so each update shows at once even when the output is a file or a pipe.
                try await ClientCommands.watch(client: try options.client()) {
                    FileHandle.standardOutput.write(Data(($0 + "\n").utf8))
                }
            } catch let error as ValidationError {
                throw error
            } catch {
                throw Failure.runtime(error)
            }
        }
    }
}

// MARK: - Admin endpoint

/// Options every admin command shares.
struct AdminOptions: ParsableArguments {
    @Option(name: .customLong("admin-socket"), help: "The admin endpoint's socket.")
    var socket: String = AdminSettings.defaultSocketPath

    @Flag(help: "Print the JSON document (stable; see docs/admin-api.md).")
    var json = false

    var client: AdminClient { AdminClient(socketPath: socket) }

    /// Runs `body` and prints its report as text or JSON; failures exit 1 with the endpoint's code and message.
    func print<Report: Encodable>(_ body: (AdminClient) throws -> Report, text: (Report) -> String) throws {
        do {
            let report = try body(client)
            if json {
                Swift.print(String(decoding: try AdminClient.encoder.encode(report), as: UTF8.self))
            } else {
                Swift.print(text(report))
            }
        } catch {
            throw Failure.runtime(error)
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What the running agent is doing: upstream, caches, callers, readiness (root only)."
    )

    @OptionGroup var options: AdminOptions

    func run() throws {
        try options.print({ try $0.status() }, text: \.text)
    }
}

struct Entries: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Every registration entry with its SVID's serial and expiry (root only)."
    )

    @OptionGroup var options: AdminOptions

    func run() throws {
        try options.print({ try $0.entries() }, text: \.text)
    }
}

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Why a process gets the identities it gets, or none: attestation as a dry run (root only)."
    )

    @OptionGroup var options: AdminOptions
    @Option(help: "The process to explain.")
    var pid: Int32?
    @Option(help: "A hypothetical caller's uid (unix selectors only).")
    var uid: UInt32?
    @Option(help: "Its gid (default: the uid).")
    var gid: UInt32?

    func validate() throws {
        guard (pid == nil) != (uid == nil) else { throw ValidationError("give --pid, or --uid (and --gid)") }
        if gid != nil && uid == nil { throw ValidationError("--gid goes with --uid") }
    }

    func run() throws {
        try options.print(
            { client in
                if let pid { return try client.explain(pid: pid) }
                return try client.explain(uid: uid ?? 0, gid: gid ?? uid ?? 0)
            },
            text: \.text
        )
    }
}

struct LogLevel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log-level",
        abstract: "Print the running agent's log level, or set it until the next reload or restart (root only)."
    )

    @Option(name: .customLong("admin-socket"), help: "The admin endpoint's socket.")
    var socket: String = AdminSettings.defaultSocketPath
    @Argument(help: "trace, debug, info, notice, warning, error or critical.")
    var level: String?

    func run() throws {
        do {
            let answer = try AdminClient(socketPath: socket).logLevel(set: level)
            if let previous = answer.previous {
                print("log level \(answer.level) (was \(previous))")
            } else {
                print("log level \(answer.level)")
            }
        } catch {
            throw Failure.runtime(error)
        }
    }
}
