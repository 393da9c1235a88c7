//! /proc/zoneinfo (mm/vmstat.c zoneinfo_show_print): every zone of each online node,
//! populated or not. The model prints the header, `spanned`, `present`, `managed` and,
//! for populated zones only, `start_pfn`; the per-cpu and vmstat lines it cannot know
//! are left out.

use std::fmt::Write as _;

use crate::model::{Model, ZoneType};

pub(super) fn render(model: &Model) -> String {
    let mut out = String::new();
    for node in model.nodes.values().filter(|n| n.online) {
        for z in ZoneType::ALL {
            let zone = node.zone(z);
            let _ = writeln!(out, "Node {}, zone {:>8}", node.id, z.name());
            let _ = writeln!(out, "        spanned  {}", zone.spanned);
            let _ = writeln!(out, "        present  {}", zone.present);
            let _ = writeln!(out, "        managed  {}", zone.managed);
            // populated_zone(): present pages, not span, decide whether start_pfn shows.
            if zone.present > 0 {
                let _ = writeln!(out, "  start_pfn:           {}", zone.start_pfn);
            }
        }
    }
    out
}
