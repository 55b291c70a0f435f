// sluice-testkit: a child process for the crash and multi-process tests. It opens the same SQLite
// store a test uses and claims from it, so the test can race real processes or SIGKILL one.
import Foundation
import SluiceCore
import SluiceSQLite
import SluiceStore

func argument(_ name: String, _ fallback: String? = nil) -> String {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: "--\(name)"), i + 1 < args.count { return args[i + 1] }
    guard let fallback else {
        FileHandle.standardError.write(Data("sluice-testkit: missing --\(name)\n".utf8))
        exit(2)
    }
    return fallback
}

let command = CommandLine.arguments.dropFirst().first ?? ""
let store = try SQLiteTaskStore(SQLiteStoreConfiguration(path: argument("db")))
let owner = argument("owner")
let out = FileHandle.standardOutput

switch command {
case "claim":
    // Claims in batches until the queue is empty, completing each task; prints every claimed id.
    let batch = Int(argument("batch", "16"))!
    while true {
        let tasks = try await store.claim(queues: ["default"], limit: batch, owner: owner, leaseDuration: .seconds(60))
        if tasks.isEmpty { break }
        out.write(Data(tasks.map { $0.id.rawValue + "\n" }.joined().utf8))
        for task in tasks { _ = try await store.complete(task.lease!, result: ["by": .string(owner)]) }
    }
case "hold":
    // Claims up to --count tasks with a lease of --lease seconds, prints their ids and "ready",
    // then waits to be killed.
    let tasks = try await store.claim(queues: ["default"], limit: Int(argument("count"))!, owner: owner,
                                      leaseDuration: .seconds(Int64(argument("lease"))!))
    out.write(Data((tasks.map { $0.id.rawValue + "\n" }.joined() + "ready\n").utf8))
    while true { sleep(60) }
default:
    FileHandle.standardError.write(Data("usage: sluice-testkit claim|hold --db PATH --owner NAME …\n".utf8))
    exit(2)
}
