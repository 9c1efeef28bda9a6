//! What a database snapshot holds and records: one dump file at its root, and in
//! `source_meta` the database, server, tool, and every table with its row count
//! (`rows:<table>`), read back here for restore tests and reports.

use strata_engine::Repository;
use strata_format::snapshot::{SnapshotFile, SourceKind};
use strata_format::tree::{Node, NodeKind};

use crate::error::{DbError, Result};

/// Whether a snapshot holds a database dump.
pub fn is_database(snap: &SnapshotFile) -> bool {
    matches!(
        snap.source,
        SourceKind::Postgres | SourceKind::Mysql | SourceKind::Sqlite
    )
}

/// "postgres", "mysql", "sqlite", "files", "stdin".
pub fn kind_name(kind: &SourceKind) -> &'static str {
    match kind {
        SourceKind::Files => "files",
        SourceKind::Stdin { .. } => "stdin",
        SourceKind::Postgres => "postgres",
        SourceKind::Mysql => "mysql",
        SourceKind::Sqlite => "sqlite",
    }
}

/// The dump file of a database snapshot (the only file at its root; so is a standard
/// input snapshot's).
pub fn dump_node(repo: &Repository, snap: &SnapshotFile) -> Result<Node> {
    let tree = repo.load_tree(&snap.tree)?;
    let mut files = tree
        .nodes
        .into_iter()
        .filter(|n| matches!(n.kind, NodeKind::File { .. }));
    match (files.next(), files.next()) {
        (Some(node), None) => Ok(node),
        _ => Err(DbError::Invalid(
            "the snapshot does not hold exactly one dump file".into(),
        )),
    }
}

/// The value of a `source_meta` key.
pub fn meta<'a>(snap: &'a SnapshotFile, key: &str) -> Option<&'a str> {
    snap.source_meta
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The tables and row counts a database snapshot recorded.
pub fn recorded_rows(snap: &SnapshotFile) -> Vec<(String, Option<u64>)> {
    snap.source_meta
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("rows:")
                .map(|t| (t.to_string(), v.parse::<u64>().ok()))
        })
        .collect()
}

/// The name of the dump file in a database snapshot.
pub(crate) fn dump_file_name(database: &str) -> String {
    let clean: String = database
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    let clean = if clean.is_empty() || clean == "." || clean == ".." {
        "database".to_string()
    } else {
        clean
    };
    format!("{clean}.sql")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_names_are_plain_file_names() {
        assert_eq!(dump_file_name("app"), "app.sql");
        assert_eq!(dump_file_name("a/b"), "a_b.sql");
        assert_eq!(dump_file_name(".."), "database.sql");
    }
}
