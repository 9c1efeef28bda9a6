//! The in-memory index: where every blob lives. Built once from all index files at open.
//!
//! Compact by design, since it holds every blob of the repository: one sorted array of
//! 52-byte entries (the 32-byte id, pack position, offset, lengths and type) and a table of
//! bucket starts by id prefix, about one `u32` per two to four blobs. Ids are keyed hashes,
//! so prefixes are uniform and a bucket holds a handful of entries; a lookup is one table
//! read and a short binary search. That is about 54 bytes a blob, against about 80 for a
//! `HashMap<BlobId, BlobLocation>` at its usual load, plus about 46 bytes a pack. Building
//! it sorts the array in place, so the peak is the same (measured in
//! `benches/RESULTS-scale.md`: a stable sort's scratch buffer of half the array made it
//! 80 bytes a blob).
//!
//! Packs a prune marked for deletion (spec/prune.md) are loaded too, so that a snapshot
//! of a session that began before the mark still reads, but [`MasterIndex::contains`] does
//! not count their blobs: a new backup writes such a blob again rather than name a pack
//! that may be deleted. Where a blob is both in a live and in a marked pack, the live one
//! is found. Index files that another loaded one supersedes are left out.

use strata_format::blob::BlobType;
use strata_format::id::{BlobId, IndexId, PackId};
use strata_format::index::{IndexFile, Seal};

/// Where one blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// Position of the pack in [`MasterIndex::packs`].
    pub pack: u32,
    pub blob_type: BlobType,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

/// One blob, as stored in the sorted array.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: [u8; 32],
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
    blob_type: BlobType,
}

/// Every blob of the repository, keyed by id.
#[derive(Debug, Default)]
pub struct MasterIndex {
    /// Sorted by id, one entry per id (the first one listed wins).
    entries: Vec<Entry>,
    /// `buckets[p]..buckets[p + 1]` are the entries whose id starts with prefix `p`
    /// (the first `bits` bits).
    buckets: Vec<u32>,
    bits: u32,
    packs: Vec<(PackId, u64)>,
    /// Whether each pack holds metadata only (trees, dictionaries): the packs a reader
    /// fetches whole and a local cache keeps.
    metadata: Vec<bool>,
    /// Which index file named each pack (for messages), as a position in `files`.
    pack_index: Vec<u32>,
    /// Index files that some loaded index file supersedes, sorted.
    superseded: Vec<IndexId>,
    /// Per pack position: [`PackState`].
    state: Vec<PackState>,
    /// Per marked listing: its pack position, mark and time.
    marks: Vec<MarkListing>,
    /// The seals of the loaded files (those of superseded files left out).
    seals: Vec<Seal>,
    /// Every index file loaded (superseded ones included), in load order.
    files: Vec<IndexId>,
}

/// Where a pack position stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackState {
    /// Named by a current index file: its blobs may be used by new snapshots.
    Live,
    /// Marked for deletion by a prune (and named live by no current file): readable, but
    /// not to be used by new snapshots.
    Marked,
    /// Named only by a superseded index file, or marked while also named live elsewhere:
    /// this listing does not count.
    Dropped,
}

/// A pack marked for deletion, as one index file lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkListing {
    pub pack: u32,
    pub mark: [u8; 16],
    pub marked_ns: i64,
}

impl MasterIndex {
    /// Builds the index from index files. A blob listed more than once (in several packs)
    /// is found in the first pack that lists it, in the order given.
    pub fn from_files(files: impl IntoIterator<Item = (IndexId, IndexFile)>) -> Self {
        let mut b = IndexBuilder::new(false);
        for (id, file) in files {
            b.add_file(id, file);
        }
        b.build()
    }

    fn build_buckets(&mut self) {
        let n = self.entries.len();
        // About two to four entries per bucket.
        self.bits = (usize::BITS - n.leading_zeros())
            .saturating_sub(2)
            .clamp(1, 24);
        let count = 1usize << self.bits;
        let mut buckets = Vec::with_capacity(count + 1);
        let mut pos = 0usize;
        for p in 0..count {
            buckets.push(pos as u32);
            while pos < n && self.prefix(&self.entries[pos].id) == p {
                pos += 1;
            }
        }
        buckets.push(n as u32);
        self.buckets = buckets;
    }

    fn prefix(&self, id: &[u8; 32]) -> usize {
        (u32::from_be_bytes([id[0], id[1], id[2], id[3]]) >> (32 - self.bits)) as usize
    }

