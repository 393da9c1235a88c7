//! Zone watermarks and `min_free_kbytes` (mm/page_alloc.c init_per_zone_wmark_min,
//! calculate_min_free_kbytes, __setup_per_zone_wmarks, setup_per_zone_lowmem_reserve;
//! mm/khugepaged.c set_recommended_min_free_kbytes): the marks a memmap allocation must
//! stay above, recomputed when boot ends and after every memory block onlined or
//! offlined, as the kernel does.

use super::zone::ZoneType;
use super::Model;

/// `/sys/kernel/mm/transparent_hugepage/enabled` at boot: whether khugepaged runs and
/// raises `min_free_kbytes` (`madvise` and `always` start it alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thp {
    Always,
    Madvise,
    Never,
}

impl Thp {
    /// Every setting; the first is the default (the kernel's Kconfig default and
    /// Debian's CONFIG_TRANSPARENT_HUGEPAGE_ALWAYS).
    pub const ALL: [Thp; 3] = [Thp::Always, Thp::Madvise, Thp::Never];

    /// The sysfs word.
    pub fn as_str(self) -> &'static str {
        match self {
            Thp::Always => "always",
            Thp::Madvise => "madvise",
            Thp::Never => "never",
        }
    }

    /// The setting sysfs shows as `name`.
    pub fn from_name(name: &str) -> Option<Thp> {
        Thp::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// hugepage_pmd_enabled: khugepaged runs for PMD-sized pages.
    pub fn starts_khugepaged(self) -> bool {
        self != Thp::Never
    }
}

/// A zone's `_watermark[WMARK_MIN..=WMARK_HIGH]` (pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Watermarks {
    pub min: u64,
    pub low: u64,
    pub high: u64,
}

/// `sysctl_lowmem_reserve_ratio`, by zone (DMA, DMA32, Normal, Movable, Device); 0
/// means no reserve.
const LOWMEM_RESERVE_RATIO: [u64; 5] = [256, 256, 32, 0, 0];
/// The default `watermark_scale_factor` (per 10,000 of a zone's managed pages).
const WATERMARK_SCALE_FACTOR: u64 = 10;
/// SWAP_CLUSTER_MAX: the floor of a Movable zone's min watermark.
const SWAP_CLUSTER_MAX: u64 = 32;
/// MIGRATE_PCPTYPES: the migrate types khugepaged's recommendation squares.
const MIGRATE_PCPTYPES: u64 = 3;
/// Below this much RAM at boot (MiB) hugepage_init turns THP off for good.
const THP_MIN_BOOT_MIB: u64 = 512;

/// isqrt(16 x lowmem kB), clamped to the kernel's [128, 262144] kB.
pub fn min_free_kbytes_for(lowmem_kbytes: u64) -> u64 {
    lowmem_kbytes.saturating_mul(16).isqrt().clamp(128, 262_144)
}

/// mult_frac(x, n, d) as the kernel computes it, without overflow.
fn mult_frac(x: u64, n: u64, d: u64) -> u64 {
    (x / d) * n + (x % d) * n / d
}

impl Model {
    /// Kilobytes per page.
    fn page_kb(&self) -> u64 {
        self.geometry.page_size() / 1024
    }

    /// nr_free_buffer_pages: managed pages above the high watermark, over every zone up
    /// to Normal.
    pub fn nr_free_buffer_pages(&self) -> u64 {
        self.kernel_zones().map(|(_, _, z)| z.managed.saturating_sub(z.watermark.high)).sum()
    }

    /// Every populated-or-not zone up to Normal, with its node and type.
    fn kernel_zones(&self) -> impl Iterator<Item = (u32, ZoneType, &super::Zone)> {
        self.nodes.values().flat_map(|n| ZoneType::ALL.into_iter().filter(|z| z.is_kernel()).map(move |z| (n.id, z, n.zone(z))))
    }

    /// The machine's `min_free_kbytes` now.
    pub fn min_free_kbytes(&self) -> u64 {
        self.counters.get().min_free_kbytes
    }

