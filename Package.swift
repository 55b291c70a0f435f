// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "sluice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sluice", targets: ["sluice"]),
        .library(name: "SluiceCore", targets: ["SluiceCore"]),
        .library(name: "SluiceStore", targets: ["SluiceStore"]),
        .library(name: "SluiceSQLite", targets: ["SluiceSQLite"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    ],
    targets: [
        // The system libsqlite3 (Debian: libsqlite3-dev), never a bundled amalgamation.
        .systemLibrary(
            name: "CSQLite",
            path: "Sources/CSQLite",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // The task model and its lifecycle rules: no I/O.
        .target(name: "SluiceCore"),
        // The store protocol and the in-memory store; nothing here knows SQL.
        .target(
            name: "SluiceStore",
            dependencies: [
                "SluiceCore",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ]
        ),
        // The SQLite store: the only target with SQL in it.
        .target(name: "SluiceSQLite", dependencies: ["CSQLite", "SluiceCore", "SluiceStore"]),
        .executableTarget(
            name: "sluice",
            dependencies: [
                "SluiceCore", "SluiceStore", "SluiceSQLite",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // A helper process the crash and multi-process tests spawn; not shipped.
        .executableTarget(
            name: "sluice-testkit",
            dependencies: [
                "SluiceCore", "SluiceStore", "SluiceSQLite",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tests/TestKit"
        ),
        // Benchmarks: run through the scripts in tools/bench.
        .executableTarget(
            name: "sluice-bench-store",
            dependencies: ["SluiceCore", "SluiceStore", "SluiceSQLite"],
            path: "tools/bench/store"
        ),
        .testTarget(name: "SluiceCoreTests", dependencies: ["SluiceCore"]),
        .testTarget(name: "SluiceStoreTests", dependencies: ["SluiceCore", "SluiceStore", "SluiceSQLite"]),
    ]
)
