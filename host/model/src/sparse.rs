//! Sparse sections and their vmemmap (mm/sparse.c, mm/sparse-vmemmap.c): which PMDs of
//! vmemmap a section needs that no neighbour has mapped, where each section's memmap is
//! allocated (an altmap, or the free memory of the first node with room), and freeing it
//! again. System RAM and ZONE_DEVICE share this arithmetic, its one altmap allocator and
//! its one ENOMEM ([`MemmapShortage`]).

use std::ops::Range;

use hotplug_core::Altmap;

use super::altmap;
use super::error::{MemmapShortage, MemmapSource, StepError};
use super::memmap_alloc::{MemmapPart, Payers};
use super::range::PfnRange;
use super::sections::{MemmapHome, Section};
use super::Model;

/// Where in a range's sections a memmap allocation stands, for the ENOMEM.
#[derive(Debug, Clone, Copy)]
pub(super) struct SectionAt {
    pub section: u64,
    /// 1-based among the range's sections.
    pub index: u64,
    pub total: u64,
    /// Node pages the range's earlier sections took.
    pub done_pages: u64,
}

impl SectionAt {
    /// Section `nr` of the sections `first..first + total`.
    pub fn of(nr: u64, first: u64, total: u64, done_pages: u64) -> SectionAt {
        SectionAt { section: nr, index: nr - first + 1, total, done_pages }
    }
}

/// What adding a System RAM range's sections allocated.
#[derive(Debug, Default)]
pub(super) struct SectionsMemmap {
    pub node_pages: u64,
    pub altmap_pages: u64,
}

impl Model {
    /// The PMDs of vmemmap that hold the struct pages of `pfns`, as PMD indices.
    pub(super) fn vmemmap_pmds(&self, pfns: PfnRange) -> Range<u64> {
        let sps = self.geometry.g.struct_page_size as u128;
        let pmd = self.geometry.g.pmd_size as u128;
        let first = (pfns.start() as u128 * sps) / pmd;
        let last = (pfns.end() as u128 * sps).div_ceil(pmd);
        first as u64..last as u64
    }

    /// PMDs of vmemmap section `nr` needs that no other present section has mapped.
    pub(super) fn new_section_pmds(&self, nr: u64) -> u64 {
        let g = self.geometry;
        let pmds = self.vmemmap_pmds(g.section_pfns(nr));
        if self.sections_own_their_pmds() {
            return pmds.end - pmds.start;
        }
        pmds.filter(|&i| !self.pmd_shared_with_other_section(i, nr)).count() as u64
    }

    /// Whether PMD `i` of vmemmap also holds struct pages of a present section other than `nr`.
    fn pmd_shared_with_other_section(&self, i: u64, nr: u64) -> bool {
        let sps = self.geometry.g.struct_page_size as u128;
        let pmd = self.geometry.g.pmd_size as u128;
        let first_pfn = ((i as u128 * pmd) / sps) as u64;
        let last_pfn = (((i as u128 + 1) * pmd).div_ceil(sps) as u64).saturating_sub(1);
        let g = self.geometry;
        self.sections.iter_range(g.pfn_to_section(first_pfn), g.pfn_to_section(last_pfn)).any(|(other, _)| other != nr)
    }

    /// The one altmap allocator: `pmds` PMDs of memmap for section `at`, PMD by PMD as
    /// vmemmap_populate does (the first may need alignment). Returns the pages taken; on
    /// ENOMEM the altmap keeps what the PMDs before took (the caller's transaction drops
    /// it all).
    pub(super) fn alloc_from_altmap(&self, alt: &mut Altmap, pmds: u64, at: SectionAt) -> Result<u64, StepError> {
        let (g, pmd_pages) = (self.geometry, self.geometry.pmd_pages());
        for _ in 0..pmds {
            if altmap::alloc(alt, pmd_pages).is_none() {
                return Err(StepError::memmap_enomem(MemmapShortage {
                    section: at.section,
                    index: at.index,
                    sections: at.total,
                    pfn: g.section_to_pfn(at.section),
                    pages_needed: pmd_pages,
                    pages_available: altmap::nr_free(alt),
                    pages_done: at.done_pages,
                    page_size: g.page_size(),
                    source: MemmapSource::Altmap { total: alt.free },
                }));
            }
        }
        Ok(pmds * pmd_pages)
    }

