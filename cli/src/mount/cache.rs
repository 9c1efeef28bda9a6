//! A small least-recently-used cache, bounded by entries and by weight (bytes). The mount
//! keeps decoded data blobs and trees in it; a handful of entries, so a linear scan is as
//! fast as any map.

use std::collections::VecDeque;

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
    pub fn len(&self) -> usize {
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
