import Foundation
import Logging
import Testing

@testable import BEMSCore

#if canImport(Glibc)
    import Glibc
#endif

/// A full or read-only work dir, made by the operating system, under each stage executable.
///
/// Day 1 is loaded first (the previous good runs); then a second day arrives and each stage in turn runs under the
/// fault: it must exit 74 with a message naming a path in the work dir, leave no manifest of the failed run (for
/// validate, normalize and dedupe not even its run folder) and the stage's `CURRENT` on the previous good run, and
/// once the fault is lifted the plain rerun works. At the end the database holds exactly the content of an
/// uninterrupted two-day run.
///
/// Faults, as root (when `mount` is permitted) and otherwise:
/// - full: a tmpfs work dir filled to leave 0, 1, 2, … pages free (every level fails at a later write, until the
///   stage fits); without mount, the file-size limit below.
/// - file-size limit (any user): `ulimit -f` 0, 1, 2, 4, … KiB with SIGXFSZ ignored, so writes fail with EFBIG.
/// - read-only work dir: the tmpfs remounted read-only; without mount, `chmod -R a-w`, or as root (who ignores
///   permissions) the stage run as `nobody` with `setpriv`, to whom the root-owned work dir is read-only.
/// - read-only runs folder (the lock is taken, the run cannot start): `<stage>/runs` bind-mounted read-only; without
///   mount, `chmod a-w` on it (not as root: that variant needs mount then, and says so).
///
/// `BEMS_TEST_NO_MOUNT=1` uses the variants without mount even where mount works.
@Suite(.serialized, .enabled(if: TestDatabase.isEnabled, TestDatabase.disabledReason), .timeLimit(.minutes(5)))
struct DiskFaultTests {
    enum Fault: String, CaseIterable, Sendable {
        case full, fileSizeLimit, readOnlyWorkDir, readOnlyRunsFolder
    }

    @Test(arguments: [Fault.full, .fileSizeLimit, .readOnlyWorkDir])
    func stageUnderDiskFaultExits74AndAPlainRerunFinishesExactly(fault: Fault) async throws {
        try await Self.exercise(fault)
    }

    @Test(
        .enabled(
            if: MountPermission.available || geteuid() != 0,
            "as root without mount, no folder can be made read-only for the stage while its lock stays writable"))
    func stageWithAReadOnlyRunsFolderExits74AndAPlainRerunFinishesExactly() async throws {
        try await Self.exercise(.readOnlyRunsFolder)
    }

