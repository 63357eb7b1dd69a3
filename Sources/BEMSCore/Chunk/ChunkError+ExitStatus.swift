extension ChunkError: ExitCodeError {
    /// 66 for a missing chunk file, 74 (I/O) for every damaged, truncated or unwritable chunk.
    package var exitStatus: ExitStatus { code == .fileNotFound ? .noInput : .ioError }
}
