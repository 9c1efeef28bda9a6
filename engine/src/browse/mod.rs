//! Browsing history without restoring it: which snapshots hold a path (`find`), what
//! changed between two snapshots (`diff`), and what a snapshot holds and costs (`stats`).
//!
//! All three read trees only (never file content), and lean on content addressing: a
//! subtree with the same id is the same in every snapshot, so `find` and `stats` walk it
//! once and `diff` skips it without opening it.

mod diff;
mod find;
mod stats;

pub use diff::{diff, Change, DiffStats, Difference};
pub use find::{find, Entry, FindQuery, FindResult};
pub use stats::{stats, stats_with_tree_budget, SnapshotStats};
