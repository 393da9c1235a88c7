//! `host plan`: for the machine a config describes, the largest single hot-add that
//! succeeds with each strategy, and a sequence of hot-adds, onlined one by one, that
//! reaches a target size (the kernel's advice for small guests: memory onlined now
//! holds the memmap of the next add), or the reason none can.
//!
//! Every answer is found by running the model, never by formula: each candidate add is
//! tried on a copy of the machine and kept only if the step succeeds. Success is
//! monotone in the size (a larger add needs more memmap, from the same memory), so the
//! largest add is a binary search over whole memory blocks: about 20 tries per answer.

use serde::Serialize;

use crate::model::error::StepError;
use crate::model::ops::StrategyLookup;
use crate::model::policy::OnlineType;
use crate::model::step::{Outcome, Step};
use crate::model::{BlockState, Model};
use crate::runner::{self, RunOptions};
use crate::scenario::Scenario;

/// The most hot-adds one sequence may take before the plan gives up on it: growth that
/// slow means the machine cannot really get there.
pub const MAX_SEQUENCE: usize = 64;

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub target: u64,
    /// `None`: [`default_start`] on the machine after the config's steps.
    pub start: Option<u64>,
    pub node: u32,
    pub strategies: Vec<String>,
}

/// The numbers behind an answer, for the machine before the first add.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Numbers {
    /// The node's free pages, and the part of them above its zones' min watermarks and
    /// reserves: what a memmap allocation may take.
    pub free_pages: u64,
    pub allocatable_pages: u64,
    /// The node's share of min_free_kbytes, in pages.
    pub min_free_pages: u64,
    /// Pages of memmap one GiB of hot-added memory needs (1 GiB / page size x struct page).
    pub memmap_pages_per_gib: u64,
}

/// One add of a sequence, and the machine after it (and its online step).
#[derive(Debug, Clone, Serialize)]
pub struct PlannedAdd {
    pub start: u64,
    pub size: u64,
    /// Whether the plan onlines it with a step of its own (auto_online_blocks offline).
    pub online_step: bool,
    /// Memmap the add took from node memory and inside its range (pages).
    pub memmap_node_pages: u64,
    pub memmap_altmap_pages: u64,
    /// Pages a memmap allocation may take on the node afterwards.
    pub allocatable_after: u64,
}

/// One strategy's answer.
#[derive(Debug, Clone, Serialize)]
pub struct StrategyPlan {
    pub strategy: String,
    /// The target as one add: `None` when it succeeds, else why it fails.
    #[serde(serialize_with = "crate::report::json::serialize_opt_error")]
    pub single_target: Option<StepError>,
    /// The largest single add that succeeds (bytes; 0: not even one block).
    pub largest_single: u64,
    /// `largest_single` ends at the top of the physical address space.
    pub limited_by_address_space: bool,
    /// Adds that reach the target, in order (one when a single add does; empty when none can).
    pub sequence: Vec<PlannedAdd>,
    /// How much the sequence adds (the target, unless it got stuck).
    pub reached: u64,
    /// Why the sequence stopped short of the target.
    #[serde(serialize_with = "crate::report::json::serialize_opt_error")]
    pub stuck: Option<StepError>,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub target: u64,
    pub start: u64,
    pub node: u32,
    pub block_size: u64,
    pub page_size: u64,
    pub numbers: Numbers,
    pub strategies: Vec<StrategyPlan>,
}

/// Why a plan could not be made at all.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Run(#[from] runner::RunError),
    #[error("{0}")]
    Invalid(String),
}

/// The default start: the first memory-block-aligned address above all memory the
/// machine has (boot RAM, hot-added, device), and on x86_64 not below 4 GiB (the PCI
/// hole under it is where a VM's hot-pluggable area never starts).
pub fn default_start(model: &Model) -> u64 {
    let g = model.geometry;
    let page = g.page_size();
    let mut end_pfn = model.counters.get().max_pfn;
    for n in model.nodes.values() {
        for z in crate::model::ZoneType::ALL {
            let zone = n.zone(z);
            if zone.spanned > 0 {
                end_pfn = end_pfn.max(zone.start_pfn + zone.spanned);
            }
        }
    }
    let block = g.g.memory_block_size;
    let end = end_pfn.saturating_mul(page);
    let aligned = end.div_ceil(block).saturating_mul(block);
    if g.g.arch == hotplug_core::Arch::X86_64 {
        aligned.max(4 << 30)
    } else {
        aligned
    }
}

/// Plan on the machine `scenario` boots, after its own steps.
pub fn plan(scenario: &Scenario, strategies: &dyn StrategyLookup, request: &PlanRequest) -> Result<Plan, PlanError> {
    let options = RunOptions { check_invariants: false, keep_history: false, stop_after: None };
    let base = runner::run(scenario, strategies, None, &options)?.model;
    let g = base.geometry;
    let (page, block) = (g.page_size(), g.g.memory_block_size);
    if request.target == 0 || request.target % block != 0 {
        return Err(PlanError::Invalid(format!(
            "the target must be a positive multiple of the memory block size {}",
            crate::config::format_size(block)
        )));
    }
    let space_end = if g.g.max_phys_bits >= 64 { u64::MAX } else { 1u64 << g.g.max_phys_bits };
    let start = request.start.unwrap_or_else(|| default_start(&base));
    if start % block != 0 || start >= space_end {
        return Err(PlanError::Invalid(format!("the start {start:#x} is not a block-aligned address of this machine")));
    }
    let node = base.nodes.get(&request.node).ok_or_else(|| PlanError::Invalid(format!("node {} does not exist", request.node)))?;
    let numbers = Numbers {
        free_pages: node.free_pages(),
        allocatable_pages: base.allocatable(request.node),
        min_free_pages: base.min_free_share(request.node),
        memmap_pages_per_gib: ((1u64 << 30) / page).saturating_mul(g.g.struct_page_size).div_ceil(page),
    };
    let planner = Planner { strategies, node: request.node, block, space_end };
    let answers = request.strategies.iter().map(|name| planner.for_strategy(&base, name, start, request.target)).collect();
    Ok(Plan { target: request.target, start, node: request.node, block_size: block, page_size: page, numbers, strategies: answers })
}

