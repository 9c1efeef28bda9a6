//! What a prune or exclusive holder checks before it deletes anything, and the sessions a
//! prune seals its marks with.

use std::time::Duration;

use super::guard::{released, Registration};
use super::judge::{check_conflicts, judge_locks};
use crate::{EngineError, Repository, Result};
use strata_format::lock::LockKind;

/// The sessions of the other live locks, listed now (stale ones removed, sorted): what a
/// prune seals a mark with, and compares seals against (spec/prune.md). Fails if a lock
/// that conflicts with this handle's has appeared, or if this handle's lock is lost. A
/// handle without a lock (tests) gets every live lock's session.
///
/// A lock removed now because it expired counts as live for this run: its holder may be
/// running still (a clock far off, a pause), and only learns at its next check that its
/// lock is gone (spec/prune.md).
pub(crate) fn other_sessions(repo: &Repository) -> Result<Vec<[u8; 16]>> {
    let judged = match repo.lock_slot().get() {
        Registration::None => judge_locks(
            repo,
            LockKind::Shared,
            None,
            &super::timing::LockTiming::default(),
        )?,
        Registration::Released => return Err(released()),
        Registration::Held(holder) => {
            holder.verify()?;
            let held = holder.held();
            judge_locks(repo, held.lock.kind, Some(&held.id), &holder.timing)?
        }
    };
    let mut sessions = judged.live;
    sessions.extend(judged.expired);
    sessions.sort_unstable();
    sessions.dedup();
    Ok(sessions)
}

/// Checks, before a delete, that this handle's lock is still held and, if it is exclusive,
/// that it is the only lock: a lock that appeared after the holder judged the others (a
/// live writer's) stops the delete. Stale locks found now are removed. Handles that never
/// took a lock are not checked.
pub(crate) fn before_delete(repo: &Repository) -> Result<()> {
    let holder = match repo.lock_slot().get() {
        Registration::None => return Ok(()),
        Registration::Released => return Err(released()),
        Registration::Held(h) => h,
    };
    holder.verify()?;
    let kind = holder.kind();
    if kind == LockKind::Shared {
        // A shared holder deletes only what it replaced itself (a snapshot rewritten by
        // `copy` to carry a hold): nothing another process may need.
        return Ok(());
    }
    // A writer that raced the exclusive lock removes its own lock as soon as it sees ours
    // (a backup writes its shared lock before it looks: its write, list and delete cost
    // several round trips over a slow link); give it that long before calling the
    // repository busy.
    let deadline = std::time::Instant::now() + RACER_GRACE;
    let mut pause = Duration::from_millis(100);
    loop {
        // Held while the locks are listed, so that the refresher cannot replace ours with
        // a file this check would take for another's.
        let conflicts = {
            let held = holder.held();
            check_conflicts(repo, kind, Some(&held.id), &holder.timing).map(drop)
        };
        match conflicts {
            Ok(()) => return Ok(()),
            Err(EngineError::Locked { message, holder })
                if std::time::Instant::now() >= deadline =>
            {
                return Err(EngineError::Locked {
                    message: format!(
                        "{message} (a lock appeared after this command took its own; nothing \
                         was deleted)"
                    ),
                    holder,
                })
            }
            Err(EngineError::Locked { .. }) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// How long an exclusive holder waits, before its first delete, for a lock that appeared
/// after its own to go (a racing writer's), before it gives up and deletes nothing.
const RACER_GRACE: Duration = Duration::from_secs(10);
