import SluiceCore
import SluicePool
import Testing

@Suite struct PoolConfigurationTests {
    @Test func theConcurrencyFollowsTheLastColonSoQueueNamesMayHoldOne() throws {
        let pool = try PoolConfiguration.parse("jobs=mail:high,bulk:3")
        #expect(pool.name == "jobs" && pool.queues == ["mail:high", "bulk"] && pool.concurrency == 3)
        let plain = try PoolConfiguration.parse("mail=mail,bulk")
        #expect(plain.queues == ["mail", "bulk"] && plain.concurrency == PoolConfiguration.defaultConcurrency)
    }

    @Test(arguments: ["jobs=mail:high", "jobs=mail:", "jobs=mail:0", "=mail:2", "jobs", "jobs=:4"])
    func aBadSpecIsRefusedNamingIt(spec: String) {
        #expect(throws: SluiceError.self, "\(spec)") { try PoolConfiguration.parse(spec) }
    }
}
