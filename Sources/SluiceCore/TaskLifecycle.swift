import Foundation

/// The lifecycle moves, as pure functions on a record. Both stores apply these, so they agree on
/// every rule; each move checks `TaskState.checkTransition` first.
extension TaskRecord {
    /// The error message recorded when a worker stops renewing its lease.
    public static let leaseExpiredMessage = "lease expired: the worker stopped heartbeating (crashed or was killed)"

    /// Moves a scheduled or retrying task whose time has come to `queued`; returns whether it moved.
    @discardableResult
    public mutating func stageIfDue(now: Date) -> Bool {
        guard state == .scheduled || state == .retrying, runAt <= now else { return false }
        state = .queued
        return true
    }

    /// Gives the task to `owner`: counts the attempt and takes a lease until `now + leaseDuration`.
    public mutating func claim(owner: String, now: Date, leaseDuration: Duration, token: Int64 = TaskLease.newToken()) throws(SluiceError) {
        try state.checkTransition(to: .running, task: id)
        let now = now.storedPrecision
        state = .running
        attempt += 1
        startedAt = now
        worker = owner
        lease = TaskLease(taskID: id, owner: owner, attempt: attempt, token: token,
                          expiresAt: now.addingTimeInterval(leaseDuration.seconds).storedPrecision)
    }

    /// Throws `leaseLost` unless `lease` is the task's current lease (fencing).
    public func checkLease(_ lease: TaskLease) throws(SluiceError) {
        guard state == .running, let current = self.lease, current.owner == lease.owner,
              current.token == lease.token else {
            throw SluiceError(.leaseLost,
                "task \(id): the lease of \(lease.owner)\(lease.attempt > 0 ? " on attempt \(lease.attempt)" : "") is no longer held (task is \(state.rawValue), attempt \(attempt))")
        }
    }

    /// Extends the lease to `now + leaseDuration`.
    public mutating func renewLease(_ lease: TaskLease, now: Date, leaseDuration: Duration) throws(SluiceError) {
        try checkLease(lease)
        self.lease?.expiresAt = now.addingTimeInterval(leaseDuration.seconds).storedPrecision
    }

    /// The error recorded when a cancel was asked for while the task ran and it then succeeded.
    public static let cancelledWhileRunningMessage = "cancelled by request while running; the handler's result was kept"

    /// Records success, unless a cancel was requested before this outcome was stored: the cancel
    /// wins (what the API promises), and the handler's result is kept beside it for the record.
    public mutating func complete(_ lease: TaskLease, result: JSONValue, now: Date) throws(SluiceError) {
        try checkLease(lease)
        let next: TaskState = cancelRequested ? .cancelled : .succeeded
        try state.checkTransition(to: next, task: id)
        state = next
        self.result = result
        error = cancelRequested ? Self.cancelledWhileRunningMessage : nil
        finish(now)
    }

    /// Records a failed attempt and decides what follows: a retry after backoff, failure, or cancel.
    /// `unit` is a uniform draw in [0, 1] for the backoff's jitter.
    public mutating func fail(_ lease: TaskLease, failure: TaskFailure, now: Date, unit: Double) throws(SluiceError) {
        try checkLease(lease)
        let now = now.storedPrecision
        attemptErrors.append(AttemptError(attempt: attempt, message: failure.message, at: now))
        let retryDelay: Duration?
        switch failure.disposition {
        case .retry: retryDelay = retryPolicy.delay(afterAttempt: attempt, unit: unit)
        case .retryAfter(let delay): retryDelay = max(delay, .zero)
        case .discard, .cancel: retryDelay = nil
        }
        if failure.disposition == .cancel || cancelRequested {
            try state.checkTransition(to: .cancelled, task: id)
            state = .cancelled
            error = failure.message
            finish(now)
        } else if let retryDelay, attempt < maxAttempts {
            try state.checkTransition(to: .retrying, task: id)
            state = .retrying
            error = failure.message
            runAt = now.addingTimeInterval(retryDelay.seconds).storedPrecision
            self.lease = nil
        } else {
            try state.checkTransition(to: .failed, task: id)
            state = .failed
            error = failure.message
            finish(now)
        }
    }

