//! Reports: the human summary (readable in ten seconds, then detail) and the JSON form
//! (`"schema_version": 1`, fields in docs/report-json.md).

pub mod json;

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::format_size;
use crate::model::sections::MemmapHome;
use crate::model::{Model, ZoneType};
use crate::runner::{Outcome, RunReport, StepResult};

/// The JSON schema version; bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// One zone's counters.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ZoneRow {
    pub node: u32,
    #[serde(serialize_with = "json::serialize_zone")]
    pub zone: ZoneType,
    pub start_pfn: u64,
    pub spanned: u64,
    pub present: u64,
    pub managed: u64,
    /// NR_FREE_PAGES and the watermarks (pages), as /proc/zoneinfo shows them.
    pub free: u64,
    pub min: u64,
    pub low: u64,
    pub high: u64,
    /// lowmem_reserve, zoneinfo's `protection`.
    pub protection: [u64; 5],
}

/// Where memmap lives, in pages.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct MemmapSummary {
    pub boot_pages: u64,
    pub node_pages: u64,
    pub altmap_pages: u64,
}

/// Per-node free-memory account (the memmap allocation rule).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeAccount {
    pub node: u32,
    pub boot_free: u64,
    pub onlined_since_boot: i64,
    pub memmap_taken: u64,
    pub free: u64,
    pub min_free_share: u64,
}

/// Consecutive memory blocks that look alike, as one row (a machine has millions).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BlockRun {
    /// First and last memoryN of the run.
    pub first: u64,
    pub last: u64,
    pub node: u32,
    #[serde(serialize_with = "json::serialize_block_state")]
    pub state: crate::model::BlockState,
    /// The zone an online block is in (`None`: offline, or a boot block spanning zones).
    #[serde(serialize_with = "json::serialize_opt_zone")]
    pub zone: Option<ZoneType>,
    /// memoryN/valid_zones, as the kernel prints it.
    pub valid_zones: String,
    /// Pages at each block's start holding its own memmap (memmap on memory).
    pub vmemmap_pages: u64,
    /// The strategy instance that hot-added the blocks (`None`: boot memory).
    pub strategy: Option<String>,
    /// The memory group the blocks belong to (0: none).
    pub group: u64,
}

/// Group the model's blocks into runs of alike, consecutive blocks.
pub fn block_runs(model: &Model) -> Vec<BlockRun> {
    let mut runs: Vec<BlockRun> = Vec::new();
    for (first, end, b) in model.blocks.runs() {
        let mut id = first;
        while id < end {
            let (valid_zones, next) = model.valid_zones_run(id, end).unwrap_or_default();
            let next = next.max(id + 1);
            let row = BlockRun {
                first: id,
                last: next - 1,
                node: b.nid,
                state: b.state,
                zone: b.zone,
                valid_zones,
                vmemmap_pages: b.vmemmap_pages,
                strategy: b.strategy.clone(),
                group: b.group_id,
            };
            match runs.last_mut() {
                Some(prev) if prev.last + 1 == row.first && BlockRun { first: prev.first, last: prev.last, ..row.clone() } == *prev => {
                    prev.last = row.last;
                }
                _ => runs.push(row),
            }
            id = next;
        }
    }
    runs
}

/// The machine state at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StateReport {
    pub zones: Vec<ZoneRow>,
    pub mem_total_kb: u64,
    pub mem_free_kb: u64,
    pub memmap: MemmapSummary,
    pub nodes: Vec<NodeAccount>,
    pub memory_blocks: usize,
    pub online_blocks: usize,
    pub block_runs: Vec<BlockRun>,
    /// Memory groups with their present kernel and Movable pages.
    #[serde(serialize_with = "json::serialize_groups")]
    pub groups: Vec<crate::model::groups::MemoryGroup>,
}

/// Everything `--format json` prints.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    pub schema_version: u32,
    pub config: String,
    pub runs: Vec<JsonRun<'a>>,
    pub all_matched: bool,
}

/// One run (one strategy, for `compare`).
#[derive(Debug, Serialize)]
pub struct JsonRun<'a> {
    pub strategy: Option<&'a str>,
    pub steps: &'a [StepResult],
    pub state: StateReport,
}

