//! The memmap of device memory (mm/sparse-vmemmap.c for a pgmap's range): subsections
//! made present section by section, whole sections' memmap PMD by PMD from the altmap,
//! the rest from the pgmap's node once the compound order is known (base pages for
//! partial sections, PMDs for whole ones, two pages per compound when deduplicated).
//! The whole sections in the middle of a range are alike, so they are one run of
//! charges and cost O(1); only the partial sections at the ends go one by one.

use hotplug_core::{errno, Altmap};

use super::error::StepError;
use super::memmap_alloc::{MemmapPart, Payers};
use super::range::PfnRange;
use super::sections::{MemmapHome, Section};
use super::sparse::SectionAt;
use super::zone::ZoneType;
use super::Model;

/// Memmap one range took for a run of `count` alike sections from `section`, per
/// section, so memunmap gives back exactly it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionCharge {
    pub section: u64,
    pub count: u64,
    /// The subsections this range made present in each.
    pub subsections: u64,
    /// Pages of memmap from node memory per section (base pages, page-table pages, or PMDs).
    pub node_pages: u64,
    /// Pages of memmap from the altmap per section (whole PMDs).
    pub altmap_pages: u64,
}

impl SectionCharge {
    /// Node pages over all its sections.
    pub fn total_node_pages(&self) -> u64 {
        self.node_pages * self.count
    }

    /// Altmap pages over all its sections.
    pub fn total_altmap_pages(&self) -> u64 {
        self.altmap_pages * self.count
    }
}

/// Compound pages of `order` get deduplicated vmemmap (mm.h __vmemmap_can_optimize on
/// x86_64): no altmap, and more than two vmemmap pages of struct pages per compound.
pub(super) fn dedup(model: &Model, order: u32, has_altmap: bool) -> bool {
    let g = model.geometry.g;
    !has_altmap && g.arch == hotplug_core::Arch::X86_64 && order < 40 && (1u64 << order) * g.struct_page_size > 2 * g.page_size
}

impl Model {
    /// Make the subsections of `pfns` present, taking whole sections' memmap from `alt`
    /// PMD by PMD through the shared allocator, in section order (EEXIST at the first
    /// section with an active subsection in the range). Node charges come later.
    pub(super) fn add_subsections(
        &mut self,
        pfns: PfnRange,
        nid: u32,
        mut alt: Option<&mut Altmap>,
    ) -> Result<Vec<SectionCharge>, StepError> {
        let g = self.geometry;
        let (first, end) = (g.pfn_to_section(pfns.start()), g.pfn_to_section(pfns.end() - 1) + 1);
        let total = end - first;
        // The whole sections strictly inside, when they can go as one run.
        let whole = |nr: u64| self.is_whole_section_of(nr, pfns);
        let mid_first = if whole(first) { first } else { first + 1 };
        let mid_end = if end > mid_first && whole(end - 1) { end } else { end - 1 }.max(mid_first);
        let mut charges = Vec::new();
        let mut nr = first;
        while nr < end {
            if nr == mid_first && mid_end > mid_first && self.sections_own_their_pmds() {
                // Alike whole sections up to the first present one (EEXIST there).
                let clash = self.sections.runs_in(mid_first, mid_end).next().map(|(s, _, _)| s);
                let stop = clash.unwrap_or(mid_end);
                if stop > mid_first {
                    charges.push(self.add_whole_sections(
                        mid_first,
                        stop,
                        nid,
                        alt.as_deref_mut(),
                        SectionAt::of(mid_first, first, total, 0),
                    )?);
                }
                if let Some(nr) = clash {
                    return Err(self.subsection_eexist(nr, pfns));
                }
                nr = mid_end;
                continue;
            }
            charges.push(self.add_one_section(nr, pfns, nid, alt.as_deref_mut(), SectionAt::of(nr, first, total, 0))?);
            nr += 1;
        }
        Ok(charges)
    }

    /// Whether `pfns` covers all of section `nr`.
    fn is_whole_section_of(&self, nr: u64, pfns: PfnRange) -> bool {
        let g = self.geometry;
        g.section_pfns(nr).intersection(&pfns).is_some_and(|p| p.count() == g.pages_per_section())
    }

