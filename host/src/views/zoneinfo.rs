//! /proc/zoneinfo (mm/vmstat.c zoneinfo_show_print): every zone of each online node,
//! populated or not. The model prints the header, `pages free`, the watermarks
//! (`boost` 0, `promo` = high + (high - low) as __setup_per_zone_wmarks sets it),
//! `spanned`, `present`, `managed`, `cma` 0, `protection` and, for populated zones only,
//! `start_pfn`; the per-node, per-cpu and vmstat lines it cannot know are left out.

use std::fmt::Write as _;

use crate::model::{Model, ZoneType};

pub(super) fn render(model: &Model) -> String {
    let mut out = String::new();
    for node in model.nodes.values().filter(|n| n.online) {
        for z in ZoneType::ALL {
            let zone = node.zone(z);
            let w = zone.watermark;
            let _ = writeln!(out, "Node {}, zone {:>8}", node.id, z.name());
            let _ = writeln!(out, "  pages free     {}", zone.free);
            let _ = writeln!(out, "        boost    0");
            let _ = writeln!(out, "        min      {}", w.min);
            let _ = writeln!(out, "        low      {}", w.low);
            let _ = writeln!(out, "        high     {}", w.high);
            let _ = writeln!(out, "        promo    {}", w.high + (w.high - w.low));
            let _ = writeln!(out, "        spanned  {}", zone.spanned);
            let _ = writeln!(out, "        present  {}", zone.present);
            let _ = writeln!(out, "        managed  {}", zone.managed);
            let _ = writeln!(out, "        cma      0");
            let protection: Vec<String> = zone.lowmem_reserve.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "        protection: ({})", protection.join(", "));
            // populated_zone(): present pages, not span, decide whether start_pfn shows.
            if zone.present > 0 {
                let _ = writeln!(out, "  start_pfn:           {}", zone.start_pfn);
            }
        }
    }
    out
}