/// Summarise the model's state.
pub fn state(model: &Model) -> StateReport {
    let page_kb = model.geometry.page_size() / 1024;
    let mut zones = Vec::new();
    let mut nodes = Vec::new();
    for n in model.nodes.values() {
        for z in ZoneType::ALL {
            let c = n.zone(z);
            zones.push(ZoneRow {
                node: n.id,
                zone: z,
                start_pfn: c.start_pfn,
                spanned: c.spanned,
                present: c.present,
                managed: c.managed,
                free: c.free,
                min: c.watermark.min,
                low: c.watermark.low,
                high: c.watermark.high,
                protection: c.lowmem_reserve,
            });
        }
        nodes.push(NodeAccount {
            node: n.id,
            boot_free: n.boot_free,
            onlined_since_boot: n.onlined_since_boot,
            memmap_taken: n.memmap_taken,
            free: n.free_pages(),
            min_free_share: model.min_free_share(n.id),
        });
    }
    let mut memmap = MemmapSummary::default();
    for (first, end, s) in model.sections.runs() {
        let sections = end - first;
        match s.memmap {
            MemmapHome::Boot { pages, .. } => memmap.boot_pages += pages * sections,
            MemmapHome::Node { pages, .. } | MemmapHome::Split { pages, .. } => memmap.node_pages += pages * sections,
            MemmapHome::Altmap { pages } => memmap.altmap_pages += pages * sections,
        }
    }
    StateReport {
        zones,
        mem_total_kb: model.total_managed() * page_kb,
        mem_free_kb: model.nodes.values().map(|n| n.free_pages()).sum::<u64>() * page_kb,
        memmap,
        nodes,
        memory_blocks: model.blocks.len() as usize,
        online_blocks: model
            .blocks
            .runs()
            .filter(|(_, _, b)| b.state == crate::model::BlockState::Online)
            .map(|(s, e, _)| (e - s) as usize)
            .sum(),
        block_runs: block_runs(model),
        groups: model.groups.values().cloned().collect(),
    }
}

/// The JSON report of one or more runs.
pub fn json(config: &str, runs: &[RunReport]) -> String {
    let report = JsonReport {
        schema_version: SCHEMA_VERSION,
        config: config.to_string(),
        runs: runs.iter().map(|r| JsonRun { strategy: r.strategy.as_deref(), steps: &r.steps, state: state(&r.model) }).collect(),
        all_matched: runs.iter().all(RunReport::all_matched),
    };
    serde_json::to_string_pretty(&report).expect("report serialises")
}

fn range_text(start: u64, size: u64) -> String {
    if size == 0 {
        return format!("{start:#x}");
    }
    format!("{start:#x}-{:#x}", start.saturating_add(size - 1))
}

/// "onlined 128: 120 Movable, 8 Normal": how many blocks went to each zone, zones in the
/// order they first took one, instead of one name per run (a virtio-mem grow whose
/// blocks alternate zones would list thousands).
fn onlined_text(onlined: &crate::model::block::BlockRuns<crate::model::ZoneType>) -> String {
    let mut counts: Vec<(crate::model::ZoneType, u64)> = Vec::new();
    for &(first, end, zone) in onlined.runs() {
        match counts.iter_mut().find(|(z, _)| *z == zone) {
            Some((_, n)) => *n += end - first,
            None => counts.push((zone, end - first)),
        }
    }
    // Plain counts, as the rest of the step line prints them (one number style for the
    // whole report is the answers issue's).
    let by_zone: Vec<String> = counts.iter().map(|(z, n)| format!("{n} {}", z.name())).collect();
    format!("onlined {}: {}", onlined.len(), by_zone.join(", "))
}

fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn signed_thousands(v: i64) -> String {
    if v < 0 {
        format!("-{}", thousands(v.unsigned_abs()))
    } else {
        thousands(v as u64)
    }
}

/// "node 0", or "nodes 1 (768 MiB), 0 (256 MiB)" when several nodes paid for an add's memmap.
fn memmap_nodes_text(page: u64, a: &crate::model::hotplug::AddOutcome) -> String {
    paid_text(page, a.memmap_nid, &a.memmap_by_node)
}

