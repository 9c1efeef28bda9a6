//! `unlock`: removing stale locks, or every lock.

use strata_format::envelope::EncryptedObject;
use strata_format::lock::LockFile;
use strata_format::FormatError;
use strata_storage::FileType;

use super::judge::{describe, read_lock, staleness};
use super::timing::LockTiming;
use crate::{Repository, Result};

/// What `unlock` did with one lock.
#[derive(Debug, Clone)]
pub struct UnlockedLock {
    pub name: String,
    pub description: String,
    pub removed: bool,
}

/// Removes stale locks (see the module docs) and damaged ones, or every lock with `all`.
/// Reports each lock found and whether it was removed.
pub fn unlock(repo: &Repository, all: bool) -> Result<Vec<UnlockedLock>> {
    unlock_with(repo, all, LockTiming::default())
}

/// [`unlock`] with a given expiry time.
pub fn unlock_with(repo: &Repository, all: bool, timing: LockTiming) -> Result<Vec<UnlockedLock>> {
    let mut out = Vec::new();
    for (name, size) in repo.block_on(repo.backend().list(FileType::Lock))? {
        // Unreadable for a reason other than damage: it may be live; keep it (unless all).
        let read = match crate::stored::check_size(FileType::Lock, &name, size) {
            Ok(()) => match read_lock(repo, &name) {
                Ok(r) => r,
                Err(e) if !all => {
                    out.push(UnlockedLock {
                        name,
                        description: format!("lock that could not be read ({e})"),
                        removed: false,
                    });
                    continue;
                }
                Err(_) => None,
            },
            Err(_) => None,
        };
        let (description, stale) = match read.map(|b| LockFile::decode(repo.key(), &b)) {
            Some(Ok(l)) => {
                let why = staleness(&l, &timing);
                let mut d = describe(&l);
                if let Some(why) = &why {
                    d.push_str(&format!(" (stale: {why})"));
                }
                (d, why.is_some())
            }
            Some(Err(FormatError::UnknownVersion { found, .. })) => {
                (format!("lock of a newer Strata (version {found})"), false)
            }
            Some(Err(_)) | None => ("unreadable lock".to_string(), true),
        };
        let removed = all || stale;
        if removed {
            repo.block_on(repo.backend().delete(FileType::Lock, &name))?;
        }
        out.push(UnlockedLock {
            name,
            description,
            removed,
        });
    }
    Ok(out)
}
