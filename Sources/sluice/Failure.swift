import ArgumentParser
import Foundation

/// Prints one line on standard error and returns the failing exit code to throw.
func failure(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    return ExitCode.failure
}