    /// EEXIST for section `nr`, which already has subsections of `pfns` active.
    fn subsection_eexist(&self, nr: u64, pfns: PfnRange) -> StepError {
        let part = self.geometry.section_pfns(nr).intersection(&pfns).unwrap_or_default();
        StepError::kernel(
            errno::EEXIST,
            format!("section {nr:#x} already has active subsections in {:#x}-{:#x}", part.start(), part.end().saturating_sub(1)),
        )
    }

    /// Whole, not yet present sections `[first, end)`: their memmap from the altmap (if
    /// any) at once, all marked present alike.
    fn add_whole_sections(
        &mut self,
        first: u64,
        end: u64,
        nid: u32,
        alt: Option<&mut Altmap>,
        at: SectionAt,
    ) -> Result<SectionCharge, StepError> {
        let g = self.geometry;
        let (count, pmds) = (end - first, self.pmds_per_section());
        let altmap_pages = match alt {
            Some(a) => self.alloc_pmds_from_altmap(a, count * pmds, pmds, at)? / count,
            None => 0,
        };
        let memmap = if altmap_pages > 0 {
            MemmapHome::Altmap { pages: altmap_pages }
        } else {
            MemmapHome::Node { nid, zone: ZoneType::Device, pages: 0 }
        };
        let mask = g.subsection_mask(first, 0, u64::MAX);
        self.sections.set_range(first, end, Some(Section { nid, subsection_map: mask, online: false, early: false, memmap }));
        Ok(SectionCharge { section: first, count, subsections: mask, node_pages: 0, altmap_pages })
    }

    /// One section of `pfns` (a partial one, or any where sections share PMDs).
    fn add_one_section(
        &mut self,
        nr: u64,
        pfns: PfnRange,
        nid: u32,
        alt: Option<&mut Altmap>,
        at: SectionAt,
    ) -> Result<SectionCharge, StepError> {
        let g = self.geometry;
        let mask = g.subsection_mask(nr, pfns.start(), pfns.end());
        let existing = self.sections.get(nr).copied();
        if existing.is_some_and(|sec| sec.subsection_map & mask != 0) {
            return Err(self.subsection_eexist(nr, pfns));
        }
        let whole = self.is_whole_section_of(nr, pfns);
        let altmap_pages = match (whole, alt) {
            (true, Some(a)) => self.alloc_from_altmap(a, self.new_section_pmds(nr), at)?,
            _ => 0,
        };
        let memmap = match existing.map(|s| s.memmap) {
            Some(MemmapHome::Altmap { pages }) => MemmapHome::Altmap { pages: pages + altmap_pages },
            Some(other) => other,
            None if altmap_pages > 0 => MemmapHome::Altmap { pages: altmap_pages },
            None => MemmapHome::Node { nid, zone: ZoneType::Device, pages: 0 },
        };
        let map = existing.map_or(0, |s| s.subsection_map) | mask;
        self.sections.set(nr, Some(Section { nid, subsection_map: map, online: false, early: false, memmap }));
        Ok(SectionCharge { section: nr, count: 1, subsections: mask, node_pages: 0, altmap_pages })
    }

