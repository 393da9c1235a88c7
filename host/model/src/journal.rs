//! Undo logs for the model's maps: how a failed step leaves the model exactly as it was.
//!
//! The first write of a key inside a transaction records its previous value (later
//! writes of the same key record nothing); rollback puts the recorded values back. The
//! cost is proportional to the keys a step changes, never to the size of the model (no
//! snapshot copies) nor to how often it rewrites one key.

use std::collections::{BTreeMap, BTreeSet};

/// A `BTreeMap` whose writes can be undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JMap<K: Ord + Clone, V: Clone> {
    map: BTreeMap<K, V>,
    undo: Option<Vec<(K, Option<V>)>>,
    /// Keys already recorded in the open transaction.
    recorded: BTreeSet<K>,
}

impl<K: Ord + Clone, V: Clone> Default for JMap<K, V> {
    fn default() -> Self {
        JMap { map: BTreeMap::new(), undo: None, recorded: BTreeSet::new() }
    }
}

impl<K: Ord + Clone, V: Clone> JMap<K, V> {
    /// Read-only view of the current contents.
    pub fn map(&self) -> &BTreeMap<K, V> {
        &self.map
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.map.values()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> {
        self.map.iter()
    }

    pub fn range<R: std::ops::RangeBounds<K>>(&self, r: R) -> std::collections::btree_map::Range<'_, K, V> {
        self.map.range(r)
    }

    /// Save `key`'s value before the transaction's first write of it.
    fn record(&mut self, key: &K) {
        if let Some(undo) = &mut self.undo {
            if self.recorded.insert(key.clone()) {
                undo.push((key.clone(), self.map.get(key).cloned()));
            }
        }
    }

    /// Values saved by the open transaction (one per key written).
    pub fn undo_len(&self) -> usize {
        self.undo.as_ref().map_or(0, Vec::len)
    }

    /// Insert or replace, journaled.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.record(&key);
        self.map.insert(key, value)
    }

    /// Remove, journaled.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        if self.map.contains_key(key) {
            self.record(key);
        }
        self.map.remove(key)
    }

    /// Mutate a value in place, journaled. `None` when the key is absent.
    pub fn update<R>(&mut self, key: &K, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        if !self.map.contains_key(key) {
            return None;
        }
        self.record(key);
        self.map.get_mut(key).map(f)
    }

    /// Start recording.
    pub fn begin(&mut self) {
        self.undo = Some(Vec::new());
        self.recorded.clear();
    }

    /// Keep the changes.
    pub fn commit(&mut self) {
        self.undo = None;
        self.recorded.clear();
    }

    /// Undo every write since `begin`.
    pub fn rollback(&mut self) {
        self.recorded.clear();
        if let Some(undo) = self.undo.take() {
            for (key, old) in undo.into_iter().rev() {
                match old {
                    Some(v) => {
                        self.map.insert(key, v);
                    }
                    None => {
                        self.map.remove(&key);
                    }
                }
            }
        }
    }

    /// Contents equal, ignoring any open journal (for snapshot comparisons).
    pub fn same_contents(&self, other: &Self) -> bool
    where
        V: PartialEq,
    {
        self.map == other.map
    }
}

/// A single value whose writes can be undone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JCell<T: Clone> {
    value: T,
    saved: Option<T>,
    open: bool,
}

impl<T: Clone> JCell<T> {
    pub fn new(value: T) -> Self {
        JCell { value, saved: None, open: false }
    }

    pub fn get(&self) -> &T {
        &self.value
    }

    /// Mutable access, journaled (the first write in a transaction saves the old value).
    pub fn get_mut(&mut self) -> &mut T {
        if self.open && self.saved.is_none() {
            self.saved = Some(self.value.clone());
        }
        &mut self.value
    }

    pub fn begin(&mut self) {
        self.open = true;
        self.saved = None;
    }

    pub fn commit(&mut self) {
        self.open = false;
        self.saved = None;
    }

    pub fn rollback(&mut self) {
        if let Some(v) = self.saved.take() {
            self.value = v;
        }
        self.open = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_inserts_updates_and_removes() {
        let mut m: JMap<u32, &str> = JMap::default();
        m.insert(1, "a");
        m.insert(2, "b");
        let before = m.clone();
        m.begin();
        m.insert(3, "c");
        m.update(&1, |v| *v = "z");
        m.remove(&2);
        m.insert(2, "again");
        m.rollback();
        assert!(m.same_contents(&before));
    }

    #[test]
    fn each_key_is_recorded_once_per_transaction() {
        let mut m: JMap<u32, u32> = JMap::default();
        m.insert(1, 0);
        m.begin();
        for _ in 0..1000 {
            m.update(&1, |v| *v += 1);
        }
        m.insert(2, 5);
        m.remove(&2);
        // Key 1's value before the transaction, and key 2's absence: two records.
        assert_eq!(m.undo_len(), 2);
        m.rollback();
        assert_eq!((m.get(&1), m.get(&2)), (Some(&0), None));
    }

    #[test]
    fn commit_keeps_changes() {
        let mut c = JCell::new(5u32);
        c.begin();
        *c.get_mut() += 1;
        c.commit();
        assert_eq!(*c.get(), 6);
        c.begin();
        *c.get_mut() += 1;
        *c.get_mut() += 1;
        c.rollback();
        assert_eq!(*c.get(), 6);
    }
}
