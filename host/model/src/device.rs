//! ZONE_DEVICE: memremap_pages / memunmap_pages (mm/memremap.c pagemap_range), the
//! memmap of device memory (whole sections PMD by PMD from the altmap or node memory,
//! partial sections with base pages from node memory, compound pages deduplicated), and
//! the Device zone, whose span grows but never shrinks and which is never populated.

use hotplug_core::{errno, Altmap, PfnRange, PgmapType, RequestKind, RestrictionFlags, Restrictions};

use super::altmap;
use super::error::StepError;
use super::ops::{OpsCall, RequestData, StrategyHandle, StrategyLookup};
use super::sections::{MemmapHome, Section};
use super::units::format_size;
use super::zone::ZoneType;
use super::{Model, PageState};

/// A memremap step, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemremapParams {
    /// The pgmap's ranges `(start, size)`; the altmap may only describe the first.
    pub ranges: Vec<(u64, u64)>,
    pub nid: u32,
    /// The pgmap type and compound order the driver asks for (NONE/0: the strategy decides).
    pub pgmap_type: PgmapType,
    pub vmemmap_shift: u32,
    /// The iomem region the driver requests for each range (`None`: it requests none).
    pub resource: Option<String>,
}

/// Node memmap taken for one section of one range, so memunmap gives back exactly it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionCharge {
    pub section: u64,
    /// The subsections this range made present.
    pub subsections: u64,
    /// Pages of memmap from node memory (base pages, page-table pages, or PMDs).
    pub node_pages: u64,
    /// Pages of memmap from the altmap (whole PMDs).
    pub altmap_pages: u64,
}

/// One `struct dev_pagemap` as the model keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pgmap {
    pub id: u64,
    pub nid: u32,
    /// `(start_pfn, nr_pages)` per range.
    pub ranges: Vec<(u64, u64)>,
    pub pgmap_type: PgmapType,
    pub strategy: String,
    /// What `set_up` returned per range, the first range's altmap as allocation left it.
    pub restrictions: Vec<Restrictions>,
    pub resource_ids: Vec<u64>,
    pub charges: Vec<SectionCharge>,
    pub compound_order: u32,
}

/// What a successful memremap did.
#[derive(Debug, Clone)]
pub struct MemremapOutcome {
    pub pgmap_id: u64,
    /// `(start, size)` in bytes per range.
    pub ranges: Vec<(u64, u64)>,
    pub compound_order: u32,
    /// Pages of memmap in RAM (node memory), and on which node.
    pub memmap_node_pages: u64,
    pub memmap_nid: u32,
    /// Pages of memmap inside the device (its altmap).
    pub memmap_device_pages: u64,
    /// Pages compound-page deduplication saved against one vmemmap page per 64 struct pages.
    pub memmap_saved_pages: u64,
    /// Device pages (ZONE_DEVICE struct pages in the pgmap).
    pub device_pages: u64,
    /// Struct pages memmap_init_zone_device initialises (fewer with deduplicated compounds).
    pub pages_initialised: u64,
    /// The strategy's note (e.g. the namespace's data offset).
    pub note: String,
}

/// What a memunmap did.
#[derive(Debug, Clone)]
pub struct MemunmapOutcome {
    pub pgmap_id: u64,
    pub memmap_freed_node_pages: u64,
    pub memmap_freed_device_pages: u64,
}

/// Compound pages of `order` get deduplicated vmemmap (mm.h __vmemmap_can_optimize on
/// x86_64): no altmap, and more than two vmemmap pages of struct pages per compound.
fn dedup(model: &Model, order: u32, has_altmap: bool) -> bool {
    let g = model.geometry.g;
    !has_altmap && g.arch == hotplug_core::Arch::X86_64 && order < 40 && (1u64 << order) * g.struct_page_size > 2 * g.page_size
}