    /// The ENOMEM of a memmap allocation `payers` could not pay at section `at`.
    pub(super) fn memmap_shortage(&self, payers: &Payers, need: u64, at: SectionAt) -> StepError {
        let g = self.geometry;
        let rooms = self.payer_rooms(payers);
        let available = rooms.iter().map(|r| r.free.saturating_sub(r.watermark.min + r.reserve)).sum();
        StepError::memmap_enomem(MemmapShortage {
            section: at.section,
            index: at.index,
            sections: at.total,
            pfn: g.section_to_pfn(at.section),
            pages_needed: need,
            pages_available: available,
            pages_done: at.done_pages,
            page_size: g.page_size(),
            source: MemmapSource::Zones { nodes: self.payer_nodes(payers), listed: matches!(payers, Payers::Listed(_)), rooms },
        })
    }

    /// Whether every section's struct pages fill whole vmemmap PMDs (x86_64: 2 MiB of
    /// struct pages per 128 MiB section), so no PMD is shared between sections and every
    /// section needs the same: the arithmetic that makes whole ranges cost O(1).
    pub(super) fn sections_own_their_pmds(&self) -> bool {
        let g = self.geometry;
        (g.pages_per_section() * g.g.struct_page_size) % g.g.pmd_size == 0
    }

    /// PMDs of vmemmap one section needs when sections own their PMDs.
    pub(super) fn pmds_per_section(&self) -> u64 {
        let g = self.geometry;
        let pmds = self.vmemmap_pmds(g.section_pfns(0));
        pmds.end - pmds.start
    }

    /// `count` PMDs of memmap for the sections from `at` on, from one altmap: what
    /// [`Self::alloc_from_altmap`] does PMD by PMD, at once. After the first PMD (which
    /// may need alignment) the next pfn is PMD-aligned, so the rest are back to back; on
    /// ENOMEM, the section whose PMD did not fit is named (`pmds_per_section` PMDs each).
    pub(super) fn alloc_pmds_from_altmap(
        &self,
        alt: &mut Altmap,
        count: u64,
        pmds_per_section: u64,
        at: SectionAt,
    ) -> Result<u64, StepError> {
        let pmd_pages = self.geometry.pmd_pages();
        if count == 0 {
            return Ok(0);
        }
        self.alloc_from_altmap(alt, 1, at)?;
        let fit = altmap::nr_free(alt) / pmd_pages;
        if fit < count - 1 {
            // PMD number `fit + 1` of the rest fails: it belongs to section (fit + 1) / pmds.
            let failing = (fit + 1) / pmds_per_section.max(1);
            let at = SectionAt::of(at.section + failing, at.section + 1 - at.index, at.total, at.done_pages);
            alt.alloc += fit * pmd_pages;
            return self.alloc_from_altmap(alt, 1, at).map(|_| 0);
        }
        alt.alloc += (count - 1) * pmd_pages;
        Ok(count * pmd_pages)
    }

