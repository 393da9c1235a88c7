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

/// A virtio-mem device's answer: the largest `requested-size` step (one grow) that it
/// plugs in full, and what a step of the target does.
#[derive(Debug, Clone, Serialize)]
pub struct VirtioPlan {
    pub device: String,
    pub node: u32,
    pub region_start: u64,
    pub region_size: u64,
    /// The region was left to the model: it grows with the requests.
    pub region_grows: bool,
    /// Plugged before the step, and the sub-block size every step is a multiple of.
    pub plugged: u64,
    pub sb_size: u64,
    /// The grow asked for: the target, cut to what the region has left (bytes).
    pub target_step: u64,
    /// What that grow plugs (all of `target_step` unless it stopped short).
    pub target_plugged: u64,
    /// Why that grow stopped short or failed (`None`: it plugged all it asked for).
    #[serde(serialize_with = "crate::report::json::serialize_opt_error")]
    pub target_stopped: Option<StepError>,
    /// The largest grow up to the target that plugs in full, with every block it adds
    /// online (bytes).
    pub largest_step: u64,
    /// Why one sub-block more does not (`None`: the largest step is the whole target, or
    /// all the region has left).
    #[serde(serialize_with = "crate::report::json::serialize_opt_error")]
    pub next_stops: Option<StepError>,
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
    /// Every virtio-mem device the config's steps left, in name order.
    pub virtio: Vec<VirtioPlan>,
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
/// machine has (boot RAM, hot-added, device) and every iomem region, and on x86_64 not below 4 GiB (the PCI
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
    // Above every iomem region too: a virtio-mem device's region or a namespace holds
    // no memory yet but is not the place for a DIMM.
    let regions_end = model.resources.top_level().map(|r| r.end.saturating_add(1)).max().unwrap_or(0);
    let end = end_pfn.saturating_mul(page).max(regions_end);
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
    let virtio = base.virtio.values().map(|d| planner.for_virtio(&base, scenario, d, request.target)).collect();
    Ok(Plan { target: request.target, start, node: request.node, block_size: block, page_size: page, numbers, strategies: answers, virtio })
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

    /// Grow virtio-mem device `d` by `size` on `model`: what it plugged, and why it
    /// stopped short (a grow that plugs part of its request stands, as the driver's does;
    /// a block left offline counts as stopping short: its memory is not usable).
    fn try_grow(&self, model: &mut Model, d: &crate::model::virtio::VirtioMem, strategy: &str, size: u64) -> (u64, Option<StepError>) {
        let step = Step::Grow {
            device: d.name.clone(),
            start: d.start,
            size,
            node: d.nid,
            unit: None,
            region_size: None,
            block_size: None,
            strategy: strategy.to_string(),
        };
        match model.apply(&step, self.strategies) {
            Outcome::Resized(out) | Outcome::Partial(out) => {
                let plugged = out.plugged - out.plugged_before;
                let offline = out.blocks.len() > out.onlined.len();
                let why = out.stopped.or(out.online_error).or_else(|| {
                    offline.then(|| StepError::kernel(hotplug_core::errno::EBUSY, "blocks it added stay offline (auto_online_blocks)"))
                });
                (plugged, why)
            }
            Outcome::Failed(e) => (0, Some(e)),
            other => (0, Some(StepError::kernel(hotplug_core::errno::EINVAL, format!("unexpected outcome {}", other.code())))),
        }
    }

    /// A virtio-mem device's largest full `requested-size` step (a binary search over
    /// sub-blocks, each try on a copy), and what a step of the target does.
    fn for_virtio(&self, base: &Model, scenario: &Scenario, d: &crate::model::virtio::VirtioMem, target: u64) -> VirtioPlan {
        // The strategy its own grows named (a grow's blocks are added through it).
        let strategy = scenario
            .steps
            .iter()
            .find_map(|s| match &s.step {
                Step::Grow { device, strategy, .. } if *device == d.name => Some(strategy.clone()),
                _ => None,
            })
            .unwrap_or_default();
        // What the region has left; a region the model sizes grows to the top of the
        // pluggable range. The search goes no higher than the target: each try plugs
        // block by block, as the driver does.
        let region_left = if d.region_grows {
            (base.geometry.physmem_end() + 1).saturating_sub(d.start).saturating_sub(d.plugged)
        } else {
            d.region_size.saturating_sub(d.plugged)
        };
        let left = region_left.min(target) / d.sb_size * d.sb_size;
        let target_step = left;
        let (target_plugged, target_stopped) = if target_step == 0 {
            (0, Some(StepError::kernel(hotplug_core::errno::ENOSPC, "the device's region has no unplugged sub-block left")))
        } else {
            self.try_grow(&mut base.clone(), d, &strategy, target_step)
        };
        let full = |sbs: u64| {
            let (plugged, why) = self.try_grow(&mut base.clone(), d, &strategy, sbs * d.sb_size);
            (why.is_none() && plugged == sbs * d.sb_size, why)
        };
        let max = left / d.sb_size;
        let (largest, next_stops) = if max == 0 {
            (0, None)
        } else if full(max).0 {
            (max, None)
        } else {
            let (mut lo, mut hi) = (0u64, max); // lo plugs in full (or is 0), hi does not
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if full(mid).0 {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            (lo, full(hi).1)
        };
        VirtioPlan {
            device: d.name.clone(),
            node: d.nid,
            region_start: d.start,
            region_size: d.region_size,
            region_grows: d.region_grows,
            plugged: d.plugged,
            sb_size: d.sb_size,
            target_step,
            target_plugged,
            target_stopped,
            largest_step: largest * d.sb_size,
            next_stops,
        }
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
