//! Sparse memory sections (`struct mem_section`), kept as runs of identical sections:
//! a hot-add of a million sections with the same node, subsections and memmap home is
//! one run until something makes one of them differ. Cost follows the runs a step
//! touches, never the sections a range spans.

use super::pages::RangeMap;

/// Where a section's memmap lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemmapHome {
    /// Allocated from one zone's free memory.
    Node { nid: u32, zone: super::zone::ZoneType, pages: u64 },
    /// Allocated from several zones (`Model::memmap_splits` has them); `nid` paid first.
    Split { nid: u32, pages: u64 },
    /// Inside the hot-added range, through an altmap.
    Altmap { pages: u64 },
    /// Allocated at boot by memblock (not counted against free memory).
    Boot { nid: u32, pages: u64 },
}

impl MemmapHome {
    pub fn pages(&self) -> u64 {
        match *self {
            MemmapHome::Node { pages, .. }
            | MemmapHome::Split { pages, .. }
            | MemmapHome::Altmap { pages }
            | MemmapHome::Boot { pages, .. } => pages,
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

/// The present sections by section number, journaled like the other model maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SectionTable {
    runs: RangeMap<Section>,
}

impl SectionTable {
    pub fn get(&self, nr: u64) -> Option<&Section> {
        self.runs.get(nr)
    }

    /// Number of present sections.
    pub fn present_count(&self) -> u64 {
        self.runs.total()
    }

    /// Runs of identical sections (the table's size).
    pub fn run_count(&self) -> usize {
        self.runs.run_count()
    }

    /// Set or clear section `nr`.
    pub fn set(&mut self, nr: u64, section: Option<Section>) {
        self.runs.set(nr, nr + 1, section);
    }

    /// Set or clear sections `[first, end)` alike.
    pub fn set_range(&mut self, first: u64, end: u64, section: Option<Section>) {
        self.runs.set(first, end, section);
    }

    /// Change section `nr` in place (nothing when it is not present).
    pub fn update(&mut self, nr: u64, f: impl FnOnce(&mut Section)) {
        let mut f = Some(f);
        self.runs.update(nr, nr + 1, |s| {
            if let Some(f) = f.take() {
                f(s)
            }
        });
    }

    /// Change every present section of `[first, end)` with `f`, run by run.
    pub fn update_range(&mut self, first: u64, end: u64, f: impl FnMut(&mut Section)) {
        self.runs.update(first, end, f);
    }

    /// Runs of present sections overlapping `[first, end)`, clipped: `(first, end, section)`.
    pub fn runs_in(&self, first: u64, end: u64) -> impl DoubleEndedIterator<Item = (u64, u64, &Section)> + '_ {
        self.runs.runs_in(first, end)
    }

    /// All runs of present sections.
    pub fn runs(&self) -> impl Iterator<Item = (u64, u64, &Section)> + '_ {
        self.runs.iter()
    }

    /// Present sections in order, one by one (costs the sections: for printing).
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Section)> + '_ {
        self.runs.iter().flat_map(|(s, e, sec)| (s..e).map(move |nr| (nr, sec)))
    }

    /// Present sections with numbers in `[first, last]`, one by one.
    pub fn iter_range(&self, first: u64, last: u64) -> impl Iterator<Item = (u64, &Section)> + '_ {
        self.runs.runs_in(first, last.saturating_add(1)).flat_map(|(s, e, sec)| (s..e).map(move |nr| (nr, sec)))
    }

    pub fn begin(&mut self) {
        self.runs.begin();
    }

    pub fn commit(&mut self) {
        self.runs.commit();
    }

    pub fn rollback(&mut self) {
        self.runs.rollback();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec() -> Section {
        Section { nid: 0, subsection_map: u64::MAX, online: false, early: false, memmap: MemmapHome::Altmap { pages: 512 } }
    }

    #[test]
    fn a_million_alike_sections_are_one_run() {
        let mut t = SectionTable::default();
        // A 52-bit space has 2^25 sections of 128 MiB: far apart, and a million alike.
        t.set(3, Some(sec()));
        t.set_range(1 << 20, 2 << 20, Some(sec()));
        assert_eq!((t.run_count(), t.present_count()), (2, (1 << 20) + 1));
        // Onlining one section in the middle splits the run in three; offlining merges back.
        t.update((1 << 20) + 7, |s| s.online = true);
        assert_eq!(t.run_count(), 4);
        assert!(t.get((1 << 20) + 7).unwrap().online && !t.get((1 << 20) + 8).unwrap().online);
        t.update_range(0, u64::MAX, |s| s.online = false);
        assert_eq!(t.run_count(), 2);
        assert_eq!(t.iter_range(0, 10).count(), 1);
        t.set(3, None);
        assert_eq!(t.run_count(), 1);
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
