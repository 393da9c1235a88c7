//! Running a scenario: load the plugins, boot the model, run each step as a transaction,
//! and collect what happened for the report.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{OnlineType, Op};
use crate::loader::{InstanceError, LoadError, LoadedLibrary, Loader, StrategyInstance};
use crate::model::device::{MemremapOutcome, MemremapParams, MemunmapOutcome};
use crate::model::hotplug::{AddOutcome, AddParams, BlocksOutcome, RemoveOutcome};
use crate::model::ops::{StrategyHandle, StrategyLookup};
use crate::model::virtio::ResizeOutcome;
use crate::model::{Model, StepError};
use crate::scenario::{Expect, Scenario, StepSpec};

/// A run that could not start (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A strategy's plugin could not be found or loaded: located at its [[strategy]] table.
    #[error("{path}:{line}: strategy \"{strategy}\": {error}")]
    StrategyLoad { path: String, line: usize, strategy: String, error: Box<LoadError> },
    #[error("{path}:{line}: strategy \"{strategy}\" (plugin {plugin}): {message}")]
    Options { path: String, line: usize, strategy: String, plugin: String, message: String },
    /// An option the plugin does not declare, or of the wrong type: located at the entry.
    #[error("{path}:{line}:{col}: strategy \"{strategy}\": {message}")]
    UndeclaredOption { path: String, line: usize, col: usize, strategy: String, message: String },
    #[error("{0}")]
    Boot(String),
    #[error("invariant broken after step {step}: {message} (a bug in the host; please report it)")]
    Invariant { step: usize, message: String },
}

/// How a step ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Added(AddOutcome),
    Blocks(BlocksOutcome),
    Removed(RemoveOutcome),
    Mapped(MemremapOutcome),
    Resized(ResizeOutcome),
    Unmapped(MemunmapOutcome),
    Failed(StepError),
}

impl Outcome {
    /// "ok" or the error code.
    pub fn code(&self) -> &str {
        match self {
            Outcome::Failed(e) => &e.code,
            _ => "ok",
        }
    }
}

/// One step's record.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub index: usize,
    pub op: Op,
    pub name: Option<String>,
    pub start: u64,
    pub size: u64,
    pub node: u32,
    pub strategy: Option<String>,
    pub online_type: Option<OnlineType>,
    pub expect: String,
    pub outcome: Outcome,
    pub matched: bool,
}

/// A whole run: the steps and the final model.
#[derive(Debug)]
pub struct RunReport {
    /// The strategy forced on add steps (`--strategy` or a `compare` entry), if any.
    pub strategy: Option<String>,
    pub steps: Vec<StepResult>,
    pub model: Model,
    /// The model after each step (index 0 = boot), kept only when asked for.
    pub history: Vec<Model>,
}

impl RunReport {
    /// Whether every step matched its `expect`.
    pub fn all_matched(&self) -> bool {
        self.steps.iter().all(|s| s.matched)
    }
}

/// Knobs of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Check the invariants after every step, and that a failed step changed nothing
    /// (always on in debug builds; costs a copy of the model per step).
    pub check_invariants: bool,
    /// Keep the model after each step (index 0 = boot), for tests that compare states.
    pub keep_history: bool,
    /// Stop after this step (0: run none), for `--view-after`.
    pub stop_after: Option<usize>,
}

/// The loaded strategy instances of a scenario, by name.
pub struct Strategies {
    pub instances: BTreeMap<String, StrategyInstance>,
}

impl Strategies {
    /// Load and instantiate every strategy a scenario defines.
    pub fn load(scenario: &Scenario, loader: &mut Loader) -> Result<Strategies, RunError> {
        let mut instances = BTreeMap::new();
        for s in &scenario.strategies {
            let located = |error: LoadError| {
                if s.line == 0 {
                    // The implicit default strategy has no table to point at.
                    RunError::Load(error)
                } else {
                    RunError::StrategyLoad {
                        path: scenario.path.display().to_string(),
                        line: s.line,
                        strategy: s.name.clone(),
                        error: Box::new(error),
                    }
                }
            };
            let path = crate::loader::resolve(&s.plugin, &scenario.plugin_dirs).map_err(located)?;
            let lib = loader.load(&path).map_err(located)?;
            check_declared_options(scenario, s, &lib)?;
            let instance = StrategyInstance::new(&s.name, &lib, &s.options, &scenario.machine, &s.needs).map_err(|e| match e {
                InstanceError::Load(l) => RunError::Load(l),
                InstanceError::Options(p) => RunError::Options {
                    path: scenario.path.display().to_string(),
                    line: s.line,
                    strategy: s.name.clone(),
                    plugin: s.plugin.clone(),
                    message: p.message.to_string(),
                },
            })?;
            log::info!("strategy \"{}\": plugin {} {} from {}", s.name, instance.info.name, instance.info.version, lib.path.display());
            instances.insert(s.name.clone(), instance);
        }
        Ok(Strategies { instances })
    }

