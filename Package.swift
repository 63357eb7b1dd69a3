// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "bems",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "BEMSCore", targets: ["BEMSCore"]),
        .executable(name: "bems", targets: ["bems"]),
        .executable(name: "bems-validate", targets: ["bems-validate"]),
        .executable(name: "bems-normalize", targets: ["bems-normalize"]),
        .executable(name: "bems-dedupe", targets: ["bems-dedupe"]),
        .executable(name: "bems-refresh", targets: ["bems-refresh"]),
        .executable(name: "bems-load", targets: ["bems-load"]),
        .executable(name: "bems-serve", targets: ["bems-serve"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // The admin HTTP API (BEMSServer, bems-serve) only; no default traits (swift-configuration support unused).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
    ],
    targets: [
        // C libraries, each behind one system-library target (STYLE.md §1).
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),

        // All pipeline logic.
        .target(
            name: "BEMSCore",
            dependencies: [
                "CLibPQ",
                "CZstd",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            exclude: ["Chunk/FORMAT.md"]
        ),
        // Options and error handling shared by the thin executables.
        .target(
            name: "BEMSCommandSupport",
            dependencies: [
                "BEMSCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "bems", dependencies: ["BEMSCommandSupport", "BEMSCore"]),
        .executableTarget(name: "bems-validate", dependencies: ["BEMSCommandSupport", "BEMSCore"]),
        .executableTarget(name: "bems-normalize", dependencies: ["BEMSCommandSupport", "BEMSCore"]),
        .executableTarget(name: "bems-dedupe", dependencies: ["BEMSCommandSupport", "BEMSCore"]),
        .executableTarget(name: "bems-refresh", dependencies: ["BEMSCommandSupport", "BEMSCore"]),
        .executableTarget(name: "bems-load", dependencies: ["BEMSCommandSupport", "BEMSCore"]),
        // The admin HTTP API: routes, service-token auth, body decoding, the import supervisor. Only this target and
        // bems-serve link Hummingbird; `bems serve` execs bems-serve.
        .target(
            name: "BEMSServer",
            dependencies: [
                "BEMSCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "bems-serve",
            dependencies: [
                "BEMSServer", "BEMSCommandSupport", "BEMSCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(
            name: "BEMSCoreTests",
            dependencies: ["BEMSCore", "BEMSServer"],
            resources: [.copy("Fixtures")]
        ),
        // Tests against a real PostgreSQL named by BEMS_TEST_DATABASE_URL (see Tests/IntegrationTests/TestDatabase.swift).
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["BEMSCore", "BEMSServer"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
