//! The human report: a header that says what ran, one line per step, then the machine
//! as the steps left it (zones, memory blocks, a summary per node). One number style
//! throughout: sizes in exact binary units with page counts where pages matter
//! (`16 GiB (4,194,304 pages)`), every count grouped by thousands.

use std::fmt::Write as _;

use super::table::{Align, Table};
use super::{state, StateReport};
use crate::model::account::NodeMemmap;
use crate::model::units::{count_of, format_pages, format_size, thousands};
use crate::model::ZoneType;
use crate::runner::{Outcome, RunReport, StepResult};

/// ANSI colour for a terminal; plain text everywhere else (pipes, files, NO_COLOR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Paint {
    pub colour: bool,
}

impl Paint {
    fn wrap(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn good(self, text: &str) -> String {
        self.wrap("32", text)
    }
    fn bad(self, text: &str) -> String {
        self.wrap("1;31", text)
    }
    fn title(self, text: &str) -> String {
        self.wrap("1", text)
    }
}

fn signed(v: i64) -> String {
    if v < 0 {
        format!("-{}", thousands(v.unsigned_abs()))
    } else {
        format!("+{}", thousands(v as u64))
    }
}

fn range_text(start: u64, size: u64) -> String {
    if size == 0 {
        return format!("{start:#x}");
    }
    format!("{start:#x}-{:#x}", start.saturating_add(size - 1))
}

/// "onlined 128: 120 Movable, 8 Normal": how many blocks went to each zone, zones in the
/// order they first took one (a virtio-mem grow whose blocks alternate zones would
/// otherwise list thousands of names).
fn onlined_text(onlined: &crate::model::block::BlockRuns<ZoneType>) -> String {
    let mut counts: Vec<(ZoneType, u64)> = Vec::new();
    for &(first, end, zone) in onlined.runs() {
        match counts.iter_mut().find(|(z, _)| *z == zone) {
            Some((_, n)) => *n += end - first,
            None => counts.push((zone, end - first)),
        }
    }
    let by_zone: Vec<String> = counts.iter().map(|(z, n)| format!("{} {}", thousands(*n), z.name())).collect();
    format!("onlined {}: {}", thousands(onlined.len()), by_zone.join(", "))
}

/// "node 0", or "nodes 1 (4,026 MiB), 0 (70 MiB)" when several nodes paid, in the order
/// they did.
fn paid_text(page: u64, first: u32, by_node: &[(u32, u64)]) -> String {
    if by_node.len() < 2 {
        return format!("node {first}");
    }
    let parts: Vec<String> = by_node.iter().map(|&(nid, pages)| format!("{nid} ({})", format_size(pages * page))).collect();
    format!("nodes {}", parts.join(", "))
}

/// One line describing what a step did.
pub fn step_line(page: u64, s: &StepResult) -> String {
    step_line_painted(page, s, Paint::default())
}

fn step_line_painted(page: u64, s: &StepResult, paint: Paint) -> String {
    // A `set` step touches no range and no node: its columns stay blank, the detail aligned.
    let mut line = if s.op == crate::model::step::Op::Set {
        format!("#{:<3} {:<8} {:<27} {:>9}  {:<6}", s.index, s.op.as_str(), "", "", "")
    } else {
        format!("#{:<3} {:<8} {:<27} {:>9}  node {}", s.index, s.op.as_str(), range_text(s.start, s.size), format_size(s.size), s.node)
    };
    if let Some(st) = &s.strategy {
        let _ = write!(line, "  [{st}]");
    }
    if let Some(t) = s.online_type {
        let _ = write!(line, "  {}", t.as_str());
    }
    let detail = outcome_text(page, &s.outcome);
    // Colour marks the verdict word ("ok", "ENOMEM"), not the whole clause list.
    let (head, rest) = match detail.find(':') {
        Some(i) => detail.split_at(i),
        None => (detail.as_str(), ""),
    };
    let failed = matches!(s.outcome, Outcome::Failed(_));
    if !s.matched {
        return format!("{line}  {}{rest}{}", paint.bad(head), paint.bad(&format!(" << expected {}", s.expect)));
    }
    if failed {
        format!("{line}  {head}{rest} (as expected)")
    } else {
        format!("{line}  {}{rest}", paint.good(head))
    }
}

/// What a step's outcome says, after its range and strategy.
fn outcome_text(page: u64, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Added(a) => added_text(page, a),
        Outcome::Blocks(b) => {
            let mut zones: Vec<&str> = b.blocks.runs().iter().filter_map(|(_, _, z)| z.map(ZoneType::name)).collect();
            zones.dedup();
            let zones = if zones.is_empty() { String::new() } else { format!(" -> {}", zones.join(", ")) };
            format!(
                "ok: {}{zones}; present {}, managed {} pages",
                count_of(b.blocks.len(), "block"),
                signed(b.present_delta),
                signed(b.managed_delta)
            )
        }
        Outcome::Removed(r) => format!(
            "ok: {} removed; memmap freed {} node, {} altmap",
            count_of(r.blocks.len(), "block"),
            format_size(r.memmap_freed_node_pages * page),
            format_size(r.memmap_freed_altmap_pages * page)
        ),
        Outcome::Mapped(d) => mapped_text(page, d),
        Outcome::Resized(r) | Outcome::Partial(r) => resized_text(page, r),
        Outcome::Unmapped(u) => format!(
            "ok: pgmap {} unmapped; memmap freed {} RAM, {} device",
            u.pgmap_id,
            format_size(u.memmap_freed_node_pages * page),
            format_size(u.memmap_freed_device_pages * page)
        ),
        Outcome::Set(o) => format!("ok: {}", set_text(o)),
        Outcome::Failed(e) => format!("{}: {}", e.code, e.reason),
    }
}