    /// Where a blob is stored, if the index knows it.
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        if self.entries.is_empty() {
            return None;
        }
        let id = &id.0 .0;
        let p = self.prefix(id);
        let range = self.buckets[p] as usize..self.buckets[p + 1] as usize;
        let bucket = &self.entries[range];
        let i = bucket.binary_search_by(|e| e.id.cmp(id)).ok()?;
        let e = &bucket[i];
        Some(BlobLocation {
            pack: e.pack,
            blob_type: e.blob_type,
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
        })
    }

    /// The position of a blob in [`MasterIndex::iter`] order (for bit sets over blobs).
    pub fn position(&self, id: &BlobId) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let id = &id.0 .0;
        let p = self.prefix(id);
        let start = self.buckets[p] as usize;
        let bucket = &self.entries[start..self.buckets[p + 1] as usize];
        bucket
            .binary_search_by(|e| e.id.cmp(id))
            .ok()
            .map(|i| start + i)
    }

    /// The blob at a position of [`MasterIndex::iter`] order.
    pub fn at(&self, pos: usize) -> (BlobId, BlobLocation) {
        let e = &self.entries[pos];
        (
            BlobId(strata_format::id::Digest(e.id)),
            BlobLocation {
                pack: e.pack,
                blob_type: e.blob_type,
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
            },
        )
    }

    /// Every blob with its location, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
        (0..self.entries.len()).map(|pos| self.at(pos))
    }

    /// Whether a new snapshot may name the blob: it is in a live pack (not only in packs
    /// marked for deletion).
    pub fn contains(&self, id: &BlobId) -> bool {
        self.get(id)
            .is_some_and(|loc| self.state[loc.pack as usize] == PackState::Live)
    }

    /// How the pack at a position stands.
    pub fn pack_state(&self, pos: u32) -> PackState {
        self.state
            .get(pos as usize)
            .copied()
            .unwrap_or(PackState::Dropped)
    }

    /// The packs marked for deletion, as the current index files list them.
    pub fn marks(&self) -> &[MarkListing] {
        &self.marks
    }

    /// The seals of the current index files.
    pub fn seals(&self) -> &[Seal] {
        &self.seals
    }

    /// Every index file this index was built from (superseded ones included): what a
    /// prune's new index supersedes.
    pub fn files(&self) -> &[IndexId] {
        &self.files
    }

    /// The pack id and size at a position.
    pub fn pack(&self, pos: u32) -> (PackId, u64) {
        self.packs[pos as usize]
    }

    /// Whether a loaded index file supersedes index file `id` (which an interrupted prune
    /// or repair left behind).
    pub fn is_superseded(&self, id: &IndexId) -> bool {
        self.superseded.binary_search(id).is_ok()
    }

    /// The index file that named the pack at a position.
    pub fn pack_source(&self, pos: u32) -> IndexId {
        self.files[self.pack_index[pos as usize] as usize]
    }

    /// Every pack named by an index, with its size (a pack may appear more than once; see
    /// [`MasterIndex::pack_state`] for which listings count).
    pub fn packs(&self) -> &[(PackId, u64)] {
        &self.packs
    }

    /// Whether the pack at a position holds metadata only (trees, dictionaries; no file
    /// data): such packs are read whole and cached (see `engine::metacache`).
    pub fn is_metadata_pack(&self, pos: u32) -> bool {
        self.metadata.get(pos as usize).copied().unwrap_or(false)
    }

    /// The live packs that hold metadata only, each once, with their sizes.
    pub fn metadata_packs(&self) -> Vec<(PackId, u64)> {
        let mut packs: Vec<(PackId, u64)> = self
            .packs
            .iter()
            .zip(&self.metadata)
            .zip(&self.state)
            // Marked packs are read on demand (rarely), not cached ahead.
            .filter(|((_, m), s)| **m && **s == PackState::Live)
            .map(|(p, _)| p)
            .map(|(p, _)| *p)
            .collect();
        packs.sort_unstable();
        packs.dedup_by_key(|p| p.0);
        packs
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Heap bytes held by the blob lookup structures (for reports and benchmarks).
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.buckets.capacity() * std::mem::size_of::<u32>()
    }
}

/// Builds a [`MasterIndex`] one index file at a time, so that only one decoded file is held
/// besides the compact entries.
#[derive(Debug)]
pub struct IndexBuilder {
    index: MasterIndex,
    metadata_only: bool,
    /// The index file of each seal.
    seal_sources: Vec<IndexId>,
}

impl IndexBuilder {
    /// With `metadata_only`, data blobs are left out (every pack is still listed): enough
    /// for commands that only read trees, for a fraction of the memory.
    pub fn new(metadata_only: bool) -> Self {
        IndexBuilder {
            index: MasterIndex::default(),
            metadata_only,
            seal_sources: Vec::new(),
        }
    }

