//! The physical address space by owner, low to high: what a memory map draws. Boot RAM,
//! hot-added blocks by state and zone, ZONE_DEVICE memory by pgmap type, a virtio-mem
//! device's unplugged part, iomem regions that hold none of these, and the holes between.
//! Built from the block, section, pgmap and resource runs, so its cost follows the runs,
//! not the pages: a petabyte added alike is one range.

use hotplug_core::PgmapType;

use super::sections::MemmapHome;
use super::{BlockState, Model, ZoneType};

/// Who holds a range of physical addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// RAM present at boot, online.
    BootRam,
    /// Hot-added RAM online in this zone (`None`: a block online across zones).
    Online(Option<ZoneType>),
    /// RAM whose memory blocks are offline (present at boot or hot-added).
    Offline,
    /// Part of a virtio-mem device's region with no memory plugged.
    Unplugged,
    /// ZONE_DEVICE memory of a pgmap of this type.
    Device(PgmapType),
    /// An iomem region holding none of the above (a reserved window, a namespace not mapped).
    Region,
    /// No memory and no iomem region.
    Hole,
}

impl Owner {
    /// A short stable key (`online-movable`, `device-fsdax`): the map's class names, the
    /// tests' handle and the legend's order.
    pub fn key(self) -> String {
        match self {
            Owner::BootRam => "boot-ram".into(),
            Owner::Online(None) => "online".into(),
            Owner::Online(Some(z)) => format!("online-{}", z.name().to_ascii_lowercase()),
            Owner::Offline => "offline".into(),
            Owner::Unplugged => "unplugged".into(),
            Owner::Device(PgmapType::NONE) => "device".into(),
            Owner::Device(t) => format!("device-{}", t.name()),
            Owner::Region => "region".into(),
            Owner::Hole => "hole".into(),
        }
    }

    /// What a reader calls it.
    pub fn describe(self) -> String {
        match self {
            Owner::BootRam => "boot RAM".into(),
            Owner::Online(None) => "hot-added, online".into(),
            Owner::Online(Some(z)) => format!("hot-added, online {}", z.name()),
            Owner::Offline => "offline RAM".into(),
            Owner::Unplugged => "virtio-mem, not plugged".into(),
            // The driver named no type and the strategy's choice is its own.
            Owner::Device(PgmapType::NONE) => "ZONE_DEVICE".into(),
            Owner::Device(t) => format!("ZONE_DEVICE, {}", t.name()),
            Owner::Region => "iomem region".into(),
            Owner::Hole => "hole".into(),
        }
    }
}

/// One range of the map: `[start, end)` in bytes, all of it held by one owner alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRange {
    pub start: u64,
    pub end: u64,
    pub owner: Owner,
    /// Present since boot (an offline range tells boot RAM from hot-added by this).
    pub boot: bool,
    pub nid: Option<u32>,
    /// The top-level iomem region's name when it is not plain System RAM (`dax0.0`).
    pub iomem: Option<String>,
    /// Memory blocks it spans (RAM only).
    pub blocks: u64,
    /// Pages set aside at its start to hold memmap: at the start of every block when
    /// `per_block` (memmap on memory), else at the start of the range (a pgmap's altmap).
    pub set_aside: u64,
    pub per_block: bool,
    /// Pages of memmap held inside the range (at most what is set aside).
    pub memmap: u64,
    /// Pages of its memmap held in RAM instead, by the node whose RAM holds them.
    pub memmap_in_ram: Vec<(u32, u64)>,
}

impl MapRange {
    fn new(start: u64, end: u64, owner: Owner) -> MapRange {
        MapRange {
            start,
            end,
            owner,
            boot: false,
            nid: None,
            iomem: None,
            blocks: 0,
            set_aside: 0,
            per_block: false,
            memmap: 0,
            memmap_in_ram: Vec::new(),
        }
    }

    /// Bytes.
    pub fn size(&self) -> u64 {
        self.end - self.start
    }

    /// All the pages the range sets aside for memmap.
    pub fn set_aside_total(&self) -> u64 {
        if self.per_block {
            self.set_aside.saturating_mul(self.blocks)
        } else {
            self.set_aside
        }
    }

    /// Whether `next` can join this range as one (it follows it and differs in nothing a
    /// map shows).
    fn joins(&self, next: &MapRange) -> bool {
        self.end == next.start
            && self.owner == next.owner
            && self.boot == next.boot
            && self.nid == next.nid
            && self.iomem == next.iomem
            && self.per_block == next.per_block
            && (self.per_block && self.set_aside == next.set_aside || self.set_aside == 0 && next.set_aside == 0)
    }
}