    /// The loaded instance named `name`.
    pub fn get(&self, name: &str) -> Option<&dyn StrategyHandle> {
        self.instances.get(name).map(|s| s as &dyn StrategyHandle)
    }
}

/// Refuse options the plugin does not declare (or of the wrong type) before it is built;
/// a plugin that declares none takes its options unchecked.
fn check_declared_options(scenario: &Scenario, s: &crate::scenario::StrategySpec, lib: &LoadedLibrary) -> Result<(), RunError> {
    let Some(schema) = lib.options_schema() else { return Ok(()) };
    let entries = s.option_entries.iter().map(|e| (e.key.as_str(), &e.value));
    crate::loader::options::check(&s.plugin, schema, entries).map_err(|p| {
        let entry = &s.option_entries[p.index];
        let (line, col) = match p.at {
            crate::loader::options::Where::Key => entry.key_at,
            crate::loader::options::Where::Value => entry.value_at,
        };
        RunError::UndeclaredOption { path: scenario.path.display().to_string(), line, col, strategy: s.name.clone(), message: p.message }
    })
}

impl StrategyLookup for Strategies {
    fn strategy(&self, instance: &str) -> Option<&dyn StrategyHandle> {
        self.get(instance)
    }
}

/// Run the scenario's steps; `strategy` forces the strategy of every add step. The
/// strategies are looked up by instance name: loaded plugins ([`Strategies`]) or, in
/// tests, strategies linked in-process.
pub fn run(
    scenario: &Scenario,
    strategies: &dyn StrategyLookup,
    strategy: Option<&str>,
    options: &RunOptions,
) -> Result<RunReport, RunError> {
    let mut model = Model::boot(&scenario.machine).map_err(RunError::Boot)?;
    let check = options.check_invariants || cfg!(debug_assertions);
    let mut history = Vec::new();
    if options.keep_history {
        history.push(model.clone());
    }
    let mut steps = Vec::new();
    let last = options.stop_after.unwrap_or(usize::MAX);
    for step in scenario.steps.iter().take_while(|s| s.index <= last) {
        let forced = if step.op == Op::Add { strategy.map(str::to_string) } else { None };
        // A memremap step resolves its free region (no `start`) against this run's model.
        let step = &resolve_free_region(&model, step);
        let strategy_name = forced.or_else(|| step.strategy.clone());
        log::debug!("step {}: {} {:#x}+{:#x} node {}", step.index, step.op.as_str(), step.start, step.size, step.node);
        // With checks on, keep a copy to prove a failed step changed nothing.
        let before = check.then(|| model.clone());
        let outcome = run_step(&mut model, step, strategy_name.as_deref(), strategies);
        if let (Some(before), Outcome::Failed(e)) = (&before, &outcome) {
            let changed = model.differences(before);
            if !changed.is_empty() {
                return Err(RunError::Invariant {
                    step: step.index,
                    message: format!("the step failed ({}) but changed {}", e.code, changed.join(", ")),
                });
            }
        }
        match &outcome {
            Outcome::Failed(e) => log::debug!("step {} failed: {e}", step.index),
            _ => log::debug!("step {} ok", step.index),
        }
        if check {
            model.check_invariants().map_err(|message| RunError::Invariant { step: step.index, message })?;
        }
        let expect = step.expect_for(strategy);
        let matched = match expect {
            Expect::Ok => outcome.code() == "ok",
            Expect::Error(code) => outcome.code() == code,
        };
        steps.push(StepResult {
            index: step.index,
            op: step.op,
            name: step.name.clone(),
            start: step.start,
            size: step.size,
            node: step.node,
            strategy: strategy_name,
            online_type: (step.op == Op::Online).then_some(step.online_type),
            expect: expect.as_str().to_string(),
            outcome,
            matched,
        });
        if options.keep_history {
            history.push(model.clone());
        }
    }
    Ok(RunReport { strategy: strategy.map(str::to_string), steps, model, history })
}

