import Foundation
import Logging
import Testing

@testable import BEMSCore
@testable import BEMSServer

@Suite struct ImportSupervisorTests {
    func supervisor(work: String, bin: String = CommandLineTests.bin) -> ImportSupervisor {
        var config = PipelineConfig()
        config.workDir = work
        var settings = ImportSupervisor.Settings(
            config: config, configPath: "/etc/bems/pipeline.json", binDirectory: bin,
            childEnvironment: ["dev": [:]])
        settings.allowSuperuser = true
        var logger = Logger(label: "test.supervisor")
        logger.logLevel = .critical
        return ImportSupervisor(settings: settings, logger: logger)
    }

    @Test func stagesGetTheServersEnvironmentWorkDirConfigAndSample() {
        let dir = TemporaryDirectory()
        let s = supervisor(work: dir.path + "/w", bin: "/opt/bems")
        #expect(
            s.arguments(.load, env: "staging", sample: 0.5) == [
                "/opt/bems/bems-load", "--env", "staging", "--work-dir", dir.path + "/w", "--config",
                "/etc/bems/pipeline.json", "--sample", "0.5", "--allow-superuser",
            ])
        #expect(!s.arguments(.validate, env: "dev", sample: nil).contains("--sample"))
    }

    @Test func anImportDoesNotStartWithoutTheStageExecutablesOrWhileTheWorkDirIsLocked() throws {
        let dir = TemporaryDirectory()
        let missing = supervisor(work: dir.path + "/w", bin: dir.path + "/nothing")
        #expect {
            try missing.start(env: "dev", stages: [.validate], sample: nil)
        } throws: { error in
            guard case .failed(let message) = error as? ImportSupervisor.StartError else { return false }
            return message.contains("bems-validate is missing")
        }
        try #require(FileManager.default.isExecutableFile(atPath: CommandLineTests.bin + "/bems-validate"), "build first")
        let s = supervisor(work: dir.path + "/w")
        let lock = try WorkDirLock(directory: dir.path + "/w")
        #expect {
            try s.start(env: "dev", stages: [.validate], sample: nil)
        } throws: { error in
            guard case .locked(let message) = error as? ImportSupervisor.StartError else { return false }
            return message.contains("another bems run")
        }
        withExtendedLifetime(lock) {}
        #expect(s.recent(env: "dev").isEmpty)
        #expect(!s.isBusy)
    }

    @Test func aRecordLeftRunningByAStoppedServerIsInterrupted() throws {
        let dir = TemporaryDirectory()
        let work = dir.path + "/w"
        var record = ImportRecord(
            id: "20260101T000000Z-abcd", env: "dev", stages: [.validate, .normalize, .dedupe], sample: nil,
            startedAt: Date(timeIntervalSince1970: 1_767_225_600))
        record.steps[0].state = .succeeded
        record.steps[1].state = .running
        record.currentStage = .normalize
        try AtomicFile.makeDirectory(work + "/serve/imports")
        try AtomicFile.writeJSON(record, to: work + "/serve/imports/\(record.id).json")
        var done = ImportRecord(
            id: "20251231T000000Z-0001", env: "staging", stages: [.refresh], sample: 1,
            startedAt: Date(timeIntervalSince1970: 1_767_139_200))
        done.state = .succeeded
        try AtomicFile.writeJSON(done, to: work + "/serve/imports/\(done.id).json")

        let s = supervisor(work: work)
        let read = try #require(s.record(record.id))
        #expect(read.state == .interrupted)
        #expect(read.currentStage == nil)
        #expect(read.steps.map(\.state) == [.succeeded, .interrupted, .skipped])
        #expect(read.error == "the server stopped while the import ran")
        #expect(!s.isBusy)
        #expect(s.current(env: "dev") == nil)
        #expect(s.recent(env: "dev").map(\.id) == [record.id])
        #expect(s.recent(env: "staging").map(\.id) == [done.id])
        #expect(try AtomicFile.readJSON(ImportRecord.self, from: work + "/serve/imports/\(record.id).json") == read)
        #expect(s.record("20200101T000000Z-0") == nil)
        #expect(s.record("../../etc/passwd") == nil)
    }

    @Test func stageProcessesReportTheirExitStatusAndLogBothStreams() throws {
        let dir = TemporaryDirectory()
        let log = dir.path + "/stage.log"
        let failed = try StageProcess.spawn(
            ["/bin/sh", "-c", "echo to-stdout; echo error: to-stderr >&2; exit 3"], environment: [:], log: log)
        #expect(StageProcess.wait(failed) == 3)
        let killed = try StageProcess.spawn(["/bin/sh", "-c", "kill -TERM $$"], environment: [:], log: log)
        #expect(StageProcess.wait(killed) == 128 + SIGTERM)
        let lines = ImportSupervisor.lastLines(of: log, maxBytes: 4096)
        #expect(lines == ["to-stdout", "error: to-stderr"])
        // A line cut by the window is left out.
        #expect(ImportSupervisor.lastLines(of: log, maxBytes: 20) == ["error: to-stderr"])
        #expect(ImportSupervisor.lastLines(of: log, maxBytes: 12).isEmpty)
        #expect(ImportSupervisor.lastLines(of: dir.path + "/none", maxBytes: 10).isEmpty)
        #expect(throws: PipelineError.self) {
            try StageProcess.spawn([dir.path + "/no-such-program"], environment: [:], log: log)
        }
    }
}
