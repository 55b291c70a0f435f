import Foundation
import SluiceCore
import SluiceSQLite
import SluiceStore
import SluiceTestSupport

/// The stores every conformance test runs against.
enum StoreKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case memory, sqlite
    var description: String { rawValue }
}

/// A store of `kind` on a manual clock; `unit` fixes the backoff jitter draw.
func makeStore(_ kind: StoreKind, clock: ManualClock, unit: Double = 1.0, dir: TempDir) throws -> any TaskStore {
    switch kind {
    case .memory:
        return MemoryTaskStore(clock: clock, unitRandom: { unit })
    case .sqlite:
        var configuration = SQLiteStoreConfiguration(path: dir.path("tasks.db"))
        configuration.clock = clock
        configuration.unitRandom = { unit }
        return try SQLiteTaskStore(configuration)
    }
}

