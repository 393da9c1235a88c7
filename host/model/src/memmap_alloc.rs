//! Memmap from the page allocator (mm/sparse-vmemmap.c vmemmap_alloc_block:
//! alloc_pages_node with GFP_KERNEL | __GFP_RETRY_MAYFAIL, no __GFP_THISNODE; and
//! vmemmap_populate_hugepages' fall back to base pages). Which zone pays for each
//! allocation follows mm/page_alloc.c: the fast path takes from the first zone of the
//! zonelist above its low watermark, the slow path (nothing here to reclaim) from the
//! first above min; `__zone_watermark_ok` counts the zone's lowmem_reserve for Normal
//! and the allocation's own size. Allocations of one size cost O(zones), not O(pages).

use super::watermarks::Watermarks;
use super::zone::ZoneType;
use super::Model;

/// Pages of memmap one zone gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemmapPart {
    pub nid: u32,
    pub zone: ZoneType,
    pub pages: u64,
}

/// Who pays for memmap that no altmap holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payers {
    /// The kernel's way: node `nid`'s fallback zonelist, nearest node first. `fresh`:
    /// the node comes online with this add (its zonelist is built alone).
    Zonelist { nid: u32, fresh: bool },
    /// The strategy's `memmap_nodes` (or `memmap_nid`), in order, each node on its own.
    Listed(Vec<u32>),
}

/// One place an allocation may come from: a zone, above a mark (a watermark plus the
/// zone's lowmem_reserve for Normal).
#[derive(Debug, Clone, Copy)]
struct Try {
    nid: u32,
    zone: ZoneType,
    mark: u64,
}

/// Which watermark a pass of the allocator checks.
type Mark = fn(&Watermarks) -> u64;

/// A run of PMDs of memmap paid alike: `pmds` of them, each by `per_pmd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PmdRun {
    pub pmds: u64,
    pub per_pmd: Vec<MemmapPart>,
}

/// One zone's room when an allocation failed, for the ENOMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneRoom {
    pub nid: u32,
    pub zone: ZoneType,
    pub free: u64,
    pub watermark: Watermarks,
    /// lowmem_reserve for an allocation that may use up to Normal.
    pub reserve: u64,
}

impl Model {
    /// The zones `payers` lets an allocation try, in order, each at the marks it is
    /// tried against: the whole zonelist at low, then at min; a listed node's own zones
    /// at low, then at min, before the next listed node.
    fn tries(&self, payers: &Payers) -> Vec<Try> {
        let nodes = self.payer_nodes(payers);
        let at = |nodes: &[u32], pick: Mark| -> Vec<Try> {
            let mut out = Vec::new();
            for &nid in nodes {
                for zone in self.node_kernel_zones(nid) {
                    let z = self.nodes.get(&nid).expect("zonelist node exists").zone(zone);
                    out.push(Try { nid, zone, mark: pick(&z.watermark) + z.lowmem_reserve[ZoneType::Normal.index()] });
                }
            }
            out
        };
        let (low, min): (Mark, Mark) = (|w| w.low, |w| w.min);
        match payers {
            Payers::Zonelist { .. } => [at(&nodes, low), at(&nodes, min)].concat(),
            Payers::Listed(_) => nodes.iter().flat_map(|&n| [at(&[n], low), at(&[n], min)].concat()).collect(),
        }
    }

    /// The nodes `payers` may take from, in the order tried.
    pub fn payer_nodes(&self, payers: &Payers) -> Vec<u32> {
        match payers {
            Payers::Zonelist { nid, fresh } => self.zonelist_nodes(*nid, *fresh),
            Payers::Listed(nodes) => nodes.clone(),
        }
    }

