//! Building the boot state: what the kernel has after `free_area_init()` and
//! `memblock_free_all()` on the configured machine.

use hotplug_core::Geometry;

use super::block::BlockState;
use super::geometry::MachineGeometry;
use super::journal::{JCell, JMap};
use super::node::Node;
use super::numa::{Distances, NodeFacts};
use super::policy::{AutoOnline, OnlinePolicy};
use super::range::{PfnRange, PhysRange};
use super::sections::{MemmapHome, Section, SectionTable};
use super::zone::{Zone, ZoneType};
use super::{Counters, Model, Policy};
use std::collections::BTreeMap;

/// One node as configured (bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub id: u32,
    /// Boot RAM as the firmware's memory map gives it (e820 ranges of type RAM): any
    /// byte range; the kernel uses the whole pages inside each (e820__memblock_setup,
    /// memblock's PFN_UP of the start and PFN_DOWN of the end), /proc/iomem shows it as given.
    pub boot: Vec<PhysRange>,
    /// Bytes free after boot for memmap (None: all managed pages).
    pub free: Option<u64>,
    /// Boot bytes the kernel holds back (present, not managed), taken from the highest
    /// zone down, as memblock hands out its top-down allocations.
    pub reserved: u64,
    /// Boot ranges memblock reserves where they lie (memblock_reserve: e.g. x86's first
    /// MiB): every page of boot RAM they touch is present but not managed.
    pub reserved_ranges: Vec<PhysRange>,
    /// CPUs and memory tier (defaults: CPUs, DRAM tier).
    pub facts: NodeFacts,
    /// Distances from this node to others, where they differ from the kernel's default.
    pub distance: BTreeMap<u32, u32>,
}

impl NodeSpec {
    /// A node with boot RAM `boot` and every other setting at its default.
    pub fn new(id: u32, boot: Vec<PhysRange>) -> Self {
        NodeSpec { id, boot, free: None, reserved: 0, reserved_ranges: Vec::new(), facts: NodeFacts::default(), distance: BTreeMap::new() }
    }
}

/// The machine as configured, resolved (block size probed, defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSpec {
    pub geometry: Geometry,
    pub auto_online_blocks: AutoOnline,
    pub online_policy: OnlinePolicy,
    pub auto_movable_ratio: u32,
    pub auto_movable_numa_aware: bool,
    pub movable_node: bool,
    /// Bytes written to vm.min_free_kbytes once boot is done; None: the kernel's rule.
    pub min_free: Option<u64>,
    /// transparent_hugepage/enabled.
    pub thp: super::watermarks::Thp,
    /// The `kernelcore=` and `movablecore=` boot options: a boot-time ZONE_MOVABLE.
    pub kernelcore: Option<CoreSize>,
    pub movablecore: Option<CoreSize>,
    /// Persistent memory the firmware describes (NFIT "Persistent Memory", or e820 type
    /// 12 "Persistent Memory (legacy)" when `legacy`): regions in /proc/iomem that
    /// namespace claims nest in.
    pub pmem: Vec<(PhysRange, bool)>,
    pub nodes: Vec<NodeSpec>,
    /// A captured real machine whose counters, block states and iomem replace the
    /// computed boot state (`[machine] from`).
    pub capture: Option<Box<super::capture::Capture>>,
}

impl MachineSpec {
    /// A machine with the config's defaults (auto_online_blocks offline, contig zones,
    /// ratio 301, min_free by the kernel's formula) and one boot range per node:
    /// `(nid, start, size)` in bytes. Handy for tests and for library users; a range that
    /// would pass 2^64 is left out (boot then sees a node without RAM).
    pub fn new(geometry: Geometry, nodes: &[(u32, u64, u64)]) -> MachineSpec {
        let node = |&(id, start, size): &(u32, u64, u64)| NodeSpec::new(id, PhysRange::new(start, size).into_iter().collect());
        MachineSpec::with_defaults(geometry, nodes.iter().map(node).collect())
    }

