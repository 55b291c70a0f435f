import Foundation
import Logging
import SluiceCore
@testable import SluicePool
import SluiceStore
import Testing

@Suite struct LeaderElectorTests {
    /// A leader whose renewal does not come through (the store hangs or is unreachable) stops
    /// counting itself the leader when its lease would end, measured from before it asked, so it
    /// never runs maintenance beside the process that takes over after the expiry.
    @Test func leadershipEndsWithTheLeaseWhenNoRenewalComesThrough() async throws {
        let store = MemoryTaskStore()
        let monotonic = ManualMonotonicClock()
        let elector = LeaderElector(store: store, owner: "a", lease: .seconds(30), monotonic: monotonic, logger: Logger(label: "test"))
        #expect(!elector.isLeader)
        await elector.attempt()
        #expect(elector.isLeader)
        monotonic.advance(by: .seconds(29))
        #expect(elector.isLeader, "the lease still runs")
        monotonic.advance(by: .seconds(1))
        #expect(!elector.isLeader, "the lease ended and nothing renewed it")
        // A renewal restarts the count from the moment it was asked for.
        await elector.attempt()
        #expect(elector.isLeader)
        monotonic.advance(by: .seconds(30))
        #expect(!elector.isLeader)
        // Resigning gives the lease back in the store at once.
        await elector.attempt()
        try await elector.resign()
        #expect(!elector.isLeader)
        #expect(try await store.acquireLeadership(LeaderElector.role, owner: "b", for: .seconds(30)))
    }
}
