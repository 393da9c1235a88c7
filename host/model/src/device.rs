//! ZONE_DEVICE: memremap_pages / memunmap_pages (mm/memremap.c pagemap_range), the
//! memmap of device memory (whole sections PMD by PMD from the altmap or node memory,
//! partial sections with base pages from node memory, compound pages deduplicated), and
//! the Device zone, whose span grows but never shrinks and which is never populated.

use hotplug_core::{errno, Altmap, PgmapType, RequestKind, RestrictionFlags, Restrictions};

use super::altmap;
use super::device_memmap::{dedup, SectionCharge};
use super::error::StepError;
use super::ops::{OpsCall, RequestData, StrategyHandle, StrategyLookup};
use super::range::{PfnRange, PhysRange};
use super::units::format_size;
use super::zone::ZoneType;
use super::{Model, PageState};

/// A memremap step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemremapParams {
    /// The pgmap's ranges; the altmap may only describe the first.
    pub ranges: Vec<PhysRange>,
    pub nid: u32,
    /// The pgmap type and compound order the driver asks for (NONE/0: the strategy decides).
    pub pgmap_type: PgmapType,
    pub vmemmap_shift: u32,
    /// The iomem region the driver requests for each range (`None`: it requests none).
    pub resource: Option<String>,
    /// A device-dax namespace's own name: its claim keeps the metadata part (info block
    /// and, with an altmap, the memmap) and `resource` only the data part after it.
    pub namespace: Option<String>,
}

/// One range of a pgmap, as memremap left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgmapRange {
    pub pfns: PfnRange,
    /// What `set_up` returned for it, its altmap as allocation left it.
    pub restrictions: Restrictions,
    /// The iomem region the driver requested for it.
    pub resource_id: Option<u64>,
    /// A device-dax namespace's claim on the metadata part, before `resource_id`'s.
    pub namespace_id: Option<u64>,
    /// Its memmap, section by section.
    pub charges: Vec<SectionCharge>,
    /// The zones whose pages hold its memmap in RAM, and how many each.
    pub paid: Vec<super::memmap_alloc::MemmapPart>,
}

/// One `struct dev_pagemap` as the model keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pgmap {
    pub id: u64,
    pub nid: u32,
    pub ranges: Vec<PgmapRange>,
    pub pgmap_type: PgmapType,
    pub strategy: String,
    pub compound_order: u32,
}

impl Pgmap {
    /// The first range's first pfn: what memunmap names the pgmap by.
    pub fn start_pfn(&self) -> u64 {
        self.ranges.first().map_or(0, |r| r.pfns.start())
    }
}

/// What a successful memremap did.
#[derive(Debug, Clone)]
pub struct MemremapOutcome {
    pub pgmap_id: u64,
    pub ranges: Vec<PhysRange>,
    pub compound_order: u32,
    /// Pages of memmap in RAM (node memory), and on which node (the first that paid).
    pub memmap_node_pages: u64,
    pub memmap_nid: u32,
    /// Every node that paid and how much, in the order they paid.
    pub memmap_by_node: Vec<(u32, u64)>,
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

/// One range as pagemap_range left it, and the compound order construct gave it.
struct MappedRange {
    range: PgmapRange,
    order: u32,
}

/// A range's place in its pgmap, as the strategy's request says it.
#[derive(Debug, Clone, Copy)]
struct RangeAt {
    index: usize,
    count: usize,
    pgmap_id: u64,
}

impl Model {
    /// memremap_pages with `strategy` deciding the memmap placement and initialising the
    /// device pages. One transaction: any failure leaves the model as it was.
    pub fn memremap(&mut self, p: &MemremapParams, strategy: &dyn StrategyHandle) -> Result<MemremapOutcome, StepError> {
        self.transaction(|m| m.memremap_locked(p, strategy))
    }

    /// request_free_mem_region: the highest free, section-aligned `size`-byte slot below
    /// the end of the pluggable range. The kernel tries slots top-down a section at a
    /// time; every slot overlapping a region is skipped at once (cost: the regions passed).
    pub fn find_free_region(&self, size: u64) -> Result<u64, StepError> {
        let g = self.geometry;
        let step = g.g.section_size;
        let none = || StepError::kernel(errno::ERANGE, format!("no free {} region in the physical address space", format_size(size)));
        if size == 0 || size > g.physmem_end() {
            return Err(none());
        }
        let mut addr = (g.physmem_end() - size + 1) / step * step;
        loop {
            let Some(r) = self.resources.highest_overlapping(addr, addr + (size - 1)) else { return Ok(addr) };
            // The highest slot that ends below the region.
            addr = r.start.checked_sub(size).ok_or_else(none)? / step * step;
        }
    }

