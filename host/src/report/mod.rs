//! Reports: the human summary (readable in ten seconds, then detail) and the JSON form
//! (`"schema_version": 1`, fields in docs/report-json.md).

pub mod json;
pub mod plan;
pub mod sweep;
pub mod table;
pub mod text;

pub use text::{comparison, step_line, text, text_painted, Paint};

use serde::Serialize;

use crate::model::{Model, ZoneType};
use crate::runner::{RunReport, StepResult};

/// The JSON schema version (docs/report.schema.json); bump on any change of shape.
/// 2: failures carry `errno`, `check` and a memmap shortage's numbers; `host plan`.
pub const SCHEMA_VERSION: u32 = 2;

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
    /// Per node: hot-added and device memory, where its memmap lives, what alignment lost.
    #[serde(serialize_with = "json::serialize_memmap_account")]
    pub memmap_by_node: Vec<crate::model::account::NodeMemmap>,
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
    // The machine-wide memmap is the per-node account summed: one walk of the sections.
    let memmap_by_node = model.memmap_account();
    let mut memmap = MemmapSummary::default();
    for n in &memmap_by_node {
        memmap.boot_pages += n.boot_memmap;
        memmap.node_pages += n.memmap_in_ram.iter().map(|&(_, pages)| pages).sum::<u64>();
        memmap.altmap_pages += n.memmap_inside + n.memmap_in_device;
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
        memmap_by_node,
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

/// `host plan --format json`: the plan in the report's schema (`"kind": "plan"`).
pub fn plan_json(config: &str, plan: &crate::plan::Plan) -> String {
    #[derive(Serialize)]
    struct PlanReport<'a> {
        schema_version: u32,
        kind: &'static str,
        config: &'a str,
        plan: &'a crate::plan::Plan,
    }
    serde_json::to_string_pretty(&PlanReport { schema_version: SCHEMA_VERSION, kind: "plan", config, plan }).expect("plan serialises")
}