/// "node N", or "nodes 1 (768 MiB), 0 (256 MiB)" when several paid, in the order they did.
fn paid_text(page: u64, first: u32, by_node: &[(u32, u64)]) -> String {
    if by_node.len() < 2 {
        return format!("node {first}");
    }
    let parts: Vec<String> = by_node.iter().map(|&(nid, pages)| format!("{nid} ({})", format_size(pages * page))).collect();
    format!("nodes {}", parts.join(", "))
}

/// One line describing what a step did.
pub fn step_line(model_page: u64, s: &StepResult) -> String {
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
    let detail = outcome_text(model_page, &s.outcome);
    let mark = if s.matched {
        if matches!(s.outcome, Outcome::Failed(_)) {
            " (as expected)"
        } else {
            ""
        }
    } else {
        " << expected "
    };
    if s.matched {
        format!("{line}  {detail}{mark}")
    } else {
        format!("{line}  {detail}{mark}{}", s.expect)
    }
}

/// What a step's outcome says, after its range and strategy.
fn outcome_text(model_page: u64, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Added(a) => added_text(model_page, a),
        Outcome::Blocks(b) => {
            let mut zones: Vec<&str> = b.blocks.runs().iter().filter_map(|(_, _, z)| z.map(ZoneType::name)).collect();
            zones.dedup();
            let zones = if zones.is_empty() { String::new() } else { format!(" -> {}", zones.join(", ")) };
            format!("ok: {} block(s){zones}; present {:+}, managed {:+} pages", b.blocks.len(), b.present_delta, b.managed_delta)
        }
        Outcome::Removed(r) => format!(
            "ok: {} block(s) removed; memmap freed {} node, {} altmap",
            r.blocks.len(),
            format_size(r.memmap_freed_node_pages * model_page),
            format_size(r.memmap_freed_altmap_pages * model_page)
        ),
        Outcome::Mapped(d) => mapped_text(model_page, d),
        Outcome::Resized(r) | Outcome::Partial(r) => resized_text(model_page, r),
        Outcome::Unmapped(u) => format!(
            "ok: pgmap {} unmapped; memmap freed {} RAM, {} device",
            u.pgmap_id,
            format_size(u.memmap_freed_node_pages * model_page),
            format_size(u.memmap_freed_device_pages * model_page)
        ),
        Outcome::Set(o) => format!("ok: {}", set_text(o)),
        Outcome::Failed(e) => format!("{}: {}", e.code, e.reason),
    }
}

/// `auto_online_blocks offline -> online_movable, auto_movable_ratio 301 -> 100`.
fn set_text(o: &crate::model::step::SetOutcome) -> String {
    let parts: Vec<String> = o.changed.iter().map(|(old, new)| format!("{} {} -> {}", new.name(), old.value(), new.value())).collect();
    parts.join(", ")
}

/// What an add did, in one clause list.
fn added_text(model_page: u64, a: &crate::model::hotplug::AddOutcome) -> String {
    let mut d = format!("ok: {} block(s)", a.blocks.len());
    if a.memmap_node_pages > 0 {
        let _ = write!(d, "; memmap {} from {}", format_size(a.memmap_node_pages * model_page), memmap_nodes_text(model_page, a));
    }
    if a.memmap_altmap_pages > 0 {
        let _ = write!(d, "; memmap {} inside the range", format_size(a.memmap_altmap_pages * model_page));
    }
    if !a.onlined.is_empty() {
        let _ = write!(d, "; {}", onlined_text(&a.onlined));
    }
    if let Some(e) = &a.online_error {
        let _ = write!(d, "; auto-online stopped: {e}");
    }
    if !a.note.is_empty() {
        let _ = write!(d, "; {}", a.note);
    }
    d
}