    /// `nodes` on `geometry` with every policy at the kernel's default: the one place
    /// those defaults are written (auto_online_blocks "offline", memory_hotplug's
    /// online_policy "contig-zones", auto_movable_ratio 301, auto_movable_numa_aware Y,
    /// movable_node off, min_free by the kernel's formula, THP always).
    pub fn with_defaults(geometry: Geometry, nodes: Vec<NodeSpec>) -> MachineSpec {
        MachineSpec {
            geometry,
            auto_online_blocks: AutoOnline::Offline,
            online_policy: OnlinePolicy::ContigZones,
            auto_movable_ratio: 301,
            auto_movable_numa_aware: true,
            movable_node: false,
            min_free: None,
            thp: super::watermarks::Thp::ALL[0],
            kernelcore: None,
            movablecore: None,
            pmem: Vec::new(),
            nodes,
            capture: None,
        }
    }

    /// The machine's distance table (what `HostServices::distance` answers).
    pub fn distances(&self) -> Distances {
        let given = self.nodes.iter().flat_map(|n| n.distance.iter().map(move |(&to, &d)| ((n.id, to), d))).collect();
        Distances::new(self.nodes.iter().map(|n| n.id), given)
    }
}

/// A `kernelcore=` or `movablecore=` value (mm/mm_init.c cmdline_parse_core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreSize {
    /// Bytes (memparse), used as whole pages.
    Bytes(u64),
    /// Percent of the boot RAM pages.
    Percent(u64),
}

impl CoreSize {
    /// The pages it asks for out of `total` (the percentage as the kernel computes it).
    fn pages(self, total: u64, page: u64) -> u64 {
        match self {
            CoreSize::Bytes(b) => b / page,
            CoreSize::Percent(p) => ((total as u128 * 100 * p as u128) / 10_000) as u64,
        }
    }
}

/// MAX_ORDER_NR_PAGES: the buddy allocator's largest block (order 10), which aligns the
/// start of a boot-time ZONE_MOVABLE.
const MAX_ORDER_NR_PAGES: u64 = 1024;

/// The kernel's zone limits on x86_64: the pfns of DMA, DMA32, Normal.
fn zone_limits(g: &MachineGeometry) -> [(ZoneType, PfnRange); 3] {
    let pfns = |start, end| PfnRange::from_bounds(start, end).unwrap_or_default();
    [
        (ZoneType::Dma, pfns(0, g.dma_end_pfn())),
        (ZoneType::Dma32, pfns(g.dma_end_pfn(), g.dma32_end_pfn())),
        (ZoneType::Normal, pfns(g.dma32_end_pfn(), u64::MAX)),
    ]
}

/// A node's zone limits once ZONE_MOVABLE starts at `movable` (its pfn, when the boot
/// options made one): the zone it is taken from ends there, and Movable holds the rest
/// (adjust_zone_range_for_zone_movable).
fn node_zone_limits(g: &MachineGeometry, movable: Option<(u64, ZoneType)>) -> Vec<(ZoneType, PfnRange)> {
    let mut limits: Vec<(ZoneType, PfnRange)> = zone_limits(g).to_vec();
    let Some((start, movable_zone)) = movable else { return limits };
    let mut movable_end = u64::MAX;
    for (z, r) in limits.iter_mut() {
        if *z == movable_zone {
            movable_end = r.end();
            *r = PfnRange::from_bounds(r.start(), start.max(r.start())).unwrap_or_default();
        }
    }
    if let Some(r) = PfnRange::from_bounds(start, movable_end) {
        limits.push((ZoneType::Movable, r));
    }
    limits
}

