//! Repository locks. Backup, restore and check take shared locks; forget, prune and repair
//! take an exclusive one. A held lock is refreshed in the background (a new lock file with
//! the current time, then the old one is deleted).
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
//! Removing a lock wrongly (a clock far off, `unlock --remove-all`, an older Strata) must
//! cost at most the holder's own run, never data a snapshot names. So:
//! - the refresher checks that the current lock file still exists before it writes the
//!   next one; if it is gone the lock is *lost*, and it is not written again;
//! - before a holder writes an index file or a snapshot, it checks that its lock is not
//!   lost and still exists ([`before_write`]), and fails with [`EngineError::Locked`] if
//!   not: the packs it wrote stay unreferenced, for prune to remove;
//! - before the first delete of an exclusive holder (prune, forget, repair), it lists the
//!   locks again ([`before_delete`]): a lock that appeared since it judged them (a
//!   backup whose lock reappeared with a refresh, a writer that raced it) stops it before
//!   anything is deleted.

mod identity;

pub use identity::this_process;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{bounded, Sender};
use strata_format::crypto::MasterKey;
use strata_format::envelope::EncryptedObject;
use strata_format::id::{Digest, LockId};
use strata_format::lock::LockFile;
use strata_format::FormatError;
use strata_storage::{Backend, FileType};

use crate::{EngineError, Repository, Result};

/// How often a held lock is refreshed, and when an unrefreshed one counts as expired.
#[derive(Debug, Clone, Copy)]
pub struct LockTiming {
    pub refresh_every: Duration,
    /// A holder that has not refreshed its lock for this long (by its own clock) counts
    /// its lock as lost.
    pub stale_after: Duration,
    /// How far another host's clock may be behind this one's: a lock expires only when
    /// it is `stale_after + clock_skew` old by this clock.
    pub clock_skew: Duration,
}

impl Default for LockTiming {
    fn default() -> Self {
        LockTiming {
            refresh_every: Duration::from_secs(5 * 60),
            stale_after: Duration::from_secs(30 * 60),
            clock_skew: Duration::from_secs(15 * 60),
        }
    }
}

/// The lock file a holder has now, and whether it still holds it.
struct Held {
    id: LockId,
    lock: LockFile,
    /// Why the lock is no longer held, once it is not.
    lost: Option<String>,
}

/// What a lock guard needs after the repository handle that made it is gone.
pub(crate) struct Holder {
    backend: Arc<dyn Backend>,
    rt: crate::EngineRuntime,
    key: MasterKey,
    timing: LockTiming,
    held: Mutex<Held>,
}

impl Holder {
    fn write(&self, lock: &LockFile) -> Result<LockId> {
        let bytes = lock.encode(&self.key, &mut rand::thread_rng());
        let id = LockId(Digest::of_stored(&bytes));
        self.rt.block_on(
            self.backend
                .write(FileType::Lock, &id.to_hex(), Bytes::from(bytes)),
        )?;
        Ok(id)
    }

    fn delete(&self, id: &LockId) -> Result<()> {
        Ok(self
            .rt
            .block_on(self.backend.delete(FileType::Lock, &id.to_hex()))?)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().expect("no panics while locked")
    }

    fn is_exclusive(&self) -> bool {
        self.held().lock.exclusive
    }

    fn lost_error(lock: &LockFile, id: &LockId, why: &str) -> EngineError {
        EngineError::Locked(format!(
            "the {} lock of this `{}` (locks/{}) {why}; stopped before writing anything that \
             could name data another process may delete: run it again",
            if lock.exclusive {
                "exclusive"
            } else {
                "shared"
            },
            lock.operation,
            id.short()
        ))
    }

    /// Fails if the lock is lost; marks it lost if its file is gone, or if it went
    /// unrefreshed for so long that others may have removed it as expired.
    fn check(&self, held: &mut Held) -> Result<()> {
        if let Some(why) = &held.lost {
            return Err(Self::lost_error(&held.lock, &held.id, why));
        }
        let unrefreshed = crate::now_ns().saturating_sub(held.lock.time_ns);
        let why = if unrefreshed > self.timing.stale_after.as_nanos() as i64 {
            Some(format!(
                "was not refreshed for {} (by this clock): others may have removed it as expired",
                humanize_secs(unrefreshed / 1_000_000_000)
            ))
        } else {
            match self
                .rt
                .block_on(self.backend.stat(FileType::Lock, &held.id.to_hex()))?
            {
                Some(_) => None,
                None => Some(
                    "was removed by another process (`strata unlock`, or one that judged it stale)"
                        .to_string(),
                ),
            }
        };
        match why {
            None => Ok(()),
            Some(why) => {
                tracing::warn!("{}", Self::lost_error(&held.lock, &held.id, &why));
                let err = Self::lost_error(&held.lock, &held.id, &why);
                held.lost = Some(why);
                Err(err)
            }
        }
    }

