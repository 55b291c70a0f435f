import PostgresNIO

/// A statement the store runs on every enqueue, claim, heartbeat or completion. Sent as text each
/// time, PostgreSQL parses and plans it at every call, and for these CTEs that costs several times
/// what running them does (the enqueue statement: 2,500 calls/s unprepared against 11,800 prepared,
/// pgbench, 4 clients, this machine). Prepared, each connection plans it once.
///
/// Every parameter of such a statement carries a cast (`$1::bigint`): the server infers parameter
/// types from the text when it prepares, and the binary values sent later must be of those types.
protocol PreparedSQL {
    static var sql: String { get }
}

/// postgres-nio's prepared statement for `Key`: prepared on a connection at its first use there
/// (named after `Key`), rows handed back undecoded, as the store's other statements give them.
struct PreparedStatement<Key: PreparedSQL>: PostgresPreparedStatement {
    typealias Row = PostgresRow
    /// Short: PostgreSQL cuts names at 63 bytes, and postgres-nio's default (the type's full
    /// name) would leave every statement with the same first 63.
    static var name: String { "sluice_\(Key.self)" }
    static var sql: String { Key.sql }
    let bindings: PostgresBindings

    func makeBindings() throws -> PostgresBindings { bindings }
    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}