fn run_step(model: &mut Model, step: &StepSpec, strategy: Option<&str>, strategies: &dyn StrategyLookup) -> Outcome {
    let result = match step.op {
        Op::Add => {
            let name = strategy.unwrap_or(crate::scenario::DEFAULT_STRATEGY);
            match strategies.strategy(name) {
                Some(s) => match driver_range(model, step) {
                    Ok((start, size)) => {
                        let params = AddParams::for_driver(start, size, step.node, step.driver, step.device_name.clone());
                        model.add_memory(&params, s).map(Outcome::Added)
                    }
                    Err(e) => Err(e),
                },
                None => Err(StepError::kernel(hotplug_core::errno::EINVAL, format!("strategy \"{name}\" is not loaded"))),
            }
        }
        Op::Online => model.online_range(step.start, step.size, step.online_type).map(Outcome::Blocks),
        Op::Offline => model.offline_range(step.start, step.size, step.unmovable).map(Outcome::Blocks),
        Op::Remove => model.remove_memory(step.start, step.size, strategies).map(Outcome::Removed),
        Op::Memremap => {
            let name = strategy.unwrap_or(crate::scenario::DEFAULT_DEVICE_STRATEGY);
            match (strategies.strategy(name), &step.device) {
                (Some(s), Some(d)) => {
                    let params = MemremapParams {
                        ranges: d.ranges.clone(),
                        nid: step.node,
                        pgmap_type: d.pgmap_type,
                        vmemmap_shift: d.vmemmap_shift,
                        resource: d.resource.clone(),
                    };
                    model.memremap(&params, s).map(Outcome::Mapped)
                }
                (None, _) => Err(StepError::kernel(hotplug_core::errno::EINVAL, format!("strategy \"{name}\" is not loaded"))),
                (_, None) => Err(StepError::kernel(hotplug_core::errno::EINVAL, "memremap step without a pgmap")),
            }
        }
        Op::Memunmap => model.memunmap(step.start, strategies).map(Outcome::Unmapped),
        Op::Grow => {
            let name = strategy.unwrap_or(crate::scenario::DEFAULT_STRATEGY);
            match strategies.strategy(name) {
                Some(s) => {
                    let device = step.device_name.as_deref().unwrap_or("virtio0");
                    let start = (step.start != 0 || model.virtio.get(&device.to_string()).is_none()).then_some(step.start);
                    model.virtio_grow(device, start, step.size, step.node, step.unit, s).map(Outcome::Resized)
                }
                None => Err(StepError::kernel(hotplug_core::errno::EINVAL, format!("strategy \"{name}\" is not loaded"))),
            }
        }
        Op::Shrink => {
            let device = step.device_name.as_deref().unwrap_or("virtio0");
            model.virtio_shrink(device, step.size, step.unmovable, strategies).map(Outcome::Resized)
        }
    };
    result.unwrap_or_else(Outcome::Failed)
}

/// A memremap step without `start` takes the region request_free_mem_region would pick
/// now; failing that, it keeps start 0 and the step fails on its own checks.
fn resolve_free_region(model: &Model, step: &StepSpec) -> StepSpec {
    let mut step = step.clone();
    // A shrink's range is the end of its device's plugged part (for the report).
    if step.op == Op::Shrink {
        if let Some(d) = step.device_name.as_ref().and_then(|n| model.virtio.get(n)) {
            step.start = (d.start + d.plugged).saturating_sub(step.size);
        }
    }
    if let Some(d) = &mut step.device {
        if d.find_free {
            if let Ok(start) = model.find_free_region(d.ranges[0].1) {
                d.ranges[0].0 = start;
                step.start = start;
                // request_free_mem_region inserts the region it found.
                d.resource.get_or_insert_with(|| "device private memory".to_string());
            }
        }
    }
    step
}

/// The range an add step's driver hands to add_memory: dax/kmem trims the device's range
/// inward to whole memory blocks (EINVAL when none is left); the others add it as given.
fn driver_range(model: &Model, step: &StepSpec) -> Result<(u64, u64), StepError> {
    if step.driver != hotplug_core::Driver::DAX_KMEM {
        return Ok((step.start, step.size));
    }
    let bs = model.geometry.g.memory_block_size;
    let start = step.start.div_ceil(bs) * bs;
    let end = step.start.saturating_add(step.size) / bs * bs;
    if end <= start {
        return Err(StepError::kernel(
            hotplug_core::errno::EINVAL,
            format!("dax/kmem: {:#x}+{:#x} holds no whole {} memory block", step.start, step.size, crate::config::format_size(bs)),
        ));
    }
    Ok((start, end - start))
}