/// Where each node's boot-time ZONE_MOVABLE starts (pfn), and the zone it is carved
/// from, as find_zone_movable_pfns_for_nodes places it for `kernelcore=` and
/// `movablecore=`: the kernel's share spread evenly over the nodes with memory, what a
/// node cannot hold going to the others in further passes, each start rounded up to
/// MAX_ORDER_NR_PAGES (none when that passes the node's end).
fn zone_movable_pfns(spec: &MachineSpec, nodes: &[(u32, Vec<PfnRange>)], page: u64, g: &MachineGeometry) -> BTreeMap<u32, (u64, ZoneType)> {
    let mut out = BTreeMap::new();
    if (spec.kernelcore.is_none() && spec.movablecore.is_none()) || spec.movable_node {
        return out;
    }
    let with_memory: Vec<&(u32, Vec<PfnRange>)> = nodes.iter().filter(|(_, r)| !r.is_empty()).collect();
    let total: u64 = with_memory.iter().flat_map(|(_, r)| r.iter().map(PfnRange::count)).sum();
    let (Some(first), Some(max_pfn)) = (
        with_memory.iter().flat_map(|(_, r)| r.first().map(PfnRange::start)).min(),
        with_memory.iter().flat_map(|(_, r)| r.last().map(PfnRange::end)).max(),
    ) else {
        return out;
    };
    // free_area_init's arch zone ranges: each from the end of the one below.
    let mut lowest = first;
    let mut ranges = Vec::new();
    for (z, cap) in [(ZoneType::Dma, g.dma_end_pfn()), (ZoneType::Dma32, g.dma32_end_pfn()), (ZoneType::Normal, u64::MAX)] {
        let highest = cap.min(max_pfn).max(lowest);
        ranges.push((z, lowest, highest));
        lowest = highest;
    }
    // find_usable_zone_for_movable: the highest zone with a possible range.
    let Some(&(movable_zone, usable_start, _)) = ranges.iter().rev().find(|(_, lo, hi)| hi > lo) else { return out };
    let mut kernelcore = spec.kernelcore.map_or(0, |k| k.pages(total, page));
    if let Some(m) = spec.movablecore {
        let movable = m.pages(total, page).div_ceil(MAX_ORDER_NR_PAGES).saturating_mul(MAX_ORDER_NR_PAGES).min(total);
        kernelcore = kernelcore.max(total - movable);
    }
    if kernelcore == 0 || kernelcore >= total {
        return out;
    }
    let mut zmp: BTreeMap<u32, u64> = BTreeMap::new();
    let mut usable_nodes = with_memory.len() as u64;
    loop {
        let mut per_node = kernelcore / usable_nodes;
        for (nid, node_ranges) in &with_memory {
            if kernelcore < per_node {
                per_node = kernelcore / usable_nodes;
            }
            let mut remaining = per_node;
            for r in node_ranges {
                let start = r.start().max(zmp.get(nid).copied().unwrap_or(0));
                let end = r.end();
                if start >= end {
                    continue;
                }
                let mut start = start;
                if start < usable_start {
                    let kernel_pages = end.min(usable_start) - start;
                    remaining -= kernel_pages.min(remaining);
                    kernelcore -= kernel_pages.min(kernelcore);
                    if end <= usable_start {
                        zmp.insert(*nid, end);
                        continue;
                    }
                    start = usable_start;
                }
                let size = (end - start).min(remaining);
                zmp.insert(*nid, start + size);
                kernelcore -= kernelcore.min(size);
                remaining -= size;
                if remaining == 0 {
                    break;
                }
            }
        }
        usable_nodes -= 1;
        if !(usable_nodes > 0 && kernelcore > usable_nodes) {
            break;
        }
    }
    for (nid, node_ranges) in &with_memory {
        let node_end = node_ranges.last().map_or(0, PfnRange::end);
        let start = zmp.get(nid).copied().unwrap_or(0).div_ceil(MAX_ORDER_NR_PAGES) * MAX_ORDER_NR_PAGES;
        if start != 0 && start < node_end {
            out.insert(*nid, (start, movable_zone));
        }
    }
    out
}