/// `auto_online_blocks offline -> online_movable, auto_movable_ratio 301 -> 100`.
pub(super) fn set_text(o: &crate::model::step::SetOutcome) -> String {
    let parts: Vec<String> = o.changed.iter().map(|(old, new)| format!("{} {} -> {}", new.name(), old.value(), new.value())).collect();
    parts.join(", ")
}

/// The clauses an add and a grow share: the blocks auto-online took, by zone, and why
/// it stopped early.
fn online_clauses(out: &mut String, onlined: &crate::model::block::BlockRuns<ZoneType>, error: Option<&crate::model::StepError>) {
    if !onlined.is_empty() {
        let _ = write!(out, "; {}", onlined_text(onlined));
    }
    if let Some(e) = error {
        let _ = write!(out, "; auto-online stopped: {e}");
    }
}

/// What an add did, in one clause list.
fn added_text(page: u64, a: &crate::model::hotplug::AddOutcome) -> String {
    let mut d = format!("ok: {}", count_of(a.blocks.len(), "block"));
    if a.memmap_node_pages > 0 {
        let _ = write!(d, "; memmap {} from {}", format_pages(a.memmap_node_pages, page), paid_text(page, a.memmap_nid, &a.memmap_by_node));
    }
    if a.memmap_altmap_pages > 0 {
        let _ = write!(d, "; memmap {} inside the range", format_pages(a.memmap_altmap_pages, page));
    }
    online_clauses(&mut d, &a.onlined, a.online_error.as_ref());
    if !a.note.is_empty() {
        let _ = write!(d, "; {}", a.note);
    }
    d
}

/// What a memremap did.
fn mapped_text(page: u64, d: &crate::model::device::MemremapOutcome) -> String {
    let mut text = format!("ok: pgmap {}, {} of device memory", d.pgmap_id, format_pages(d.device_pages, page));
    if d.compound_order > 0 {
        let _ = write!(text, " in order-{} compounds", d.compound_order);
    }
    let in_ram = if d.memmap_node_pages == 0 {
        "0 B in RAM".to_string()
    } else {
        format!("{} in RAM ({})", format_pages(d.memmap_node_pages, page), paid_text(page, d.memmap_nid, &d.memmap_by_node))
    };
    let in_device = if d.memmap_device_pages == 0 { "0 B".to_string() } else { format_pages(d.memmap_device_pages, page) };
    let _ = write!(text, "; memmap {in_ram}, {in_device} in the device");
    if d.memmap_saved_pages > 0 {
        let _ = write!(text, ", {} saved by compound pages", format_size(d.memmap_saved_pages * page));
    }
    let _ = write!(text, "; {} struct pages initialised", thousands(d.pages_initialised));
    if !d.note.is_empty() {
        let _ = write!(text, "; {}", d.note);
    }
    text
}

