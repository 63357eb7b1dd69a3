import BEMSCore
import Foundation
import Logging

/// `POST /admin/validate`: the core validate stage run in the server process on an uploaded CSV file, or on the
/// configured inputs, in a temporary work dir, so it never touches the pipeline's work dir (no run is published, no
/// lock is taken) and needs no database.
package enum UploadValidation {
    /// The answer: the validation report of the file(s) and the first diagnostics.
    package struct Answer: Codable, Sendable {
        /// `upload` or `configured`.
        package var source: String
        package var passed: Bool
        /// What `bems-validate` would exit with: 0, or 65 when a file failed its header or threshold.
        package var exitStatus: Int32
        package var report: ValidationReport
        /// The first diagnostics, `file:line:column: error: message [code]`.
        package var diagnostics: [String]
    }

    /// An uploaded file's name and floor.
    package struct Upload: Equatable, Sendable {
        package var name: String
        package var floor: Int
    }

    /// Diagnostics returned at most.
    package static let maxDiagnostics = 50

    /// The upload's name and floor from the query: `name=<year>Floor<n>.csv` (the floor from the name, as for
    /// files on disk), `floor=<n>`, or both (the floor wins).
    ///
    /// - Throws: ``APIError`` 400 naming `name` or `floor`.
    package static func upload(name: String?, floor: String?) throws(APIError) -> Upload {
        var floorNumber: Int?
        if let floor {
            guard let n = Int(floor), FloorSchema.dataColumns(floor: n) != nil else {
                throw APIError.badField("floor", "expected a floor of the building, 1 to 7")
            }
            floorNumber = n
        }
        guard let name else {
            guard let floorNumber else {
                throw APIError.badField(
                    "name",
                    "name the uploaded file: ?name=2019Floor3.csv (the floor comes from the name) or ?floor=3")
            }
            return Upload(name: "upload-floor\(floorNumber).csv", floor: floorNumber)
        }
        let safe =
            !name.isEmpty && name.utf8.count <= 200 && !name.hasPrefix(".")
            && !name.contains(where: { $0 == "/" || $0 == "\\" || $0.isNewline || $0 == "\0" })
        guard safe, name.lowercased().hasSuffix(".csv") else {
            throw APIError.badField("name", "expected a file name ending in .csv, without folders")
        }
        guard let floor = floorNumber ?? InputFile.floor(fromFileName: name) else {
            throw APIError.badField("name", "cannot tell the floor from the name: use <year>Floor<n>.csv or add ?floor=n")
        }
        guard FloorSchema.dataColumns(floor: floor) != nil else {
            throw APIError.badField("name", "floor \(floor) is not a floor of the building (1 to 7)")
        }
        return Upload(name: name, floor: floor)
    }

    /// A temporary folder for one validation (`<tmp>/bems-serve-validate-<random>`), removed by ``remove(_:)``.
    package static func makeFolder() throws -> String {
        let folder =
            NSTemporaryDirectory() + "bems-serve-validate-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try AtomicFile.makeDirectory(folder + "/in")
        return folder
    }

    package static func remove(_ folder: String) { try? FileManager.default.removeItem(atPath: folder) }

    /// Where an upload is written in `folder`.
    package static func uploadPath(_ upload: Upload, folder: String) -> String { folder + "/in/" + upload.name }

    /// Validates the upload in `folder` (written at ``uploadPath(_:folder:)``), or, without one, the configured
    /// sources.
    ///
    /// - Throws: ``APIError`` 422 when the configured inputs are missing or a file's floor can't be told; 500 for
    ///   anything else (an I/O error in the temporary folder).
    package static func run(
        config: PipelineConfig, env: String, upload: Upload?, folder: String, logger: Logger
    ) async throws(APIError) -> Answer {
        var config = config
        config.workDir = folder + "/work"
        if let upload { config.sources = [.init(path: uploadPath(upload, folder: folder), floor: upload.floor)] }
        var options = ValidateStage.Options(config: config, env: env)
        options.maxDiagnostics = maxDiagnostics
        options.force = true
        let result: ValidateStage.Result
        do {
            // On threads of its own: the scan is CPU-bound and would otherwise hold the cooperative pool (2 threads on
            // 2 cores) that every other request, /healthz included, needs.
            result = try await withTaskExecutorPreference(BlockingWorkExecutor.shared) {
                try await ValidateStage.run(options, logger: logger)
            }
        } catch let error as PipelineError {
            let message = error.message.replacingOccurrences(of: folder + "/in/", with: "")
            switch error.exitStatus {
            case .noInput, .dataError: throw APIError(422, message)
            default:
                logger.error("validation failed", metadata: ["error": "\(message)"])
                throw APIError(500, "the validation could not run (exit \(error.exitStatus.rawValue)); see the server log")
            }
        } catch {
            logger.error("validation failed", metadata: ["error": "\(error)"])
            throw APIError(500, "the validation could not run; see the server log")
        }
        var report = result.report
        if upload != nil {
            for i in report.files.indices { report.files[i].path = report.files[i].file }
        }
        return Answer(
            source: upload == nil ? "configured" : "upload", passed: report.passed,
            exitStatus: result.exitStatus.rawValue, report: report, diagnostics: result.diagnostics.map(\.description))
    }
}

/// A task executor on a GCD queue of its own, for CPU-bound work (a validation scan) that must not occupy the
/// Swift concurrency pool the HTTP handlers run on. Child tasks (the per-file scans) inherit the preference.
final class BlockingWorkExecutor: TaskExecutor {
    static let shared = BlockingWorkExecutor()
    private let queue = DispatchQueue(label: "bems.serve.blocking-work", attributes: .concurrent)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}
