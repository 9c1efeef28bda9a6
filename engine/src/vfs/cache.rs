//! The caches that serve reads: decoded trees and data blobs, each bounded by entries and by
//! bytes, least recently used first out.
//!
//! A handful of entries, so a linear scan is as fast as any map. Each cache sits behind a
//! mutex held only to look up or to insert, never across a repository read: concurrent
//! readers (a web server's requests) do not wait on each other's storage I/O, and two that
//! miss the same blob at once both read it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use strata_format::blob::BlobType;
use strata_format::id::BlobId;
use strata_format::tree::{Node, NodeKind, Tree};

use crate::{Repository, Result};

/// Decoded data blobs kept: enough that reading a file sequentially in a kernel's small
/// requests (or an HTTP client's ranges) fetches each chunk once.
const BLOB_CACHE_ENTRIES: usize = 32;
const BLOB_CACHE_BYTES: usize = 64 << 20;
const TREE_CACHE_ENTRIES: usize = 256;
const TREE_CACHE_BYTES: usize = 32 << 20;

/// The tree and blob caches of one [`super::Vfs`].
#[derive(Debug)]
pub(super) struct Caches {
    trees: Mutex<Lru<BlobId, Arc<Tree>>>,
    blobs: Mutex<Lru<BlobId, Arc<Vec<u8>>>>,
}

impl Caches {
    pub(super) fn new() -> Caches {
        Caches {
            trees: Mutex::new(Lru::new(TREE_CACHE_ENTRIES, TREE_CACHE_BYTES)),
            blobs: Mutex::new(Lru::new(BLOB_CACHE_ENTRIES, BLOB_CACHE_BYTES)),
        }
    }

    /// Tree `id`, from the cache or the repository.
    pub(super) fn tree(&self, repo: &Repository, id: &BlobId) -> Result<Arc<Tree>> {
        if let Some(t) = lock(&self.trees).get(id) {
            return Ok(t);
        }
        let tree = Arc::new(repo.load_tree(id)?);
        let weight = tree
            .nodes
            .iter()
            .map(|n| 160 + n.name.len() + 32 * content_len(n))
            .sum();
        lock(&self.trees).insert(*id, tree.clone(), weight);
        Ok(tree)
    }

    /// Data blob `id`, from the cache or the repository.
    pub(super) fn blob(&self, repo: &Repository, id: &BlobId) -> Result<Arc<Vec<u8>>> {
        if let Some(b) = lock(&self.blobs).get(id) {
            return Ok(b);
        }
        let blob = Arc::new(repo.read_blob(BlobType::Data, id)?);
        lock(&self.blobs).insert(*id, blob.clone(), blob.len());
        Ok(blob)
    }
}

/// A cache whose holder panicked is still consistent (no [`Lru`] method leaves it half
/// changed): keep using it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn content_len(n: &Node) -> usize {
    match &n.kind {
        NodeKind::File { content } => content.len(),
        _ => 0,
    }
}

/// A small least-recently-used cache, bounded by entries and by weight (bytes).
#[derive(Debug)]
pub struct Lru<K, V> {
    /// Most recently used at the back.
    entries: VecDeque<(K, V, usize)>,
    weight: usize,
    max_entries: usize,
    max_weight: usize,
}

impl<K: PartialEq, V: Clone> Lru<K, V> {
    pub fn new(max_entries: usize, max_weight: usize) -> Self {
        Lru {
            entries: VecDeque::new(),
            weight: 0,
            max_entries: max_entries.max(1),
            max_weight,
        }
    }

    /// The value for `key`, now the most recently used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        let pos = self.entries.iter().position(|(k, _, _)| k == key)?;
        let entry = self.entries.remove(pos).expect("position is in range");
        let value = entry.1.clone();
        self.entries.push_back(entry);
        Some(value)
    }

    /// Adds `value`, evicting the least recently used entries beyond the bounds (the new
    /// entry stays even when it alone weighs more than the bound).
    pub fn insert(&mut self, key: K, value: V, weight: usize) {
        if let Some(pos) = self.entries.iter().position(|(k, _, _)| *k == key) {
            let (_, _, w) = self.entries.remove(pos).expect("position is in range");
            self.weight -= w;
        }
        self.entries.push_back((key, value, weight));
        self.weight += weight;
        while self.entries.len() > 1
            && (self.entries.len() > self.max_entries || self.weight > self.max_weight)
        {
            let (_, _, w) = self.entries.pop_front().expect("not empty");
            self.weight -= w;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_by_count_and_by_weight() {
        let mut c = Lru::new(3, 100);
        c.insert(1, "a", 10);
        c.insert(2, "b", 10);
        c.insert(3, "c", 10);
        assert_eq!(c.get(&1), Some("a")); // 1 is now the most recent
        c.insert(4, "d", 10);
        assert_eq!(c.get(&2), None, "2 was the least recently used");
        assert_eq!(c.len(), 3);
        // Weight: 90 more pushes out everything but the newest two.
        c.insert(5, "e", 85);
        assert_eq!(c.get(&5), Some("e"));
        assert_eq!(c.get(&4), Some("d"));
        assert_eq!(c.get(&1), None);
        assert_eq!(c.get(&3), None);
        // One entry heavier than the bound is still kept.
        c.insert(6, "f", 1000);
        assert_eq!(c.get(&6), Some("f"));
        assert_eq!(c.len(), 1);
        // Inserting a key again replaces it.
        c.insert(6, "g", 1);
        c.insert(7, "h", 1);
        assert_eq!(c.get(&6), Some("g"));
        assert_eq!(c.len(), 2);
    }
}
