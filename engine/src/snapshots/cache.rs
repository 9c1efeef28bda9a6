//! Decoded snapshots kept between listings, for a process that lists one repository's
//! snapshots again and again (the server: every page that shows snapshots lists them).
//!
//! A snapshot file is named by the hash of its stored bytes and never changes under its
//! name (a rewrite writes a new file and deletes the old one), so a file once read, verified
//! and decoded stays true for as long as its name is listed. Each listing therefore costs
//! one LIST request plus a read of the files not seen before; files no longer listed are
//! dropped. An unreadable file is never kept: it is read again next time (it may have been
//! a passing storage error), and skipped with a warning as [`super::list_readable`] does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use strata_format::envelope::EncryptedObject;
use strata_format::id::{RepoId, SnapshotId};
use strata_format::snapshot::SnapshotFile;
use strata_storage::FileType;

use crate::{EngineError, Repository, Result};

/// The readable snapshots of one repository, oldest first (as [`super::list_readable`]
/// orders them), shared by whoever asked for the same listing.
pub type SnapshotList = Arc<Vec<(SnapshotId, SnapshotFile)>>;

/// A cache of one repository's decoded snapshots. Share one per repository; a cache
/// handed another repository (another repository id) starts over.
#[derive(Default)]
pub struct SnapshotCache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    repo: Option<RepoId>,
    /// Decoded snapshots by file name.
    files: HashMap<String, SnapshotFile>,
    /// The last list built from `files`, with the sorted names it was built from; handed
    /// out again while the listing is the same.
    built: Option<(Vec<String>, SnapshotList)>,
}

/// How a listing went: how many files it read and how many it found unreadable (for
/// tests and logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refresh {
    pub read: usize,
    pub unreadable: usize,
}

impl SnapshotCache {
    /// Every readable snapshot of `repo`, oldest first; unreadable ones are skipped with a
    /// warning. Reads only the snapshot files this cache has not decoded before.
    pub fn list_readable(&self, repo: &Repository) -> Result<SnapshotList> {
        Ok(self.list_counted(repo)?.0)
    }

    /// [`SnapshotCache::list_readable`], also saying what the listing had to read.
    pub fn list_counted(&self, repo: &Repository) -> Result<(SnapshotList, Refresh)> {
        let mut listed = repo.list_objects(FileType::Snapshot)?;
        listed.sort();
        let names: Vec<String> = listed.iter().map(|(n, _)| n.clone()).collect();
        // Held across the reads: a second request for the same listing waits for the first
        // one's reads instead of repeating them.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let repo_id = repo.config().repo_id;
        if state.repo != Some(repo_id) {
            *state = State {
                repo: Some(repo_id),
                ..State::default()
            };
        }
        if let Some((built_from, list)) = &state.built {
            if *built_from == names {
                return Ok((list.clone(), Refresh::default()));
            }
        }
        let new: Vec<(String, u64)> = listed
            .iter()
            .filter(|(n, _)| !state.files.contains_key(n))
            .cloned()
            .collect();
        let reads = repo.read_many_listed(FileType::Snapshot, &new);
        let mut refresh = Refresh {
            read: new.len(),
            unreadable: 0,
        };
        for ((name, _), read) in new.iter().zip(reads) {
            let decoded = read.and_then(|b| {
                SnapshotFile::decode(repo.key(), &b)
                    .map_err(|e| EngineError::format(format!("snapshots/{name}"), e))
            });
            match decoded {
                Ok(s) => {
                    state.files.insert(name.clone(), s);
                }
                Err(e) => {
                    refresh.unreadable += 1;
                    tracing::warn!("skipping unreadable snapshot {name}: {e}");
                }
            }
        }
        let listed_names: std::collections::HashSet<&String> = names.iter().collect();
        state.files.retain(|n, _| listed_names.contains(n));
        let mut list: Vec<(SnapshotId, SnapshotFile)> = state
            .files
            .iter()
            .filter_map(|(name, s)| Some((name.parse::<SnapshotId>().ok()?, s.clone())))
            .collect();
        list.sort_by_key(|(id, s)| (s.time_ns, *id));
        let list = Arc::new(list);
        // A listing with an unreadable file is not kept as built: the next one tries it
        // again.
        state.built = (refresh.unreadable == 0).then(|| (names, list.clone()));
        Ok((list, refresh))
    }
}
