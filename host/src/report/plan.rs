//! `host plan`'s answer in words: per strategy, whether one add of the target works
//! (and why not), the largest single add, and the sequence that gets there.

use std::fmt::Write as _;

use crate::model::units::{format_pages, format_size, thousands};
use crate::plan::Plan;

/// The plan as text, in the report's number style.
pub fn text(config: &str, p: &Plan) -> String {
    let page = p.page_size;
    let n = &p.numbers;
    let mut out = String::new();
    let _ = writeln!(out, "{config}: plan to hot-add {} at {:#x} on node {}", format_size(p.target), p.start, p.node);
    let _ = writeln!(
        out,
        "numbers: node {} has {} free, {} of it above the zones' min watermarks ({} pages) and reserves; \
         memmap needs {} per GiB hot-added, so that room describes {}",
        p.node,
        format_pages(n.free_pages, page),
        format_pages(n.allocatable_pages, page),
        thousands(n.min_free_pages),
        format_pages(n.memmap_pages_per_gib, page),
        format_size(n.allocatable_pages.checked_div(n.memmap_pages_per_gib).unwrap_or(0).saturating_mul(1 << 30)),
    );
    for s in &p.strategies {
        out.push('\n');
        let _ = writeln!(out, "strategy {}:", s.strategy);
        match &s.single_target {
            None => {
                let _ = writeln!(out, "  one add of {}: ok", format_size(p.target));
            }
            Some(e) => {
                let _ = writeln!(out, "  one add of {} fails: {e}", format_size(p.target));
            }
        }
        let limit = if s.limited_by_address_space { " (up to the top of the physical address space)" } else { "" };
        let _ = writeln!(out, "  largest single add: {}{limit}", format_size(s.largest_single));
        if s.single_target.is_some() {
            if s.sequence.is_empty() {
                let _ = writeln!(out, "  no add of even one {} block succeeds", format_size(p.block_size));
            } else {
                let _ = writeln!(out, "  in steps ({} adds, each onlined before the next):", s.sequence.len());
            }
            for (i, a) in s.sequence.iter().enumerate() {
                let memmap = if a.memmap_altmap_pages > 0 {
                    format!("memmap {} inside", format_pages(a.memmap_altmap_pages, page))
                } else {
                    format!("memmap {} from node memory", format_pages(a.memmap_node_pages, page))
                };
                let online = if a.online_step { ", then online" } else { ", onlined at once" };
                let _ = writeln!(
                    out,
                    "    {}. add {:#x} {}{online}: {memmap}; room for memmap after: {} pages",
                    i + 1,
                    a.start,
                    format_size(a.size),
                    thousands(a.allocatable_after)
                );
            }
            match &s.stuck {
                None => {
                    let _ = writeln!(out, "  reaches {}", format_size(s.reached));
                }
                Some(e) => {
                    let _ = writeln!(out, "  stops at {}: {e}", format_size(s.reached));
                }
            }
        }
    }
    for v in &p.virtio {
        out.push('\n');
        virtio_text(&mut out, v, p.target, page);
    }
    out
}

/// A virtio-mem device's answer: what a requested-size step of the target does, and the
/// largest step it plugs in full.
fn virtio_text(out: &mut String, v: &crate::plan::VirtioPlan, target: u64, page: u64) {
    let _ = writeln!(
        out,
        "virtio-mem {} (node {}, region {:#x}-{:#x}, {}{}; {} plugged; {} sub-blocks):",
        v.device,
        v.node,
        v.region_start,
        v.region_start + v.region_size - 1,
        format_size(v.region_size),
        if v.region_grows { ", growing with the requests" } else { "" },
        format_size(v.plugged),
        format_size(v.sb_size)
    );
    let cut = if v.target_step < target / v.sb_size * v.sb_size {
        format!(" (the target cut to the {} the region has left)", format_size(v.target_step))
    } else {
        String::new()
    };
    match &v.target_stopped {
        None => {
            let _ = writeln!(out, "  requested-size +{}{cut}: plugged and online in full", format_size(v.target_step));
        }
        Some(e) if v.target_plugged > 0 => {
            let _ = writeln!(
                out,
                "  requested-size +{}{cut}: stops after {}: {e}",
                format_size(v.target_step),
                format_pages(v.target_plugged / page, page)
            );
        }
        Some(e) => {
            let _ = writeln!(out, "  requested-size +{}{cut}: plugs nothing: {e}", format_size(v.target_step));
        }
    }
    match &v.next_stops {
        None if v.largest_step == v.target_step && v.target_stopped.is_none() => {
            let _ =
                writeln!(out, "  largest requested-size step plugged in full: +{} (the whole step asked for)", format_size(v.largest_step));
        }
        None => {
            let _ = writeln!(out, "  largest requested-size step plugged in full: +{}", format_size(v.largest_step));
        }
        Some(e) => {
            let _ = writeln!(
                out,
                "  largest requested-size step plugged in full: +{}; one {} sub-block more: {e}",
                format_size(v.largest_step),
                format_size(v.sb_size)
            );
        }
    }
}
