//! Sparse memory sections in a two-level table, as SPARSEMEM_EXTREME lays them out: a
//! root of section arrays allocated only where memory exists, so a 52-bit address space
//! costs nothing until used.

use std::collections::BTreeMap;

/// Sections per root entry (the kernel's SECTIONS_PER_ROOT with a 16-byte mem_section).
pub const SECTIONS_PER_ROOT: u64 = 256;

/// Where a section's memmap lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemmapHome {
    /// Allocated from a node's free memory.
    Node { nid: u32, pages: u64 },
    /// Inside the hot-added range, through an altmap.
    Altmap { pages: u64 },
    /// Allocated at boot by memblock (not counted against free memory).
    Boot { nid: u32, pages: u64 },
}

impl MemmapHome {
    pub fn pages(&self) -> u64 {
        match *self {
            MemmapHome::Node { pages, .. } | MemmapHome::Altmap { pages } | MemmapHome::Boot { pages, .. } => pages,
        }
    }
}

/// One `struct mem_section`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    pub nid: u32,
    /// Bit i set: subsection i is present.
    pub subsection_map: u64,
    /// SECTION_IS_ONLINE.
    pub online: bool,
    /// SECTION_IS_EARLY: present at boot.
    pub early: bool,
    pub memmap: MemmapHome,
}

/// One root entry: its sections, and how many of them are present (so emptying a root
/// costs nothing per section).
#[derive(Debug, Clone)]
struct Chunk {
    present: u32,
    slots: Box<[Option<Section>]>,
}

/// The table, with an undo log like the other model maps.
#[derive(Debug, Clone, Default)]
pub struct SectionTable {
    roots: BTreeMap<u64, Chunk>,
    present: u64,
    undo: Option<Vec<(u64, Option<Section>)>>,
}

impl PartialEq for SectionTable {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl SectionTable {
    pub fn get(&self, nr: u64) -> Option<&Section> {
        self.roots.get(&(nr / SECTIONS_PER_ROOT))?.slots[(nr % SECTIONS_PER_ROOT) as usize].as_ref()
    }

    /// Number of present sections.
    pub fn present_count(&self) -> u64 {
        self.present
    }

    /// Root entries allocated (a measure of the table's memory use).
    pub fn roots_allocated(&self) -> usize {
        self.roots.len()
    }

    /// Set or clear section `nr`, journaled.
    pub fn set(&mut self, nr: u64, section: Option<Section>) {
        let root = nr / SECTIONS_PER_ROOT;
        let slot = (nr % SECTIONS_PER_ROOT) as usize;
        let chunk = self
            .roots
            .entry(root)
            .or_insert_with(|| Chunk { present: 0, slots: vec![None; SECTIONS_PER_ROOT as usize].into_boxed_slice() });
        let old = std::mem::replace(&mut chunk.slots[slot], section);
        match (old.is_some(), section.is_some()) {
            (false, true) => {
                self.present += 1;
                chunk.present += 1;
            }
            (true, false) => {
                self.present -= 1;
                chunk.present -= 1;
            }
            _ => {}
        }
        if chunk.present == 0 {
            self.roots.remove(&root);
        }
        if let Some(undo) = &mut self.undo {
            undo.push((nr, old));
        }
    }

    /// Change section `nr` in place (it must be present).
    pub fn update(&mut self, nr: u64, f: impl FnOnce(&mut Section)) {
        if let Some(mut s) = self.get(nr).copied() {
            f(&mut s);
            self.set(nr, Some(s));
        }
    }

    /// Present sections in order, with their numbers.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Section)> {
        self.roots.iter().flat_map(|(root, chunk)| {
            chunk.slots.iter().enumerate().filter_map(move |(i, s)| s.as_ref().map(|s| (root * SECTIONS_PER_ROOT + i as u64, s)))
        })
    }

    /// Present sections with numbers in `[first, last]`.
    pub fn iter_range(&self, first: u64, last: u64) -> impl Iterator<Item = (u64, &Section)> {
        self.roots.range(first / SECTIONS_PER_ROOT..=last / SECTIONS_PER_ROOT).flat_map(move |(root, chunk)| {
            chunk.slots.iter().enumerate().filter_map(move |(i, s)| {
                let nr = root * SECTIONS_PER_ROOT + i as u64;
                match s {
                    Some(s) if nr >= first && nr <= last => Some((nr, s)),
                    _ => None,
                }
            })
        })
    }

    pub fn begin(&mut self) {
        self.undo = Some(Vec::new());
    }

    pub fn commit(&mut self) {
        self.undo = None;
    }

    pub fn rollback(&mut self) {
        if let Some(undo) = self.undo.take() {
            for (nr, old) in undo.into_iter().rev() {
                self.set(nr, old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec() -> Section {
        Section { nid: 0, subsection_map: u64::MAX, online: false, early: false, memmap: MemmapHome::Altmap { pages: 512 } }
    }

    #[test]
    fn sparse_roots_allocate_only_where_used() {
        let mut t = SectionTable::default();
        // Section numbers far apart (a 52-bit space has 2^25 sections of 128 MiB).
        t.set(3, Some(sec()));
        t.set((1 << 25) - 1, Some(sec()));
        assert_eq!(t.roots_allocated(), 2);
        assert_eq!(t.present_count(), 2);
        assert_eq!(t.iter_range(0, 10).count(), 1);
        t.set(3, None);
        assert_eq!(t.roots_allocated(), 1);
    }

    #[test]
    fn rollback_restores() {
        let mut t = SectionTable::default();
        t.set(1, Some(sec()));
        let before = t.clone();
        t.begin();
        t.set(2, Some(sec()));
        t.update(1, |s| s.online = true);
        t.set(1, None);
        t.rollback();
        assert_eq!(t, before);
        assert_eq!(t.present_count(), 1);
    }
}