    static func exercise(_ fault: Fault) async throws {
        try PipelineHarness.requireExecutables()
        let privileged = MountPermission.available
        if !privileged, geteuid() == 0, fault == .readOnlyWorkDir {
            try #require(FileManager.default.isExecutableFile(atPath: DiskFault.setpriv), "setpriv is needed")
        }
        try await ExclusiveLoadTests.shared.run {
            let reference = try ReferenceContent.of(days: 2)
            let h = try PipelineHarness(days: 1)
            let disk = try DiskFault(fault, harness: h, mount: privileged)
            defer {
                disk.remove()
                h.remove()
            }
            for run in try h.runPipeline() { try #require(run.status == 0, "\(run.stage): \(run.stderr)") }
            try h.generateInput(days: 2)

            var figures: [String] = []
            var messages: [String] = []
            for stage in Stage.allCases {
                let work = WorkDir(root: h.work)
                let current = work.currentRunID(stage)
                let runs = work.runIDs(stage)
                var failures = 0
                var finished = false
                for level in disk.levels {
                    let wrapper = try disk.apply(stage, level: level)
                    let run = try h.run(stage, wrapper: wrapper)
                    try disk.lift(stage)
                    if run.status == 0 {
                        // The stage fits at this level: that is the rerun (only the "full" faults get here).
                        finished = true
                        break
                    }
                    failures += 1
                    if failures == 1 {
                        messages.append(run.stderr.split(separator: "\n").last.map(String.init) ?? "")
                    }
                    #expect(run.status == 74, "\(fault) \(stage) level \(level): \(run.stderr)")
                    #expect(run.stderr.contains(h.work), "\(fault) \(stage) level \(level): \(run.stderr)")
                    #expect(!run.stderr.contains("Error Domain"), "an untranslated error: \(run.stderr)")
                    // Later stages are behind by design here (their turn comes): check the structure only.
                    let audit = PipelineHarness.audit(h.work, complete: false, agreement: false)
                    #expect(audit.problems.isEmpty, "\(fault) \(stage) level \(level): \(audit.problems)")
                    #expect(audit.tempFiles.isEmpty, "\(fault) \(stage) level \(level): \(audit.tempFiles)")
                    if stage == .load || stage == .refresh {
                        // These write their manifest after the database work; a failure after it (verify.json) leaves
                        // the new run current, complete.
                        #expect(
                            work.currentRunID(stage) == current
                                || (try? work.currentManifest(stage))?.upstreamRunID != nil,
                            "\(fault) \(stage) level \(level)")
                    } else {
                        #expect(work.currentRunID(stage) == current, "\(fault) \(stage) level \(level)")
                        #expect(work.runIDs(stage) == runs, "\(fault) \(stage) level \(level): a failed run stayed")
                    }
                }
                if !finished {
                    let rerun = try h.run(stage)
                    #expect(rerun.status == 0, "\(fault) \(stage) after the fault was lifted: \(rerun.stderr)")
                }
                #expect(failures >= 1, "\(fault) \(stage) never failed")
                #expect(work.currentRunID(stage) != current, "\(fault) \(stage): the rerun published nothing")
                figures.append("\(stage.rawValue)=\(failures)")
            }
            #expect(try h.content() == reference)
            #expect(try h.ledgerProblems().isEmpty)
            let audit = PipelineHarness.audit(h.work, complete: true)
            #expect(audit.problems.isEmpty, "\(audit.problems)")
            Logger(label: "test.disk").notice(
                "disk faults",
                metadata: [
                    "fault": "\(fault.rawValue)", "mechanism": "\(disk.mechanism)",
                    "failed.runs": "\(figures.joined(separator: " "))",
                    "first.errors": "\(messages.map { $0.replacingOccurrences(of: h.root, with: "$T") })",
                ])
        }
    }
}

/// One disk fault on a harness's work dir (see ``DiskFaultTests``).
final class DiskFault {
    let fault: DiskFaultTests.Fault
    let harness: PipelineHarness
    let mountPoint: String?
    /// How the fault is made, for the log.
    let mechanism: String
    private var bindMounts: [String] = []
    static let setpriv = "/usr/bin/setpriv"
    /// Root without mount: the read-only work dir is the stage run as `nobody`.
    var asNobody: Bool { fault == .readOnlyWorkDir && mountPoint == nil && geteuid() == 0 }
    private var filler: String { mountPoint! + "/filler" }

    init(_ fault: DiskFaultTests.Fault, harness: PipelineHarness, mount: Bool) throws {
        self.fault = fault
        self.harness = harness
        let useMount = mount && fault != .fileSizeLimit
        if useMount {
            let point = harness.root + "/mnt"
            try AtomicFile.makeDirectory(point)
            guard shell(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", point]) == 0 else {
                throw PipelineError(.unexpected, "mount -t tmpfs \(point) failed")
            }
            mountPoint = point
            harness.work = point + "/work"
        } else {
            mountPoint = nil
        }
        switch (fault, useMount) {
        case (.full, true): mechanism = "tmpfs 16 MiB filled to leave N pages"
        case (.full, false), (.fileSizeLimit, _): mechanism = "ulimit -f N KiB, SIGXFSZ ignored (EFBIG)"
        case (.readOnlyWorkDir, true): mechanism = "tmpfs remounted read-only"
        case (.readOnlyWorkDir, false):
            mechanism = geteuid() == 0 ? "stage run as nobody (setpriv) on the root-owned work dir" : "chmod -R a-w"
        case (.readOnlyRunsFolder, true): mechanism = "read-only bind mount of <stage>/runs"
        case (.readOnlyRunsFolder, false): mechanism = "chmod a-w <stage>/runs"
        }
    }