    fn memremap_locked(&mut self, p: &MemremapParams, strategy: &dyn StrategyHandle) -> Result<MemremapOutcome, StepError> {
        if p.ranges.is_empty() {
            return Err(StepError::kernel(errno::EINVAL, "a pgmap needs at least one range"));
        }
        // pgmap_vmemmap_nr is 1 << vmemmap_shift pages: an order whose compound page has
        // more bytes than 2^64 can describe no range (checked before any strategy sees it).
        let page_shift = self.geometry.page_size().trailing_zeros();
        if p.vmemmap_shift >= 64 - page_shift {
            return Err(StepError::kernel(
                errno::EINVAL,
                format!("vmemmap_shift {}: a compound page of 2^{} pages passes 2^64 bytes", p.vmemmap_shift, p.vmemmap_shift),
            ));
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
            compound_order: 0,
        };
        let mut out = MemremapOutcome {
            pgmap_id: id,
            ranges: p.ranges.clone(),
            compound_order: 0,
            memmap_node_pages: 0,
            memmap_nid: p.nid,
            memmap_by_node: Vec::new(),
            memmap_device_pages: 0,
            memmap_saved_pages: 0,
            device_pages: 0,
            pages_initialised: 0,
            note: String::new(),
        };
        for (index, &range) in p.ranges.iter().enumerate() {
            let at = RangeAt { index, count: p.ranges.len(), pgmap_id: id };
            let mapped = self.pagemap_range(p, strategy, at, range, &mut out).map_err(|e| e.or_check("pagemap_range"))?;
            if index == 0 {
                pgmap.compound_order = mapped.order;
            } else if mapped.order != pgmap.compound_order {
                return Err(StepError::validator(
                    strategy.plugin_name(),
                    format!("range {index} has compound order {}, range 0 {}", mapped.order, pgmap.compound_order),
                ));
            }
            pgmap.ranges.push(mapped.range);
        }
        out.compound_order = pgmap.compound_order;
        self.pgmaps.insert(id, pgmap);
        Ok(out)
    }

    /// One range of a pgmap, as pagemap_range does it after the driver's set_up (the
    /// strategy): the checks, the iomem region, the subsections with the altmap's
    /// memmap, construct (memmap_init_zone_device), then the node's memmap once the
    /// compound order is known; its counts added to `out`.
    fn pagemap_range(
        &mut self,
        p: &MemremapParams,
        strategy: &dyn StrategyHandle,
        at: RangeAt,
        range: PhysRange,
        out: &mut MemremapOutcome,
    ) -> Result<MappedRange, StepError> {
        let plugin = strategy.plugin_name();
        let pfns = range.pfns(self.geometry.page_size());
        let (request, r) = self.set_up_range(p, strategy, at, pfns)?;
        if !r.note.is_empty() && out.note.is_empty() {
            out.note = crate::text::plugin_text(r.note.as_str(), crate::text::MAX_PLUGIN_TEXT);
        }
        self.pagemap_range_checks(range)?;
        // The driver's iomem region, when it requests one (devm_request_mem_region,
        // request_free_mem_region): a conflict is EBUSY.
        // (A device-dax namespace's split needs the altmap first: the namespace's own
        // claim is what the altmap says is metadata.)
        let plain = match (&p.resource, &p.namespace) {
            (Some(name), None) => Some(self.request_device_resource(range, name)?),
            _ => None,
        };
        let mut alt = self.device_altmap(range, &r, plugin)?;
        let (namespace_id, resource_id) = match plain {
            Some(id) => (None, Some(id)),
            None => self.request_namespace_resources(p, range, alt.as_ref())?,
        };
        // sparse_add_section per section: EEXIST on an active subsection, whole
        // sections' memmap from the altmap now.
        let mut charges = self.add_subsections(pfns, p.nid, alt.as_mut())?;
        log::debug!(
            "  pagemap_range {}: set_up ({}) altmap {}; sparse_add_section over {} pages, memmap in the device {} pages",
            at.index,
            strategy.instance_name(),
            alt.map_or("none".to_string(), |a| format!("reserve {} free {}", a.reserve, a.free)),
            pfns.count(),
            charges.iter().map(|c| c.altmap_pages * c.count).sum::<u64>()
        );
        self.nodes.update(&p.nid, |n| {
            n.zone_mut(ZoneType::Device).grow_span(pfns.start(), pfns.end());
            n.online = true;
        });
        // construct(): the strategy initialises the device pages.
        let mut given = r;
        given.altmap = alt.into();
        self.call_with_ops(strategy, OpsCall::Construct, &request, &given, alt)?;
        let first_device = pfns.start() + alt.map_or(0, |a| altmap::offset(&a));
        let order = self.validate_device_pages(plugin, at.pgmap_id, p.nid, pfns.start(), first_device, pfns.end())?;
        log::debug!(
            "  memmap_init_zone_device (construct, {}): device pages from pfn {first_device:#x}, compound order {order}",
            strategy.instance_name()
        );
        let paid = self.charge_node_memmap(&mut charges, pfns, p.nid, order, alt.is_some())?;
        log::debug!(
            "  vmemmap_populate_compound_pages: memmap in RAM {:?} (node, zone, pages)",
            paid.iter().map(|m| (m.nid, m.zone.name(), m.pages)).collect::<Vec<_>>()
        );
        self.count_mapped(out, pfns, first_device, order, alt.is_some(), &charges);
        for part in &paid {
            match out.memmap_by_node.iter_mut().find(|(n, _)| *n == part.nid) {
                Some((_, pages)) => *pages += part.pages,
                None => out.memmap_by_node.push((part.nid, part.pages)),
            }
        }
        if let Some(&(nid, _)) = out.memmap_by_node.first() {
            out.memmap_nid = nid;
        }
        Ok(MappedRange { range: PgmapRange { pfns, restrictions: given, resource_id, namespace_id, charges, paid }, order })
    }