struct Planner<'a> {
    strategies: &'a dyn StrategyLookup,
    node: u32,
    block: u64,
    space_end: u64,
}

impl Planner<'_> {
    fn add_step(&self, strategy: &str, start: u64, size: u64) -> Step {
        Step::Add { start, size, node: self.node, driver: hotplug_core::Driver::ACPI_DIMM, device: None, strategy: strategy.to_string() }
    }

    /// Add `size` at `start` on `model`, onlining what stayed offline; the outcome of
    /// the add (a failed online fails the whole try).
    fn try_add(&self, model: &mut Model, strategy: &str, start: u64, size: u64) -> Result<PlannedAdd, StepError> {
        let outcome = model.apply(&self.add_step(strategy, start, size), self.strategies);
        let added = match outcome {
            Outcome::Added(a) => a,
            Outcome::Failed(e) => return Err(e),
            other => return Err(StepError::kernel(hotplug_core::errno::EINVAL, format!("unexpected outcome {}", other.code()))),
        };
        let first = start / model.geometry.g.memory_block_size;
        let end = first + size / model.geometry.g.memory_block_size;
        let offline = model.blocks.runs_in(first, end).any(|(_, _, b)| b.state == BlockState::Offline);
        if offline {
            let online = Step::Online { start, size, online_type: OnlineType::Online };
            if let Outcome::Failed(e) = model.apply(&online, self.strategies) {
                return Err(e);
            }
        }
        Ok(PlannedAdd {
            start,
            size,
            online_step: offline,
            memmap_node_pages: added.memmap_node_pages,
            memmap_altmap_pages: added.memmap_altmap_pages,
            allocatable_after: model.allocatable(self.node),
        })
    }

    /// The largest whole-block add at `start`, at most `cap` bytes, that succeeds on
    /// `model` (0 when one block fails), with the failure of one block more.
    fn largest(&self, model: &Model, strategy: &str, start: u64, cap: u64) -> (u64, Option<StepError>) {
        let works = |blocks: u64| self.try_add(&mut model.clone(), strategy, start, blocks * self.block);
        let max_blocks = cap / self.block;
        if max_blocks == 0 {
            return (0, None);
        }
        if works(max_blocks).is_ok() {
            return (max_blocks * self.block, None);
        }
        let (mut lo, mut hi) = (0u64, max_blocks); // lo works (or is 0), hi fails
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if works(mid).is_ok() {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (lo * self.block, works(hi).err())
    }

    fn for_strategy(&self, base: &Model, strategy: &str, start: u64, target: u64) -> StrategyPlan {
        let room = self.space_end.saturating_sub(start);
        let single = if target > room {
            Err(StepError::kernel(hotplug_core::errno::E2BIG, "the target does not fit below the top of the physical address space"))
        } else {
            self.try_add(&mut base.clone(), strategy, start, target)
        };
        let (largest_single, _) = self.largest(base, strategy, start, room);
        let limited_by_address_space = largest_single > 0 && largest_single == room / self.block * self.block;
        let mut out = StrategyPlan {
            strategy: strategy.to_string(),
            single_target: single.as_ref().err().cloned(),
            largest_single,
            limited_by_address_space,
            sequence: Vec::new(),
            reached: 0,
            stuck: None,
        };
        if let Ok(add) = single {
            out.sequence.push(add);
            out.reached = target;
            return out;
        }
        let mut model = base.clone();
        let mut at = start;
        while out.reached < target && out.sequence.len() < MAX_SEQUENCE {
            let cap = (target - out.reached).min(self.space_end.saturating_sub(at));
            let (size, why) = self.largest(&model, strategy, at, cap);
            if size == 0 {
                out.stuck = why;
                break;
            }
            match self.try_add(&mut model, strategy, at, size) {
                Ok(step) => out.sequence.push(step),
                Err(e) => {
                    out.stuck = Some(e);
                    break;
                }
            }
            at += size;
            out.reached += size;
        }
        if out.reached < target && out.stuck.is_none() {
            out.stuck = Some(StepError::kernel(
                hotplug_core::errno::ENOMEM,
                format!("{MAX_SEQUENCE} adds reach only {}", crate::config::format_size(out.reached)),
            ));
        }
        out
    }
}

/// The sequence as `[[step]]` tables, runnable with the config's `[machine]` and
/// `[[strategy]]` (what `--write-scenario` appends).
pub fn steps_toml(p: &StrategyPlan, node: u32) -> String {
    let mut out = String::new();
    for (i, s) in p.sequence.iter().enumerate() {
        out.push_str(&format!(
            "[[step]]\nname = \"plan {} of {}: add\"\nop = \"add\"\nstart = \"{:#x}\"\nsize = \"{:#x}\"\nnode = {node}\ndriver = \"acpi-dimm\"\nstrategy = \"{}\"\n\n",
            i + 1,
            p.sequence.len(),
            s.start,
            s.size,
            p.strategy
        ));
        if s.online_step {
            out.push_str(&format!(
                "[[step]]\nname = \"plan {} of {}: online\"\nop = \"online\"\nstart = \"{:#x}\"\nsize = \"{:#x}\"\nnode = {node}\n\n",
                i + 1,
                p.sequence.len(),
                s.start,
                s.size
            ));
        }
    }
    out
}