    /// What boot leaves: init_per_zone_wmark_min (a postcore initcall, every high
    /// watermark still 0), then hugepage_init: below 512 MiB of RAM THP is off for good;
    /// otherwise start_stop_khugepaged recomputes (THP never) or raises (madvise, always)
    /// min_free_kbytes.
    pub(super) fn boot_watermarks(&mut self) {
        self.init_per_zone_wmark_min();
        let boot_mib = (self.total_managed() * self.geometry.page_size()) >> 20;
        let khugepaged = self.policy.thp.starts_khugepaged() && boot_mib >= THP_MIN_BOOT_MIB;
        self.policy.khugepaged = khugepaged;
        if boot_mib >= THP_MIN_BOOT_MIB {
            self.set_recommended_min_free_kbytes(self.policy.thp.starts_khugepaged());
        }
    }

    /// A write to vm.min_free_kbytes (min_free_kbytes_sysctl_handler): the value becomes
    /// min_free_kbytes and the user's, and the watermarks follow.
    pub(super) fn write_min_free_kbytes(&mut self, kb: u64) {
        self.policy.user_min_free_kbytes = Some(kb);
        self.counters.get_mut().min_free_kbytes = kb;
        self.setup_per_zone_wmarks();
    }

    /// A write to transparent_hugepage/enabled (enabled_store, start_stop_khugepaged):
    /// khugepaged runs for `always` and `madvise` (even where boot turned THP off for a
    /// small machine), and set_recommended_min_free_kbytes raises or recomputes.
    pub(super) fn write_thp_enabled(&mut self, thp: Thp) {
        self.policy.thp = thp;
        self.policy.khugepaged = thp.starts_khugepaged();
        self.set_recommended_min_free_kbytes(self.policy.khugepaged);
    }

    /// init_per_zone_wmark_min: what online_pages and offline_pages call after every block.
    pub(super) fn init_per_zone_wmark_min(&mut self) {
        self.calculate_min_free_kbytes();
        self.setup_per_zone_wmarks();
        self.setup_per_zone_lowmem_reserve();
        if self.policy.khugepaged {
            self.set_recommended_min_free_kbytes(true);
        }
    }

    /// calculate_min_free_kbytes: the square-root rule over the pages above the high
    /// watermarks, unless a value written to vm.min_free_kbytes is at least as large.
    fn calculate_min_free_kbytes(&mut self) {
        let lowmem_kb = self.nr_free_buffer_pages() * self.page_kb();
        let new = lowmem_kb.saturating_mul(16).isqrt();
        if self.policy.user_min_free_kbytes.is_none_or(|user| new > user) {
            self.counters.get_mut().min_free_kbytes = min_free_kbytes_for(lowmem_kb);
        }
    }

    /// set_recommended_min_free_kbytes: with khugepaged, 11 pageblocks per populated zone
    /// up to Normal, at most 5 % of the pages above the high watermarks, raise
    /// min_free_kbytes; without it, the square-root rule again. Then the watermarks.
    fn set_recommended_min_free_kbytes(&mut self, khugepaged: bool) {
        if khugepaged {
            let zones = self.kernel_zones().filter(|(_, _, z)| z.present > 0).count() as u64;
            let pageblock = self.geometry.g.pageblock_pages;
            let recommended = pageblock * zones * (2 + MIGRATE_PCPTYPES * MIGRATE_PCPTYPES);
            let recommended_kb = recommended.min(self.nr_free_buffer_pages() / 20) * self.page_kb();
            if recommended_kb > self.min_free_kbytes() {
                self.counters.get_mut().min_free_kbytes = recommended_kb;
            }
        } else {
            self.calculate_min_free_kbytes();
        }
        self.setup_per_zone_wmarks();
    }

