import Foundation

/// The folder of the running executable (`/proc/self/exe`, else `argv[0]`): the bems executables are installed side
/// by side, so `bems serve` finds `bems-serve` and the server finds the stages there.
package func executableDirectory() -> String {
    let path =
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
    return (path as NSString).deletingLastPathComponent
}