    /// `pmds` PMDs of memmap for each of `count` sections from `at` on, from the page
    /// allocator as `payers` allows. Returns the sections' homes as runs `(first, end,
    /// home)`, a section paid by several zones recording them in `memmap_splits`; on
    /// ENOMEM, names the section whose PMD no zone could pay. O(zones).
    pub(super) fn charge_sections_memmap(
        &mut self,
        payers: &Payers,
        pmds: u64,
        count: u64,
        at: SectionAt,
    ) -> Result<Vec<(u64, u64, MemmapHome)>, StepError> {
        let pmd_pages = self.geometry.pmd_pages();
        let runs = match self.alloc_memmap_pmds(payers, count * pmds) {
            Ok(runs) => runs,
            Err((done, pages)) => {
                // The failing section's own PMDs that did fit count as done, too.
                let (sections, first) = (done / pmds.max(1), at.section + 1 - at.index);
                let paid_before = pages;
                let failing = SectionAt::of(at.section + sections, first, at.total, at.done_pages + paid_before);
                return Err(self.memmap_shortage(payers, pmds * pmd_pages, failing));
            }
        };
        let mut homes: Vec<(u64, u64, MemmapHome)> = Vec::new();
        let mut next = at.section;
        let mut partial: (u64, Vec<MemmapPart>) = (0, Vec::new());
        for run in runs {
            let mut left = run.pmds;
            if partial.0 > 0 {
                let k = left.min(pmds - partial.0);
                add_parts(&mut partial.1, &run.per_pmd, k);
                (partial.0, left) = (partial.0 + k, left - k);
                if partial.0 == pmds {
                    homes.push((next, next + 1, self.home_of(next, std::mem::take(&mut partial.1))));
                    (partial.0, next) = (0, next + 1);
                }
            }
            let whole = left / pmds.max(1);
            if whole > 0 {
                let mut parts = Vec::new();
                add_parts(&mut parts, &run.per_pmd, pmds);
                if parts.len() == 1 {
                    homes.push((next, next + whole, self.home_of(next, parts)));
                } else {
                    for nr in next..next + whole {
                        homes.push((nr, nr + 1, self.home_of(nr, parts.clone())));
                    }
                }
                (next, left) = (next + whole, left - whole * pmds);
            }
            if left > 0 {
                add_parts(&mut partial.1, &run.per_pmd, left);
                partial.0 = left;
            }
        }
        Ok(homes)
    }

    /// A section's memmap home from the zones that paid it: one zone, or a split the
    /// section's number finds in `memmap_splits`.
    fn home_of(&mut self, nr: u64, parts: Vec<MemmapPart>) -> MemmapHome {
        let pages = parts.iter().map(|p| p.pages).sum();
        match parts.as_slice() {
            [one] => MemmapHome::Node { nid: one.nid, zone: one.zone, pages },
            _ => {
                let nid = parts.first().map_or(0, |p| p.nid);
                self.memmap_splits.insert(nr, parts);
                MemmapHome::Split { nid, pages }
            }
        }
    }

    /// sparse_add_section's EEXIST for System RAM: a section of `[first, end)` already has
    /// active subsections (device memory mapped there without an iomem region).
    fn refuse_present_sections(&self, first: u64, end: u64) -> Result<(), StepError> {
        match self.sections.runs_in(first, end).next() {
            Some((nr, _, _)) => Err(StepError::kernel(
                hotplug_core::errno::EEXIST,
                format!(
                    "section {nr:#x} (pfn {:#x}) already has active subsections: subsection already active",
                    self.geometry.section_to_pfn(nr)
                ),
            )),
            None => Ok(()),
        }
    }