impl Model {
    /// memremap_pages with `strategy` deciding the memmap placement and initialising the
    /// device pages. One transaction: any failure leaves the model as it was.
    pub fn memremap(&mut self, p: &MemremapParams, strategy: &dyn StrategyHandle) -> Result<MemremapOutcome, StepError> {
        self.transaction(|m| m.memremap_locked(p, strategy))
    }

    /// request_free_mem_region: the highest free `size`-byte slot below the end of the
    /// pluggable range, searched top-down in section-sized steps.
    pub fn find_free_region(&self, size: u64) -> Result<u64, StepError> {
        let g = self.geometry;
        let step = g.g.section_size;
        let none = || StepError::kernel(errno::ERANGE, format!("no free {} region in the physical address space", format_size(size)));
        if size == 0 || size > g.physmem_end() {
            return Err(none());
        }
        let mut addr = (g.physmem_end() - size + 1) / step * step;
        loop {
            if !self.resources.overlaps(addr, addr + size - 1) {
                return Ok(addr);
            }
            addr = addr.checked_sub(step).ok_or_else(none)?;
        }
    }

    fn memremap_locked(&mut self, p: &MemremapParams, strategy: &dyn StrategyHandle) -> Result<MemremapOutcome, StepError> {
        if p.ranges.is_empty() {
            return Err(StepError::kernel(errno::EINVAL, "a pgmap needs at least one range"));
        }
        if self.nodes.get(&p.nid).is_none() {
            return Err(StepError::kernel(errno::EINVAL, format!("node {} does not exist", p.nid)));
        }
        let id = {
            let c = self.counters.get_mut();
            c.next_pgmap_id += 1;
            c.next_pgmap_id
        };
        let mut pgmap = Pgmap {
            id,
            nid: p.nid,
            ranges: Vec::new(),
            pgmap_type: p.pgmap_type,
            strategy: strategy.instance_name().to_string(),
            restrictions: Vec::new(),
            resource_ids: Vec::new(),
            charges: Vec::new(),
            compound_order: 0,
        };
        let mut out = MemremapOutcome {
            pgmap_id: id,
            ranges: p.ranges.clone(),
            compound_order: 0,
            memmap_node_pages: 0,
            memmap_nid: p.nid,
            memmap_device_pages: 0,
            memmap_saved_pages: 0,
            device_pages: 0,
            pages_initialised: 0,
            note: String::new(),
        };
        for (i, &(start, size)) in p.ranges.iter().enumerate() {
            self.pagemap_range(p, strategy, i, start, size, &mut pgmap, &mut out)?;
        }
        out.compound_order = pgmap.compound_order;
        self.pgmaps.insert(id, pgmap);
        Ok(out)
    }