    /// Up to `count` allocations of `size` pages each, every one from the first try
    /// whose zone keeps more than its mark after giving `size - 1` pages. Returns what
    /// each zone gave, in order, and how many allocations were made.
    fn take(&mut self, tries: &[Try], size: u64, count: u64) -> (Vec<(u32, ZoneType, u64)>, u64) {
        let mut given: Vec<(u32, ZoneType, u64)> = Vec::new();
        let mut done = 0;
        for t in tries {
            if done == count {
                break;
            }
            let free = self.nodes.get(&t.nid).map_or(0, |n| n.zone(t.zone).free);
            let k = (free.saturating_sub(t.mark) / size).min(count - done);
            if k == 0 {
                continue;
            }
            self.nodes.update(&t.nid, |n| {
                n.zone_mut(t.zone).free -= k * size;
                n.memmap_taken += k * size;
            });
            match given.last_mut() {
                Some(last) if (last.0, last.1) == (t.nid, t.zone) => last.2 += k,
                _ => given.push((t.nid, t.zone, k)),
            }
            done += k;
        }
        (given, done)
    }

    /// `count` PMDs of memmap, PMD by PMD as vmemmap_populate_hugepages maps them: an
    /// order-9 page, else (no zone has one above its marks) a page-table page and
    /// base pages for the PMD. Returns the runs paid, or the PMDs done before the one
    /// no zone could pay and the pages they took (the caller's transaction gives the
    /// pages back).
    pub(super) fn alloc_memmap_pmds(&mut self, payers: &Payers, count: u64) -> Result<Vec<PmdRun>, (u64, u64)> {
        let pmd = self.geometry.pmd_pages();
        let tries = self.tries(payers);
        let (given, mut done) = self.take(&tries, pmd, count);
        let mut runs: Vec<PmdRun> =
            given.into_iter().map(|(nid, zone, k)| PmdRun { pmds: k, per_pmd: vec![MemmapPart { nid, zone, pages: pmd }] }).collect();
        // Base pages: each zone has less than a PMD left above its marks, so at most a
        // few PMDs more, one at a time.
        while done < count {
            let (given, got) = self.take(&tries, 1, pmd + 1);
            if got < pmd + 1 {
                let pages = runs.iter().map(|r| r.pmds * r.per_pmd.iter().map(|p| p.pages).sum::<u64>()).sum();
                return Err((done, pages));
            }
            runs.push(PmdRun { pmds: 1, per_pmd: given.into_iter().map(|(nid, zone, pages)| MemmapPart { nid, zone, pages }).collect() });
            done += 1;
        }
        Ok(runs)
    }

    /// `count` single pages of memmap (base pages and page tables of device memmap),
    /// or the pages done before the one no zone could pay.
    pub(super) fn alloc_memmap_pages(&mut self, payers: &Payers, count: u64) -> Result<Vec<MemmapPart>, u64> {
        let tries = self.tries(payers);
        let (given, done) = self.take(&tries, 1, count);
        if done < count {
            return Err(done);
        }
        Ok(given.into_iter().map(|(nid, zone, pages)| MemmapPart { nid, zone, pages }).collect())
    }

    /// Give memmap pages back to the zone that paid them.
    pub(super) fn free_memmap_part(&mut self, part: MemmapPart) {
        self.nodes.update(&part.nid, |n| {
            n.memmap_taken = n.memmap_taken.saturating_sub(part.pages);
            let z = n.zone_mut(part.zone);
            z.free = (z.free + part.pages).min(z.managed);
        });
    }

    /// Each zone `payers` may take from, with its room, for the ENOMEM.
    pub(super) fn payer_rooms(&self, payers: &Payers) -> Vec<ZoneRoom> {
        let mut out = Vec::new();
        for nid in self.payer_nodes(payers) {
            for zone in self.node_kernel_zones(nid) {
                let z = self.nodes.get(&nid).expect("payer node exists").zone(zone);
                out.push(ZoneRoom { nid, zone, free: z.free, watermark: z.watermark, reserve: z.lowmem_reserve[ZoneType::Normal.index()] });
            }
        }
        out
    }

    /// Pages a memmap allocation could still take from node `nid`'s own zones: above
    /// each zone's min watermark and reserve (what a strategy sees as `free_pages`).
    pub fn allocatable(&self, nid: u32) -> u64 {
        let Some(n) = self.nodes.get(&nid) else { return 0 };
        self.node_kernel_zones(nid)
            .into_iter()
            .map(|zone| {
                let z = n.zone(zone);
                z.free.saturating_sub(z.watermark.min + z.lowmem_reserve[ZoneType::Normal.index()])
            })
            .sum()
    }
}