/// The zone of boot block `id` of `node` (`None` when its RAM spans zones), and how
/// many blocks from `id` (before `end`) share it: all of them lie wholly inside one boot
/// range and one zone's limits, or just this one.
fn boot_block_zone(g: &MachineGeometry, node: &Node, id: u64, end: u64) -> (Option<ZoneType>, u64) {
    let block = g.block_pfns(id);
    let whole = node.boot_ranges.iter().find(|r| r.intersection(&block) == Some(block));
    let limits = node_zone_limits(g, node.boot_movable).into_iter().find(|(_, l)| l.intersection(&block) == Some(block));
    if let (Some(r), Some((z, l))) = (whole, limits) {
        // Blocks up to the first that leaves the range or the limits.
        let last = g.pfn_to_block(r.end().min(l.end())).max(id + 1);
        return (Some(z), last.min(end) - id);
    }
    let mut zones = node
        .boot_ranges
        .iter()
        .filter_map(|r| r.intersection(&block))
        .flat_map(|ram| node_zone_limits(g, node.boot_movable).into_iter().filter(move |(_, limits)| ram.overlaps(limits)).map(|(z, _)| z))
        .collect::<Vec<_>>();
    zones.sort_unstable();
    zones.dedup();
    (if zones.len() == 1 { Some(zones[0]) } else { None }, 1)
}

/// The boot zone a pfn belongs to.
pub fn boot_zone_of(g: &MachineGeometry, pfn: u64) -> ZoneType {
    zone_limits(g).into_iter().find(|(_, r)| r.contains(pfn)).map_or(ZoneType::Normal, |(z, _)| z)
}

impl Model {
    /// The machine right after boot.
    pub fn boot(spec: &MachineSpec) -> Result<Model, String> {
        let geometry = MachineGeometry::new(spec.geometry)?;
        let g = &geometry;
        let mut model = Model {
            geometry,
            policy: Policy {
                auto_online_blocks: spec.auto_online_blocks,
                online_policy: spec.online_policy,
                auto_movable_ratio: spec.auto_movable_ratio,
                auto_movable_numa_aware: spec.auto_movable_numa_aware,
                movable_node: spec.movable_node,
                user_min_free_kbytes: spec.min_free.map(|b| b / 1024),
                thp: spec.thp,
                khugepaged: false,
            },
            sections: SectionTable::default(),
            nodes: JMap::default(),
            blocks: super::block::BlockTable::new(g.pages_per_block()),
            resources: Default::default(),
            pages: Default::default(),
            adds: JMap::default(),
            reservations: JMap::default(),
            pgmaps: JMap::default(),
            groups: JMap::default(),
            virtio: JMap::default(),
            virtio_blocks: JMap::default(),
            memmap_splits: JMap::default(),
            counters: JCell::new(Counters::default()),
            distances: spec.distances(),
            zonelists: Default::default(),
            in_txn: false,
        };
        model.boot_nodes(spec)?;
        let page = model.geometry.page_size();
        let layout: Vec<(u32, Vec<PfnRange>)> = model.nodes.values().map(|n| (n.id, n.boot_ranges.clone())).collect();
        for (nid, movable) in zone_movable_pfns(spec, &layout, page, &model.geometry.clone()) {
            model.nodes.update(&nid, |n| n.boot_movable = Some(movable));
        }
        for n in &spec.nodes {
            model.boot_sections_and_zones(n)?;
        }
        model.boot_memory_blocks();
        model.boot_iomem(spec)?;
        let max_pfn = model.nodes.values().flat_map(|n| n.boot_ranges.iter().map(PfnRange::end)).max().unwrap_or(0);
        model.counters.get_mut().max_pfn = max_pfn;
        if let Some(capture) = &spec.capture {
            capture.apply(&mut model)?;
        }
        model.boot_watermarks();
        if let Some(kb) = model.policy.user_min_free_kbytes {
            // The config's value, written to the sysctl once boot is done.
            model.write_min_free_kbytes(kb);
        }
        Ok(model)
    }

