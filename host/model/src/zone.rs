//! Zones: the kernel's `struct zone` counters that /proc/zoneinfo shows.

/// The zones of an x86_64 node, in the kernel's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ZoneType {
    Dma,
    Dma32,
    Normal,
    Movable,
    Device,
}

impl ZoneType {
    pub const ALL: [ZoneType; 5] = [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal, ZoneType::Movable, ZoneType::Device];

    /// The zone a kernel file names (`Normal`, `Movable`, ...).
    pub fn from_name(name: &str) -> Option<ZoneType> {
        ZoneType::ALL.into_iter().find(|z| z.name() == name)
    }

    /// The name the kernel prints.
    pub fn name(self) -> &'static str {
        match self {
            ZoneType::Dma => "DMA",
            ZoneType::Dma32 => "DMA32",
            ZoneType::Normal => "Normal",
            ZoneType::Movable => "Movable",
            ZoneType::Device => "Device",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Zones that kernel allocations may use (not Movable, not Device).
    pub fn is_kernel(self) -> bool {
        matches!(self, ZoneType::Dma | ZoneType::Dma32 | ZoneType::Normal)
    }
}

/// One zone's span and counters, in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Zone {
    /// zone_start_pfn.
    pub start_pfn: u64,
    /// spanned_pages: end - start, holes included.
    pub spanned: u64,
    pub present: u64,
    pub managed: u64,
    /// present_early_pages: present at boot (auto-movable counts these).
    pub present_early: u64,
    /// NR_FREE_PAGES: managed pages the buddy allocator holds free (memmap and the
    /// config's boot use taken out).
    pub free: u64,
    /// The watermarks allocations must stay above.
    pub watermark: super::watermarks::Watermarks,
    /// lowmem_reserve[]: pages kept back from allocations whose highest usable zone is
    /// the one indexed (zoneinfo's `protection`).
    pub lowmem_reserve: [u64; 5],
}

impl Zone {
    pub fn end_pfn(&self) -> u64 {
        self.start_pfn + self.spanned
    }

    /// zone_is_empty: spans nothing.
    pub fn is_empty(&self) -> bool {
        self.spanned == 0
    }

    /// zone_intersects: a non-empty zone whose span overlaps `[start, start + count)`.
    pub fn intersects(&self, start: u64, count: u64) -> bool {
        !self.is_empty() && start < self.end_pfn() && self.start_pfn < start + count
    }

    /// Grow the span to cover `[start, end)` (resize_zone_range).
    pub fn grow_span(&mut self, start: u64, end: u64) {
        if self.is_empty() {
            self.start_pfn = start;
            self.spanned = end - start;
        } else {
            let new_start = self.start_pfn.min(start);
            let new_end = self.end_pfn().max(end);
            self.start_pfn = new_start;
            self.spanned = new_end - new_start;
        }
    }
}
