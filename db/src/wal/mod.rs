//! PostgreSQL write-ahead log files, parsed: the names `archive_command` and
//! `restore_command` get as `%f` ([`WalName`]), LSNs ([`Lsn`]), the long header on the first
//! page of every segment ([`SegmentHeader`]), timeline history files ([`History`]) and the
//! few fields of `global/pg_control` an archive must agree with ([`ControlFile`]).
//!
//! Pure parsing: nothing here reads a file except [`ControlFile::read`] (and
//! [`system_identifier`]), and nothing keeps state. Everything read from a file, a name or
//! the repository is untrusted: arbitrary input gives a [`WalError`], never a panic, and
//! names are strict (they become file names in `pg_wal` during a restore), so a name that
//! PostgreSQL would not write is refused.
//!
//! Byte order: PostgreSQL writes its WAL and `pg_control` in the server's native order; every
//! platform PostgreSQL runs on here (x86-64, aarch64) is little-endian, so both are read
//! little-endian. A big-endian cluster's files are refused as damaged (their header flags
//! and sizes do not make sense read this way) rather than misread.

mod control;
mod crc32c;
mod error;
mod header;
mod history;
mod lsn;
mod name;

pub use control::{system_identifier, ControlFile};
pub use error::WalError;
pub use header::{pg_major_of_magic, pg_major_of_version_num, SegmentHeader, LONG_HEADER_LEN};
pub use history::{History, HistoryEntry, MAX_HISTORY_LINES};
pub use lsn::Lsn;
pub use name::{SegmentName, SegmentSize, WalName};
