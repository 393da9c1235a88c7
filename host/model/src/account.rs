//! Where each node's memmap lives, and what its hot-added and device memory cost: the
//! numbers behind a report's per-node summary ("memmap of the 256 GiB added on node 2:
//! 4 GiB in node 0's RAM, 1.5625 %"). Computed from the section, block and pgmap runs,
//! so the cost follows the runs, not the pages.

use std::collections::BTreeMap;

use super::sections::MemmapHome;
use super::{BlockState, Model, ZoneType};

/// One node's memory as hot-plug left it, in pages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeMemmap {
    pub nid: u32,
    /// Memmap of the memory present at boot (memblock's, not counted as free memory).
    pub boot_memmap: u64,
    /// Hot-added pages on this node (every hot-added block, online or not).
    pub added: u64,
    /// Hot-added pages online, by zone, zones in `ZoneType::ALL` order.
    pub online_by_zone: Vec<(ZoneType, u64)>,
    /// ZONE_DEVICE pages of the pgmaps on this node.
    pub device: u64,
    /// Memmap of this node's hot-added and device memory held in RAM, by the node whose
    /// RAM holds it (a CPU-less node's memmap often lives on another node).
    pub memmap_in_ram: Vec<(u32, u64)>,
    /// Memmap held inside the hot-added ranges themselves (altmaps: memmap on memory).
    pub memmap_inside: u64,
    /// Memmap held inside the device memory (a pgmap's altmap).
    pub memmap_in_device: u64,
    /// Pages set aside to hold memmap that hold none: an altmap's padding to a PMD or a
    /// pageblock, a namespace's info block. Lost to alignment: neither memmap nor usable.
    pub set_aside_unused: u64,
}

impl NodeMemmap {
    /// Add `other`'s pages to these (a machine-wide row): zones stay in `ZoneType::ALL`
    /// order, paying nodes by id, as `memmap_account` lists them.
    pub fn absorb(&mut self, other: &NodeMemmap) {
        self.boot_memmap += other.boot_memmap;
        self.added += other.added;
        self.device += other.device;
        self.memmap_inside += other.memmap_inside;
        self.memmap_in_device += other.memmap_in_device;
        self.set_aside_unused += other.set_aside_unused;
        for &(zone, pages) in &other.online_by_zone {
            add_pages(&mut self.online_by_zone, zone, pages);
        }
        self.online_by_zone.sort_by_key(|&(z, _)| z.index());
        for &(payer, pages) in &other.memmap_in_ram {
            add_pages(&mut self.memmap_in_ram, payer, pages);
        }
        self.memmap_in_ram.sort_unstable();
    }

    /// Memmap of this node's hot-added and device memory, wherever it lives.
    pub fn memmap_of_added(&self) -> u64 {
        self.memmap_in_ram.iter().map(|&(_, p)| p).sum::<u64>() + self.memmap_inside + self.memmap_in_device
    }
}

