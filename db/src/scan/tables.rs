//! The tables a dump names, in order of first appearance, with their row counts; and how
//! much of a line or name the scanners keep.

use std::collections::HashMap;

/// The most bytes kept of the start of a line (PostgreSQL) or of a name (MySQL, SQLite).
/// A longer table name is cut to this length.
pub(super) const MAX_PREFIX: usize = 4096;

/// Tables in order of first appearance.
#[derive(Debug, Default)]
pub(super) struct Tables {
    pub(super) counts: Vec<(String, u64)>,
    index: HashMap<String, usize>,
}

impl Tables {
    /// The table's position, recording it with no rows when it is new.
    pub(super) fn get(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.counts.push((name.to_string(), 0));
        self.index.insert(name.to_string(), self.counts.len() - 1);
        self.counts.len() - 1
    }

    pub(super) fn add_row(&mut self, table: usize) {
        let rows = &mut self.counts[table].1;
        *rows = rows.saturating_add(1);
    }
}