/// What a virtio-mem grow or shrink did.
fn resized_text(page: u64, r: &crate::model::virtio::ResizeOutcome) -> String {
    let head = if r.complete() { "ok" } else { "partial" };
    let (verb, delta, blocks) = if r.plugged >= r.plugged_before {
        ("plugged", r.plugged - r.plugged_before, "added")
    } else {
        ("unplugged", r.plugged_before - r.plugged, "removed")
    };
    let mut text = format!(
        "{head}: {} {verb} {}, {} {blocks}; {} now plugged",
        r.device,
        format_size(delta),
        count_of(r.blocks.len(), "block"),
        format_size(r.plugged)
    );
    if !r.complete() {
        let _ = write!(text, " of {} asked (was {})", format_size(r.requested), format_size(r.plugged_before));
    }
    if r.memmap_node_pages > 0 {
        let _ = write!(text, "; memmap {} from node memory", format_pages(r.memmap_node_pages, page));
    }
    online_clauses(&mut text, &r.onlined, r.online_error.as_ref());
    if let Some(e) = &r.stopped {
        let _ = write!(text, "; stopped: {e}");
    }
    text
}

/// The human report of one run, without colour.
pub fn text(config: &str, run: &RunReport) -> String {
    text_painted(config, run, Paint::default())
}

/// The human report of one run; `paint` colours its outcomes on a terminal.
pub fn text_painted(config: &str, run: &RunReport, paint: Paint) -> String {
    let m = &run.model;
    let g = m.geometry.g;
    let page = g.page_size;
    let mut out = String::new();
    let matched = run.steps.iter().filter(|s| s.matched).count();
    let verdict = if matched == run.steps.len() {
        format!("{} as expected", thousands(matched as u64))
    } else {
        paint.bad(&format!("{} as expected -- MISMATCH", thousands(matched as u64)))
    };
    let strategy = run.strategy.as_ref().map(|s| format!(" [strategy {s}]")).unwrap_or_default();
    let steps = count_of(run.steps.len() as u64, "step");
    let _ = writeln!(out, "{}: {steps}, {verdict}", paint.title(&format!("{config}{strategy}")));
    let st = state(m);
    let _ = writeln!(
        out,
        "machine: {}, {} pages, {} sections, {} blocks, {}; MemTotal {}; min_free_kbytes {} ({} pages)",
        g.arch.name(),
        format_size(g.page_size),
        format_size(g.section_size),
        format_size(g.memory_block_size),
        count_of(m.nodes.len() as u64, "node"),
        mem_total_text(st.mem_total_kb),
        thousands(m.min_free_kbytes()),
        thousands(m.min_free_pages()),
    );
    out.push('\n');
    for s in &run.steps {
        let _ = writeln!(out, "{}", step_line_painted(page, s, paint));
    }
    if !run.steps.is_empty() {
        out.push('\n');
    }
    out.push_str(&zones_table(&st));
    out.push('\n');
    out.push_str(&blocks_table(&st));
    out.push('\n');
    out.push_str(&nodes_table(&st, page));
    out
}

/// "8,064 MiB (8,257,536 kB)": meminfo's number with its size beside it, when the size
/// says more than the kB do (whole MiB).
fn mem_total_text(kb: u64) -> String {
    if kb % 1024 == 0 && kb > 0 {
        format!("{} ({} kB)", format_size(kb * 1024), thousands(kb))
    } else {
        format!("{} kB", thousands(kb))
    }
}

/// The zone table: every zone that spans pages.
fn zones_table(st: &StateReport) -> String {
    let right = Align::Right;
    let mut t = Table::new(&[
        ("node", Align::Left),
        ("zone", Align::Left),
        ("start_pfn", right),
        ("spanned", right),
        ("present", right),
        ("managed", right),
        ("free pages", right),
        ("min/low/high", Align::Left),
    ]);
    for z in st.zones.iter().filter(|z| z.spanned > 0) {
        t.row(vec![
            z.node.to_string(),
            z.zone.name().to_string(),
            format!("{:#x}", z.start_pfn),
            thousands(z.spanned),
            thousands(z.present),
            thousands(z.managed),
            thousands(z.free),
            format!("{}/{}/{}", thousands(z.min), thousands(z.low), thousands(z.high)),
        ]);
    }
    t.render()
}