    /// Writes a lock file with the current time, then removes the previous one; never
    /// writes one again once the lock is lost.
    fn refresh(&self) -> Result<()> {
        let mut held = self.held();
        self.check(&mut held)?;
        let mut next = held.lock.clone();
        next.time_ns = crate::now_ns();
        let new = self.write(&next)?;
        // The old file may have been removed while the new one was written (a slow write):
        // then the lock was lost before the new file existed, and others may have acted on
        // its absence. The new file goes, and the lock stays lost.
        if let Err(e) = self.check(&mut held) {
            let _ = self.delete(&new);
            return Err(e);
        }
        let old = std::mem::replace(&mut held.id, new);
        held.lock = next;
        self.delete(&old)
    }

    /// Checks that the lock is still held, refreshing it first if a refresh is due (a
    /// long write that follows gets the whole expiry time).
    fn verify(&self) -> Result<()> {
        let due = {
            let mut held = self.held();
            self.check(&mut held)?;
            crate::now_ns().saturating_sub(held.lock.time_ns)
                > self.timing.refresh_every.as_nanos() as i64
        };
        if due {
            self.refresh()?;
        }
        Ok(())
    }
}

/// A held lock: refreshed while held, removed from the repository when dropped. It does
/// not borrow the repository, so the repository may load its index after locking.
pub struct LockGuard {
    holder: Arc<Holder>,
    stop: Option<Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

impl LockGuard {
    /// The lock file currently held.
    pub fn id(&self) -> LockId {
        self.holder.held().id
    }

    /// Refreshes the lock now (the background thread also does it periodically). Fails
    /// with [`EngineError::Locked`] once the lock is lost.
    pub fn refresh(&self) -> Result<()> {
        self.holder.refresh()
    }

    /// Checks that the lock is still held (its file exists, and it was refreshed in time).
    pub fn verify(&self) -> Result<()> {
        self.holder.verify()
    }

