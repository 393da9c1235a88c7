//! Sparse sections and their vmemmap (mm/sparse.c, mm/sparse-vmemmap.c): which PMDs of
//! vmemmap a section needs that no neighbour has mapped, where each section's memmap is
//! allocated (an altmap, or the free memory of the first node with room), and freeing it
//! again. System RAM and ZONE_DEVICE share this arithmetic, its one altmap allocator and
//! its one ENOMEM ([`MemmapShortage`]).

use std::ops::Range;

use hotplug_core::Altmap;

use super::altmap;
use super::error::{MemmapShortage, MemmapSource, StepError};
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

    /// Take `need` pages of memmap for section `at` from the first of `payers` with that
    /// many allocatable and return it; else ENOMEM with the payers' accounts.
    pub(super) fn charge_section_memmap(&mut self, payers: &[u32], need: u64, at: SectionAt) -> Result<u32, StepError> {
        let paid = self.charge_sections_memmap(payers, need, 1, at)?;
        Ok(paid.first().map_or(payers[0], |&(nid, _)| nid))
    }

    /// The numbers of a section's memmap no payer had room for.
    fn node_shortage(&self, payers: &[u32], need: u64, at: SectionAt) -> MemmapShortage {
        let g = self.geometry;
        let source = match payers {
            [nid] => {
                let n = self.nodes.get(nid).expect("memmap node checked");
                MemmapSource::Node {
                    nid: *nid,
                    free: n.free_pages(),
                    boot_free: n.boot_free,
                    onlined: n.onlined_since_boot,
                    memmap_taken: n.memmap_taken,
                    min_free: self.min_free_share(*nid),
                }
            }
            _ => MemmapSource::Nodes(payers.iter().map(|&n| (n, self.allocatable(n))).collect()),
        };
        MemmapShortage {
            section: at.section,
            index: at.index,
            sections: at.total,
            pfn: g.section_to_pfn(at.section),
            pages_needed: need,
            pages_available: payers.iter().map(|&n| self.allocatable(n)).max().unwrap_or(0),
            pages_done: at.done_pages,
            page_size: g.page_size(),
            source,
        }
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

    /// `need` pages of memmap for each of `count` sections from `at` on, from `payers` in
    /// order: each payer takes as many whole sections as it has room for (what
    /// [`Self::charge_section_memmap`] does section by section, at once). Returns the
    /// paying nodes with how many sections each paid, in order.
    pub(super) fn charge_sections_memmap(
        &mut self,
        payers: &[u32],
        need: u64,
        count: u64,
        at: SectionAt,
    ) -> Result<Vec<(u32, u64)>, StepError> {
        let mut paid = Vec::new();
        let mut done = 0;
        for &nid in payers {
            if done == count {
                break;
            }
            // Nothing to take (every PMD already mapped): the first payer stands for all.
            let k = self.allocatable(nid).checked_div(need).map_or(count, |fit| fit.min(count - done));
            if k > 0 {
                self.nodes.update(&nid, |n| n.memmap_taken += k * need);
                paid.push((nid, k));
                done += k;
            }
        }
        if done < count {
            let first = at.section + 1 - at.index;
            let failing = SectionAt::of(at.section + done, first, at.total, at.done_pages + done * need);
            return Err(StepError::memmap_enomem(self.node_shortage(payers, need, failing)));
        }
        Ok(paid)
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
        payers: &[u32],
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
                let mut at = first;
                for (payer, k) in self.charge_sections_memmap(payers, need, total, SectionAt::of(first, first, total, 0))? {
                    self.sections.set_range(at, at + k, Some(section(MemmapHome::Node { nid: payer, pages: need })));
                    match by_node.iter_mut().find(|(n, _)| *n == payer) {
                        Some((_, pages)) => *pages += k * need,
                        None => by_node.push((payer, k * need)),
                    }
                    done.node_pages += k * need;
                    at += k;
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
        payers: &[u32],
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
                let need = pmds * g.pmd_pages();
                let memmap_nid = self.charge_section_memmap(payers, need, at)?;
                match by_node.iter_mut().find(|(n, _)| *n == memmap_nid) {
                    Some((_, pages)) => *pages += need,
                    None => by_node.push((memmap_nid, need)),
                }
                done.node_pages += need;
                MemmapHome::Node { nid: memmap_nid, pages: need }
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
                self.free_section_memmap(sec.memmap, freed, &mut node, &mut alt);
                self.sections.set(nr, None);
            }
            return (node, alt);
        }
        let per_section = self.pmds_per_section() * g.pmd_pages();
        let runs: Vec<(u64, u64, MemmapHome)> = self.sections.runs_in(first, end).map(|(s, e, sec)| (s, e, sec.memmap)).collect();
        for (s, e, memmap) in runs.into_iter().rev() {
            self.free_section_memmap(memmap, (e - s) * per_section, &mut node, &mut alt);
        }
        self.sections.set_range(first, end, None);
        (node, alt)
    }

    /// Give `pages` of memmap from `home` back: to its node, or count them as altmap's.
    fn free_section_memmap(&mut self, home: MemmapHome, pages: u64, node: &mut u64, alt: &mut u64) {
        match home {
            MemmapHome::Node { nid, .. } | MemmapHome::Boot { nid, .. } => {
                self.nodes.update(&nid, |n| n.memmap_taken = n.memmap_taken.saturating_sub(pages));
                *node += pages;
            }
            MemmapHome::Altmap { .. } => *alt += pages,
        }
    }
}
