import Foundation

/// One numbered schema change of one engine, from `migrations/ENGINE/NNNN_name.sql`; each store
/// embeds its engine's list (`Migration.sqlite`, `Migration.postgres`).
public struct Migration: Sendable, Hashable {
    public var version: Int
    public var name: String
    public var sql: String

    /// FNV-1a (64 bits) of the text, in hex: recorded when applied, so an edited file is noticed.
    public var checksum: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in sql.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16)
    }

    /// A migration from its file name (`0001_tasks.sql`) and text.
    public init(file: String, sql: String) {
        let stem = file.hasSuffix(".sql") ? String(file.dropLast(4)) : file
        let digits = stem.prefix { $0.isNumber }
        version = Int(digits) ?? -1
        name = stem
        self.sql = sql
    }
}
