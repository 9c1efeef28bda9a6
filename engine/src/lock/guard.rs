//! A held lock: its holder (what refreshing and checking it needs, also after the
//! repository handle that took it is gone), the guard that removes it, and the slot through
//! which the repository handle checks it before it writes.

use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{bounded, Sender};
use strata_format::crypto::MasterKey;
use strata_format::envelope::EncryptedObject;
use strata_format::id::{Digest, LockId};
use strata_format::lock::LockFile;
use strata_storage::{Backend, FileType};

use super::timing::{humanize_secs, LockTiming};
use crate::{EngineError, Result};

/// The lock file a holder has now, and whether it still holds it.
pub(super) struct Held {
    pub(super) id: LockId,
    pub(super) lock: LockFile,
    /// Why the lock is no longer held, once it is not.
    pub(super) lost: Option<String>,
}

/// What a lock guard needs after the repository handle that made it is gone.
pub(crate) struct Holder {
    pub(super) backend: Arc<dyn Backend>,
    pub(super) rt: crate::EngineRuntime,
    pub(super) key: MasterKey,
    pub(super) timing: LockTiming,
    pub(super) held: Mutex<Held>,
}

impl Holder {
    pub(super) fn write(&self, lock: &LockFile) -> Result<LockId> {
        let bytes = lock.encode(&self.key, &mut rand::thread_rng());
        let id = LockId(Digest::of_stored(&bytes));
        self.rt.block_on(
            self.backend
                .write(FileType::Lock, &id.to_hex(), Bytes::from(bytes)),
        )?;
        Ok(id)
    }

    pub(super) fn delete(&self, id: &LockId) -> Result<()> {
        Ok(self
            .rt
            .block_on(self.backend.delete(FileType::Lock, &id.to_hex()))?)
    }

    pub(super) fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().expect("no panics while locked")
    }

    pub(super) fn kind(&self) -> strata_format::lock::LockKind {
        self.held().lock.kind
    }

    fn lost_error(lock: &LockFile, id: &LockId, why: &str) -> EngineError {
        EngineError::locked(format!(
            "the {} lock of this `{}` (locks/{}) {why}; stopped before writing anything that \
             could name data another process may delete: run it again",
            lock.kind.name(),
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
    pub(super) fn verify(&self) -> Result<()> {
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
    pub(super) holder: Arc<Holder>,
    pub(super) stop: Option<Sender<()>>,
    pub(super) refresher: Option<JoinHandle<()>>,
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

    pub(super) fn start_refresher(&mut self, every: Duration) {
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
                        Err(EngineError::Locked { .. }) => break,
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

/// Where a repository handle keeps the lock it took, so that its writes and deletes can
/// check it: empty until it takes one; a lock dropped since is "released".
#[derive(Default)]
pub(crate) struct LockSlot(Mutex<Option<Weak<Holder>>>);

/// What a [`LockSlot`] holds.
pub(super) enum Registration {
    /// This handle never took a lock.
    None,
    /// It took one and dropped it.
    Released,
    Held(Arc<Holder>),
}

impl LockSlot {
    pub(super) fn register(&self, holder: &Arc<Holder>) {
        *self.0.lock().expect("no panics while locked") = Some(Arc::downgrade(holder));
    }

    pub(super) fn get(&self) -> Registration {
        match &*self.0.lock().expect("no panics while locked") {
            None => Registration::None,
            Some(weak) => weak
                .upgrade()
                .map_or(Registration::Released, Registration::Held),
        }
    }

    /// Whether this handle holds a lock now (taken, not dropped, not lost).
    pub(crate) fn holds_lock(&self) -> bool {
        match self.get() {
            Registration::Held(h) => h.held().lost.is_none(),
            Registration::None | Registration::Released => false,
        }
    }

    /// Checks, before a repository write that names data (an index file or a snapshot),
    /// that the lock this handle took is still held. Handles that never took a lock
    /// (tests, `init`) are not checked.
    pub(crate) fn before_write(&self) -> Result<()> {
        match self.get() {
            Registration::None => Ok(()),
            Registration::Released => Err(released()),
            Registration::Held(h) => h.verify(),
        }
    }
}

pub(super) fn released() -> EngineError {
    EngineError::Internal("this command released its repository lock before writing".into())
}