impl Model {
    /// Every node's memmap account, by node id.
    pub fn memmap_account(&self) -> Vec<NodeMemmap> {
        let mut nodes: BTreeMap<u32, NodeMemmap> =
            self.nodes.values().map(|n| (n.id, NodeMemmap { nid: n.id, ..NodeMemmap::default() })).collect();
        let mut in_ram: BTreeMap<(u32, u32), u64> = BTreeMap::new();
        let mut online: BTreeMap<(u32, ZoneType), u64> = BTreeMap::new();

        // Device memory first: its sections are then left out of the hot-added sums.
        let mut device_sections: Vec<(u64, u64)> = Vec::new();
        for pg in self.pgmaps.values() {
            let n = nodes.entry(pg.nid).or_insert_with(|| NodeMemmap { nid: pg.nid, ..NodeMemmap::default() });
            for r in &pg.ranges {
                n.device += r.pfns.count();
                let in_device: u64 = r.charges.iter().map(|c| c.altmap_pages.saturating_mul(c.count)).sum();
                n.memmap_in_device += in_device;
                if let Some(a) = r.restrictions.altmap.into_option() {
                    n.set_aside_unused += (a.reserve + a.free).saturating_sub(in_device);
                }
                for part in &r.paid {
                    *in_ram.entry((pg.nid, part.nid)).or_default() += part.pages;
                }
                device_sections.extend(r.charges.iter().map(|c| (c.section, c.section + c.count)));
            }
        }
        device_sections.sort_unstable();

        let ppb = self.geometry.pages_per_block();
        let mut set_aside: BTreeMap<u32, u64> = BTreeMap::new();
        for (first, end, b) in self.blocks.runs() {
            if b.strategy.is_none() {
                continue;
            }
            let count = end - first;
            let n = nodes.entry(b.nid).or_insert_with(|| NodeMemmap { nid: b.nid, ..NodeMemmap::default() });
            n.added += count * ppb;
            *set_aside.entry(b.nid).or_default() += count * b.vmemmap_pages;
            if let (BlockState::Online, Some(zone)) = (b.state, b.zone) {
                *online.entry((b.nid, zone)).or_default() += count * ppb;
            }
        }

        let mut inside: BTreeMap<u32, u64> = BTreeMap::new();
        for (first, end, s) in self.sections.runs() {
            if let MemmapHome::Boot { pages, .. } = s.memmap {
                nodes.entry(s.nid).or_default().boot_memmap += pages * (end - first);
                continue;
            }
            for (lo, hi) in outside(first, end, &device_sections) {
                let count = hi - lo;
                match s.memmap {
                    MemmapHome::Node { nid, pages, .. } => *in_ram.entry((s.nid, nid)).or_default() += pages * count,
                    MemmapHome::Split { .. } => {
                        for nr in lo..hi {
                            for part in self.memmap_splits.get(&nr).into_iter().flatten() {
                                *in_ram.entry((s.nid, part.nid)).or_default() += part.pages;
                            }
                        }
                    }
                    MemmapHome::Altmap { pages } => *inside.entry(s.nid).or_default() += pages * count,
                    MemmapHome::Boot { .. } => {} // counted above
                }
            }
        }

        for (nid, n) in nodes.iter_mut() {
            n.nid = *nid;
            n.memmap_inside = inside.get(nid).copied().unwrap_or(0);
            n.set_aside_unused += set_aside.get(nid).copied().unwrap_or(0).saturating_sub(n.memmap_inside);
            n.memmap_in_ram = in_ram.range((*nid, 0)..=(*nid, u32::MAX)).map(|(&(_, payer), &p)| (payer, p)).collect();
            n.online_by_zone = ZoneType::ALL.iter().filter_map(|&z| online.get(&(*nid, z)).map(|&p| (z, p))).collect();
        }
        nodes.into_values().collect()
    }
}

/// `pages` more for `key` in a short list of (key, pages).
fn add_pages<K: PartialEq>(list: &mut Vec<(K, u64)>, key: K, pages: u64) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, p)) => *p += pages,
        None => list.push((key, pages)),
    }
}

/// The parts of `[first, end)` outside the sorted, disjoint-enough ranges `skip`.
fn outside(first: u64, end: u64, skip: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = first;
    for &(lo, hi) in skip {
        if hi <= at || lo >= end {
            continue;
        }
        if lo > at {
            out.push((at, lo));
        }
        at = at.max(hi);
    }
    if at < end {
        out.push((at, end));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::outside;

    #[test]
    fn outside_skips_the_device_sections() {
        assert_eq!(outside(0, 10, &[]), vec![(0, 10)]);
        assert_eq!(outside(0, 10, &[(2, 4), (6, 7)]), vec![(0, 2), (4, 6), (7, 10)]);
        assert_eq!(outside(3, 5, &[(0, 4)]), vec![(4, 5)]);
        assert_eq!(outside(3, 5, &[(0, 9)]), vec![]);
    }
}
