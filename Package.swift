// swift-tools-version:6.1
import PackageDescription

/// Settings every target shares: Swift 6 mode and explicit import visibility.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "lanyard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "lanyard", targets: ["lanyard"]),
        .library(name: "SPIFFE", targets: ["SPIFFE"]),
        .library(name: "SPIFFECrypto", targets: ["SPIFFECrypto"]),
        // For the fuzzing package in Fuzz/, which feeds these modules' parsers.
        .library(name: "Attestation", targets: ["Attestation"]),
        .library(name: "LanyardAgent", targets: ["LanyardAgent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        // The Broker Endpoint's own SVID renews under open connections (NIOCertificateReloading).
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        // Child processes for tests and the bench only (ChildProcess in LanyardTestSupport).
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),
    ],
    targets: [
        // System OpenSSL 3: only SPIFFECrypto may import it.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // libsystemd: readiness and watchdog notifications, socket activation, the journal (LanyardAgent), and the
        // systemd attestor's D-Bus calls (Attestation).
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        // Linux kernel interfaces Swift cannot call directly (variadic ioctl and syscall; SO_PEERPIDFD,
        // PIDFD_GET_INFO): pinning a caller's process. Header-only, no library to link.
        .systemLibrary(name: "CLinux"),
        // Time as the agent sees it (wall and monotonic), and the one backoff: injected so tests move time.
        .target(name: "Timing", swiftSettings: swiftSettings),
        // Pure SPIFFE domain values: no I/O, no crypto.
        .target(name: "SPIFFE", swiftSettings: swiftSettings),
        // Every cryptographic operation, over OpenSSL. No unsafe pointer leaves this module.
        .target(name: "SPIFFECrypto", dependencies: ["SPIFFE", "COpenSSL"], swiftSettings: swiftSettings),
        // Generated code only: the Workload API (and later SDS and the SPIRE server API). See scripts/generate-protos.sh.
        .target(
            name: "LanyardProto",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["protos"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Who is calling: process pinning and workload attestors (unix; k8s through the kubelet's HTTPS API; systemd
        // over D-Bus; docker/podman through the Engine API).
        .target(
            name: "Attestation",
            dependencies: [
                "SPIFFE", "SPIFFECrypto", "CLinux", "CSystemd", "Timing",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // The embedded CA (standalone mode) and SPIRE Server as the upstream (fleet mode, mTLS gRPC).
        .target(
            name: "Upstream",
            dependencies: [
                "SPIFFE", "SPIFFECrypto", "LanyardProto",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Entries → SVIDs, rotation timing, JWT-SVID cache, subscriptions.
        .target(
            name: "IdentityCache",
            dependencies: [
                "SPIFFE", "SPIFFECrypto", "Timing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // Workload API handlers and the peer-credential plumbing; declares the protocols it consumes.
        .target(
            name: "Endpoints",
            dependencies: [
                "SPIFFE", "LanyardProto", "CLinux", "Timing",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCertificateReloading", package: "swift-nio-extras"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // Composition root: configuration, wiring, running.
        .target(
            name: "LanyardAgent",
            dependencies: [
                "SPIFFE", "SPIFFECrypto", "Attestation", "Upstream", "IdentityCache", "Endpoints", "LanyardProto",
                "CSystemd", "CLinux", "Timing",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCertificateReloading", package: "swift-nio-extras"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        // The executable: argument parsing and dispatch only.
        .executableTarget(
            name: "lanyard",
            dependencies: [
                "LanyardAgent",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // For tests, demos and the bench (never shipped in the agent): the fake kubelet, the fake SPIRE server, the
        // manual clock and child processes.
        .target(
            name: "LanyardTestSupport",
            dependencies: [
                "SPIFFE", "SPIFFECrypto", "LanyardProto", "Timing", "CLinux",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "lanyard-fake-kubelet",
            dependencies: [
                "LanyardTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // `make bench`: every benchmark figure next to its floor, measured in the same run.
        .executableTarget(
            name: "lanyard-bench",
            dependencies: [
                "LanyardAgent", "LanyardProto", "LanyardTestSupport", "Attestation", "IdentityCache", "Upstream",
                "SPIFFE", "SPIFFECrypto",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "SPIFFETests", dependencies: ["SPIFFE"], swiftSettings: swiftSettings),
        .testTarget(
            name: "EndpointsTests",
            dependencies: [
                "Endpoints", "SPIFFE", "LanyardProto",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AttestationTests",
            dependencies: ["Attestation", "SPIFFE", "SPIFFECrypto", "LanyardTestSupport", "Timing"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "UpstreamTests",
            dependencies: ["Upstream", "SPIFFE", "SPIFFECrypto"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IdentityCacheTests",
            dependencies: [
                "IdentityCache", "SPIFFE", "SPIFFECrypto", "Timing", "LanyardTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "LanyardAgentTests",
            dependencies: [
                "LanyardAgent", "LanyardProto", "SPIFFE", "SPIFFECrypto", "Attestation", "Endpoints", "IdentityCache",
                "LanyardTestSupport", "Upstream", "Timing",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SPIFFECryptoTests",
            dependencies: ["SPIFFECrypto", "SPIFFE", "LanyardTestSupport"],
            swiftSettings: swiftSettings
        ),
    ]
)