    /// sparse_add_section for each section of System RAM `pfns`: allocate its memmap
    /// (from `altmap` if given, else from the first of `payers` with room) and mark it
    /// present. `by_node` adds up the node pages per paying node. Cost: O(payers) when
    /// sections own their PMDs, else section by section.
    pub(super) fn add_sections(
        &mut self,
        pfns: PfnRange,
        nid: u32,
        payers: &Payers,
        by_node: &mut Vec<(u32, u64)>,
        altmap: Option<&mut Altmap>,
    ) -> Result<SectionsMemmap, StepError> {
        let g = self.geometry;
        let (first, end) = (g.pfn_to_section(pfns.start()), g.pfn_to_section(pfns.end() - 1) + 1);
        // sparse_add_section: a subsection already active (device memory mapped there
        // without an iomem region) is EEXIST.
        self.refuse_present_sections(first, end)?;
        if !self.sections_own_their_pmds() {
            return self.add_sections_one_by_one(first, end, nid, payers, by_node, altmap);
        }
        let pmds = self.pmds_per_section();
        let need = pmds * g.pmd_pages();
        let total = end - first;
        let section = |memmap| Section { nid, subsection_map: g.subsection_mask(first, 0, u64::MAX), online: false, early: false, memmap };
        let mut done = SectionsMemmap::default();
        match altmap {
            Some(a) => {
                done.altmap_pages = self.alloc_pmds_from_altmap(a, total * pmds, pmds, SectionAt::of(first, first, total, 0))?;
                self.sections.set_range(first, end, Some(section(MemmapHome::Altmap { pages: need })));
            }
            None => {
                for (s, e, home) in self.charge_sections_memmap(payers, pmds, total, SectionAt::of(first, first, total, 0))? {
                    self.sections.set_range(s, e, Some(section(home)));
                    self.count_paid(by_node, s, e, home);
                    done.node_pages += (e - s) * home.pages();
                }
            }
        }
        Ok(done)
    }

    /// sparse_add_section for each section of System RAM `pfns` with MEMMAP_ON_MEMORY,
    /// every block's memmap from its own altmap. Sections own their PMDs (the caller
    /// checked), so every block allocates as the first does: `alt` (the first block's)
    /// is allocated, and the sections of all blocks are marked alike. O(1).
    pub(super) fn add_sections_per_block(&mut self, pfns: PfnRange, nid: u32, alt: &mut Altmap) -> Result<SectionsMemmap, StepError> {
        let g = self.geometry;
        let (first, end) = (g.pfn_to_section(pfns.start()), g.pfn_to_section(pfns.end() - 1) + 1);
        self.refuse_present_sections(first, end)?;
        let (pmds, per_block) = (self.pmds_per_section(), g.sections_per_block());
        // Each block's sections are numbered 1.. within the block, as the kernel adds a
        // block at a time.
        self.alloc_pmds_from_altmap(alt, per_block * pmds, pmds, SectionAt::of(first, first, per_block, 0))?;
        let need = pmds * g.pmd_pages();
        let section = Section {
            nid,
            subsection_map: g.subsection_mask(first, 0, u64::MAX),
            online: false,
            early: false,
            memmap: MemmapHome::Altmap { pages: need },
        };
        self.sections.set_range(first, end, Some(section));
        Ok(SectionsMemmap { node_pages: 0, altmap_pages: (end - first) * need })
    }

    /// [`Self::add_sections`] where sections share vmemmap PMDs: what each section needs
    /// depends on its neighbours, so section by section.
    fn add_sections_one_by_one(
        &mut self,
        first: u64,
        end: u64,
        nid: u32,
        payers: &Payers,
        by_node: &mut Vec<(u32, u64)>,
        mut altmap: Option<&mut Altmap>,
    ) -> Result<SectionsMemmap, StepError> {
        let g = self.geometry;
        let mut done = SectionsMemmap::default();
        for nr in first..end {
            let pmds = self.new_section_pmds(nr);
            let at = SectionAt::of(nr, first, end - first, done.node_pages);
            let home = if let Some(a) = altmap.as_deref_mut() {
                let pages = self.alloc_from_altmap(a, pmds, at)?;
                done.altmap_pages += pages;
                MemmapHome::Altmap { pages }
            } else {
                let homes = self.charge_sections_memmap(payers, pmds, 1, at)?;
                let home = homes.first().map_or(MemmapHome::Altmap { pages: 0 }, |&(_, _, h)| h);
                self.count_paid(by_node, nr, nr + 1, home);
                done.node_pages += home.pages();
                home
            };
            let all_subsections = g.subsection_mask(nr, 0, u64::MAX);
            self.sections.set(nr, Some(Section { nid, subsection_map: all_subsections, online: false, early: false, memmap: home }));
        }
        Ok(done)
    }