    pub fn add_file(&mut self, id: IndexId, file: IndexFile) {
        let index = &mut self.index;
        let source = index.files.len() as u32;
        index.files.push(id);
        index.superseded.extend(file.supersedes);
        self.seal_sources
            .extend(std::iter::repeat_n(id, file.seals.len()));
        index.seals.extend(file.seals);
        let marked = file
            .marked
            .into_iter()
            .map(|m| (Some((m.mark, m.marked_ns)), m.pack));
        for (mark, p) in file.packs.into_iter().map(|p| (None, p)).chain(marked) {
            let pack = index.packs.len() as u32;
            index.state.push(match mark {
                None => PackState::Live,
                Some((mark, marked_ns)) => {
                    index.marks.push(MarkListing {
                        pack,
                        mark,
                        marked_ns,
                    });
                    PackState::Marked
                }
            });
            index.packs.push((p.id, p.size));
            index
                .metadata
                .push(!p.blobs.is_empty() && p.blobs.iter().all(|b| b.blob_type != BlobType::Data));
            index.pack_index.push(source);
            let keep = |b: &&strata_format::pack::PackBlob| {
                !self.metadata_only || b.blob_type != BlobType::Data
            };
            index
                .entries
                .extend(p.blobs.iter().filter(keep).map(|b| Entry {
                    id: b.id.0 .0,
                    pack,
                    offset: b.offset,
                    length: b.length,
                    raw_length: b.raw_length,
                    blob_type: b.blob_type,
                }));
        }
    }

