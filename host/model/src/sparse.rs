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
        // A section whose struct pages fill whole PMDs (x86_64) shares none of them.
        if (g.pages_per_section() * g.g.struct_page_size) % g.g.pmd_size == 0 {
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
        let Some(nid) = payers.iter().copied().find(|&n| self.allocatable(n) >= need) else {
            return Err(StepError::memmap_enomem(self.node_shortage(payers, need, at)));
        };
        self.nodes.update(&nid, |n| n.memmap_taken += need);
        Ok(nid)
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

    /// sparse_add_section for each section of System RAM `pfns`: allocate its memmap
    /// (from `altmap` if given, else from the first of `payers` with room) and mark it
    /// present. `by_node` adds up the node pages per paying node.
    pub(super) fn add_sections(
        &mut self,
        pfns: PfnRange,
        nid: u32,
        payers: &[u32],
        by_node: &mut Vec<(u32, u64)>,
        mut altmap: Option<&mut Altmap>,
    ) -> Result<SectionsMemmap, StepError> {
        let g = self.geometry;
        let first = g.pfn_to_section(pfns.start());
        let last = g.pfn_to_section(pfns.end() - 1);
        let mut done = SectionsMemmap::default();
        for nr in first..=last {
            // sparse_add_section: a subsection already active (device memory mapped there
            // without an iomem region) is EEXIST.
            if self.sections.get(nr).is_some() {
                return Err(StepError::kernel(
                    hotplug_core::errno::EEXIST,
                    format!("section {nr:#x} (pfn {:#x}) already has active subsections: subsection already active", g.section_to_pfn(nr)),
                ));
            }
            let pmds = self.new_section_pmds(nr);
            let at = SectionAt::of(nr, first, last - first + 1, done.node_pages);
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
    /// (node pages back to the node) and drop it. Returns (node pages, altmap pages) freed.
    pub(super) fn remove_sections(&mut self, pfns: PfnRange) -> (u64, u64) {
        let g = self.geometry;
        let first = g.pfn_to_section(pfns.start());
        let last = g.pfn_to_section(pfns.end() - 1);
        let (mut node, mut alt) = (0, 0);
        for nr in (first..=last).rev() {
            let Some(sec) = self.sections.get(nr).copied() else { continue };
            let freed = self.new_section_pmds(nr) * g.pmd_pages();
            match sec.memmap {
                MemmapHome::Node { nid, .. } | MemmapHome::Boot { nid, .. } => {
                    self.nodes.update(&nid, |n| n.memmap_taken = n.memmap_taken.saturating_sub(freed));
                    node += freed;
                }
                MemmapHome::Altmap { .. } => alt += freed,
            }
            self.sections.set(nr, None);
        }
        (node, alt)
    }
}