    /// Each configured node, with its boot ranges as pfns; boot ranges must not overlap.
    fn boot_nodes(&mut self, spec: &MachineSpec) -> Result<(), String> {
        let g = self.geometry;
        let page = g.page_size();
        let mut all_ranges: Vec<(PfnRange, u32)> = Vec::new();
        for n in &spec.nodes {
            if self.nodes.get(&n.id).is_some() {
                return Err(format!("node {} is listed twice", n.id));
            }
            let mut ranges = Vec::new();
            for r in &n.boot {
                let size = r.size();
                if size == 0 {
                    return Err(format!("node {}: a boot range has size 0", n.id));
                }
                if r.end() - 1 > g.physmem_end() {
                    return Err(format!("node {}: boot range {r} ends beyond the physical address space", n.id));
                }
                // The whole pages inside the range (a map entry holding none is a mistake
                // in the config more often than a firmware's: refused).
                let Some(pfns) = PfnRange::from_bounds(r.start().div_ceil(page), r.end() / page).filter(|p| p.count() > 0) else {
                    return Err(format!("node {}: boot range {r} holds no whole {} page", n.id, super::units::format_size(page)));
                };
                ranges.push(pfns);
                all_ranges.push((pfns, n.id));
            }
            ranges.sort_unstable();
            self.nodes.insert(
                n.id,
                Node {
                    id: n.id,
                    boot_ranges: ranges,
                    zones: [Zone::default(); 5],
                    boot_free: 0,
                    onlined_since_boot: 0,
                    memmap_taken: 0,
                    online: !n.boot.is_empty(),
                    boot_movable: None,
                    facts: n.facts,
                },
            );
        }
        all_ranges.sort_unstable();
        for w in all_ranges.windows(2) {
            if w[0].0.overlaps(&w[1].0) {
                return Err(format!("boot ranges overlap at {:#x} (nodes {} and {})", w[1].0.start() * page, w[0].1, w[1].1));
            }
        }

        Ok(())
    }

    /// A node's boot sections and their memmap, its zones' spans and counters, and the
    /// memmap and reservations taken from its managed pages (memblock, top-down).
    fn boot_sections_and_zones(&mut self, n: &NodeSpec) -> Result<(), String> {
        let g = &self.geometry.clone(); // a copy: self is written below
        let page = g.page_size();
        let pps = g.pages_per_section();
        let section_memmap = g.memmap_pages(pps);
        let node = self.nodes.get(&n.id).cloned().expect("node just inserted");
        let mut memmap_pages = 0u64;
        for r in &node.boot_ranges {
            let (s, e) = (r.start(), r.end());
            let (first, last) = (g.pfn_to_section(s), g.pfn_to_section(e - 1));
            // Sections strictly inside the range are whole and belong to it alone (boot
            // ranges do not overlap): one run. The edge sections may be shared.
            if last > first + 1 {
                let full = g.subsection_mask(first + 1, 0, u64::MAX);
                let boot = MemmapHome::Boot { nid: n.id, pages: section_memmap };
                let section = Section { nid: n.id, subsection_map: full, online: true, early: true, memmap: boot };
                self.sections.set_range(first + 1, last, Some(section));
                memmap_pages += (last - first - 1) * section_memmap;
            }
            for nr in [first, last].into_iter().take(if last == first { 1 } else { 2 }) {
                let map = g.subsection_mask(nr, s, e);
                match self.sections.get(nr).copied() {
                    Some(mut sec) => {
                        sec.subsection_map |= map;
                        self.sections.set(nr, Some(sec));
                    }
                    None => {
                        memmap_pages += section_memmap;
                        self.sections.set(
                            nr,
                            Some(Section {
                                nid: n.id,
                                subsection_map: map,
                                online: true,
                                early: true,
                                memmap: MemmapHome::Boot { nid: n.id, pages: section_memmap },
                            }),
                        );
                    }
                }
            }
        }
        let mut node = node;
        if let (Some(first), Some(last)) = (node.boot_ranges.first(), node.boot_ranges.last()) {
            let span = PfnRange::from_bounds(first.start(), last.end()).expect("boot ranges sorted");
            for (z, limits) in node_zone_limits(g, node.boot_movable) {
                if let Some(spanned) = span.intersection(&limits) {
                    let present = node.boot_pages_in(&limits);
                    let zone = node.zone_mut(z);
                    zone.start_pfn = spanned.start();
                    zone.spanned = spanned.count();
                    zone.present = present;
                    zone.present_early = present;
                    zone.managed = present;
                }
            }
        }
        // Reservations where they lie: every boot page they touch, in its zone.
        for r in &n.reserved_ranges {
            let touched = PfnRange::from_bounds(r.start() / page, r.end().div_ceil(page)).unwrap_or_default();
            for (z, limits) in node_zone_limits(g, node.boot_movable) {
                let pages = limits.intersection(&touched).map_or(0, |part| node.boot_pages_in(&part));
                let zone = node.zone_mut(z);
                zone.managed -= pages.min(zone.managed);
            }
        }
        // memblock hands out the boot memmap and the kernel's own reservations top-down:
        // take them from the highest zones first.
        let reserved_pages = n.reserved.div_ceil(page);
        let mut to_take = memmap_pages + reserved_pages;
        for z in [ZoneType::Movable, ZoneType::Normal, ZoneType::Dma32, ZoneType::Dma] {
            let zone = node.zone_mut(z);
            let take = to_take.min(zone.managed);
            zone.managed -= take;
            to_take -= take;
        }
        if to_take > 0 {
            return Err(format!(
                "node {}: boot memory is too small for its own memmap and the {} reserved",
                n.id,
                super::units::format_size(n.reserved)
            ));
        }
        // What boot leaves free: the managed pages, or the config's `free`, the rest
        // in use from the highest zone down.
        for z in ZoneType::ALL {
            let zone = node.zone_mut(z);
            zone.free = zone.managed;
        }
        let mut used = n.free.map_or(0, |bytes| node.managed_pages().saturating_sub(bytes / page));
        for z in [ZoneType::Movable, ZoneType::Normal, ZoneType::Dma32, ZoneType::Dma] {
            let zone = node.zone_mut(z);
            let take = used.min(zone.free);
            zone.free -= take;
            used -= take;
        }
        node.boot_free = node.free_pages();
        self.nodes.insert(n.id, node);
        Ok(())
    }