    pub fn build(self) -> MasterIndex {
        let mut index = self.index;
        index.superseded.sort_unstable();
        index.superseded.dedup();
        // What superseded files list does not count; nor does a mark of a pack that a
        // current file names live (a backup's index naming a pack a prune found unindexed).
        let superseded = &index.superseded;
        let is_current = |src: &IndexId| superseded.binary_search(src).is_err();
        let files = &index.files;
        for (state, src) in index.state.iter_mut().zip(&index.pack_index) {
            if !is_current(&files[*src as usize]) {
                *state = PackState::Dropped;
            }
        }
        if index.state.contains(&PackState::Marked) {
            let live: std::collections::HashSet<PackId> = index
                .packs
                .iter()
                .zip(&index.state)
                .filter(|(_, s)| **s == PackState::Live)
                .map(|((id, _), _)| *id)
                .collect();
            for (state, (id, _)) in index.state.iter_mut().zip(&index.packs) {
                if *state == PackState::Marked && live.contains(id) {
                    *state = PackState::Dropped;
                }
            }
        }
        let state = &index.state;
        index
            .marks
            .retain(|m| state[m.pack as usize] == PackState::Marked);
        let seals = std::mem::take(&mut index.seals);
        index.seals = seals
            .into_iter()
            .zip(&self.seal_sources)
            .filter(|(_, src)| is_current(src))
            .map(|(s, _)| s)
            .collect();
        index
            .entries
            .retain(|e| state[e.pack as usize] != PackState::Dropped);
        // Among equal ids a live pack's comes first, then the first listed (packs are
        // numbered in listing order, a pack's blobs by offset); dedup keeps it. In place:
        // a stable sort would allocate half the array again, the peak of every open.
        index.entries.sort_unstable_by(|a, b| {
            let key = |e: &Entry| (state[e.pack as usize] != PackState::Live, e.pack, e.offset);
            a.id.cmp(&b.id).then_with(|| key(a).cmp(&key(b)))
        });
        index.entries.dedup_by(|later, first| later.id == first.id);
        index.entries.shrink_to_fit();
        index.packs.shrink_to_fit();
        index.metadata.shrink_to_fit();
        index.pack_index.shrink_to_fit();
        index.build_buckets();
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use strata_format::id::Digest;
    use strata_format::index::IndexPack;
    use strata_format::pack::PackBlob;

    fn blob(n: u32) -> PackBlob {
        PackBlob {
            blob_type: if n.is_multiple_of(7) {
                BlobType::Tree
            } else {
                BlobType::Data
            },
            id: BlobId(Digest::of_stored(&n.to_le_bytes())),
            offset: n,
            length: n + 1,
            raw_length: n + 2,
        }
    }

    fn file(pack: u8, blobs: impl Iterator<Item = u32>) -> IndexFile {
        IndexFile {
            packs: vec![IndexPack {
                id: PackId(Digest::of_stored(&[pack])),
                size: 1,
                blobs: blobs.map(blob).collect(),
            }],
            ..IndexFile::default()
        }
    }

    #[test]
    fn lookups_match_a_hash_map_and_the_first_listing_wins() {
        for n in [0u32, 1, 2, 5, 100, 10_000] {
            let a = file(1, 0..n);
            // Half of these are duplicates of the first file (at other offsets there).
            let b = file(2, n / 2..n + n / 2);
            let mut reference = HashMap::new();
            for (pos, f) in [&a, &b].into_iter().enumerate() {
                for x in &f.packs[0].blobs {
                    reference.entry(x.id).or_insert((pos as u32, *x));
                }
            }
            let index = MasterIndex::from_files([
                (IndexId(Digest::of_stored(b"a")), a),
                (IndexId(Digest::of_stored(b"b")), b),
            ]);
            assert_eq!(index.len(), reference.len());
            for (id, (pack, x)) in &reference {
                let loc = index.get(id).expect("indexed blob is found");
                assert_eq!(
                    loc,
                    BlobLocation {
                        pack: *pack,
                        blob_type: x.blob_type,
                        offset: x.offset,
                        length: x.length,
                        raw_length: x.raw_length,
                    }
                );
            }
            for m in n + n / 2..n + n / 2 + 50 {
                assert!(!index.contains(&blob(m).id), "{m} is not indexed");
            }
        }
    }

    #[test]
    fn entries_are_compact() {
        assert_eq!(std::mem::size_of::<Entry>(), 52);
        let index = MasterIndex::from_files([(IndexId(Digest::of_stored(b"a")), file(1, 0..4096))]);
        assert!(
            index.memory_bytes() <= 4096 * 56,
            "{}",
            index.memory_bytes()
        );
    }

    fn marked(pack: u8, blobs: impl Iterator<Item = u32>, mark: u8) -> IndexFile {
        let f = file(pack, blobs);
        IndexFile {
            marked: f
                .packs
                .into_iter()
                .map(|p| strata_format::index::MarkedPack {
                    mark: [mark; 16],
                    marked_ns: 7,
                    pack: p,
                })
                .collect(),
            ..IndexFile::default()
        }
    }

    fn id(name: &[u8]) -> IndexId {
        IndexId(Digest::of_stored(name))
    }

    /// Marked blobs are found for reading but not counted as present for new snapshots;
    /// where a blob is also in a live pack, the live one is found.
    #[test]
    fn marked_packs_are_readable_but_not_reusable() {
        let index = MasterIndex::from_files([
            (id(b"live"), file(1, 0..10)),
            (id(b"marks"), marked(2, 5..20, 9)),
        ]);
        for n in 0..10 {
            let loc = index.get(&blob(n).id).unwrap();
            assert_eq!(index.pack_state(loc.pack), PackState::Live, "{n}");
            assert!(index.contains(&blob(n).id), "{n}");
        }
        for n in 10..20 {
            let loc = index.get(&blob(n).id).expect("a marked blob reads");
            assert_eq!(index.pack_state(loc.pack), PackState::Marked, "{n}");
            assert!(!index.contains(&blob(n).id), "{n} is not reusable");
        }
        assert_eq!(index.marks().len(), 1);
        assert_eq!(index.marks()[0].mark, [9; 16]);
    }

    /// A superseded file's packs, marks and seals do not count; a mark of a pack that a
    /// current file names live does not either.
    #[test]
    fn superseded_files_and_marks_of_live_packs_do_not_count() {
        let mut newer = marked(2, 0..5, 3);
        newer.supersedes = vec![id(b"old")];
        newer.seals = vec![Seal {
            mark: [3; 16],
            sealed_ns: 8,
            sessions: vec![],
        }];
        let mut old = file(2, 0..5);
        old.seals = vec![Seal {
            mark: [4; 16],
            sealed_ns: 1,
            sessions: vec![],
        }];
        let index = MasterIndex::from_files([
            (id(b"old"), old),
            (id(b"new"), newer),
            (id(b"backup"), file(3, 100..103)),
            (id(b"remark"), marked(3, 100..103, 5)),
        ]);
        for n in 0..5 {
            assert!(
                !index.contains(&blob(n).id),
                "{n}: only the marked listing counts"
            );
            assert!(index.get(&blob(n).id).is_some());
        }
        for n in 100..103 {
            assert!(index.contains(&blob(n).id), "{n}: live wins over the mark");
        }
        let marks: Vec<[u8; 16]> = index.marks().iter().map(|m| m.mark).collect();
        assert_eq!(marks, vec![[3; 16]]);
        let seals: Vec<[u8; 16]> = index.seals().iter().map(|s| s.mark).collect();
        assert_eq!(seals, vec![[3; 16]]);
        assert_eq!(index.files().len(), 4);
    }
}
