/// A file whose header can't be used: the file is skipped whole.
package struct HeaderFailure: Error, Sendable {
    package var diagnostic: Diagnostic
}

/// What scanning a file established besides its rows.
package struct ScannedFile: Sendable {
    package var layout: FileLayout
    package var sha256: String
    package var bytes: Int
    package var hadBOM: Bool
}

/// Streams a floor file: reads the header, then hands every row, parsed, to a callback.
///
/// Validate and normalize both use it, so both stages see exactly the same readings and rejections.
package enum FloorFileScanner {
    /// Scans `input`.
    ///
    /// - Parameters:
    ///   - header: Called once with the file's layout, before the first row.
    ///   - row: Called for each data line with the parsed row (reused between calls) and the raw line.
    /// - Throws: ``HeaderFailure`` when the header is unusable; ``PipelineError`` for I/O; whatever `row` throws.
    package static func scan(
        _ input: InputFile, config: PipelineConfig,
        progress: StageProgress? = nil,
        header onHeader: (FileLayout) throws -> Void = { _ in },
        row body: (inout ParsedRow, Line) throws -> Void
    ) throws -> ScannedFile {
        let reader = try LineReader(path: input.path, maxLineBytes: config.maxLineBytes)
        if let progress { reader.onBlock = { progress.advance(rows: $1, bytes: $0) } }
        var parser: WideRowParser?
        var row = ParsedRow()
        try reader.forEachLine { line in
            if parser != nil {
                parser!.parse(line, into: &row)  // in place: no copy of the parser per line
                try body(&row, line)
                return
            }
            let layout = try header(line, input: input)
            try onHeader(layout)
            parser = try WideRowParser(layout: layout, config: config)
        }
        guard let parser else {
            throw HeaderFailure(
                diagnostic: Diagnostic(
                    code: .fieldCount, file: input.name, line: 1, column: 1,
                    message: "the file is empty: no header line"))
        }
        return ScannedFile(
            layout: parser.layout, sha256: reader.finalizeDigest(), bytes: reader.bytesRead, hadBOM: reader.hadBOM)
    }

    private static func header(_ line: Line, input: InputFile) throws -> FileLayout {
        func failure(_ code: RejectCode, _ column: Int, _ message: String) -> HeaderFailure {
            HeaderFailure(
                diagnostic: Diagnostic(code: code, file: input.name, line: 1, column: column, message: message))
        }
        let b = line.bytes
        if b.count >= 2, (b[0] == 0xFF && b[1] == 0xFE) || (b[0] == 0xFE && b[1] == 0xFF) {
            throw failure(.invalidUTF8, 1, "the file is UTF-16; save it as UTF-8")
        }
        // UTF-16 without a byte-order mark: a header starts with ASCII "Date", so every other byte is 0.
        if b.count >= 4,
            (b[0] != 0 && b[1] == 0 && b[2] != 0 && b[3] == 0) || (b[0] == 0 && b[1] != 0 && b[2] == 0 && b[3] != 0)
        {
            throw failure(.invalidUTF8, 1, "the file looks like UTF-16 without a byte-order mark; save it as UTF-8")
        }
        if line.overlongLength != nil {
            throw failure(.lineTooLong, 1, "the header line is over the maxLineBytes limit (is this a CU-BEMS CSV?)")
        }
        do throws(HeaderError) {
            return try FileLayout(header: b, floor: input.floor)
        } catch {
            throw failure(error.code, error.column, "bad header: \(error.message)")
        }
    }
}
