//! `tag`: adding, removing and replacing the tags of snapshots.
//!
//! A snapshot is named by the hash of its stored bytes, so a changed tag set is a new
//! snapshot file: it is written (durable) before the old one is deleted, and records the
//! old id in `original` and the change in `rewrites` (as a hold does; see
//! [`crate::snapshots::rewrite`]). Everything else — time, tree, hold — stays as it was.

use serde::Serialize;
use strata_format::id::SnapshotId;
use strata_format::snapshot::SnapshotFile;

use crate::{EngineError, Repository, Result};

/// How to change the tags (restic's `tag`): `set` replaces them all; otherwise `add` then
/// `remove` are applied.
#[derive(Debug, Clone, Default)]
pub struct TagChange {
    pub set: Option<Vec<String>>,
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

impl TagChange {
    /// Refuses a change that says nothing, or `set` together with `add`/`remove`, or an
    /// empty tag.
    pub fn validate(&self) -> Result<()> {
        if self.set.is_none() && self.add.is_empty() && self.remove.is_empty() {
            return Err(EngineError::Invalid(
                "say which tags to change: --add, --remove or --set".into(),
            ));
        }
        if self.set.is_some() && !(self.add.is_empty() && self.remove.is_empty()) {
            return Err(EngineError::Invalid(
                "--set replaces every tag: give it alone, without --add or --remove".into(),
            ));
        }
        let mut all = self
            .set
            .iter()
            .flatten()
            .chain(&self.add)
            .chain(&self.remove);
        if all.any(|t| t.is_empty()) {
            return Err(EngineError::Invalid("a tag cannot be empty".into()));
        }
        Ok(())
    }

    /// The tags after the change (order kept, each once).
    pub fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let start = self.set.as_deref().unwrap_or(tags);
        for t in start.iter().chain(&self.add) {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out.retain(|t| !self.remove.contains(t));
        out
    }

    /// "tags set to a, b", "tags: added a; removed b", for the rewrite record.
    fn describe(&self) -> String {
        if let Some(set) = &self.set {
            return format!("tags set to [{}]", set.join(", "));
        }
        let mut parts = Vec::new();
        if !self.add.is_empty() {
            parts.push(format!("added [{}]", self.add.join(", ")));
        }
        if !self.remove.is_empty() {
            parts.push(format!("removed [{}]", self.remove.join(", ")));
        }
        format!("tags {}", parts.join(", "))
    }
}

/// What `tag` did to one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct TagOutcome {
    pub id: SnapshotId,
    /// The snapshot's id afterwards (the same when its tags did not change).
    pub new_id: SnapshotId,
    pub tags: Vec<String>,
    pub changed: bool,
}

/// Changes the tags of `snapshots` (repository under an exclusive lock). Each changed one
/// is written anew and then its old file deleted, one after the other.
pub fn tag(
    repo: &Repository,
    snapshots: &[(SnapshotId, SnapshotFile)],
    change: &TagChange,
) -> Result<Vec<TagOutcome>> {
    change.validate()?;
    let mut out = Vec::new();
    for (id, snap) in snapshots {
        let tags = change.apply(&snap.tags);
        let new_id = crate::snapshots::rewrite(repo, id, snap, change.describe(), |s| {
            s.tags = tags.clone()
        })?;
        out.push(TagOutcome {
            id: *id,
            new_id,
            changed: new_id != *id,
            tags,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn add_remove_and_set_follow_restic() {
        let add = TagChange {
            add: v(&["b", "c", "b"]),
            ..Default::default()
        };
        assert_eq!(add.apply(&v(&["a", "b"])), v(&["a", "b", "c"]));
        let both = TagChange {
            add: v(&["c"]),
            remove: v(&["a", "z"]),
            ..Default::default()
        };
        assert_eq!(both.apply(&v(&["a", "b"])), v(&["b", "c"]));
        let set = TagChange {
            set: Some(v(&["x"])),
            ..Default::default()
        };
        assert_eq!(set.apply(&v(&["a", "b"])), v(&["x"]));
        let clear = TagChange {
            set: Some(Vec::new()),
            ..Default::default()
        };
        assert_eq!(clear.apply(&v(&["a"])), Vec::<String>::new());
        assert!(clear.validate().is_ok());
        assert!(TagChange::default().validate().is_err());
        let mixed = TagChange {
            set: Some(v(&["x"])),
            add: v(&["y"]),
            ..Default::default()
        };
        assert!(mixed.validate().is_err());
    }
}
