#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An exclusive lock on a work directory, so two pipeline runs never write the same stage at once.
///
/// It is an `flock(2)` on `<work>/.lock`: the kernel releases it when the process dies, even by SIGKILL, so a crash
/// never leaves a stale lock.
package final class WorkDirLock {
    private let fd: Int32

    /// Takes the lock.
    ///
    /// - Parameter wait: Wait for another run to finish instead of failing.
    /// - Throws: ``PipelineError`` exit 73 when another run holds the lock and `wait` is false.
    package init(directory: String, wait: Bool = false) throws {
        try AtomicFile.makeDirectory(directory)
        let path = directory + "/.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw AtomicFile.ioError("cannot open lock file", path) }
        if flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0 {
            close(fd)
            throw PipelineError(
                .cantCreate, "\(directory): another bems run is using this work directory; wait for it or stop it")
        }
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
