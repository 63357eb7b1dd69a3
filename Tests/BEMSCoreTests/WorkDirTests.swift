import Foundation
import Testing

@testable import BEMSCore

@Suite struct WorkDirTests {
    @Test func atomicWriteReplacesWholeAndLeavesNoTemporaryFile() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/m.json"
        try AtomicFile.write(Array("old".utf8), to: path)
        try AtomicFile.write(Array("new content".utf8), to: path, durable: false)
        #expect(FileManager.default.contents(atPath: path) == Data("new content".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["m.json"])
    }

    @Test func aReadOnlyWorkDirIsAClearIOErrorAndLeavesNothing() throws {
        guard getuid() != 0 else {
            // root ignores directory permissions; use a path under a regular file instead, which fails for everyone.
            let dir = TemporaryDirectory()
            dir.write("file", "x")
            let error = #expect(throws: PipelineError.self) {
                try AtomicFile.write(Array("x".utf8), to: dir.path + "/file/m.json")
            }
            #expect(error?.exitStatus == .ioError)
            #expect(error?.message.contains("file/") == true)
            return
        }
        let dir = TemporaryDirectory()
        chmod(dir.path, 0o555)
        defer { chmod(dir.path, 0o755) }
        let error = #expect(throws: PipelineError.self) {
            try AtomicFile.write(Array("x".utf8), to: dir.path + "/m.json")
        }
        #expect(error?.exitStatus == .ioError)
    }

    @Test func manifestsRoundTripAndPublishMovesCurrent() throws {
        let dir = TemporaryDirectory()
        let work = WorkDir(root: dir.path + "/w")
        #expect(work.currentRunID(.normalize) == nil)
        let id = try work.createRun(.normalize, now: Date(timeIntervalSince1970: 1_546_304_400))
        #expect(id.hasPrefix("20190101T010000Z-"))
        let manifest = StageManifest(
            stage: .normalize, runID: id, previousRunID: nil, createdAt: "t", bemsVersion: BEMS.version, env: "dev",
            fingerprint: "f", upstreamRunID: "u", inputs: [],
            chunks: [
                ChunkRecord(
                    file: "chunks/a.bemc", sha256: "s", bytes: 1, rows: 2, minTimestamp: 3, maxTimestamp: 4,
                    floor: 5, day: "2019-01-01", source: "x.csv", inserts: 1, updates: nil, skips: 0)
            ], passed: true, totals: ["readings": 2], seconds: 0.5)
        try work.publish(manifest)
        #expect(work.currentRunID(.normalize) == id)
        #expect(try work.currentManifest(.normalize) == manifest)
        #expect(work.runIDs(.normalize) == [id])
    }

    @Test func discardRunRemovesAnUnpublishedRunButNeverTheCurrentOne() throws {
        let dir = TemporaryDirectory()
        let work = WorkDir(root: dir.path + "/w")
        let published = try work.createRun(.validate)
        try work.setCurrent(.validate, published)
        let failed = try work.createRun(.validate, now: Date(timeIntervalSinceNow: 1))
        dir.write("w/validate/runs/\(failed)/report.json", "{}")
        work.discardRun(.validate, failed)
        work.discardRun(.validate, published)
        #expect(work.runIDs(.validate) == [published])
        #expect(work.currentRunID(.validate) == published)
    }

    @Test func unreadableManifestIsAnIOError() throws {
        let dir = TemporaryDirectory()
        let work = WorkDir(root: dir.path + "/w")
        let id = try work.createRun(.validate)
        dir.write("w/validate/runs/\(id)/manifest.json", "{broken")
        try work.setCurrent(.validate, id)
        let error = #expect(throws: PipelineError.self) { try work.currentManifest(.validate) }
        #expect(error?.exitStatus == .ioError)
    }
}
