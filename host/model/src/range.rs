//! The model's two kinds of range, so a pair of numbers never has to say which of
//! "start and size in bytes", "first pfn and count" or "first and end pfn" it means:
//! [`PhysRange`] (bytes, as configs and /proc/iomem speak) and [`PfnRange`] (page frames,
//! as sections, blocks and zones do). Both are half-open, never wrap past 2^64, and are
//! built only through checked constructors, so code that holds one can add freely.

use std::fmt;

/// Page frames `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PfnRange {
    start: u64,
    end: u64,
}

impl PfnRange {
    /// `count` pfns from `start`; `None` when the end would pass 2^64.
    pub fn new(start: u64, count: u64) -> Option<PfnRange> {
        Some(PfnRange { start, end: start.checked_add(count)? })
    }

    /// Pfns `[start, end)`; `None` when `end < start`.
    pub fn from_bounds(start: u64, end: u64) -> Option<PfnRange> {
        (start <= end).then_some(PfnRange { start, end })
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    /// One past the last pfn.
    pub fn end(&self) -> u64 {
        self.end
    }

    pub fn count(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn contains(&self, pfn: u64) -> bool {
        pfn >= self.start && pfn < self.end
    }

    /// Whether the two share a pfn.
    pub fn overlaps(&self, other: &PfnRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Pfns in both (0 when disjoint).
    pub fn overlap_count(&self, other: &PfnRange) -> u64 {
        self.end.min(other.end).saturating_sub(self.start.max(other.start))
    }

    /// The pfns of both, `None` when they share none.
    pub fn intersection(&self, other: &PfnRange) -> Option<PfnRange> {
        let (start, end) = (self.start.max(other.start), self.end.min(other.end));
        (start < end).then_some(PfnRange { start, end })
    }

    /// The same pfns in the contract's form (first pfn and count), for plugins.
    pub fn to_contract(self) -> hotplug_core::PfnRange {
        hotplug_core::PfnRange::new(self.start, self.count())
    }

    /// The bytes these pfns hold with pages of `page_size` bytes; `None` past 2^64.
    pub fn to_phys(self, page_size: u64) -> Option<PhysRange> {
        PhysRange::new(self.start.checked_mul(page_size)?, self.count().checked_mul(page_size)?)
    }
}

impl fmt::Display for PfnRange {
    /// "pfns 0x100000-0x107fff", the kernel's inclusive style.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pfns {:#x}-{:#x}", self.start, self.end.saturating_sub(1))
    }
}

/// Physical bytes `[start, start + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PhysRange {
    start: u64,
    size: u64,
}

impl PhysRange {
    /// `size` bytes from `start`; `None` when the end would pass 2^64.
    pub fn new(start: u64, size: u64) -> Option<PhysRange> {
        start.checked_add(size)?;
        Some(PhysRange { start, size })
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start + self.size
    }

    /// The last byte, as /proc/iomem shows it; `None` for an empty range.
    pub fn last(&self) -> Option<u64> {
        self.end().checked_sub(1).filter(|_| self.size > 0)
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The same size at `start` (`None` past 2^64): a region placed where a search found room.
    pub fn moved_to(&self, start: u64) -> Option<PhysRange> {
        PhysRange::new(start, self.size)
    }

    /// The pfns holding these bytes with pages of `page_size` bytes (a partial last page
    /// counts whole).
    pub fn pfns(&self, page_size: u64) -> PfnRange {
        let start = self.start / page_size;
        PfnRange { start, end: start + self.size.div_ceil(page_size) }
    }
}

impl fmt::Display for PhysRange {
    /// "0x100000000+0x8000000", as step messages show a range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}+{:#x}", self.start, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_refuse_what_would_wrap() {
        assert!(PfnRange::new(u64::MAX, 1).is_none());
        assert_eq!(PfnRange::new(u64::MAX - 1, 1).map(|r| r.count()), Some(1));
        assert!(PfnRange::from_bounds(5, 4).is_none());
        assert!(PhysRange::new(u64::MAX - 4095, 4096).is_none());
        // A pfn range whose bytes would pass 2^64 has no PhysRange.
        assert!(PfnRange::new(1 << 53, 1).unwrap().to_phys(4096).is_none());
    }

    #[test]
    fn overlap_and_conversions() {
        let a = PfnRange::new(0x100000, 0x8000).unwrap();
        let b = PfnRange::from_bounds(0x107000, 0x110000).unwrap();
        assert!(a.overlaps(&b));
        assert_eq!(a.overlap_count(&b), 0x1000);
        assert_eq!(a.intersection(&b), PfnRange::from_bounds(0x107000, 0x108000));
        assert!(!a.overlaps(&PfnRange::new(0x108000, 1).unwrap()));
        // 128 MiB at 4 GiB is pfns 0x100000..0x108000 with 4 KiB pages.
        let p = PhysRange::new(4 << 30, 128 << 20).unwrap();
        assert_eq!(p.pfns(4096), a);
        assert_eq!(a.to_phys(4096), Some(p));
        assert_eq!(p.last(), Some((4 << 30) + (128 << 20) - 1));
        // A 1-byte range still needs its page.
        assert_eq!(PhysRange::new(4096, 1).unwrap().pfns(4096).count(), 1);
        assert_eq!(format!("{a}"), "pfns 0x100000-0x107fff");
        assert_eq!(format!("{p}"), "0x100000000+0x8000000");
    }
}
