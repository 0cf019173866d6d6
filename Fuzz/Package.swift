// swift-tools-version:6.1
import PackageDescription

/// libFuzzer harnesses for every parser that reads untrusted input. Built apart from the main package because every
/// module is compiled with coverage for libFuzzer and AddressSanitizer; `make fuzz` builds and runs them.
let package = Package(
    name: "lanyard-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "lanyard", path: "..")],
    targets: [
        .executableTarget(
            name: "lanyard-fuzz",
            dependencies: [
                .product(name: "SPIFFE", package: "lanyard"),
                .product(name: "SPIFFECrypto", package: "lanyard"),
                .product(name: "Attestation", package: "lanyard"),
                .product(name: "LanyardAgent", package: "lanyard"),
            ],
            // libFuzzer supplies `main`.
            swiftSettings: [.swiftLanguageMode(.v6), .unsafeFlags(["-parse-as-library"])]
        )
    ]
)
