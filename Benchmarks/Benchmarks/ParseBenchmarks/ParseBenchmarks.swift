import BEMSCore
import Benchmark
import Foundation

/// Hot paths of the file stages on one generated floor-week (floor 2, 36 columns, about 13 MB of CSV).
let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] =
        ProcessInfo.processInfo.environment["CI"] != nil
        ? [.mallocCountTotal] : [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident]
    Benchmark.defaultConfiguration = .init(metrics: metrics, scalingFactor: .one, maxDuration: .seconds(5))

    let path = NSTemporaryDirectory() + "bems-bench-2019Floor2.csv"
    let csv = try! BenchmarkEntryPoints.sampleCSV(floor: 2, days: 7)
    FileManager.default.createFile(atPath: path, contents: Data(csv))
    let chunks = try! BenchmarkEntryPoints.encodeChunks(path: path, floor: 2)

    Benchmark("scan floor-week CSV (\(csv.count / 1_000_000) MB)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try BenchmarkEntryPoints.scan(path: path, floor: 2)) }
    }
    Benchmark("scan + encode chunks, floor-week") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try BenchmarkEntryPoints.encodeChunks(path: path, floor: 2)) }
    }
    Benchmark("decode chunks, floor-week") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try BenchmarkEntryPoints.decodeChunks(chunks)) }
    }
    let cells = (0..<100_000).map { i in i % 3 == 0 ? "0" : "\(i % 997).\(i % 100)" }
    Benchmark("decimal parse x100k") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(BenchmarkEntryPoints.parseDecimals(cells)) }
    }
}
