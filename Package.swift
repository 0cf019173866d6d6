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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
    ],
    targets: [
        // System OpenSSL 3: only SPIFFECrypto may import it.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // Pure SPIFFE domain values: no I/O, no crypto.
        .target(name: "SPIFFE", swiftSettings: swiftSettings),
        // Every cryptographic operation, over OpenSSL. No unsafe pointer leaves this module.
        .target(name: "SPIFFECrypto", dependencies: ["SPIFFE", "COpenSSL"], swiftSettings: swiftSettings),
        // The executable: argument parsing and dispatch only.
        .executableTarget(
            name: "lanyard",
            dependencies: [
                "SPIFFE",
                "SPIFFECrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "SPIFFETests", dependencies: ["SPIFFE"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SPIFFECryptoTests",
            dependencies: ["SPIFFECrypto", "SPIFFE"],
            swiftSettings: swiftSettings
        ),
    ]
)
