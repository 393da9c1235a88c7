//! The model's invariants, checked after every step in debug builds and on request
//! (`--check-invariants`) in release builds. A violation is a bug in the host.

use super::{BlockState, Model, PageState};

impl Model {
    /// Check every invariant; the error names the first one broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        let g = self.geometry;
        for n in self.nodes.values() {
            for (i, z) in n.zones.iter().enumerate() {
                let name = super::ZoneType::ALL[i].name();
                if !(z.spanned >= z.present && z.present >= z.managed) {
                    return Err(format!(
                        "node {} zone {name}: spanned {} >= present {} >= managed {} does not hold",
                        n.id, z.spanned, z.present, z.managed
                    ));
                }
                let w = z.watermark;
                if z.free > z.managed || !(w.min <= w.low && w.low <= w.high) {
                    return Err(format!(
                        "node {} zone {name}: free {} <= managed {} and min {} <= low {} <= high {} do not hold",
                        n.id, z.free, z.managed, w.min, w.low, w.high
                    ));
                }
            }
        }
        // Every split memmap record belongs to a present section whose home says so.
        for (nr, parts) in self.memmap_splits.iter() {
            let home = self.sections.get(*nr).map(|s| s.memmap);
            let pages: u64 = parts.iter().map(|p| p.pages).sum();
            if !matches!(home, Some(super::sections::MemmapHome::Split { pages: p, .. }) if p == pages) {
                return Err(format!("section {nr:#x}: memmap split over {pages} pages, but its home is {home:?}"));
            }
        }
        // Every online block lies inside its zone's span, and zones of one node do not
        // both claim it. Run by run: the check costs what the model holds, not what it spans.
        let own_pmds = self.sections_own_their_pmds();
        for (first, end, b) in self.blocks.runs() {
            let (start, stop) = (g.block_to_pfn(first), g.block_to_pfn(end));
            let (sec_first, sec_end) = (g.pfn_to_section(start), g.pfn_to_section(stop));
            // A boot block exists when any of its sections is present.
            let present = self.sections.runs_in(sec_first, sec_end).map(|(s, e, _)| e - s).sum::<u64>();
            if !b.early && present != sec_end - sec_first {
                return Err(format!("memory{first}-{} lacks {} present section(s)", end - 1, sec_end - sec_first - present));
            }
            for (nr, _, s) in self.sections.runs_in(sec_first, sec_end) {
                if s.memmap.pages() == 0 && !s.early && own_pmds {
                    return Err(format!("section {nr:#x} is present without memmap"));
                }
                if b.state == BlockState::Online && !s.online && !b.early {
                    return Err(format!("memory{first}-{} is online but section {nr:#x} is not", end - 1));
                }
            }
            if let (BlockState::Online, Some(zone)) = (b.state, b.zone) {
                let node = self.nodes.get(&b.nid);
                let z = node.map(|n| *n.zone(zone)).unwrap_or_default();
                // A boot block holds only the boot RAM inside it: the zone spans that
                // (a boot range may end inside a block, as 129 GiB does in 2 GiB blocks),
                // not the whole block.
                let block = super::PfnRange::from_bounds(start, stop).unwrap_or_default();
                let (start, stop) = match (b.early, node) {
                    (true, Some(n)) => n.boot_extent_in(&block).map_or((start, start), |r| (r.start(), r.end())),
                    _ => (start, stop),
                };
                if start < z.start_pfn || stop > z.end_pfn() {
                    return Err(format!("memory{first}-{} is online in {} but outside its span", end - 1, zone.name()));
                }
            }
            if let Some(a) = b.altmap {
                if a.base_pfn != 0 || a.reserve + a.free >= g.pages_per_block() {
                    return Err(format!("memory{first}: altmap {a:?} (pfns from the block's first) is not inside the block"));
                }
            }
        }
        // Present pages equal the sum over online blocks (boot blocks count their boot RAM).
        for n in self.nodes.values() {
            let expected: u64 = self
                .blocks
                .runs()
                .filter(|(_, _, b)| b.nid == n.id && b.state == BlockState::Online)
                .map(|(s, e, b)| {
                    let pfns = super::PfnRange::from_bounds(g.block_to_pfn(s), g.block_to_pfn(e)).unwrap_or_default();
                    if b.early {
                        n.boot_pages_in(&pfns)
                    } else {
                        pfns.count()
                    }
                })
                .sum();
            if n.present_pages() != expected {
                return Err(format!("node {}: present {} differs from the {} its online blocks hold", n.id, n.present_pages(), expected));
            }
        }
        // Page marks only inside present sections.
        for (s, e, r) in self.pages.runs_in(0, u64::MAX) {
            let reserved = matches!(r, super::pages::PageRun::Plain(PageState::Reserved { .. }));
            for nr in [g.pfn_to_section(s), g.pfn_to_section(e - 1)] {
                if self.sections.get(nr).is_none() && !reserved {
                    return Err(format!("pages {s:#x}-{e:#x} are marked but section {nr:#x} is not present"));
                }
            }
        }
        Ok(())
    }
}
