import ArgumentParser
@main struct NormalizeCommand: AsyncParsableCommand { func run() async throws {} }
