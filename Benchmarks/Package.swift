// swift-tools-version: 6.1
import PackageDescription

// Micro benchmarks of BEMSCore's hot paths (package-benchmark). A nested package, so the main package and its CI
// never build the benchmark tooling. Run with `make bench` or `cd Benchmarks && swift package benchmark`.
let package = Package(
    name: "bems-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "bems", path: "../"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "ParseBenchmarks",
            dependencies: [
                .product(name: "BEMSCore", package: "bems"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/ParseBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