/// Memory blocks as runs of alike blocks, then the memory groups.
fn blocks_table(st: &StateReport) -> String {
    let mut t = Table::new(&[
        ("memory blocks", Align::Left),
        ("node", Align::Left),
        ("state", Align::Left),
        ("zone", Align::Left),
        ("valid_zones", Align::Left),
        ("vmemmap", Align::Right),
        ("added by", Align::Left),
    ]);
    for r in &st.block_runs {
        let name = if r.first == r.last { format!("memory{}", r.first) } else { format!("memory{}-{}", r.first, r.last) };
        t.row(vec![
            name,
            r.node.to_string(),
            r.state.as_str().to_string(),
            r.zone.map_or("-", ZoneType::name).to_string(),
            r.valid_zones.clone(),
            thousands(r.vmemmap_pages),
            r.strategy.clone().unwrap_or_else(|| "boot".into()),
        ]);
    }
    let mut out = t.render();
    for gr in &st.groups {
        let kind = match gr.kind {
            crate::model::groups::GroupKind::Static { max_pages } => format!("static, {} pages", thousands(max_pages)),
            crate::model::groups::GroupKind::Dynamic { unit_pages } => format!("dynamic, unit {} pages", thousands(unit_pages)),
        };
        let _ = writeln!(
            out,
            "group {} ({}, node {}, {kind}): {} pages in kernel zones, {} in Movable",
            gr.id,
            gr.device,
            gr.nid,
            thousands(gr.present_kernel_pages),
            thousands(gr.present_movable_pages)
        );
    }
    out
}

/// "4 GiB on node 0", "4,026 MiB on 1, 70 MiB on 0", "0 B".
fn in_ram_text(page: u64, parts: &[(u32, u64)]) -> String {
    let parts: Vec<&(u32, u64)> = parts.iter().filter(|p| p.1 > 0).collect();
    match parts.as_slice() {
        [] => "0 B".to_string(),
        [(nid, pages)] => format!("{} on node {nid}", format_size(pages * page)),
        many => {
            let each: Vec<String> = many.iter().map(|(nid, pages)| format!("{} on {nid}", format_size(pages * page))).collect();
            each.join(", ")
        }
    }
}

/// "1.5625 %" of the memory it maps; "-" when the node gained none.
fn share_text(memmap: u64, of: u64) -> String {
    if of == 0 {
        return "-".to_string();
    }
    let pct = memmap as f64 * 100.0 / of as f64;
    format!("{pct:.4} %")
}

fn online_text(page: u64, n: &NodeMemmap) -> String {
    if n.online_by_zone.is_empty() {
        return "0 B".to_string();
    }
    let parts: Vec<String> = n.online_by_zone.iter().map(|(z, p)| format!("{} {}", format_size(p * page), z.name())).collect();
    parts.join(", ")
}

/// One row of the per-node summary.
fn summary_cells(label: String, n: &NodeMemmap, page: u64) -> Vec<String> {
    vec![
        label,
        format_size(n.boot_memmap * page),
        format_size(n.added * page),
        online_text(page, n),
        format_size(n.device * page),
        in_ram_text(page, &n.memmap_in_ram),
        format_size(n.memmap_inside * page),
        format_size(n.memmap_in_device * page),
        share_text(n.memmap_of_added(), n.added + n.device),
        format_size(n.set_aside_unused * page),
    ]
}

/// The per-node summary: what was hot-added and onlined where, where its memmap lives
/// and what share of the added memory that is, what alignment lost; then each node's
/// free-memory account (the rule a memmap allocation must pass).
fn nodes_table(st: &StateReport, page: u64) -> String {
    let right = Align::Right;
    let mut t = Table::new(&[
        ("node", Align::Left),
        ("boot memmap", right),
        ("hot-added", right),
        ("online", Align::Left),
        ("device", right),
        ("its memmap: in RAM", Align::Left),
        ("inside", right),
        ("in device", right),
        ("share", right),
        ("lost to alignment", right),
    ]);
    let mut all = NodeMemmap::default();
    for n in &st.memmap_by_node {
        t.row(summary_cells(n.nid.to_string(), n, page));
        all.absorb(n);
    }
    if st.memmap_by_node.len() > 1 {
        t.row(summary_cells("all".to_string(), &all, page));
    }
    let mut out = t.render();
    out.push('\n');
    for n in &st.nodes {
        let _ = writeln!(
            out,
            "node {} free: {} pages = boot free {} + onlined {} - memmap {} (zones' min watermarks {})",
            n.node,
            thousands(n.free),
            thousands(n.boot_free),
            signed(n.onlined_since_boot).trim_start_matches('+'),
            thousands(n.memmap_taken),
            thousands(n.min_free_share)
        );
    }
    out
}

