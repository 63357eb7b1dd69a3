// libFuzzer target: the CSV row parser (WideRowParser over a fixed floor layout) and FileLayout header parsing.
//
// The first byte picks the mode: bit 0 set = header parsing for floor (byte >> 1) % 7 + 1; otherwise the rest is
// one data line of floor (byte >> 1) % 7 + 1, terminated unless bit 7 is set. Oracle: no trap, every reported
// column lies inside the line (+1 for "after the end"), and the per-cell counts add up.
@testable import BEMSCore

nonisolated(unsafe) private var parsers: [Int: WideRowParser] = [:]
nonisolated(unsafe) private var row = ParsedRow()

private func parser(floor: Int) -> WideRowParser {
    if let p = parsers[floor] { return p }
    let header = Array(FloorSchema.header(floor: floor)!.joined(separator: ",").utf8)
    let layout = try! header.withUnsafeBytes { try FileLayout(header: $0, floor: floor) }
    let p = try! WideRowParser(layout: layout, config: PipelineConfig())
    parsers[floor] = p
    return p
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard count >= 1 else { return 0 }
    let mode = start.load(as: UInt8.self)
    let floor = Int(mode >> 1) % 7 + 1
    let body = UnsafeRawBufferPointer(start: start + 1, count: count - 1)
    if mode & 1 == 1 {
        let layout: FileLayout
        do throws(HeaderError) {
            layout = try FileLayout(header: body, floor: floor)
        } catch {
            precondition(error.column >= 1 && error.column <= body.count + 1, "header column \(error.column)")
            return 0
        }
        precondition(layout.fields[layout.dateField] == nil, "dateField does not point at Date")
        precondition(layout.columns.count == layout.fieldCount - 1, "exactly one Date field")
        _ = try! WideRowParser(layout: layout, config: PipelineConfig())
        return 0
    }
    var p = parser(floor: floor)
    let line = Line(bytes: body, number: 2, terminated: mode & 0x80 == 0, overlongLength: nil)
    p.parse(line, into: &row)
    let width = p.layout.columns.count
    if let error = row.rowError {
        precondition(error.column >= 1 && error.column <= body.count + 1, "row error column \(error.column)")
    } else {
        let rejected = row.kinds.count { $0 == .rejected }
        precondition(rejected == row.cellErrors.count, "rejected cells \(rejected) != errors \(row.cellErrors.count)")
        precondition(row.readings + row.missing + rejected == width, "cells do not add up to \(width)")
        for error in row.cellErrors {
            precondition(error.column >= 1 && error.column <= body.count + 1, "cell error column \(error.column)")
        }
    }
    return 0
}
