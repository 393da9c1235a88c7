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
            }
        }
        // Every online block lies inside its zone's span, and zones of one node do not
        // both claim it.
        for b in self.blocks.values() {
            let start = g.block_to_pfn(b.id);
            let end = start + g.pages_per_block();
            // A section's struct pages fill whole PMDs of their own (x86_64) unless the
            // struct page size or section size make neighbours share a PMD.
            let own_pmds = (g.pages_per_section() * g.g.struct_page_size) % g.g.pmd_size == 0;
            for nr in g.pfn_to_section(start)..g.pfn_to_section(end) {
                let Some(s) = self.sections.get(nr) else {
                    // A boot block exists when any of its sections is present.
                    if b.early {
                        continue;
                    }
                    return Err(format!("memory{} has no present section {nr:#x}", b.id));
                };
                if s.memmap.pages() == 0 && !s.early && own_pmds {
                    return Err(format!("section {nr:#x} is present without memmap"));
                }
                if b.state == BlockState::Online && !s.online && !b.early {
                    return Err(format!("memory{} is online but section {nr:#x} is not", b.id));
                }
            }
            if let (BlockState::Online, Some(zone)) = (b.state, b.zone) {
                let z = self.nodes.get(&b.nid).map(|n| *n.zone(zone)).unwrap_or_default();
                if start < z.start_pfn || end > z.end_pfn() {
                    return Err(format!("memory{} is online in {} but outside its span", b.id, zone.name()));
                }
            }
            if let Some(a) = b.altmap {
                if a.base_pfn != start || a.reserve + a.free >= g.pages_per_block() {
                    return Err(format!("memory{}: altmap {:?} is not inside the block", b.id, a));
                }
            }
        }
        // Present pages equal the sum over online blocks (boot blocks count their boot RAM).
        for n in self.nodes.values() {
            let expected: u64 = self
                .blocks
                .values()
                .filter(|b| b.nid == n.id && b.state == BlockState::Online)
                .map(|b| if b.early { n.boot_pages_in(&g.block_pfns(b.id)) } else { g.pages_per_block() })
                .sum();
            if n.present_pages() != expected {
                return Err(format!("node {}: present {} differs from the {} its online blocks hold", n.id, n.present_pages(), expected));
            }
        }
        // Page marks only inside present sections.
        for (s, e, v) in self.pages.iter() {
            let _ = v;
            for nr in [g.pfn_to_section(s), g.pfn_to_section(e - 1)] {
                if self.sections.get(nr).is_none() && !matches!(v, PageState::Reserved { .. }) {
                    return Err(format!("pages {s:#x}-{e:#x} are marked but section {nr:#x} is not present"));
                }
            }
        }
        Ok(())
    }
}
