//! Metadata packs (trees, dictionaries) read whole, once, and kept in memory.
//!
//! Walking a snapshot reads one tree blob per directory, a few hundred bytes each, from a
//! handful of packs that hold only trees. Read one range at a time, that is one request
//! per directory: thousands of round trips over S3 or SFTP for an `ls` or for the parent
//! of a backup. Instead, the first tree read from a metadata pack fetches the whole pack
//! (through [`Backend::read_metadata_pack`], which a local cache answers from disk), and
//! every later blob of it is sliced from memory. Packs are kept up to [`MEMORY_LIMIT`]
//! bytes, the least recently used dropped first. Threads that want the same pack wait for
//! one fetch of it; other packs are fetched beside it.
//!
//! What comes back is checked as every pack read is ([`super::PackFile`]): a range outside
//! the pack is `Corrupt` without a read; a pack not of the size the index records is read
//! by ranges instead (what is intact in it stays readable); each blob is then verified by
//! its reader as always.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use strata_format::id::PackId;
use strata_storage::{Backend, ErrorKind as StorageKind};

use super::{Held, PackFile};
use crate::{EngineError, Result};

/// The bytes of metadata packs a repository handle keeps in memory.
pub(crate) const MEMORY_LIMIT: u64 = 64 << 20;

/// One pack's slot: filled by the first reader, waited on by the others.
type Slot = Arc<tokio::sync::Mutex<Option<Whole>>>;

/// What the first read of a metadata pack found.
#[derive(Debug)]
enum Whole {
    /// The pack, of the size the index records.
    Bytes(Bytes),
    /// A pack of another size: read by ranges.
    Damaged,
}

/// The metadata packs a repository handle holds in memory.
#[derive(Debug, Default)]
pub(crate) struct MetadataPacks {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Each pack's slot, with the bytes counted for it (0 until it is filled).
    slots: HashMap<PackId, (Slot, u64)>,
    /// Packs in the order they were last used, oldest first.
    order: VecDeque<PackId>,
    /// Bytes held by filled slots.
    bytes: u64,
}

impl MetadataPacks {
    /// `len` bytes at `offset` of metadata pack `pack` (`size` bytes as the index records).
    pub(crate) async fn read(
        &self,
        backend: &dyn Backend,
        pack: &PackId,
        size: u64,
        held: Held,
        offset: u64,
        len: u64,
    ) -> Result<Bytes> {
        if offset.checked_add(len).is_none_or(|end| end > size) {
            // Refused by the range reader, with its message.
            return PackFile::indexed(pack, size, held)
                .read_on(backend, offset, len)
                .await;
        }
        let slot = self.slot(pack);
        // Held across the fetch, so that one reader fetches and the others wait.
        let mut state = slot.lock().await;
        if state.is_none() {
            let bytes = backend
                .read_metadata_pack(&pack.to_hex())
                .await
                .map_err(|e| match e.kind {
                    StorageKind::NotFound => {
                        EngineError::Corrupt(format!("pack {pack} holding {held} is missing"))
                    }
                    _ => e.into(),
                })?;
            if bytes.len() as u64 == size {
                *state = Some(Whole::Bytes(bytes));
                self.filled(pack, &slot, size);
            } else {
                // Damaged (shorter or longer than the index says): its blobs are read one
                // range at a time, as they would be without this cache, so that what is
                // intact in it stays readable.
                tracing::debug!(%pack, read = bytes.len(), size, "metadata pack of the wrong size");
                *state = Some(Whole::Damaged);
            }
        }
        match &*state {
            Some(Whole::Bytes(whole)) => Ok(whole.slice(offset as usize..(offset + len) as usize)),
            _ => {
                drop(state);
                PackFile::indexed(pack, size, held)
                    .read_on(backend, offset, len)
                    .await
            }
        }
    }

    /// The slot of `pack`, made the most recently used.
    fn slot(&self, pack: &PackId) -> Slot {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let slot = state.slots.entry(*pack).or_default().0.clone();
        if let Some(pos) = state.order.iter().position(|p| p == pack) {
            state.order.remove(pos);
        }
        state.order.push_back(*pack);
        slot
    }

    /// Counts a slot just filled (unless it was dropped meanwhile), and drops the least
    /// recently used packs beyond the limit (never the one just filled).
    fn filled(&self, pack: &PackId, slot: &Slot, size: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.slots.get_mut(pack) {
            Some((s, counted)) if Arc::ptr_eq(s, slot) => *counted = size,
            _ => return,
        }
        state.bytes += size;
        while state.bytes > MEMORY_LIMIT && state.order.len() > 1 {
            let Some(old) = state.order.pop_front() else {
                break;
            };
            if old == *pack {
                state.order.push_back(old);
                continue;
            }
            if let Some((_, counted)) = state.slots.remove(&old) {
                state.bytes -= counted;
            }
        }
    }
}