    /// __setup_per_zone_wmarks: min_free_kbytes shared over the zones up to Normal by
    /// managed pages (a Movable zone's min: managed / 1024 within [32, 128]); low and
    /// high a quarter of min or 0.1 % of managed, whichever is more, above it.
    fn setup_per_zone_wmarks(&mut self) {
        let pages_min = self.min_free_kbytes() / self.page_kb();
        let lowmem: u64 = self.kernel_zones().map(|(_, _, z)| z.managed).sum();
        let ids: Vec<u32> = self.nodes.map().keys().copied().collect();
        for nid in ids {
            self.nodes.update(&nid, |n| {
                for t in ZoneType::ALL {
                    let z = n.zone_mut(t);
                    let share = ((pages_min as u128 * z.managed as u128).checked_div(lowmem as u128).unwrap_or(0)) as u64;
                    let min = if t == ZoneType::Movable { (z.managed / 1024).clamp(SWAP_CLUSTER_MAX, 128) } else { share };
                    let gap = (share >> 2).max(mult_frac(z.managed, WATERMARK_SCALE_FACTOR, 10_000));
                    z.watermark = Watermarks { min, low: min + gap, high: min + 2 * gap };
                }
            });
        }
    }

    /// setup_per_zone_lowmem_reserve: pages a zone keeps back from allocations that
    /// could have used a higher zone, by the managed pages of the zones above it.
    fn setup_per_zone_lowmem_reserve(&mut self) {
        let ids: Vec<u32> = self.nodes.map().keys().copied().collect();
        for nid in ids {
            self.nodes.update(&nid, |n| {
                let managed: Vec<u64> = n.zones.iter().map(|z| z.managed).collect();
                for i in 0..ZoneType::ALL.len() - 1 {
                    let ratio = LOWMEM_RESERVE_RATIO[i];
                    let clear = ratio == 0 || managed[i] == 0;
                    let mut above = 0;
                    for (j, &upper) in managed.iter().enumerate().skip(i + 1) {
                        above += upper;
                        n.zones[i].lowmem_reserve[j] = if clear { 0 } else { above / ratio };
                    }
                }
            });
        }
    }

    /// What onlining or offlining `blocks` blocks of `per_block` managed pages each into
    /// zone `zone` of node `nid` does to the watermarks: the kernel recomputes after
    /// each block; each recompute depends on the high watermarks the one before left,
    /// but so weakly (min_free_kbytes moves by 8 kB per kB of high watermark over its
    /// own size) that four exact rounds from a close start give the exact result. So the
    /// run costs at most five recomputes, however many blocks it has. `grow`: online.
    pub(super) fn watermarks_after_run(&mut self, nid: u32, zone: ZoneType, blocks: u64, per_block: u64, grow: bool) {
        const EXACT_ROUNDS: u64 = 4;
        let Some(end) = self.nodes.get(&nid).map(|n| n.zone(zone).managed) else { return };
        let at = |j: u64| if grow { end - (blocks - j) * per_block } else { end + (blocks - j) * per_block };
        let first = blocks.saturating_sub(EXACT_ROUNDS).max(1);
        for j in first..=blocks {
            self.nodes.update(&nid, |n| n.zone_mut(zone).managed = at(j));
            self.init_per_zone_wmark_min();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_free_kbytes_formula() {
        // 1 GiB guest: MemTotal 922,456 kB (KERNEL-FACTS 8) -> sqrt(922456 * 16) = 3841.
        assert_eq!(min_free_kbytes_for(922_456), 3841);
        // Tiny machines clamp to 128 kB; huge ones to 256 MiB.
        assert_eq!(min_free_kbytes_for(100), 128);
        assert_eq!(min_free_kbytes_for(1 << 40), 262_144);
    }

    #[test]
    fn mult_frac_matches_the_plain_product_where_that_fits() {
        assert_eq!(mult_frac(230_000, 10, 10_000), 230);
        assert_eq!(mult_frac(3_840, 10, 10_000), 3);
        assert_eq!(mult_frac(u64::MAX, 10, 10_000), u64::MAX / 10_000 * 10 + (u64::MAX % 10_000) * 10 / 10_000);
    }
}
