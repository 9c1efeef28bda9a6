//! What a database server says about a database before it is dumped: recorded in the
//! snapshot's `source_meta` beside the row counts the dump itself yields.

/// What the server says about the database, before the dump.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    /// Where it is: `host:port`, or the SQLite file.
    pub server: String,
    /// The server's version string (SQLite: the library version that last wrote the file).
    pub version: String,
    /// The database's name as the server reports it.
    pub database: String,
    /// Bytes per table, as the server reports them, by the name the dump uses.
    pub sizes: Vec<(String, u64)>,
    /// More facts for `source_meta` (SQLite: `user_version`, `application_id`).
    pub extra: Vec<(String, String)>,
}
