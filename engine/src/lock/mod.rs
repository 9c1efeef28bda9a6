//! Repository locks. Backup, restore and check take shared locks; prune, forget and the
//! commands that replace snapshots or keys a prune lock (one at a time, beside shared ones);
//! repair an exclusive one. Every lock carries a session id, which a prune's seal records
//! (spec/prune.md). A held lock is refreshed in the background (a new lock file with the
//! current time, then the old one is deleted; a reader that finds a listed lock gone lists
//! again, so that a refresh never hides a live holder).
//!
//! # When a lock is stale
//! A lock is stale, and removed by whoever finds it, in two cases only:
//! - **its process is gone, for certain**: the lock was written on this kernel (same boot
//!   id) in this PID namespace (same namespace inode), and its pid no longer runs or now
//!   belongs to a process that started at another time ([`identity`]). A host name proves
//!   none of this: two containers, two cloned VMs or a pod and its node may share one.
//! - **it expired**: it has not been refreshed for [`LockTiming::stale_after`] plus
//!   [`LockTiming::clock_skew`] by this machine's clock. Holders refresh every
//!   [`LockTiming::refresh_every`], so a live holder's lock never gets that old unless its
//!   clock is off by more than the allowance, or it stopped (suspended, hung, cut off).
//!
//! Anything else (another namespace, another boot, a version 1 lock without an identity)
//! blocks until it expires; `strata unlock --remove-all` removes it sooner.
//!
//! # A holder never trusts that its lock is still there
//! Removing a lock wrongly (a clock far off, `unlock --remove-all`, an older Strata) should
//! cost at most the holder's own run. So:
//! - the refresher checks that the current lock file still exists before it writes the
//!   next one; if it is gone the lock is *lost*, and it is not written again;
//! - before a holder writes an index file or a snapshot, it checks that its lock is not
//!   lost and still exists ([`LockSlot::before_write`]), and fails with [`EngineError::Locked`] if
//!   not: the packs it wrote stay unreferenced, for prune to remove;
//! - a prune counts a lock it removed as expired as live for the rest of its run, so the
//!   holder gets until a later prune to notice;
//! - before the first delete of a prune or exclusive holder, it lists the locks again
//!   ([`before_delete`]): a conflicting lock that appeared since it judged them (a writer
//!   that raced it) stops it before anything is deleted.
//!
//! This is a lease without fencing: a holder paused between its check and its write for
//! longer than the expiry (45 minutes), or whose clock is more than the allowance behind,
//! can still write a snapshot after a prune deleted what it names. `check` finds that.

mod acquire;
mod checks;
mod guard;
mod identity;
mod judge;
mod timing;
mod unlock;

pub use acquire::{lock, lock_for, lock_kind, lock_with};
pub(crate) use checks::{before_delete, other_sessions};
pub use guard::LockGuard;
pub(crate) use guard::LockSlot;
pub use identity::this_process;
pub use timing::LockTiming;
pub use unlock::{unlock, unlock_with, UnlockedLock};