    /// sparse_remove_section for each section of `pfns`, last first: free its memmap
    /// (node pages back to the node) and drop it. Returns (node pages, altmap pages)
    /// freed. Cost: the runs of sections, when sections own their PMDs.
    pub(super) fn remove_sections(&mut self, pfns: PfnRange) -> (u64, u64) {
        let g = self.geometry;
        let (first, end) = (g.pfn_to_section(pfns.start()), g.pfn_to_section(pfns.end() - 1) + 1);
        let (mut node, mut alt) = (0, 0);
        if !self.sections_own_their_pmds() {
            for nr in (first..end).rev() {
                let Some(sec) = self.sections.get(nr).copied() else { continue };
                let freed = self.new_section_pmds(nr) * g.pmd_pages();
                self.free_section_memmap((nr, nr + 1), sec.memmap, freed, &mut node, &mut alt);
                self.sections.set(nr, None);
            }
            return (node, alt);
        }
        let per_section = self.pmds_per_section() * g.pmd_pages();
        let runs: Vec<(u64, u64, MemmapHome)> = self.sections.runs_in(first, end).map(|(s, e, sec)| (s, e, sec.memmap)).collect();
        for (s, e, memmap) in runs.into_iter().rev() {
            self.free_section_memmap((s, e), memmap, (e - s) * per_section, &mut node, &mut alt);
        }
        self.sections.set_range(first, end, None);
        (node, alt)
    }

    /// Add what sections `[s, e)` with memmap `home` took to the pages each node paid.
    fn count_paid(&self, by_node: &mut Vec<(u32, u64)>, s: u64, e: u64, home: MemmapHome) {
        let parts: Vec<(u32, u64)> = match home {
            MemmapHome::Node { nid, pages, .. } => vec![(nid, pages * (e - s))],
            MemmapHome::Split { .. } => {
                (s..e).flat_map(|nr| self.memmap_splits.get(&nr).cloned().unwrap_or_default()).map(|p| (p.nid, p.pages)).collect()
            }
            MemmapHome::Altmap { .. } | MemmapHome::Boot { .. } => Vec::new(),
        };
        for (nid, pages) in parts {
            match by_node.iter_mut().find(|(n, _)| *n == nid) {
                Some((_, total)) => *total += pages,
                None => by_node.push((nid, pages)),
            }
        }
    }

    /// Give the memmap of sections `[s, e)` (`pages` in all, `home` each) back: to the
    /// zones that paid it, or count it as the altmap's. Boot memmap stays with memblock.
    fn free_section_memmap(&mut self, (s, e): (u64, u64), home: MemmapHome, pages: u64, node: &mut u64, alt: &mut u64) {
        match home {
            MemmapHome::Node { nid, zone, .. } => {
                self.free_memmap_part(MemmapPart { nid, zone, pages });
                *node += pages;
            }
            MemmapHome::Split { .. } => {
                for nr in s..e {
                    for part in self.memmap_splits.remove(&nr).unwrap_or_default() {
                        self.free_memmap_part(part);
                        *node += part.pages;
                    }
                }
            }
            MemmapHome::Boot { nid, .. } => {
                self.nodes.update(&nid, |n| n.memmap_taken = n.memmap_taken.saturating_sub(pages));
                *node += pages;
            }
            MemmapHome::Altmap { .. } => *alt += pages,
        }
    }
}

/// Add `pmds` PMDs paid by `per_pmd` each to `parts`, merging parts of the same zone.
fn add_parts(parts: &mut Vec<MemmapPart>, per_pmd: &[MemmapPart], pmds: u64) {
    for p in per_pmd {
        match parts.iter_mut().find(|q| (q.nid, q.zone) == (p.nid, p.zone)) {
            Some(q) => q.pages += p.pages * pmds,
            None => parts.push(MemmapPart { pages: p.pages * pmds, ..*p }),
        }
    }
}