    /// The error recorded when a task's cancel was asked for while its worker held it unstarted.
    public static let cancelledBeforeStartMessage = "cancelled by request before it started"

    /// Hands a claimed task back unstarted (graceful shutdown): `queued` again, attempt not counted;
    /// or `cancelled`, if a cancel was asked for meanwhile (it must not run after all).
    public mutating func release(_ lease: TaskLease, now: Date) throws(SluiceError) {
        try checkLease(lease)
        let next: TaskState = cancelRequested ? .cancelled : .queued
        try state.checkTransition(to: next, task: id)
        state = next
        attempt -= 1
        self.lease = nil
        startedAt = nil
        if cancelRequested {
            error = Self.cancelledBeforeStartMessage
            finish(now)
        }
    }

    /// Asks to cancel: waiting tasks are cancelled at once; a running one is flagged, and its worker
    /// sees the request at its next heartbeat. Cancelling twice is not an error.
    public mutating func requestCancel(now: Date) throws(SluiceError) {
        switch state {
        case .running:
            cancelRequested = true
        case .cancelled:
            return
        default:
            try state.checkTransition(to: .cancelled, task: id)
            state = .cancelled
            finish(now)
        }
    }

    /// Retries a failed or cancelled task by hand: queued now, with one more attempt allowed if its
    /// attempts were used up. Its attempt errors stay as history.
    public mutating func retryByHand(now: Date) throws(SluiceError) {
        try state.checkTransition(to: .queued, task: id)
        state = .queued
        runAt = now.storedPrecision
        if attempt >= maxAttempts { maxAttempts = attempt + 1 }
        result = nil
        error = nil
        cancelRequested = false
        finishedAt = nil
        lease = nil
    }

    /// Refuses to delete a task that has not finished: a live task's worker or schedule still
    /// expects its row.
    public func checkDeletable() throws(SluiceError) {
        guard state.isFinal else {
            throw SluiceError(.invalidTransition,
                              "task \(id) is \(state.rawValue); only succeeded, failed or cancelled tasks can be deleted (cancel it first)")
        }
    }

    /// Recovers a running task whose lease expired: back to the queue (at-least-once), or failed
    /// when that was its last attempt, or cancelled if a cancel was asked for.
    public mutating func expireLease(now: Date) throws(SluiceError) {
        guard state == .running, let lease, lease.expiresAt < now else { return }
        let now = now.storedPrecision
        attemptErrors.append(AttemptError(attempt: attempt, message: Self.leaseExpiredMessage, at: now))
        if cancelRequested {
            try state.checkTransition(to: .cancelled, task: id)
            state = .cancelled
            error = Self.leaseExpiredMessage
            finish(now)
        } else if attempt >= maxAttempts {
            try state.checkTransition(to: .failed, task: id)
            state = .failed
            error = Self.leaseExpiredMessage
            finish(now)
        } else {
            try state.checkTransition(to: .queued, task: id)
            state = .queued
            runAt = now
            self.lease = nil
        }
    }

    /// Refuses an idempotency key reused for other work: answering with this task would tell the
    /// caller that their (different) task was stored.
    public func checkReplay(of request: EnqueueRequest) throws(SluiceError) {
        guard kind != request.kind || !args.sameJSON(as: request.args) else { return }
        throw SluiceError(.idempotencyConflict,
            "idempotency key \(request.idempotencyKey ?? "") in queue \(request.queue) already names task \(id) with \(kind != request.kind ? "kind \(kind)" : "other args"); use a new key for different work",
            field: "idempotency_key")
    }

    private mutating func finish(_ now: Date) {
        finishedAt = now.storedPrecision
        lease = nil
    }
}
