// libFuzzer target: ChunkReader.decode.
//
// If the first byte is odd, the rest is decoded as is. Otherwise the declared length, the preamble check and the
// SHA-256 footer are rewritten to match the mutated bytes first, so mutations reach the header, directory and column
// decoders instead of stopping at the checksum. Oracle: only ``ChunkError`` comes out, never a trap, and whatever
// decodes re-encodes and decodes to the same data.
import Crypto
import Foundation

@testable import BEMSCore

#if canImport(Glibc)
    import Glibc
#endif

/// With `BEMS_FUZZ_SEED_DIR` set, writes a few real chunks there and exits: stages/fuzz.sh seeds an empty corpus
/// this way. Each seed starts with the control byte 0 (repair checksums).
@_cdecl("LLVMFuzzerInitialize")
public func initialize(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
    guard let dir = ProcessInfo.processInfo.environment["BEMS_FUZZ_SEED_DIR"] else { return 0 }
    let samples: [ChunkData] = [
        ChunkData(),
        ChunkData(
            sensorIDs: ["f1_z1_light"], timestamps: [1_551_632_400], sensorIndexes: [0], values: [47_624_300],
            statuses: [.anomaly], metadata: ["floor": "1"]),
        ChunkData(
            sensorIDs: ["f3_z1_ac4", "f3_z2_s1_rh"], timestamps: (0..<40).map { 1_551_632_400 + Int64($0 / 2) * 60 },
            sensorIndexes: (0..<40).map { UInt32($0 % 2) }, values: (0..<40).map { Int64($0) * 1234 - 5000 },
            statuses: (0..<40).map { $0 % 7 == 0 ? .anomaly : .normal }, metadata: ["floor": "3", "day": "2019-03-04"]),
        ChunkData(
            sensorIDs: ["f2_z1_plug"], timestamps: [1, 2, 3], sensorIndexes: [0, 0, 0], values: [1, 2, 3],
            statuses: [.normal, .normal, .normal], actions: [.insert, .update, .insert],
            previousValues: [nil, 7, nil], previousStatuses: [nil, .normal, nil], metadata: ["stage": "dedupe"]),
    ]
    for (i, data) in samples.enumerated() {
        let bytes = [0] + (try! ChunkWriter.encode(data))
        FileManager.default.createFile(atPath: "\(dir)/seed-\(i).bemc", contents: Data(bytes))
    }
    exit(0)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard count >= 1 else { return 0 }
    var bytes = Array(UnsafeRawBufferPointer(start: start + 1, count: count - 1))
    if start.load(as: UInt8.self) & 1 == 0, bytes.count >= 64 {
        let size = UInt64(bytes.count)
        for i in 0..<8 { bytes[16 + i] = UInt8(truncatingIfNeeded: size >> (8 * UInt64(i))) }
        let check = Array(SHA256.hash(data: bytes[0..<24]))
        bytes.replaceSubrange(24..<32, with: check[0..<8])
        let footer = Array(SHA256.hash(data: bytes[0..<(bytes.count - 32)]))
        bytes.replaceSubrange((bytes.count - 32)..<bytes.count, with: footer)
    }
    do throws(ChunkError) {
        let (_, data) = try ChunkReader.decode(bytes)
        let again = try ChunkReader.decode(try ChunkWriter.encode(data)).data
        precondition(again == data, "decode/encode/decode is not stable")
    } catch {
        // Expected for almost every input.
    }
    return 0
}