    fn start_refresher(&mut self, every: Duration) {
        let (tx, rx) = bounded::<()>(0);
        let holder = self.holder.clone();
        let handle = std::thread::Builder::new()
            .name("lock refresh".into())
            .spawn(move || {
                // Ends when the guard drops the sender, or when the lock is lost.
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = rx.recv_timeout(every)
                {
                    match holder.refresh() {
                        Ok(()) => {}
                        // Reported when it was found; the holder's next write fails.
                        Err(EngineError::Locked(_)) => break,
                        Err(e) => tracing::warn!("could not refresh the repository lock: {e}"),
                    }
                }
            });
        match handle {
            Ok(h) => {
                self.stop = Some(tx);
                self.refresher = Some(h);
            }
            Err(e) => tracing::warn!("cannot start the lock refresher: {e}"),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
        let held = self.holder.held();
        // A lost lock's file is gone, or belongs to whoever may judge it now.
        if held.lost.is_none() {
            if let Err(e) = self.holder.delete(&held.id) {
                tracing::warn!("could not remove lock {}: {e}", held.id);
            }
        }
    }
}

/// Checks, before a repository write that names data (an index file or a snapshot), that
/// the lock this repository handle took is still held. Handles that never took a lock
/// (tests, `init`) are not checked.
pub(crate) fn before_write(repo: &Repository) -> Result<()> {
    match registered(repo) {
        Registration::None => Ok(()),
        Registration::Released => Err(released()),
        Registration::Held(h) => h.verify(),
    }
}

/// Checks, before a delete, that this handle's lock is still held and, if it is exclusive,
/// that it is the only lock: a lock that appeared after the holder judged the others (a
/// live writer's) stops the delete. Stale locks found now are removed. Handles that never
/// took a lock are not checked.
pub(crate) fn before_delete(repo: &Repository) -> Result<()> {
    let holder = match registered(repo) {
        Registration::None => return Ok(()),
        Registration::Released => return Err(released()),
        Registration::Held(h) => h,
    };
    holder.verify()?;
    if !holder.is_exclusive() {
        // A shared holder deletes only what it replaced itself (a snapshot rewritten by
        // `copy` to carry a hold): nothing another process may need.
        return Ok(());
    }
    // A writer that raced the exclusive lock removes its own lock as soon as it sees ours;
    // give it a moment before calling the repository busy.
    let mut pause = Duration::from_millis(100);
    for attempt in 0..5 {
        // Held while the locks are listed, so that the refresher cannot replace ours with
        // a file this check would take for another's.
        let conflicts = {
            let held = holder.held();
            check_conflicts(repo, true, Some(&held.id), &holder.timing)
        };
        match conflicts {
            Ok(()) => return Ok(()),
            Err(EngineError::Locked(msg)) if attempt == 4 => {
                return Err(EngineError::Locked(format!(
                    "{msg} (a lock appeared after this command took its own; nothing was deleted)"
                )))
            }
            Err(EngineError::Locked(_)) => {
                std::thread::sleep(pause);
                pause *= 2;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

enum Registration {
    /// This handle never took a lock.
    None,
    /// It took one and dropped it.
    Released,
    Held(Arc<Holder>),
}

fn registered(repo: &Repository) -> Registration {
    match &*repo.lock_slot().lock().expect("no panics while locked") {
        None => Registration::None,
        Some(weak) => weak
            .upgrade()
            .map_or(Registration::Released, Registration::Held),
    }
}

fn released() -> EngineError {
    EngineError::Locked(
        "internal error: this command released its repository lock before writing".into(),
    )
}

fn describe(l: &LockFile) -> String {
    let kind = if l.exclusive { "exclusive" } else { "shared" };
    let age = crate::now_ns().saturating_sub(l.time_ns).max(0) / 1_000_000_000;
    format!(
        "{kind} lock of `{}` by {}@{} (pid {}), last refreshed {} ago",
        l.operation,
        l.username,
        l.hostname,
        l.pid,
        humanize_secs(age)
    )
}

fn humanize_secs(s: i64) -> String {
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Why a lock is stale, if it is (see the module docs).
fn staleness(l: &LockFile, timing: &LockTiming) -> Option<String> {
    if let Some(why) = identity::certainly_gone(l.pid, l.process.as_ref()) {
        return Some(why.to_string());
    }
    let age = crate::now_ns().saturating_sub(l.time_ns);
    let expiry = timing.stale_after + timing.clock_skew;
    (age > expiry.as_nanos() as i64).then(|| {
        format!(
            "it expired: not refreshed for over {} (holders refresh every {}; {} of it allow \
             for clocks that differ)",
            humanize_secs(expiry.as_secs() as i64),
            humanize_secs(timing.refresh_every.as_secs() as i64),
            humanize_secs(timing.clock_skew.as_secs() as i64),
        )
    })
}

/// Takes the lock `op` needs (none for some: see [`crate::Operation`]), retrying for up to
/// `wait` while a conflicting lock is held. An operation that only reads goes on without
/// a lock, with a warning, when none can be written (a read-only medium, read-only
/// credentials, a full disk): a prune running at the same time is then not excluded.
pub fn lock_for(
    repo: &Repository,
    op: crate::Operation,
    wait: Duration,
) -> Result<Option<LockGuard>> {
    use crate::LockMode;
    let exclusive = match op.lock() {
        LockMode::None => return Ok(None),
        LockMode::Exclusive => true,
        LockMode::Read | LockMode::Shared => false,
    };
    match lock_with(repo, op.name(), exclusive, wait, LockTiming::default()) {
        Ok(g) => Ok(Some(g)),
        Err(EngineError::Storage(e))
            if op.lock() == LockMode::Read && e.kind != strata_storage::ErrorKind::Transient =>
        {
            tracing::warn!(
                "cannot lock the repository ({e}); reading it without a lock: a prune running \
                 at the same time is not excluded (--no-lock skips the attempt)"
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Takes a lock for `operation`. Fails with `Locked` when a conflicting live lock exists.
pub fn lock(repo: &Repository, operation: &str, exclusive: bool) -> Result<LockGuard> {
    lock_with(
        repo,
        operation,
        exclusive,
        Duration::ZERO,
        LockTiming::default(),
    )
}

/// Takes a lock, retrying for up to `wait` while a conflicting lock is held.
pub fn lock_with(
    repo: &Repository,
    operation: &str,
    exclusive: bool,
    wait: Duration,
    timing: LockTiming,
) -> Result<LockGuard> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(200);
    loop {
        match try_lock(repo, operation, exclusive, &timing) {
            Err(EngineError::Locked(msg)) if Instant::now() < deadline => {
                tracing::info!("waiting for the lock: {msg}");
                // Jitter, so that two waiters do not keep colliding.
                let jitter = Duration::from_millis(rand::random::<u64>() % 200);
                std::thread::sleep((pause + jitter).min(deadline - Instant::now()));
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

fn try_lock(
    repo: &Repository,
    operation: &str,
    exclusive: bool,
    timing: &LockTiming,
) -> Result<LockGuard> {
    check_conflicts(repo, exclusive, None, timing)?;
    let mine = LockFile {
        exclusive,
        hostname: crate::hostname(),
        username: crate::username(),
        pid: std::process::id(),
        time_ns: crate::now_ns(),
        operation: operation.to_string(),
        process: Some(identity::this_process().clone()),
    };
    let holder = Holder {
        backend: repo.backend().clone(),
        rt: repo.runtime().clone(),
        key: repo.key().clone(),
        timing: *timing,
        held: Mutex::new(Held {
            id: LockId::default(),
            lock: mine.clone(),
            lost: None,
        }),
    };
    let id = holder.write(&mine)?;
    holder.held().id = id;
    let mut guard = LockGuard {
        holder: Arc::new(holder),
        stop: None,
        refresher: None,
    };
    // Another process may have locked between our check and our write: check again (the
    // guard removes our lock file if we lose).
    check_conflicts(repo, exclusive, Some(&id), timing)?;
    guard.start_refresher(timing.refresh_every);
    *repo.lock_slot().lock().expect("no panics while locked") = Some(Arc::downgrade(&guard.holder));
    Ok(guard)
}

/// Reads every lock but `mine`: removes the stale ones, and fails with `Locked` on the
/// first that conflicts with a lock of the kind asked for.
fn check_conflicts(
    repo: &Repository,
    exclusive: bool,
    mine: Option<&LockId>,
    timing: &LockTiming,
) -> Result<()> {
    for (name, size) in repo.block_on(repo.backend().list(FileType::Lock))? {
        if mine.is_some_and(|m| m.to_hex() == name)
            || crate::repository::check_size(FileType::Lock, &name, size).is_err()
        {
            continue;
        }
        let bytes = match read_lock(repo, &name)? {
            Some(b) => b,
            None => continue,
        };
        let other = match LockFile::decode(repo.key(), &bytes) {
            Ok(l) => l,
            // A newer Strata's lock: who holds it and how cannot be told, so it is live
            // and conflicts with everything.
            Err(FormatError::UnknownVersion { found, .. }) => {
                return Err(EngineError::Locked(format!(
                    "repository is locked by a newer Strata (lock version {found}, \
                     locks/{name}); upgrade strata on this host, or wait for it to finish"
                )))
            }
            Err(e) => {
                tracing::warn!("ignoring undecodable lock locks/{name}: {e}");
                continue;
            }
        };
        if let Some(why) = staleness(&other, timing) {
            tracing::warn!(
                "removing stale lock locks/{name} ({why}): {}",
                describe(&other)
            );
            repo.block_on(repo.backend().delete(FileType::Lock, &name))?;
            continue;
        }
        if exclusive || other.exclusive {
            return Err(EngineError::Locked(format!(
                "repository is locked: {}; wait for it to finish, or retry with --retry-lock \
                 (if that process is gone, `strata unlock --remove-all` removes the lock; \
                 otherwise it expires {} after its last refresh)",
                describe(&other),
                humanize_secs((timing.stale_after + timing.clock_skew).as_secs() as i64)
            )));
        }
    }
    Ok(())
}

/// Reads a lock file: `None` when it is gone (removed meanwhile) or damaged (a live holder
/// finds it still there, and replaces it at its next refresh). Any other failure is an
/// error: a lock that cannot be read might be live, so nothing may proceed as if it were
/// not there.
fn read_lock(repo: &Repository, name: &str) -> Result<Option<bytes::Bytes>> {
    match repo.read_verified(FileType::Lock, name) {
        Ok(b) => Ok(Some(b)),
        Err(EngineError::Storage(e)) if e.kind == strata_storage::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == crate::ErrorKind::Corrupt => {
            tracing::warn!("ignoring damaged lock locks/{name}: {e}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

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
        let read = match crate::repository::check_size(FileType::Lock, &name, size) {
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
