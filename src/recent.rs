//! A bounded map that keeps what was used recently: two generations of at
//! most `capacity` entries each. A hit in the older generation moves the
//! entry to the newer one; when the newer one is full, it becomes the older
//! one, and the older one is emptied to become the newer: its table is kept,
//! so the two tables are allocated once, not at every turn. Lookups stay
//! O(1) and memory stays bounded however many distinct keys a run meets,
//! without the bookkeeping of an LRU.
//!
//! Keys are attacker-influenced (they come from findings). The hasher is
//! foldhash, seeded per process and per map from address-space and stack
//! randomness, rather than std's SipHash, which cost a quarter of the host's
//! side of a mapping call on the long answer keys. foldhash is only
//! minimally DoS-resistant: keys made to collide without knowing the seed
//! (no such construction is known) would make lookups scan their bounded
//! generation, slowing a run, never growing memory.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use foldhash::quality::RandomState;

/// Recently used entries, at most `2 × capacity` of them.
#[derive(Debug)]
pub struct Recent<K, V> {
    capacity: usize,
    newer: HashMap<K, V, RandomState>,
    older: HashMap<K, V, RandomState>,
}

impl<K: Hash + Eq, V> Recent<K, V> {
    /// An empty map keeping up to `capacity` entries per generation (at least one).
    pub fn new(capacity: usize) -> Recent<K, V> {
        Recent { capacity: capacity.max(1), newer: HashMap::default(), older: HashMap::default() }
    }

    /// The value of `key`, if it was used recently.
    pub fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.newer.contains_key(key) {
            let (key, value) = self.older.remove_entry(key)?;
            self.insert(key, value);
        }
        self.newer.get(key)
    }

    /// The value of `key`, mutably, if it was used recently.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key)?;
        self.newer.get_mut(key)
    }

    /// Keeps `value` under `key`.
    pub fn insert(&mut self, key: K, value: V) {
        if self.newer.len() >= self.capacity && !self.newer.contains_key(&key) {
            // Once both tables have grown, a turn allocates nothing.
            std::mem::swap(&mut self.newer, &mut self.older);
            self.newer.clear();
        }
        self.newer.insert(key, value);
    }

    /// Entries kept, in both generations.
    pub fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::Recent;

    #[test]
    fn keeps_what_is_used_and_stays_bounded() {
        let mut recent = Recent::new(2);
        recent.insert("a", 1);
        recent.insert("b", 2);
        recent.insert("c", 3); // a and b move to the older generation
        assert_eq!(recent.get("a"), Some(&1), "a hit in the older generation is kept");
        recent.insert("d", 4); // newer was {c, a}: it becomes the older one, b is gone
        assert_eq!(recent.get("b"), None);
        assert_eq!(recent.get("c"), Some(&3));
        assert!(recent.len() <= 4);
        for i in 0..1000 {
            recent.insert(if i % 2 == 0 { "x" } else { "y" }, i);
        }
        assert!(recent.len() <= 4);
        assert!(!recent.is_empty());
    }
}