impl Model {
    /// The address space from 0 to the end of the highest range, every byte in exactly
    /// one range, sorted.
    pub fn address_map(&self) -> Vec<MapRange> {
        let page = self.geometry.page_size();
        let mut held = Vec::new();
        self.ram_ranges(&mut held, page);
        self.device_ranges(&mut held, page);
        self.unplugged_ranges(&mut held, page);
        held.sort_by_key(|r| r.start);

        // iomem regions that hold nothing above, and every range's region name.
        let mut regions = Vec::new();
        for res in self.resources.top_level() {
            let end = res.end.saturating_add(1);
            let mut at = res.start;
            let first = held.partition_point(|r| r.end <= res.start);
            for r in held[first..].iter().take_while(|r| r.start < end) {
                if r.start > at {
                    regions.push(MapRange::new(at, r.start, Owner::Region));
                }
                at = at.max(r.end);
            }
            if at < end {
                regions.push(MapRange::new(at, end, Owner::Region));
            }
        }
        held.extend(regions);
        held.sort_by_key(|r| r.start);
        for r in &mut held {
            r.iomem = self.resources.top_level_at(r.start).filter(|n| *n != "System RAM").map(str::to_string);
        }

        // The holes between, clipping what overlaps (never expected: the model keeps
        // its ranges apart) so every byte is drawn once.
        let mut out: Vec<MapRange> = Vec::with_capacity(held.len() * 2);
        let mut at = 0;
        for mut r in held {
            r.start = r.start.max(at);
            if r.start >= r.end {
                continue;
            }
            if r.start > at {
                out.push(MapRange::new(at, r.start, Owner::Hole));
            }
            at = r.end;
            match out.last_mut() {
                Some(last) if last.joins(&r) => {
                    last.end = r.end;
                    last.blocks += r.blocks;
                    last.memmap += r.memmap;
                    for (nid, pages) in r.memmap_in_ram {
                        add_pages(&mut last.memmap_in_ram, nid, pages);
                    }
                    if !last.per_block {
                        last.set_aside += r.set_aside;
                    }
                }
                _ => out.push(r),
            }
        }
        out
    }

    /// Memory blocks as RAM ranges: boot blocks clipped to their node's boot RAM, hot-added
    /// runs whole, each with the memmap it holds.
    fn ram_ranges(&self, out: &mut Vec<MapRange>, page: u64) {
        let g = self.geometry;
        for (first, end, b) in self.blocks.runs() {
            let (lo, hi) = (g.block_to_pfn(first), g.block_to_pfn(end));
            let owner = match (b.state, b.early) {
                (BlockState::Offline, _) => Owner::Offline,
                (BlockState::Online, true) => Owner::BootRam,
                (BlockState::Online, false) => Owner::Online(b.zone),
            };
            let base = MapRange { boot: b.early, nid: Some(b.nid), ..MapRange::new(0, 0, owner) };
            if b.early {
                let boot = self.nodes.get(&b.nid).map(|n| n.boot_ranges.as_slice()).unwrap_or_default();
                for r in boot {
                    let (s, e) = (r.start().max(lo), r.end().min(hi));
                    if s < e {
                        let blocks = g.pfn_to_block(e - 1) - g.pfn_to_block(s) + 1;
                        out.push(MapRange { start: s.saturating_mul(page), end: e.saturating_mul(page), blocks, ..base.clone() });
                    }
                }
                continue;
            }
            let (mut memmap, mut memmap_in_ram) = (0, Vec::new());
            for (s, e, sec) in self.sections.runs_in(g.pfn_to_section(lo), g.pfn_to_section(hi)) {
                match sec.memmap {
                    MemmapHome::Altmap { pages } => memmap += pages * (e - s),
                    MemmapHome::Node { nid, pages, .. } => add_pages(&mut memmap_in_ram, nid, pages * (e - s)),
                    MemmapHome::Split { .. } => {
                        for part in (s..e).flat_map(|nr| self.memmap_splits.get(&nr).into_iter().flatten()) {
                            add_pages(&mut memmap_in_ram, part.nid, part.pages);
                        }
                    }
                    MemmapHome::Boot { .. } => {}
                }
            }
            out.push(MapRange {
                start: lo.saturating_mul(page),
                end: hi.saturating_mul(page),
                blocks: end - first,
                set_aside: b.vmemmap_pages,
                per_block: b.vmemmap_pages > 0,
                memmap,
                memmap_in_ram,
                ..base
            });
        }
    }

    /// Every pgmap range, with the pages its altmap sets aside at its start.
    fn device_ranges(&self, out: &mut Vec<MapRange>, page: u64) {
        for pg in self.pgmaps.values() {
            for r in &pg.ranges {
                let set_aside = r.restrictions.altmap.into_option().map_or(0, |a| super::altmap::offset(&a).min(r.pfns.count()));
                out.push(MapRange {
                    nid: Some(pg.nid),
                    set_aside,
                    memmap: r.charges.iter().map(|c| c.altmap_pages.saturating_mul(c.count)).sum(),
                    memmap_in_ram: r.paid.iter().fold(Vec::new(), |mut v, p| {
                        add_pages(&mut v, p.nid, p.pages);
                        v
                    }),
                    ..MapRange::new(r.pfns.start().saturating_mul(page), r.pfns.end().saturating_mul(page), Owner::Device(pg.pgmap_type))
                });
            }
        }
    }

    /// The parts of each virtio-mem device's region that no memory block covers.
    fn unplugged_ranges(&self, out: &mut Vec<MapRange>, page: u64) {
        let g = self.geometry;
        let block_bytes = g.pages_per_block().saturating_mul(page);
        for d in self.virtio.values() {
            let end = d.start.saturating_add(d.region_size);
            let mut at = d.start;
            let ids = d.block_ids(block_bytes);
            for (first, last, _) in self.blocks.runs_in(ids.start, ids.end) {
                let lo = g.block_to_pfn(first).saturating_mul(page).max(d.start);
                if lo > at {
                    out.push(MapRange { nid: Some(d.nid), ..MapRange::new(at, lo, Owner::Unplugged) });
                }
                at = at.max(g.block_to_pfn(last).saturating_mul(page));
            }
            if at < end {
                out.push(MapRange { nid: Some(d.nid), ..MapRange::new(at, end, Owner::Unplugged) });
            }
        }
    }
}

/// `pages` more for node `nid` in a short list kept by node id.
fn add_pages(list: &mut Vec<(u32, u64)>, nid: u32, pages: u64) {
    match list.binary_search_by_key(&nid, |&(n, _)| n) {
        Ok(i) => list[i].1 += pages,
        Err(i) => list.insert(i, (nid, pages)),
    }
}