    /// Node memmap for the sections of `pfns` not mapped from the altmap, in section
    /// order from the page allocator by `nid`'s zonelist (ENOMEM at the first that does
    /// not fit): PMDs for whole sections, single pages otherwise. Returns the zones that
    /// paid, which memunmap gives back. (A device section's own memmap home counts its
    /// pages; its node and zone say nothing: `ZoneType::Device` marks that.)
    pub(super) fn charge_node_memmap(
        &mut self,
        charges: &mut Vec<SectionCharge>,
        pfns: PfnRange,
        nid: u32,
        order: u32,
        has_altmap: bool,
    ) -> Result<Vec<MemmapPart>, StepError> {
        let g = self.geometry;
        let first = g.pfn_to_section(pfns.start());
        let total = g.pfn_to_section(pfns.end() - 1) + 1 - first;
        let compound = 1u64 << order.min(40);
        // With compounds larger than a section, only the section where each compound
        // starts holds its two unique pages: section by section.
        if dedup(self, order, has_altmap) && compound > g.pages_per_section() {
            *charges =
                charges.iter().flat_map(|c| (0..c.count).map(move |i| SectionCharge { section: c.section + i, count: 1, ..*c })).collect();
        }
        let payers = Payers::Zonelist { nid, fresh: false };
        let pmd = g.pmd_pages();
        let mut paid: Vec<MemmapPart> = Vec::new();
        let mut done = 0;
        for c in charges.iter_mut().filter(|c| c.altmap_pages == 0) {
            let need = self.node_memmap_per_section(c, pfns, order, has_altmap);
            if need > 0 {
                let whole_pmds = !dedup(self, order, has_altmap) && self.is_whole_section_of(c.section, pfns);
                let parts = if whole_pmds {
                    self.alloc_memmap_pmds(&payers, c.count * (need / pmd)).map(|runs| {
                        runs.into_iter()
                            .flat_map(|r| r.per_pmd.into_iter().map(move |p| MemmapPart { pages: p.pages * r.pmds, ..p }))
                            .collect()
                    })
                } else {
                    self.alloc_memmap_pages(&payers, c.count * need).map_err(|pages| (pages, pages))
                };
                let parts: Vec<MemmapPart> = parts.map_err(|(allocs, pages)| {
                    let unit = if whole_pmds { pmd } else { 1 };
                    let sections_done = allocs * unit / need;
                    let at = SectionAt::of(c.section + sections_done, first, total, done + pages);
                    self.memmap_shortage(&payers, need, at)
                })?;
                for p in parts {
                    match paid.iter_mut().find(|q| (q.nid, q.zone) == (p.nid, p.zone)) {
                        Some(q) => q.pages += p.pages,
                        None => paid.push(p),
                    }
                }
                self.sections.update_range(c.section, c.section + c.count, |s| {
                    if let MemmapHome::Node { pages, .. } = &mut s.memmap {
                        *pages += need;
                    }
                });
            }
            c.node_pages = need;
            done += need * c.count;
        }
        Ok(paid)
    }

    /// Node memmap pages each section of charge `c` needs: deduplicated compounds (2
    /// pages each, plus a page-table page for a section not present before), base
    /// pages for a partial section (plus a page-table page), or PMDs for a whole one.
    fn node_memmap_per_section(&self, c: &SectionCharge, pfns: PfnRange, order: u32, has_altmap: bool) -> u64 {
        let g = self.geometry;
        let (pps, pp_sub, pmd) = (g.pages_per_section(), g.pages_per_subsection(), g.pmd_pages());
        let compound = 1u64 << order.min(40);
        let part = g.section_pfns(c.section).intersection(&pfns).expect("the range's own section");
        let section_was_present = self.sections.get(c.section).is_some_and(|s| s.subsection_map & !c.subsections != 0);
        let pte_table = u64::from(!section_was_present);
        if dedup(self, order, has_altmap) {
            let unique =
                if compound <= pps { part.count() / compound * 2 } else { u64::from((part.start() - pfns.start()) % compound == 0) * 2 };
            unique + pte_table
        } else if part.count() == pps {
            self.new_section_pmds(c.section) * pmd
        } else {
            c.subsections.count_ones() as u64 * g.memmap_pages(pp_sub) + pte_table
        }
    }

    /// Undo one range's `charges`, last first: its subsections go, with the memmap it
    /// took; a section left without subsections goes. Returns (node pages, altmap
    /// pages) freed; the caller gives the node pages back to the zones that paid.
    pub(super) fn remove_subsections(&mut self, charges: &[SectionCharge]) -> (u64, u64) {
        let (mut node_pages, mut device_pages) = (0, 0);
        for c in charges.iter().rev() {
            node_pages += c.total_node_pages();
            device_pages += c.total_altmap_pages();
            let runs: Vec<(u64, u64, Section)> =
                self.sections.runs_in(c.section, c.section + c.count).map(|(s, e, sec)| (s, e, *sec)).collect();
            for (s, e, mut sec) in runs.into_iter().rev() {
                sec.subsection_map &= !c.subsections;
                match &mut sec.memmap {
                    MemmapHome::Node { pages, .. } | MemmapHome::Split { pages, .. } => *pages = pages.saturating_sub(c.node_pages),
                    MemmapHome::Altmap { pages } => *pages = pages.saturating_sub(c.altmap_pages),
                    MemmapHome::Boot { .. } => {}
                }
                self.sections.set_range(s, e, (sec.subsection_map != 0).then_some(sec));
            }
        }
        (node_pages, device_pages)
    }
}
