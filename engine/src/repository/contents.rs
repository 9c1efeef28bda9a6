//! What a location holds of a repository, and the errors that tell a user so when a
//! repository cannot be created or opened there.

use strata_storage::{Backend, ErrorKind as StorageKind, FileType};

use crate::{EngineError, Result};

/// What a location holds of a repository (counts of listed objects).
#[derive(Debug, Default)]
pub(super) struct Contents {
    pub config: bool,
    pub keys: usize,
    pub packs: usize,
    pub index_files: usize,
    pub snapshots: usize,
}

impl Contents {
    /// Lists what is there (a missing root is an empty location).
    pub(super) async fn survey(backend: &dyn Backend) -> Result<Contents> {
        let count = |ft| async move {
            match backend.list(ft).await {
                Ok(l) => Ok(l.len()),
                Err(e) if e.kind == StorageKind::NotFound => Ok(0),
                Err(e) => Err(EngineError::from(e)),
            }
        };
        Ok(Contents {
            config: match backend.stat(FileType::Config, "").await {
                Ok(s) => s.is_some(),
                Err(e) if e.kind == StorageKind::NotFound => false,
                Err(e) => return Err(e.into()),
            },
            keys: count(FileType::Key).await?,
            packs: count(FileType::Pack).await?,
            index_files: count(FileType::Index).await?,
            snapshots: count(FileType::Snapshot).await?,
        })
    }

    pub(super) fn is_empty(&self) -> bool {
        !self.config && self.keys + self.packs + self.index_files + self.snapshots == 0
    }

    /// "a config, 2 key files, 14 packs, 3 index files and 3 snapshots".
    pub(super) fn describe(&self) -> String {
        let plural = |n: usize, one: &str| match n {
            1 => format!("1 {one}"),
            n => format!("{n} {one}s"),
        };
        let mut parts = Vec::new();
        if self.config {
            parts.push("a config".to_string());
        }
        for (n, what) in [
            (self.keys, "key file"),
            (self.packs, "pack"),
            (self.index_files, "index file"),
            (self.snapshots, "snapshot"),
        ] {
            if n > 0 {
                parts.push(plural(n, what));
            }
        }
        match parts.len() {
            0 => "nothing".to_string(),
            1 => parts.remove(0),
            n => {
                let last = parts.remove(n - 1);
                format!("{} and {last}", parts.join(", "))
            }
        }
    }
}

/// The error for a repository whose config is missing or unreadable while the rest of it
/// is there: never "no repository" (which invites `init`).
pub(super) fn config_lost(location: &str, what: &str, found: &Contents) -> EngineError {
    EngineError::Corrupt(format!(
        "the config of the repository at {location} {what}; the rest of it is still there \
         ({}). Restore the config with `strata repair config` (from the copy each key file \
         keeps); do not run `strata init` here",
        found.describe()
    ))
}

/// The error when no key file opens with the password: a wrong password, unless key files
/// were damaged (then one of them may have been the password's).
pub(super) fn no_key_opens(location: &str, damaged: &[String]) -> EngineError {
    if damaged.is_empty() {
        return EngineError::WrongPassword(location.to_string());
    }
    EngineError::Corrupt(format!(
        "no intact key file of {location} opens with this password, and {} damaged ({}): if \
         the password is right, its key file is among them; restore it from a copy of the \
         repository, or open with another password",
        if damaged.len() == 1 {
            "one is"
        } else {
            "some are"
        },
        damaged.join("; ")
    ))
}