/// What a memremap did.
fn mapped_text(model_page: u64, d: &crate::model::device::MemremapOutcome) -> String {
    let mut text = format!("ok: pgmap {}, {} device pages", d.pgmap_id, thousands(d.device_pages));
    if d.compound_order > 0 {
        let _ = write!(text, " in order-{} compounds", d.compound_order);
    }
    let _ = write!(
        text,
        "; memmap {} in RAM ({}), {} in the device",
        format_size(d.memmap_node_pages * model_page),
        paid_text(model_page, d.memmap_nid, &d.memmap_by_node),
        format_size(d.memmap_device_pages * model_page)
    );
    if d.memmap_saved_pages > 0 {
        let _ = write!(text, ", {} saved by compound pages", format_size(d.memmap_saved_pages * model_page));
    }
    let _ = write!(text, "; {} struct pages initialised", thousands(d.pages_initialised));
    if !d.note.is_empty() {
        let _ = write!(text, "; {}", d.note);
    }
    text
}

/// What a virtio-mem grow or shrink did.
fn resized_text(model_page: u64, r: &crate::model::virtio::ResizeOutcome) -> String {
    let head = if r.complete() { "ok" } else { "partial" };
    let (verb, delta, blocks) = if r.plugged >= r.plugged_before {
        ("plugged", r.plugged - r.plugged_before, "added")
    } else {
        ("unplugged", r.plugged_before - r.plugged, "removed")
    };
    let mut text = format!(
        "{head}: {} {verb} {}, {} block(s) {blocks}; {} now plugged",
        r.device,
        format_size(delta),
        r.blocks.len(),
        format_size(r.plugged)
    );
    if !r.complete() {
        let _ = write!(text, " of {} asked (was {})", format_size(r.requested), format_size(r.plugged_before));
    }
    if r.memmap_node_pages > 0 {
        let _ = write!(text, "; memmap {} from node memory", format_size(r.memmap_node_pages * model_page));
    }
    if !r.onlined.is_empty() {
        let _ = write!(text, "; {}", onlined_text(&r.onlined));
    }
    if let Some(e) = &r.online_error {
        let _ = write!(text, "; auto-online stopped: {e}");
    }
    if let Some(e) = &r.stopped {
        let _ = write!(text, "; stopped: {e}");
    }
    text
}

/// The human report of one run.
pub fn text(config: &str, run: &RunReport) -> String {
    let m = &run.model;
    let g = m.geometry.g;
    let page = g.page_size;
    let mut out = String::new();
    let matched = run.steps.iter().filter(|s| s.matched).count();
    let _ = writeln!(
        out,
        "{config}{}: {} step(s), {matched} as expected{}",
        run.strategy.as_ref().map(|s| format!(" [strategy {s}]")).unwrap_or_default(),
        run.steps.len(),
        if matched == run.steps.len() { "" } else { " -- MISMATCH" }
    );
    let st = state(m);
    let _ = writeln!(
        out,
        "machine: {}, {} pages, {} sections, {} blocks, {} node(s); MemTotal {} kB; min_free_kbytes {} ({} pages)",
        g.arch.name(),
        format_size(g.page_size),
        format_size(g.section_size),
        format_size(g.memory_block_size),
        m.nodes.len(),
        thousands(st.mem_total_kb),
        thousands(m.min_free_kbytes()),
        thousands(m.min_free_pages()),
    );
    out.push('\n');
    for s in &run.steps {
        let _ = writeln!(out, "{}", step_line(page, s));
    }
    if !run.steps.is_empty() {
        out.push('\n');
    }
    zones_table(&mut out, &st);
    out.push('\n');
    blocks_table(&mut out, &st);
    out.push('\n');
    memmap_lines(&mut out, &st, page);
    out
}

/// The zone table: every zone that spans pages.
fn zones_table(out: &mut String, st: &StateReport) {
    let _ = writeln!(
        out,
        "{:<5} {:<8} {:>12} {:>14} {:>14} {:>14} {:>14}  min/low/high",
        "node", "zone", "start_pfn", "spanned", "present", "managed", "free"
    );
    for z in st.zones.iter().filter(|z| z.spanned > 0) {
        let _ = writeln!(
            out,
            "{:<5} {:<8} {:>12} {:>14} {:>14} {:>14} {:>14}  {}/{}/{}",
            z.node,
            z.zone.name(),
            format!("{:#x}", z.start_pfn),
            thousands(z.spanned),
            thousands(z.present),
            thousands(z.managed),
            thousands(z.free),
            thousands(z.min),
            thousands(z.low),
            thousands(z.high)
        );
    }
}