    /// One range of a pgmap: the driver's set_up (the strategy), then pagemap_range's
    /// checks, the iomem region, the subsections and their memmap, and construct
    /// (memmap_init_zone_device), accumulated into `pgmap` and `out`.
    #[allow(clippy::too_many_arguments)]
    fn pagemap_range(
        &mut self,
        p: &MemremapParams,
        strategy: &dyn StrategyHandle,
        i: usize,
        start: u64,
        size: u64,
        pgmap: &mut Pgmap,
        out: &mut MemremapOutcome,
    ) -> Result<(), StepError> {
        let g = self.geometry;
        let page = g.page_size();
        let plugin = strategy.plugin_name().to_string();
        let id = pgmap.id;
        // The driver sets the pgmap up (the strategy's set_up), then pagemap_range.
        let (start_pfn, nr) = (start / page, size.div_ceil(page));
        let mut request = RequestData::device(self, start_pfn, nr, p.nid, p.pgmap_type, p.vmemmap_shift, id);
        request.range_index = i as u32;
        request.range_count = p.ranges.len() as u32;
        let r = self.call_set_up(strategy, &request)?;
        self.validate_restrictions(RequestKind::DEVICE, &r, start_pfn, nr, &plugin)?;
        if r.flags.contains(RestrictionFlags::MEMORY_BLOCK_DEVICES) {
            return Err(StepError::validator(&plugin, "MEMORY_BLOCK_DEVICES for device memory (it is never onlined as System RAM)"));
        }
        if i > 0 && r.altmap.is_some() {
            return Err(StepError::validator(&plugin, "an altmap on a pgmap's range other than the first (the kernel refuses: EINVAL)"));
        }
        if !r.note.is_empty() && out.note.is_empty() {
            out.note = r.note.to_string();
        }
        self.pagemap_range_checks(start, size)?;
        // The driver's iomem region, when it requests one (devm_request_mem_region,
        // request_free_mem_region): a conflict is EBUSY.
        if let Some(name) = &p.resource {
            let rid = self.resources.request(start, start + size - 1, name, true).map_err(|c| {
                StepError::kernel(
                    errno::EBUSY,
                    format!("{start:#x}+{size:#x} conflicts with \"{}\" {:#x}-{:#x} in /proc/iomem", c.name, c.start, c.end),
                )
            })?;
            pgmap.resource_ids.push(rid);
        }
        // __add_pages: subsection granularity and the altmap's sanity.
        let sub = g.g.subsection_size;
        if start % sub != 0 || size % sub != 0 {
            return Err(StepError::kernel(
                errno::EINVAL,
                format!("{start:#x}+{size:#x} is not aligned to the {} subsection", format_size(sub)),
            ));
        }
        let mut alt = r.altmap.into_option().map(|a| Altmap { align: 0, alloc: 0, ..a });
        if let Some(a) = &alt {
            altmap::check_for_add(a, start_pfn, nr).map_err(|e| StepError::validator(&plugin, format!("invalid altmap: {e}")))?;
        }
        // sparse_add_section per section: EEXIST on an active subsection, whole
        // sections' memmap from the altmap now; node memmap once the compound order is
        // known (after construct).
        let mut charges = self.add_subsections(start_pfn, nr, p.nid, alt.as_mut())?;
        self.nodes.update(&p.nid, |n| {
            n.zone_mut(ZoneType::Device).grow_span(start_pfn, start_pfn + nr);
            n.online = true;
        });
        // construct(): the strategy initialises the device pages.
        let mut given = r.clone();
        given.altmap = alt.into();
        self.call_with_ops(strategy, OpsCall::Construct, &request, &given, PfnRange::new(start_pfn, nr), alt)?;
        let first_device = start_pfn + alt.map_or(0, |a| altmap::offset(&a));
        let order = self.validate_device_pages(&plugin, id, p.nid, start_pfn, first_device, start_pfn + nr)?;
        if i == 0 {
            pgmap.compound_order = order;
        } else if order != pgmap.compound_order {
            return Err(StepError::validator(&plugin, format!("range {i} has compound order {order}, range 0 {}", pgmap.compound_order)));
        }
        self.charge_node_memmap(&mut charges, start_pfn, nr, p.nid, order, alt.is_some())?;
        let device_pages = start_pfn + nr - first_device;
        let compound = 1u64 << order.min(40);
        let init_per_compound = if dedup(self, order, alt.is_some()) { 2 * page / g.g.struct_page_size } else { compound };
        out.device_pages += device_pages;
        out.pages_initialised += device_pages / compound * init_per_compound.min(compound) + device_pages % compound;
        for c in &charges {
            out.memmap_node_pages += c.node_pages;
            out.memmap_device_pages += c.altmap_pages;
        }
        if dedup(self, order, alt.is_some()) {
            let plain = g.memmap_pages(nr);
            let used: u64 = charges.iter().map(|c| c.node_pages).sum();
            out.memmap_saved_pages += plain.saturating_sub(used);
        }
        pgmap.charges.extend(charges);
        pgmap.ranges.push((start_pfn, nr));
        pgmap.restrictions.push(given);
        Ok(())
    }

