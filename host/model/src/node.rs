//! NUMA nodes: their zones and the free memory that memmap allocations draw on.

use super::numa::NodeFacts;
use super::range::PfnRange;
use super::zone::{Zone, ZoneType};

/// One node (`pg_data_t`) and the model's free-memory account for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: u32,
    /// Boot RAM, sorted.
    pub boot_ranges: Vec<PfnRange>,
    pub zones: [Zone; 5],
    /// Pages free after boot (config `free`; default: the boot managed pages), for the
    /// report: the zones' `free` is the account.
    pub boot_free: u64,
    /// Pages onlined since boot (net of offlining): they joined their zones' free pages.
    pub onlined_since_boot: i64,
    /// Pages of node memory now holding memmap of hot-added memory.
    pub memmap_taken: u64,
    /// Whether the node is online (has memory or a CPU).
    pub online: bool,
    /// Where a boot-time ZONE_MOVABLE starts (kernelcore=/movablecore=), and the zone
    /// it was carved from.
    pub boot_movable: Option<(u64, ZoneType)>,
    /// CPUs and memory tier, as strategies see them in each request.
    pub facts: NodeFacts,
}

impl Node {
    pub fn zone(&self, z: ZoneType) -> &Zone {
        &self.zones[z.index()]
    }

    pub fn zone_mut(&mut self, z: ZoneType) -> &mut Zone {
        &mut self.zones[z.index()]
    }

    /// Free pages (NR_FREE_PAGES over the node's zones).
    pub fn free_pages(&self) -> u64 {
        self.zones.iter().map(|z| z.free).sum()
    }

    pub fn present_pages(&self) -> u64 {
        self.zones.iter().map(|z| z.present).sum()
    }

    pub fn managed_pages(&self) -> u64 {
        self.zones.iter().map(|z| z.managed).sum()
    }

    /// The node span: from the first zone's start to the last zone's end, or `None`
    /// when every zone is empty.
    pub fn span(&self) -> Option<PfnRange> {
        let spans = self.zones.iter().filter(|z| !z.is_empty());
        let start = spans.clone().map(|z| z.start_pfn).min()?;
        let end = spans.map(Zone::end_pfn).max()?;
        PfnRange::from_bounds(start, end)
    }

    /// Boot RAM pages inside `range`.
    pub fn boot_pages_in(&self, range: &PfnRange) -> u64 {
        self.boot_ranges.iter().map(|r| r.overlap_count(range)).sum()
    }

    /// From the first to the last boot RAM pfn inside `range`, when it holds any: what
    /// a boot memory block spans of its zone.
    pub fn boot_extent_in(&self, range: &PfnRange) -> Option<PfnRange> {
        let mut inside = self.boot_ranges.iter().filter_map(|r| r.intersection(range));
        let first = inside.next()?;
        let last = inside.next_back().unwrap_or(first);
        PfnRange::from_bounds(first.start(), last.end())
    }
}