    /// The driver's set_up of one range (the strategy's), validated: device restrictions
    /// only, and an altmap on the first range only.
    fn set_up_range(
        &self,
        p: &MemremapParams,
        strategy: &dyn StrategyHandle,
        at: RangeAt,
        pfns: PfnRange,
    ) -> Result<(RequestData, Restrictions), StepError> {
        let plugin = strategy.plugin_name();
        let mut request = RequestData::device(self, pfns, p.nid, p.pgmap_type, p.vmemmap_shift, at.pgmap_id);
        request.range_index = at.index as u32;
        request.range_count = at.count as u32;
        let r = self.call_set_up(strategy, &request)?;
        self.validate_restrictions(RequestKind::DEVICE, &r, pfns.start(), pfns.count(), plugin)?;
        if r.flags.contains(RestrictionFlags::MEMORY_BLOCK_DEVICES) {
            return Err(StepError::validator(plugin, "MEMORY_BLOCK_DEVICES for device memory (it is never onlined as System RAM)"));
        }
        if at.index > 0 && r.altmap.is_some() {
            return Err(StepError::validator(plugin, "an altmap on a pgmap's range other than the first (the kernel refuses: EINVAL)"));
        }
        Ok((request, r))
    }

    /// The regions the driver requests over `range`: `resource` over all of it; or, for a
    /// device-dax namespace (`namespace` given), the namespace's claim on the metadata
    /// part and `resource` (daxR.N, dax/bus.c) on the data part from the first device
    /// page on: what the altmap's reserve and memmap leave (nd_pfn's data offset).
    fn request_namespace_resources(
        &mut self,
        p: &MemremapParams,
        range: PhysRange,
        alt: Option<&Altmap>,
    ) -> Result<(Option<u64>, Option<u64>), StepError> {
        let (Some(name), Some(namespace)) = (&p.resource, &p.namespace) else { return Ok((None, None)) };
        let Some(a) = alt else {
            return Err(StepError::kernel(
                errno::EINVAL,
                format!("{namespace}: a device-dax namespace split needs its data offset: map the memmap into the namespace (an altmap)"),
            ));
        };
        let meta = altmap::offset(a) * self.geometry.page_size();
        let (meta_part, data_part) = (PhysRange::new(range.start(), meta), PhysRange::new(range.start() + meta, range.size() - meta));
        let (Some(meta_part), Some(data_part)) = (meta_part, data_part.filter(|_| meta < range.size())) else {
            return Err(StepError::kernel(errno::EINVAL, format!("{namespace}: no data part left after {meta:#x} bytes of metadata")));
        };
        let ns = self.request_device_resource(meta_part, namespace)?;
        Ok((Some(ns), Some(self.request_device_resource(data_part, name)?)))
    }

    /// The device's iomem region `name` over `range` (EBUSY on a conflict).
    fn request_device_resource(&mut self, range: PhysRange, name: &str) -> Result<u64, StepError> {
        let (start, size) = (range.start(), range.size());
        self.resources.request(start, range.end() - 1, name, true).map_err(|c| {
            StepError::kernel(
                errno::EBUSY,
                format!("{start:#x}+{size:#x} conflicts with \"{}\" {:#x}-{:#x} in /proc/iomem", c.name, c.start, c.end),
            )
        })
    }

