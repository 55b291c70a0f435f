import Foundation
import SluiceCore
import Testing

/// The advisor's maths on injected numbers and times: no pools, no sleeps.
@Suite(.timeLimit(.minutes(4))) struct PoolAdvisorTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func erlangCMatchesTextbookValues() {
        // M/M/1 at half load: Wq = ρ/(μ − λ) = 0.5 / (1 − 0.5) = 1 s with S = 1 s.
        #expect(abs(PoolAdvisor.expectedWait(servers: 1, load: 0.5, serviceTime: 1) - 1.0) < 1e-9)
        // M/M/2 with a = 1: Erlang C = 1/3, Wq = C·S/(c − a) = 1/3 s.
        #expect(abs(PoolAdvisor.expectedWait(servers: 2, load: 1, serviceTime: 1) - 1.0 / 3) < 1e-9)
        #expect(PoolAdvisor.expectedWait(servers: 48, load: 48, serviceTime: 3) == .infinity)
        #expect(PoolAdvisor.expectedWait(servers: 4, load: 0, serviceTime: 3) == 0)
    }

    @Test func minimumServersIsTheFirstSizeUnderTheTargetWait() {
        let c = PoolAdvisor.minimumServers(load: 48, serviceTime: 3, targetWait: 0.1)
        #expect(c > 48)
        #expect(PoolAdvisor.expectedWait(servers: c, load: 48, serviceTime: 3) <= 0.1)
        #expect(PoolAdvisor.expectedWait(servers: c - 1, load: 48, serviceTime: 3) > 0.1)
        #expect(PoolAdvisor.minimumServers(load: 0, serviceTime: 3, targetWait: 0.1) == 1)
    }

    /// The example: 16 tasks/s of 3 s each need 48 slots on average; a pool of 20 is
    /// saturated. With few waiting the advice is the M/M/c size for a wait under 0.1 s; with 560
    /// waiting it is the slots that also clear them within a minute (48 + 560·3/60 = 76): the M/M/c
    /// size alone (56) would take seven minutes to clear them, its "wait under 0.1 s" untrue meanwhile.
    @Test func saturatedPoolGetsASizeThatKeepsUpAndClearsTheBacklog() {
        let activity = PoolActivity(window: 60, meanBusy: 20, meanTarget: 20, startRate: 6.67, completionRate: 6.67,
                                    backlogGrowth: 9.33, waitP50: 2.4, waitP99: 9, hourWindow: 600, hourPeakBusy: 20)
        let few = PoolAdvisor.advise(target: 20, waiting: 5, runTimeP50: 3.0, activity: activity)
        #expect(few.verdict == .saturated)
        #expect(abs((few.arrivalRate ?? 0) - 16) < 0.01)
        #expect(abs((few.offeredLoad ?? 0) - 48) < 0.1)
        let steady = try! #require(few.recommendedConcurrency)
        #expect(steady == PoolAdvisor.minimumServers(load: few.offeredLoad!, serviceTime: 3, targetWait: 0.1))
        #expect(few.message.contains("concurrency \(steady) would keep the wait under 0.10 s"), "\(few.message)")
        let backlog = PoolAdvisor.advise(target: 20, waiting: 560, runTimeP50: 3.0, activity: activity)
        #expect(backlog.recommendedConcurrency == 76)
        #expect(backlog.message.hasPrefix("saturated: 560 tasks waiting; tasks wait 2.40 s (p50) for a slot"))
        #expect(backlog.message.hasSuffix("concurrency 76 would keep up and clear the 560 waiting in about 1 min"), "\(backlog.message)")
    }

    /// One batch of 1,000 one-second tasks on a pool of 2, a second after it arrived: the backlog's
    /// growth over that second is not a rate of 1,000 tasks/s (the old advice: 507 slots). Until 15 s
    /// of samples exist arrivals are the starts; the batch is work to clear (2 + 998/60 → 19), and
    /// a minute on, with the batch still waiting and nothing more arriving, the advice is the same.
    @Test func aBurstIsWorkToClearNotARate() {
        let first = PoolActivity(window: 1, meanBusy: 2, meanTarget: 2, startRate: 2, completionRate: 0,
                                 backlogGrowth: 998, waitP50: 0, waitP99: 0, hourWindow: 1, hourPeakBusy: 2)
        let early = PoolAdvisor.advise(target: 2, waiting: 998, runTimeP50: 1.0, activity: first)
        #expect(early.verdict == .saturated && early.arrivalRate == 2 && early.recommendedConcurrency == 19, "\(early)")
        let minute = PoolActivity(window: 60, meanBusy: 2, meanTarget: 2, startRate: 2, completionRate: 2,
                                  backlogGrowth: -2, waitP50: 30, waitP99: 58, hourWindow: 60, hourPeakBusy: 2)
        let later = PoolAdvisor.advise(target: 2, waiting: 880, runTimeP50: 1.0, activity: minute)
        #expect(later.recommendedConcurrency == 17 && later.message.contains("clear the 880 waiting"), "\(later)")
    }

    /// Past the largest pool the advice says so, instead of a size that would not do.
    @Test func aLoadBeyondTheLargestPoolIsSaidToBe() {
        let activity = PoolActivity(window: 60, meanBusy: 4, meanTarget: 4, startRate: 2, completionRate: 2,
                                    backlogGrowth: 0, waitP50: 9, waitP99: 20, hourWindow: 600, hourPeakBusy: 4)
        let advice = PoolAdvisor.advise(target: 4, waiting: 30, runTimeP50: 20_000, activity: activity, processes: 2)
        #expect(advice.recommendedConcurrency == 10_000)
        #expect(advice.message.hasSuffix("more than 20000 slots would be needed, more than concurrency 10000 in each of the 2 processes (20000 in all) gives: make the tasks shorter or add processes"), "\(advice.message)")
    }

    @Test func idlePoolSaysHowManyThreadsWentUnused() {
        let activity = PoolActivity(window: 60, meanBusy: 4, meanTarget: 50, startRate: 1, completionRate: 1,
                                    backlogGrowth: 0, waitP50: 0, waitP99: 0.01, hourWindow: 3600, hourPeakBusy: 10)
        let advice = PoolAdvisor.advise(target: 50, waiting: 0, runTimeP50: 4, activity: activity)
        #expect(advice.verdict == .idle)
        #expect(advice.message.hasPrefix("idle: 40 of 50 threads unused for the last 60 min (at most 10 busy at once)"))
        #expect(advice.recommendedConcurrency == 13)
        // An hour of samples a second apart spans 3,599 s: still "the last 60 min".
        var hour = activity
        hour.hourWindow = 3599
        #expect(PoolAdvisor.advise(target: 50, waiting: 0, runTimeP50: 4, activity: hour).message.contains("for the last 60 min"))
        // A pool whose peak plus headroom is its size already is not idle: nothing to shrink.
        let small = PoolActivity(window: 60, meanBusy: 0.5, meanTarget: 2, startRate: 0.1, completionRate: 0.1,
                                 backlogGrowth: 0, waitP50: 0, waitP99: 0, hourWindow: 3600, hourPeakBusy: 1)
        #expect(PoolAdvisor.advise(target: 2, waiting: 0, runTimeP50: 1, activity: small).verdict == .ok)
    }

    /// The size PATCH /v1/pools sets is each process's: the slots needed are spread over the
    /// processes, and never past the largest pool.
    @Test func theRecommendationIsAPerProcessSizeWithinTheLimit() {
        let activity = PoolActivity(window: 60, meanBusy: 20, meanTarget: 20, startRate: 6.67, completionRate: 6.67,
                                    backlogGrowth: 9.33, waitP50: 2.4, waitP99: 9, hourWindow: 600, hourPeakBusy: 20)
        let total = try! #require(PoolAdvisor.advise(target: 20, waiting: 560, runTimeP50: 3.0, activity: activity).recommendedConcurrency)
        let split = PoolAdvisor.advise(target: 20, waiting: 560, runTimeP50: 3.0, activity: activity, processes: 2)
        let each = (total + 1) / 2
        #expect(split.recommendedConcurrency == each)
        #expect(split.message.contains("concurrency \(each) in each of the 2 processes (\(each * 2) in all) would keep up and clear"), "\(split.message)")
        let idle = PoolActivity(window: 60, meanBusy: 4, meanTarget: 50, startRate: 1, completionRate: 1,
                                backlogGrowth: 0, waitP50: 0, waitP99: 0.01, hourWindow: 3600, hourPeakBusy: 10)
        #expect(PoolAdvisor.advise(target: 50, waiting: 0, runTimeP50: 4, activity: idle, processes: 5).recommendedConcurrency == 3)
        // Saturated at the largest size: the advice stays a size PATCH takes.
        let full = PoolActivity(window: 60, meanBusy: 10_000, meanTarget: 10_000, startRate: 100, completionRate: 100,
                                backlogGrowth: 50, waitP50: 5, waitP99: 9, hourWindow: 600, hourPeakBusy: 10_000)
        #expect(PoolAdvisor.advise(target: 10_000, waiting: 9_000, runTimeP50: 100, activity: full).recommendedConcurrency == 10_000)
    }

    /// Every slot busy on tasks longer than the minute: no task started, so no wait was measured.
    @Test func aWaitNotMeasuredIsNotShownAsZero() {
        let activity = PoolActivity(window: 60, meanBusy: 4, meanTarget: 4, startRate: 0, completionRate: 0,
                                    backlogGrowth: 0, waitP50: nil, waitP99: nil, hourWindow: 600, hourPeakBusy: 4)
        let advice = PoolAdvisor.advise(target: 4, waiting: 30, runTimeP50: 120, activity: activity)
        #expect(advice.verdict == .saturated)
        #expect(advice.message.hasPrefix("saturated: 30 tasks waiting; no task started in the last minute; 4.00 of 4 slots busy"), "\(advice.message)")
    }

    @Test func busyButKeepingUpIsOK() {
        let activity = PoolActivity(window: 60, meanBusy: 12, meanTarget: 50, startRate: 3, completionRate: 3,
                                    backlogGrowth: 0, waitP50: 0.01, waitP99: 0.05, hourWindow: 3600, hourPeakBusy: 40)
        let advice = PoolAdvisor.advise(target: 50, waiting: 0, runTimeP50: 4, activity: activity)
        #expect(advice.verdict == .ok)
        #expect(advice.message == "ok: 12.0 of 50 slots busy on average (24 %); tasks wait 0.01 s (p50); 3.00 tasks/s × 4.00 s per task = 12.0 slots needed (Little's law)")
        #expect(PoolAdvisor.advise(target: 50, waiting: 0, runTimeP50: nil, activity: nil).verdict == .unknown)
    }

    @Test func recorderTurnsSamplesIntoRatesAndWaits() {
        var recorder = PoolActivityRecorder()
        #expect(recorder.activity(now: start) == nil)
        // An hour ago the pool peaked at 9 busy; that sample is outside the minute but inside the hour.
        recorder.add(.init(at: start.addingTimeInterval(-3000), busy: 9, target: 10, waiting: 0, started: 0, finished: 0))
        for second in 0...30 {
            recorder.add(.init(at: start.addingTimeInterval(Double(second)), busy: second % 2 == 0 ? 4 : 2, target: 10,
                               waiting: second, started: 100 + 2 * second, finished: 90 + 2 * second))
        }
        for n in 1...100 { recorder.addWait(Double(n) / 100, at: start.addingTimeInterval(30)) }
        recorder.addWait(50, at: start.addingTimeInterval(-120))   // older than a minute: left out
        let now = start.addingTimeInterval(30)
        let activity = try! #require(recorder.activity(now: now))
        #expect(activity.window == 30)
        #expect(abs(activity.meanBusy - (16 * 4 + 15 * 2) / 31.0) < 1e-9)
        #expect(activity.meanTarget == 10)
        #expect(activity.startRate == 2 && activity.completionRate == 2 && activity.backlogGrowth == 1)
        #expect(activity.waitP50 == 0.51 && activity.waitP99 == 1.0)
        #expect(activity.hourWindow == 3030 && activity.hourPeakBusy == 9)
        // Past the hour the old peak is forgotten: the hour's peak is then the 4 of the first minute.
        recorder.add(.init(at: start.addingTimeInterval(690), busy: 1, target: 10, waiting: 0, started: 200, finished: 200))
        recorder.add(.init(at: start.addingTimeInterval(700), busy: 1, target: 10, waiting: 0, started: 200, finished: 200))
        #expect(recorder.activity(now: start.addingTimeInterval(700))?.hourPeakBusy == 4)
    }

    @Test func throughputHistoryCountsPerSecondInARing() {
        let clock = ManualClock(start)
        let history = ThroughputHistory(clock: clock, capacity: 60)
        history.add(.enqueued, queue: "mail", 3)
        history.add(.started, queue: "mail")
        clock.advance(by: .seconds(1))
        history.add(.succeeded, queue: "mail")
        history.add(.enqueued, queue: "other", 2)
        let series = history.series(queue: "mail", seconds: 3)
        #expect(series.start == Int64(start.timeIntervalSince1970) - 1)
        #expect(series.counts[.enqueued] == [0, 3, 0] && series.counts[.started] == [0, 1, 0] && series.counts[.succeeded] == [0, 0, 1])
        #expect(history.series(queue: nil, seconds: 2).counts[.enqueued] == [3, 2])
        #expect(history.queues == ["mail", "other"])
        // A minute later the ring slot is reused: the old counts are gone, not added to.
        clock.advance(by: .seconds(60))
        history.add(.enqueued, queue: "mail")
        #expect(history.series(queue: "mail", seconds: 60).counts[.enqueued]!.reduce(0, +) == 1)
    }

    @Test func idBoundsFollowCreationTime() {
        let clock = ManualClock(start)
        let ids = TaskIDGenerator(clock: clock)
        let before = TaskID.lowerBound(at: start)
        let id = ids.next()
        clock.advance(by: .milliseconds(1))
        #expect(before <= id && id < TaskID.lowerBound(at: clock.now()))
        let range = try! #require(TaskID.range(prefix: String(id.rawValue.prefix(12)).lowercased()))
        #expect(range.contains(id))
        #expect(TaskID.range(prefix: "not-base32!") == nil)
    }
}
