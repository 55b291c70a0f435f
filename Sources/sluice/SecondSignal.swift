import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// Exits at once on the second SIGTERM/SIGINT, while the first one's graceful shutdown runs.
struct SecondSignal: Service {
    let logger: Logger
    func run() async throws {
        var seen = 0
        for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint).cancelOnGracefulShutdown() {
            seen += 1
            if seen >= 2 {
                logger.warning("second \(signal): exiting now; leases of running tasks will expire and they will be retried")
                exit(1)
            }
        }
    }
}