    /// pagemap_range's checks, in its order: ENOMEM for a pgmap at the range's first or
    /// last pfn; ENXIO for System RAM in the range; EINVAL outside the pluggable range.
    fn pagemap_range_checks(&self, start: u64, size: u64) -> Result<(), StepError> {
        let g = self.geometry;
        let page = g.page_size();
        let Some(last_byte) = start.checked_add(size).and_then(|e| e.checked_sub(1)).filter(|_| size > 0) else {
            return Err(StepError::kernel(errno::EINVAL, format!("range {start:#x}+{size:#x} is empty or overflows")));
        };
        for pfn in [start / page, last_byte / page] {
            if let Some(other) = self.pgmap_at(pfn) {
                return Err(StepError::kernel(
                    errno::ENOMEM,
                    format!("pfn {pfn:#x} already belongs to pgmap {} (\"Conflicting mapping in same section\")", other.id),
                ));
            }
        }
        if let Some(r) = self.resources.overlapping(start, last_byte).into_iter().find(|r| r.name.starts_with("System RAM")) {
            return Err(StepError::kernel(
                errno::ENXIO,
                format!("{start:#x}-{last_byte:#x} overlaps \"{}\" {:#x}-{:#x}: memremap is refused on RAM", r.name, r.start, r.end),
            ));
        }
        if last_byte > g.physmem_end() {
            return Err(StepError::kernel(
                errno::EINVAL,
                format!("{start:#x}-{last_byte:#x} is outside the pluggable range [0, {:#x}]", g.physmem_end()),
            ));
        }
        Ok(())
    }

    /// The pgmap one of whose ranges holds `pfn`.
    pub fn pgmap_at(&self, pfn: u64) -> Option<&Pgmap> {
        self.pgmaps.values().find(|p| p.ranges.iter().any(|&(s, n)| pfn >= s && pfn < s + n))
    }

    /// Make the subsections of `[start, start + nr)` present, taking whole sections'
    /// memmap from `altmap` PMD by PMD. Node charges are filled in later.
    fn add_subsections(&mut self, start: u64, nr: u64, nid: u32, mut alt: Option<&mut Altmap>) -> Result<Vec<SectionCharge>, StepError> {
        let g = self.geometry;
        let pps = g.pages_per_section();
        let mut charges = Vec::new();
        let end = start + nr;
        for nr_sec in g.pfn_to_section(start)..=g.pfn_to_section(end - 1) {
            let s_start = g.section_to_pfn(nr_sec);
            let (a, b) = (start.max(s_start), end.min(s_start + pps));
            let mask = g.subsection_mask(nr_sec, start, end);
            let existing = self.sections.get(nr_sec).copied();
            if let Some(sec) = existing {
                if sec.subsection_map & mask != 0 {
                    return Err(StepError::kernel(
                        errno::EEXIST,
                        format!("section {nr_sec:#x} already has active subsections in {:#x}-{:#x}", a, b - 1),
                    ));
                }
            }
            let whole = b - a == pps;
            let mut altmap_pages = 0;
            if let (true, Some(alt)) = (whole, alt.as_deref_mut()) {
                let new_pmds = self.new_section_pmds(nr_sec);
                for _ in 0..new_pmds {
                    if altmap::alloc(alt, g.pmd_pages()).is_none() {
                        return Err(StepError::kernel(
                            errno::ENOMEM,
                            format!("device altmap exhausted at section {nr_sec:#x}: {} of {} pages free", altmap::nr_free(alt), alt.free),
                        ));
                    }
                }
                altmap_pages = new_pmds * g.pmd_pages();
            }
            let memmap = match existing.map(|s| s.memmap) {
                Some(MemmapHome::Altmap { pages }) => MemmapHome::Altmap { pages: pages + altmap_pages },
                Some(other) => other,
                None if altmap_pages > 0 => MemmapHome::Altmap { pages: altmap_pages },
                None => MemmapHome::Node { nid, pages: 0 },
            };
            let map = existing.map_or(0, |s| s.subsection_map) | mask;
            self.sections.set(nr_sec, Some(Section { nid, subsection_map: map, online: false, early: false, memmap }));
            charges.push(SectionCharge { section: nr_sec, subsections: mask, node_pages: 0, altmap_pages });
        }
        Ok(charges)
    }

