//! Repair: rebuilding the index from the packs themselves, and rewriting snapshots whose
//! data is lost so that everything else in them stays restorable.
//!
//! `repair index` ([`index`]) reads every pack's sealed header (and with `read_data` every
//! byte, a piece at a time) and writes a new index naming what is really there; it
//! supersedes and then deletes every old index file. It deletes only packs that are
//! proven to be this repository's (something in them authenticates under its key) and
//! damaged, once their intact blobs are copied into new packs and indexed; a pack in which
//! nothing authenticates is kept, reported, and deleted only when the caller names it.
//!
//! `repair snapshots` ([`snapshots`]) drops from each snapshot the files whose blobs are not
//! indexed (or whose pack is missing), and directories whose tree is unreadable, writes the
//! new trees and a new snapshot that records what was dropped, and only then deletes the
//! old one.

mod index;
mod snapshots;

pub use index::{repair_index, IndexRepair, IndexRepairOptions, UnreadablePack, MIN_PACK_PREFIX};
pub use snapshots::{repair_snapshots, SnapshotRepair};