/// Memory blocks as runs of alike blocks, then the memory groups.
fn blocks_table(out: &mut String, st: &StateReport) {
    let _ = writeln!(
        out,
        "{:<22} {:<5} {:<8} {:<8} {:<16} {:>8}  added by",
        "memory blocks", "node", "state", "zone", "valid_zones", "vmemmap"
    );
    for r in &st.block_runs {
        let name = if r.first == r.last { format!("memory{}", r.first) } else { format!("memory{}-{}", r.first, r.last) };
        let _ = writeln!(
            out,
            "{:<22} {:<5} {:<8} {:<8} {:<16} {:>8}  {}",
            name,
            r.node,
            r.state.as_str(),
            r.zone.map_or("-", ZoneType::name),
            r.valid_zones,
            r.vmemmap_pages,
            r.strategy.as_deref().unwrap_or("boot")
        );
    }
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
}

/// Where the memmap lives, and each node's free-memory account.
fn memmap_lines(out: &mut String, st: &StateReport, page: u64) {
    let _ = writeln!(
        out,
        "memmap: boot {}, hot-added in node memory {}, inside hot-added ranges {}",
        format_size(st.memmap.boot_pages * page),
        format_size(st.memmap.node_pages * page),
        format_size(st.memmap.altmap_pages * page)
    );
    for n in &st.nodes {
        let _ = writeln!(
            out,
            "node {} free: {} pages = boot free {} + onlined {} - memmap {} (zones' min watermarks {})",
            n.node,
            thousands(n.free),
            thousands(n.boot_free),
            signed_thousands(n.onlined_since_boot),
            thousands(n.memmap_taken),
            thousands(n.min_free_share)
        );
    }
}

/// A step's outcome in a few words, for the side-by-side comparison.
fn short_outcome(page: u64, s: &StepResult) -> String {
    let mark = if s.matched { "" } else { " (!)" };
    let text = match &s.outcome {
        Outcome::Added(a) => {
            let mut parts = Vec::new();
            if a.memmap_node_pages > 0 {
                parts.push(format!("memmap {} from {}", format_size(a.memmap_node_pages * page), memmap_nodes_text(page, a)));
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
        Outcome::Blocks(b) => format!("ok: managed {:+}", b.managed_delta),
        Outcome::Removed(r) => format!("ok: {} block(s) removed", r.blocks.len()),
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
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["side by side".to_string()];
    header.extend(runs.iter().map(|r| r.strategy.clone().unwrap_or_else(|| "(as configured)".into())));
    rows.push(header);
    for (i, s) in first.steps.iter().enumerate() {
        let mut row = vec![format!("#{} {} {}", s.index, s.op.as_str(), format_size(s.size))];
        row.extend(runs.iter().map(|r| r.steps.get(i).map_or_else(|| "-".to_string(), |s| short_outcome(page, s))));
        rows.push(row);
    }
    let states: Vec<StateReport> = runs.iter().map(|r| state(&r.model)).collect();
    let row = |label: &str, cells: Vec<String>| std::iter::once(label.to_string()).chain(cells).collect::<Vec<_>>();
    rows.push(row("MemTotal", states.iter().map(|s| format!("{} kB", thousands(s.mem_total_kb))).collect()));
    rows.push(row("memmap in node memory", states.iter().map(|s| format_size(s.memmap.node_pages * page)).collect()));
    let inside = runs.iter().zip(&states).map(|(r, s)| {
        let added: u64 = r.model.adds.values().map(|a| a.pfns.count()).sum();
        if s.memmap.altmap_pages == 0 {
            "0 B".to_string()
        } else {
            let pct = s.memmap.altmap_pages as f64 * 100.0 / added.max(1) as f64;
            format!("{} ({pct:.4} % of the hot-added memory)", format_size(s.memmap.altmap_pages * page))
        }
    });
    rows.push(row("memmap inside ranges", inside.collect()));
    rows.push(row("online blocks", states.iter().map(|s| thousands(s.online_blocks as u64)).collect()));
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}
