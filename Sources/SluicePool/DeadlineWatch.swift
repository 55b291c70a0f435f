/// Times out tasks past their deadline, ten times a second, on the monotonic clock.
struct DeadlineWatch {
    let pools: [Pool]

    func run() async {
        while !Task.isCancelled {
            for pool in pools { pool.checkDeadlines() }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}
