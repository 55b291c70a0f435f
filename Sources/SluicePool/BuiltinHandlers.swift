import Foundation
import SluiceCore

extension HandlerRegistry {
    /// The kinds every Sluice process knows: `sleep`, `echo`, `fail`, `cpu`, and `exec` for the
    /// programs in `allowExec` (none by default).
    public static func builtin(allowExec: Set<String> = []) -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.register("sleep", .blocking(BuiltinHandlers.sleep))
        registry.register("echo", .blocking { $0.args })
        registry.register("fail", .blocking(BuiltinHandlers.fail))
        registry.register("cpu", .blocking(BuiltinHandlers.cpu))
        registry.register("exec", ExecHandler(allowed: allowExec).handler)
        return registry
    }
}

/// The built-in kinds' bodies.
enum BuiltinHandlers {
    /// `{"seconds": S}`: a blocking sleep, like the seed's `time.sleep(3)`, that a cancel or
    /// timeout ends at once.
    static func sleep(_ context: TaskContext) throws -> JSONValue {
        let seconds = try number(context.args, "seconds", in: 0...86_400)
        try context.sleep(seconds: seconds)
        return ["slept": .double(seconds)]
    }

    /// `{"message": "…", "times": N}`: fails its first N attempts, then succeeds (exercises retries).
    static func fail(_ context: TaskContext) throws -> JSONValue {
        let times = Int(try number(context.args, "times", in: 0...1000, default: 1))
        let message = context.args["message"]?.stringValue ?? "failing on purpose"
        if context.attempt <= times {
            throw TaskFailure("\(message) (attempt \(context.attempt) of \(times) planned failures)")
        }
        return ["attempts": .int(Int64(context.attempt))]
    }

    /// `{"iterations": N}`: a CPU-bound loop of 64-bit FNV-1a hashing; returns the digest.
    static func cpu(_ context: TaskContext) throws -> JSONValue {
        let iterations = Int64(try number(context.args, "iterations", in: 1...10_000_000_000, default: 1_000_000))
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var i: Int64 = 0
        while i < iterations {
            var word = UInt64(bitPattern: i)
            for _ in 0..<8 {
                hash = (hash ^ (word & 0xff)) &* 0x0000_0100_0000_01b3
                word >>= 8
            }
            i += 1
            if i & 0xFFFFF == 0 { try context.checkCancellation() }
        }
        return ["digest": .string(String(hash, radix: 16)), "iterations": .int(iterations)]
    }

    /// Reads a number from the args, refusing the task (no retry) when it is missing or out of range.
    static func number(_ args: JSONValue, _ name: String, in range: ClosedRange<Double>, default fallback: Double? = nil) throws -> Double {
        guard let value = args[name] else {
            if let fallback { return fallback }
            throw TaskFailure("args.\(name) is required", disposition: .discard)
        }
        guard let number = value.doubleValue, range.contains(number) else {
            throw TaskFailure("args.\(name) must be a number from \(range.lowerBound) to \(range.upperBound)", disposition: .discard)
        }
        return number
    }
}