    /// Node memmap for the parts of `[start, start + nr)` not mapped from the altmap:
    /// deduplicated compounds (2 pages each, plus a page-table page per section), base
    /// pages for partial sections (plus a page-table page), or PMDs for whole sections.
    /// ENOMEM, with the arithmetic, when the node is short.
    fn charge_node_memmap(
        &mut self,
        charges: &mut [SectionCharge],
        start: u64,
        nr: u64,
        nid: u32,
        order: u32,
        has_altmap: bool,
    ) -> Result<(), StepError> {
        let g = self.geometry;
        let (pps, pp_sub, pmd) = (g.pages_per_section(), g.pages_per_subsection(), g.pmd_pages());
        let dedup = dedup(self, order, has_altmap);
        let compound = 1u64 << order.min(40);
        let end = start + nr;
        let mut need = 0;
        for c in charges.iter_mut().filter(|c| c.altmap_pages == 0) {
            let s_start = g.section_to_pfn(c.section);
            let (a, b) = (start.max(s_start), end.min(s_start + pps));
            let section_was_present = self.sections.get(c.section).is_some_and(|s| s.subsection_map & !c.subsections != 0);
            let pte_table = u64::from(!section_was_present);
            c.node_pages = if dedup {
                let unique = if compound <= pps { (b - a) / compound * 2 } else { u64::from((a - start) % compound == 0) * 2 };
                unique + pte_table
            } else if b - a == pps {
                self.new_section_pmds(c.section) * pmd
            } else {
                c.subsections.count_ones() as u64 * g.memmap_pages(pp_sub) + pte_table
            };
            need += c.node_pages;
        }
        let available = self.allocatable(nid);
        if need > available {
            let n = self.nodes.get(&nid).expect("node checked");
            return Err(StepError::kernel(
                errno::ENOMEM,
                format!(
                    "device memmap needs {need} pages ({}) from node {nid}, which has {available} allocatable: free {} - min_free {}",
                    format_size(need * g.page_size()),
                    n.free_pages(),
                    self.min_free_share(nid)
                ),
            ));
        }
        self.nodes.update(&nid, |n| n.memmap_taken += need);
        for c in charges.iter().filter(|c| c.node_pages > 0) {
            self.sections.update(c.section, |s| {
                if let MemmapHome::Node { pages, .. } = &mut s.memmap {
                    *pages += c.node_pages;
                }
            });
        }
        Ok(())
    }

    /// After construct: `[first_device, end)` must be device pages of this pgmap on `nid`,
    /// with one compound order; `[start, first_device)` (the altmap's reserve + free) must
    /// not. Returns the compound order.
    fn validate_device_pages(&self, plugin: &str, id: u64, nid: u32, start: u64, first_device: u64, end: u64) -> Result<u32, StepError> {
        let runs = self.pages.overlapping(start, end);
        if let Some((s, e, _)) = runs.iter().find(|(s, _, v)| *s < first_device && matches!(v, PageState::Device { .. })) {
            return Err(StepError::validator(
                plugin,
                format!(
                    "pfns {s:#x}-{:#x} hold the altmap's reserve or memmap but were initialised as device pages",
                    e.min(&first_device) - 1
                ),
            ));
        }
        let mut order = None;
        let mut covered = 0;
        for (s, e, v) in runs {
            let (s, e) = (s.max(first_device), e.min(end));
            if s >= e {
                continue;
            }
            match v {
                PageState::Device { nid: n, pgmap_id, compound_order, .. } if pgmap_id == id && n == nid => {
                    if *order.get_or_insert(compound_order) != compound_order {
                        return Err(StepError::validator(plugin, "device pages of one range with different compound orders"));
                    }
                    covered += e - s;
                }
                other => {
                    return Err(StepError::validator(
                        plugin,
                        format!("pfns {s:#x}-{:#x} are {other:?}, not device pages of pgmap {id} on node {nid}", e - 1),
                    ))
                }
            }
        }
        if covered != end - first_device {
            return Err(StepError::validator(
                plugin,
                format!("construct initialised {covered} of the {} device pages from pfn {first_device:#x}", end - first_device),
            ));
        }
        let order = order.unwrap_or(0);
        if order > 0 && ((first_device - start) % (1u64 << order.min(40)) != 0 || (end - first_device) % (1u64 << order.min(40)) != 0) {
            return Err(StepError::validator(plugin, format!("device pages are not whole compound pages of order {order}")));
        }
        Ok(order)
    }