    /// __add_pages' checks for device memory: subsection granularity (EINVAL), then the
    /// altmap's sanity; the altmap as allocation starts it (nothing aligned or allocated).
    fn device_altmap(&self, range: PhysRange, r: &Restrictions, plugin: &str) -> Result<Option<Altmap>, StepError> {
        let sub = self.geometry.g.subsection_size;
        if range.start() % sub != 0 || range.size() % sub != 0 {
            return Err(StepError::kernel(errno::EINVAL, format!("{range} is not aligned to the {} subsection", format_size(sub))));
        }
        let alt = r.altmap.into_option().map(|a| Altmap { align: 0, alloc: 0, ..a });
        if let Some(a) = &alt {
            let pfns = range.pfns(self.geometry.page_size());
            altmap::check_for_add(a, pfns.start(), pfns.count())
                .map_err(|e| StepError::validator(plugin, format!("invalid altmap: {e}")))?;
        }
        Ok(alt)
    }

    /// A mapped range's device pages, initialised struct pages and memmap, added to `out`.
    fn count_mapped(
        &self,
        out: &mut MemremapOutcome,
        pfns: PfnRange,
        first_device: u64,
        order: u32,
        has_altmap: bool,
        charges: &[SectionCharge],
    ) {
        let g = self.geometry;
        let device_pages = pfns.end() - first_device;
        let compound = 1u64 << order.min(40);
        let dedup = dedup(self, order, has_altmap);
        let init_per_compound = if dedup { 2 * g.page_size() / g.g.struct_page_size } else { compound };
        out.device_pages += device_pages;
        out.pages_initialised += device_pages / compound * init_per_compound.min(compound) + device_pages % compound;
        let node_pages: u64 = charges.iter().map(SectionCharge::total_node_pages).sum();
        out.memmap_node_pages += node_pages;
        out.memmap_device_pages += charges.iter().map(SectionCharge::total_altmap_pages).sum::<u64>();
        if dedup {
            out.memmap_saved_pages += g.memmap_pages(pfns.count()).saturating_sub(node_pages);
        }
    }

    /// pagemap_range's checks, in its order: EINVAL for an empty range; ENOMEM for a
    /// pgmap at the range's first or last pfn; ENXIO for System RAM in the range; EINVAL
    /// outside the pluggable range.
    fn pagemap_range_checks(&self, range: PhysRange) -> Result<(), StepError> {
        let g = self.geometry;
        let page = g.page_size();
        let Some(last_byte) = range.last() else {
            return Err(StepError::kernel(errno::EINVAL, format!("range {range} is empty")));
        };
        for pfn in [range.start() / page, last_byte / page] {
            if let Some(other) = self.pgmap_at(pfn) {
                return Err(StepError::kernel(
                    errno::ENOMEM,
                    format!("pfn {pfn:#x} already belongs to pgmap {} (\"Conflicting mapping in same section\")", other.id),
                ));
            }
        }
        let start = range.start();
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
        self.pgmaps.values().find(|p| p.ranges.iter().any(|r| r.pfns.contains(pfn)))
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

    pub(super) fn memunmap_locked(&mut self, start: u64, lookup: &dyn StrategyLookup) -> Result<MemunmapOutcome, StepError> {
        let pfn = start / self.geometry.page_size();
        let pgmap = self
            .pgmaps
            .values()
            .find(|p| p.start_pfn() == pfn)
            .cloned()
            .ok_or_else(|| StepError::kernel(errno::EINVAL, format!("no pgmap starts at {start:#x}")))?;
        let strategy = lookup.strategy(&pgmap.strategy).ok_or_else(|| {
            StepError::kernel(errno::EINVAL, format!("strategy \"{}\" that mapped this memory is not loaded", pgmap.strategy))
        })?;
        for (index, range) in pgmap.ranges.iter().enumerate() {
            let mut request = RequestData::device(self, range.pfns, pgmap.nid, pgmap.pgmap_type, pgmap.compound_order, pgmap.id);
            request.range_index = index as u32;
            request.range_count = pgmap.ranges.len() as u32;
            self.call_with_ops(strategy, OpsCall::TearDown, &request, &range.restrictions, range.restrictions.altmap.into_option())?;
            self.clear_leftover_marks(range.pfns);
        }
        let (mut node_pages, mut device_pages) = (0, 0);
        for range in pgmap.ranges.iter().rev() {
            let (n, d) = self.remove_subsections(&range.charges);
            node_pages += n;
            device_pages += d;
            for rid in [range.resource_id, range.namespace_id].into_iter().flatten() {
                self.resources.release(rid);
            }
            for &part in &range.paid {
                self.free_memmap_part(part);
            }
        }
        self.pgmaps.remove(&pgmap.id);
        Ok(MemunmapOutcome { pgmap_id: pgmap.id, memmap_freed_node_pages: node_pages, memmap_freed_device_pages: device_pages })
    }
}