/// A step's outcome in a few words, for the side-by-side comparison.
fn short_outcome(page: u64, s: &StepResult) -> String {
    let mark = if s.matched { "" } else { " (!)" };
    let text = match &s.outcome {
        Outcome::Added(a) => {
            let mut parts = Vec::new();
            if a.memmap_node_pages > 0 {
                parts.push(format!(
                    "memmap {} from {}",
                    format_size(a.memmap_node_pages * page),
                    paid_text(page, a.memmap_nid, &a.memmap_by_node)
                ));
            }
            if a.memmap_altmap_pages > 0 {
                parts.push(format!("memmap {} inside", format_size(a.memmap_altmap_pages * page)));
            }
            if parts.is_empty() {
                "ok".to_string()
            } else {
                format!("ok: {}", parts.join(", "))
            }
        }
        Outcome::Blocks(b) => format!("ok: managed {}", signed(b.managed_delta)),
        Outcome::Removed(r) => format!("ok: {} removed", count_of(r.blocks.len(), "block")),
        Outcome::Mapped(d) => {
            format!("ok: memmap {} RAM, {} device", format_size(d.memmap_node_pages * page), format_size(d.memmap_device_pages * page))
        }
        Outcome::Unmapped(_) => "ok: unmapped".to_string(),
        Outcome::Resized(r) => format!("ok: {} plugged", format_size(r.plugged)),
        Outcome::Partial(r) => format!("partial: {} of {} plugged", format_size(r.plugged), format_size(r.requested)),
        Outcome::Set(o) => format!("ok: {}", set_text(o)),
        Outcome::Failed(e) => e.code.name(),
    };
    format!("{text}{mark}")
}

/// The runs of a `compare` side by side: one row per step, then the end state.
pub fn comparison(runs: &[RunReport]) -> String {
    let Some(first) = runs.first() else { return String::new() };
    let page = first.model.geometry.page_size();
    let mut columns = vec![("side by side".to_string(), Align::Left)];
    columns.extend(runs.iter().map(|r| (r.strategy.clone().unwrap_or_else(|| "(as configured)".into()), Align::Left)));
    let columns: Vec<(&str, Align)> = columns.iter().map(|(n, a)| (n.as_str(), *a)).collect();
    let mut t = Table::new(&columns);
    for (i, s) in first.steps.iter().enumerate() {
        let mut row = vec![format!("#{} {} {}", s.index, s.op.as_str(), format_size(s.size))];
        row.extend(runs.iter().map(|r| r.steps.get(i).map_or_else(|| "-".to_string(), |s| short_outcome(page, s))));
        t.row(row);
    }
    let states: Vec<StateReport> = runs.iter().map(|r| state(&r.model)).collect();
    let row = |label: &str, cells: Vec<String>| std::iter::once(label.to_string()).chain(cells).collect::<Vec<_>>();
    t.row(row("MemTotal", states.iter().map(|s| format!("{} kB", thousands(s.mem_total_kb))).collect()));
    t.row(row("memmap in node memory", states.iter().map(|s| format_size(s.memmap.node_pages * page)).collect()));
    let inside = runs.iter().zip(&states).map(|(r, s)| {
        let added: u64 = r.model.adds.values().map(|a| a.pfns.count()).sum();
        if s.memmap.altmap_pages == 0 {
            "0 B".to_string()
        } else {
            let pct = s.memmap.altmap_pages as f64 * 100.0 / added.max(1) as f64;
            format!("{} ({pct:.4} % of the hot-added memory)", format_size(s.memmap.altmap_pages * page))
        }
    });
    t.row(row("memmap inside ranges", inside.collect()));
    t.row(row("online blocks", states.iter().map(|s| thousands(s.online_blocks as u64)).collect()));
    t.render()
}
