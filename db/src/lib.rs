//! Strata databases: PostgreSQL (`pg_dump`), MySQL/MariaDB (`mysqldump`) and SQLite
//! (`sqlite3 .dump`), backed up as one plain SQL stream each; restores into a database; and
//! restore tests in a scratch database. Built on the engine's public API only.
//!
//! A dump streams from the tool's standard output through a row counter ([`scan`]) into the
//! archiver, chunked with the repository's database chunker (small chunks, so a night's
//! scattered row changes touch few of them). The snapshot is written only after the tool
//! exited successfully; a failed tool fails the backup with its message and leaves no
//! snapshot (the blobs already stored are garbage for `prune`).
//!
//! What the snapshot records (`source_meta`): `database`, `server`, `server_version`,
//! `dump_tool`, `chunker`, `tables` (how many), and per table `rows:<table>` (rows in the
//! dump, counted as it streamed) and, where the server reports it, `bytes:<table>`.
//! Connections for metadata, checks and restore tests use sqlx; passwords are kept apart
//! from URLs ([`Server`]) and never reach a command line (they go to the tools through
//! their environment) nor the snapshot.
//!
//! # Layout
//! The operations ([`backup_database`], [`restore_database`], [`restore_test`]) are
//! written once against the [`Dialect`] trait; `postgres`, `mysql` and `sqlite` implement
//! it. The parts they share have modules of their own, which the dialects import: URLs and
//! redaction (`server`), what the server reports (`info`), checks and row counts (`check`),
//! SQL identifiers (`ident`), errors (`error`). No module imports this one.
//!
//! [`wal`] stands apart: pure parsers of PostgreSQL's WAL file names, segment headers,
//! timeline histories and `pg_control`, for point-in-time recovery (#18).

mod backup;
pub mod basebackup;
mod check;
mod child;
mod database;
mod dialect;
mod error;
mod ident;
mod info;
mod load;
mod mysql;
pub mod pitr_status;
mod postgres;
mod prefixed;
mod restore;
pub mod scan;
mod server;
mod snapshot;
mod sqlite;
mod verify;
pub mod wal;

pub use backup::{backup_database, backup_database_with};
pub use check::{Check, TableCheck};
pub use child::{check_prefix, is_ssh, prefixed, ToolOptions};
pub use database::Database;
pub use dialect::{Dialect, LoadFilter, RunSql, ToolSql, Tools, Unfiltered};
pub use error::{DbError, ErrorKind, Result};
pub use info::ServerInfo;
pub use restore::{restore_database, DbRestoreReport};
pub use server::{DbPassword, Server};
pub use snapshot::{dump_node, is_database, kind_name, meta, recorded_rows};
pub use verify::{restore_test, RestoreTestReport};