    var usesFileSizeLimit: Bool { fault == .fileSizeLimit || (fault == .full && mountPoint == nil) }

    /// The levels to try in turn: free pages or KiB for the full faults, one level for the read-only ones.
    var levels: [Int] {
        if usesFileSizeLimit { return [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024] }
        if fault == .full { return Array(0...48) }
        return [0]
    }

    /// Makes the fault for `stage`; returns the command prefix to run the stage with.
    func apply(_ stage: Stage, level: Int) throws -> [String] {
        let work = harness.work
        switch fault {
        case _ where usesFileSizeLimit:
            // stderr goes through a pipe to a `cat` started before the limit (so the message itself is kept), and the
            // shell waits for it before exiting with the stage's status.
            return [
                "/bin/bash", "-c",
                "trap '' XFSZ; exec 2> >(cat >&2); c=$!; (ulimit -f \(level); exec \"$@\"); rc=$?; exec 2>&-; wait $c; "
                    + "exit $rc",
                "bash",
            ]
        case .full:
            try leaveFree(level * Int(sysconf(Int32(_SC_PAGESIZE))))
        case .readOnlyWorkDir:
            if let mountPoint {
                try run(["mount", "-o", "remount,ro", mountPoint])
            } else if asNobody {
                return [Self.setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
            } else {
                try run(["chmod", "-R", "a-w", work])
            }
        case .readOnlyRunsFolder:
            let runs = WorkDir(root: work).stageDirectory(stage) + "/runs"
            try AtomicFile.makeDirectory(runs)
            if mountPoint != nil {
                try run(["mount", "--bind", runs, runs])
                bindMounts.append(runs)
                try run(["mount", "-o", "remount,ro,bind", runs])
            } else {
                try run(["chmod", "a-w", runs])
            }
        default:
            break
        }
        return []
    }

    /// Lifts the fault.
    func lift(_ stage: Stage) throws {
        switch fault {
        case _ where usesFileSizeLimit:
            break
        case .full:
            try? FileManager.default.removeItem(atPath: filler)
        case .readOnlyWorkDir:
            if let mountPoint {
                try run(["mount", "-o", "remount,rw", mountPoint])
            } else if !asNobody {
                try run(["chmod", "-R", "u+w", harness.work])
            }
        case .readOnlyRunsFolder:
            while let runs = bindMounts.popLast() { try run(["umount", runs]) }
            if mountPoint == nil {
                try run(["chmod", "u+w", WorkDir(root: harness.work).stageDirectory(stage) + "/runs"])
            }
        default:
            break
        }
    }

    func remove() {
        while let runs = bindMounts.popLast() { shell(["umount", runs]) }
        if mountPoint == nil { shell(["chmod", "-R", "u+w", harness.work]) }
        if let mountPoint { shell(["umount", mountPoint]) }
    }

    /// Fills the tmpfs with zeros (real pages, not a sparse file) until `bytes` are free.
    private func leaveFree(_ bytes: Int) throws {
        try? FileManager.default.removeItem(atPath: filler)
        var info = statvfs()
        guard statvfs(mountPoint!, &info) == 0 else { throw PipelineError.io("statvfs \(mountPoint!)") }
        let free = Int(info.f_bavail) * Int(info.f_frsize)
        guard free > bytes else { return }
        let fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw PipelineError.io("\(filler): cannot create") }
        defer { close(fd) }
        let block = [UInt8](repeating: 0, count: 1 << 16)
        var left = free - bytes
        while left > 0 {
            let n = block.withUnsafeBytes { write(fd, $0.baseAddress!, min(left, block.count)) }
            guard n > 0 else { throw PipelineError.io("\(filler): cannot fill (\(String(cString: strerror(errno))))") }
            left -= n
        }
    }

    private func run(_ command: [String]) throws {
        guard shell(command) == 0 else { throw PipelineError(.unexpected, "\(command.joined(separator: " ")) failed") }
    }
}