    /// Memory blocks for boot memory: online, in their zone (None when spanning zones).
    /// Blocks wholly inside one boot range and one zone's limits are one run.
    fn boot_memory_blocks(&mut self) {
        let g = &self.geometry.clone(); // a copy: self is written below
        let spb = g.sections_per_block();
        let present: Vec<(u64, u64, u32)> = self.sections.runs().map(|(s, e, sec)| (s / spb, (e - 1) / spb + 1, sec.nid)).collect();
        for (first, end, nid) in present {
            let mut id = first;
            while id < end {
                if self.blocks.contains(id) {
                    id += 1;
                    continue;
                }
                let node = self.nodes.get(&nid).expect("section node exists");
                let (zone, k) = boot_block_zone(g, node, id, end);
                let info = super::block::BlockInfo {
                    nid,
                    state: BlockState::Online,
                    zone,
                    early: true,
                    group_id: 0,
                    altmap: None,
                    vmemmap_pages: 0,
                    strategy: None,
                    add_id: 0,
                };
                // A run stops before a block that already exists.
                let stop = self.blocks.runs_in(id, id + k).next().map_or(id + k, |(s, _, _)| s).max(id + 1);
                self.blocks.set_range(id, stop, Some(info));
                id = stop;
            }
        }
    }

    /// Boot RAM in /proc/iomem, byte for byte as the firmware's map gives it
    /// (e820__reserve_resources).
    fn boot_iomem(&mut self, spec: &MachineSpec) -> Result<(), String> {
        let mut ranges: Vec<PhysRange> = spec.nodes.iter().flat_map(|n| n.boot.iter().copied()).collect();
        ranges.sort_unstable_by_key(PhysRange::start);
        for r in ranges {
            self.resources
                .request(r.start(), r.end() - 1, "System RAM", true)
                .map_err(|c| format!("boot range {:#x} overlaps {} ({:#x}-{:#x})", r.start(), c.name, c.start, c.end))?;
        }
        for &(r, legacy) in &spec.pmem {
            let name = if legacy { "Persistent Memory (legacy)" } else { "Persistent Memory" };
            self.resources
                .request(r.start(), r.end() - 1, name, false)
                .map_err(|c| format!("persistent memory {r} overlaps {} ({:#x}-{:#x})", c.name, c.start, c.end))?;
        }
        Ok(())
    }
}
