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
        .library(name: "SluicePostgres", targets: ["SluicePostgres"]),
        .library(name: "SluicePool", targets: ["SluicePool"]),
        .library(name: "SluiceClient", targets: ["SluiceClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // HMAC for the console's session cookie; already in the graph through postgres-nio.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
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
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ]
        ),
        // The SQLite store: the only target with SQLite SQL in it.
        .target(name: "SluiceSQLite", dependencies: ["CSQLite", "SluiceCore", "SluiceStore"]),
        // The PostgreSQL store (postgres-nio, no ORM): the only target with PostgreSQL SQL in it.
        .target(
            name: "SluicePostgres",
            dependencies: [
                "SluiceCore", "SluiceStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Pools, handlers and the worker process's roles (fetcher, completer, supervisor).
        .target(
            name: "SluicePool",
            dependencies: [
                "SluiceCore", "SluiceStore",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ]
        ),
        // The HTTP front (Hummingbird 2): routes, errors, auth, waiting for results.
        .target(
            name: "SluiceHTTP",
            dependencies: [
                "SluiceCore", "SluiceStore", "SluicePool",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // A client for the HTTP API: the CLI's client commands and the live tests use it.
        .target(
            name: "SluiceClient",
            dependencies: [
                "SluiceCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "sluice",
            dependencies: [
                "SluiceCore", "SluiceStore", "SluiceSQLite", "SluicePostgres", "SluicePool", "SluiceHTTP", "SluiceClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // `sluice serve --schedules FILE.toml`.
                .product(name: "TOMLKit", package: "TOMLKit"),
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
        // Benchmarks: run through tools/bench/run.
        .executableTarget(
            name: "sluice-bench-store",
            dependencies: ["SluiceCore", "SluiceStore", "SluiceSQLite"],
            path: "tools/bench/store"
        ),
        .executableTarget(
            name: "sluice-bench-bare",
            dependencies: ["SluiceCore", .product(name: "Hummingbird", package: "hummingbird")],
            path: "tools/bench/bare"
        ),
        .testTarget(name: "SluiceCoreTests", dependencies: ["SluiceCore"]),
        // Helpers the test targets share: temp dirs, child processes, waiting with a bound.
        .target(name: "SluiceTestSupport", path: "Tests/Support"),
        .testTarget(
            name: "SluiceStoreTests",
            dependencies: [
                "SluiceCore", "SluiceStore", "SluiceSQLite", "SluicePostgres", "SluiceTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .testTarget(name: "SluicePoolTests", dependencies: ["SluiceCore", "SluiceStore", "SluiceSQLite", "SluicePool", "SluiceTestSupport"]),
        .testTarget(
            name: "SluiceHTTPTests",
            dependencies: [
                "SluiceCore", "SluiceStore", "SluiceSQLite", "SluicePostgres", "SluicePool", "SluiceHTTP", "SluiceClient", "SluiceTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
    ]
)
