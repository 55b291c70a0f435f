import Foundation
import SluiceCore
import Testing

@Suite struct TaskIDTests {
    @Test func idsSortByCreationEvenWithinOneMillisecondAndWhenTheClockStepsBack() {
        let clock = ManualClock()
        let generator = TaskIDGenerator(clock: clock)
        var ids: [TaskID] = []
        for step in 0..<2000 {
            ids.append(generator.next())
            if step % 100 == 99 { clock.advance(by: .milliseconds(1)) }
            if step == 1500 { clock.advance(by: .seconds(-60)) }
        }
        #expect(ids == ids.sorted())
        #expect(Set(ids).count == ids.count)
    }

    @Test func idEncodesItsTime() {
        let clock = ManualClock(Date(timeIntervalSince1970: 1_750_000_123.456))
        let id = TaskIDGenerator(clock: clock).next()
        #expect(abs(id.timestamp.timeIntervalSince1970 - 1_750_000_123.456) < 0.001)
    }

    @Test(arguments: ["", "x", "01ARZ3NDEKTSV4RRFFQ69G5FA", "01ARZ3NDEKTSV4RRFFQ69G5FAVV", "' OR 1=1 --xxxxxxxxxxxxxxxxx",
                      "../../etc/passwd000000000", "01ARZ3NDEKTSV4RRFFQ69G5FAU", "81ARZ3NDEKTSV4RRFFQ69G5FAV"])
    func malformedIDsAreRejected(text: String) {
        #expect(TaskID(text) == nil)
    }

    @Test func canonicalIDsParseCaseInsensitively() {
        #expect(TaskID("01arz3ndektsv4rrffq69g5fav")?.rawValue == "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    }
}