    /// memunmap_pages for the pgmap whose first range starts at `start` (bytes): the
    /// strategy's tear_down, then memmap and subsections go; the Device zone keeps its span.
    pub fn memunmap(&mut self, start: u64, lookup: &dyn StrategyLookup) -> Result<MemunmapOutcome, StepError> {
        self.transaction(|m| m.memunmap_locked(start, lookup))
    }

    fn memunmap_locked(&mut self, start: u64, lookup: &dyn StrategyLookup) -> Result<MemunmapOutcome, StepError> {
        let g = self.geometry;
        let page = g.page_size();
        let pfn = start / page;
        let pgmap = self
            .pgmaps
            .values()
            .find(|p| p.ranges.first().is_some_and(|&(s, _)| s == pfn))
            .cloned()
            .ok_or_else(|| StepError::kernel(errno::EINVAL, format!("no pgmap starts at {start:#x}")))?;
        let strategy = lookup.strategy(&pgmap.strategy).ok_or_else(|| {
            StepError::kernel(errno::EINVAL, format!("strategy \"{}\" that mapped this memory is not loaded", pgmap.strategy))
        })?;
        for (i, (&(s, n), r)) in pgmap.ranges.iter().zip(&pgmap.restrictions).enumerate() {
            let mut request = RequestData::device(self, s, n, pgmap.nid, pgmap.pgmap_type, pgmap.compound_order, pgmap.id);
            request.range_index = i as u32;
            request.range_count = pgmap.ranges.len() as u32;
            self.call_with_ops(strategy, OpsCall::TearDown, &request, r, PfnRange::new(s, n), r.altmap.into_option())?;
            let leftover: Vec<(u64, u64)> = self
                .pages
                .overlapping(s, s + n)
                .into_iter()
                .filter(|(_, _, v)| !matches!(v, PageState::Reserved { .. }))
                .map(|(a, b, _)| (a, b))
                .collect();
            for (a, b) in leftover {
                self.pages.set(a, b, None);
            }
        }
        let (mut node_pages, mut device_pages) = (0, 0);
        for c in pgmap.charges.iter().rev() {
            node_pages += c.node_pages;
            device_pages += c.altmap_pages;
            if let Some(mut sec) = self.sections.get(c.section).copied() {
                sec.subsection_map &= !c.subsections;
                match &mut sec.memmap {
                    MemmapHome::Node { pages, .. } => *pages = pages.saturating_sub(c.node_pages),
                    MemmapHome::Altmap { pages } => *pages = pages.saturating_sub(c.altmap_pages),
                    MemmapHome::Boot { .. } => {}
                }
                self.sections.set(c.section, (sec.subsection_map != 0).then_some(sec));
            }
        }
        self.nodes.update(&pgmap.nid, |n| n.memmap_taken = n.memmap_taken.saturating_sub(node_pages));
        for rid in &pgmap.resource_ids {
            self.resources.release(*rid);
        }
        self.pgmaps.remove(&pgmap.id);
        Ok(MemunmapOutcome { pgmap_id: pgmap.id, memmap_freed_node_pages: node_pages, memmap_freed_device_pages: device_pages })
    }
}
