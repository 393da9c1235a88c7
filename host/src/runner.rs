//! Running a scenario: load the plugins, boot the model, run each step as a transaction,
//! and collect what happened for the report.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{OnlineType, Op};
use crate::loader::{InstanceError, LoadError, Loader, StrategyInstance};
use crate::model::ops::{StrategyHandle, StrategyLookup};
use crate::model::Model;
use crate::scenario::{Scenario, Step, StepSpec};

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

pub use crate::model::step::Outcome;

/// One step's record.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub index: usize,
    #[serde(serialize_with = "crate::report::json::serialize_op")]
    pub op: Op,
    pub name: Option<String>,
    pub start: u64,
    pub size: u64,
    pub node: u32,
    pub strategy: Option<String>,
    #[serde(serialize_with = "crate::report::json::serialize_online_type")]
    pub online_type: Option<OnlineType>,
    pub expect: String,
    #[serde(serialize_with = "crate::report::json::serialize_outcome")]
    pub outcome: Outcome,
    pub matched: bool,
    /// How long the step took (`--timings`; never in the report).
    #[serde(skip)]
    pub elapsed: std::time::Duration,
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
    /// How long booting the model took (`--timings`).
    pub boot_elapsed: std::time::Duration,
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

/// A `[[strategy]]` ready to call: in this process, or in a child of its own (`--isolate`).
pub enum LoadedStrategy {
    InProcess(StrategyInstance),
    Isolated(Box<crate::loader::isolated::IsolatedStrategy>),
}

impl LoadedStrategy {
    fn handle(&self) -> &dyn StrategyHandle {
        match self {
            LoadedStrategy::InProcess(s) => s,
            LoadedStrategy::Isolated(s) => s.as_ref(),
        }
    }
}

/// The loaded strategy instances of a scenario, by name.
pub struct Strategies {
    pub instances: BTreeMap<String, LoadedStrategy>,
}

impl Strategies {
    /// Load and instantiate every strategy a scenario defines, in this process.
    pub fn load(scenario: &Scenario, loader: &mut Loader) -> Result<Strategies, RunError> {
        Strategies::load_isolating(scenario, loader, None)
    }

    /// Load every strategy; with `isolation`, those with `isolate` (or all, when
    /// `isolation.1` says so) run in a child process each, never loaded here.
    pub fn load_isolating(
        scenario: &Scenario,
        loader: &mut Loader,
        isolation: Option<(&crate::loader::isolated::IsolationOptions, bool)>,
    ) -> Result<Strategies, RunError> {
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
            let options_error = |p: hotplug_core::PluginError| RunError::Options {
                path: scenario.path.display().to_string(),
                line: s.line,
                strategy: s.name.clone(),
                plugin: s.plugin.clone(),
                message: p.message.to_string(),
            };
            let instance_error = |e: InstanceError| match e {
                InstanceError::Load(l) => located(l),
                InstanceError::Options(p) => options_error(p),
            };
            let path = crate::loader::resolve(&s.plugin, &scenario.plugin_dirs).map_err(located)?;
            let loaded = match isolation {
                Some((iso, all)) if all || s.isolate => {
                    let checked = loader.check(&path).map_err(located)?;
                    let isolated = crate::loader::isolated::IsolatedStrategy::new(
                        &s.name,
                        &checked,
                        &s.options,
                        &scenario.machine,
                        &s.needs,
                        iso.clone(),
                        |schema| check_declared_options(scenario, s, schema),
                    )
                    .map_err(|e| match e {
                        crate::loader::isolated::IsolatedError::Options(e) => e,
                        crate::loader::isolated::IsolatedError::Instance(e) => instance_error(e),
                    })?;
                    log::info!(
                        "strategy \"{}\": plugin {} {} from {} (isolated)",
                        s.name,
                        isolated.info.name,
                        isolated.info.version,
                        checked.display()
                    );
                    LoadedStrategy::Isolated(Box::new(isolated))
                }
                _ => {
                    let lib = loader.load(&path).map_err(located)?;
                    check_declared_options(scenario, s, lib.options_schema())?;
                    let instance = StrategyInstance::new(&s.name, &lib, &s.options, &scenario.machine, &s.needs).map_err(|e| match e {
                        InstanceError::Load(l) => RunError::Load(l),
                        InstanceError::Options(p) => options_error(p),
                    })?;
                    log::info!(
                        "strategy \"{}\": plugin {} {} from {}",
                        s.name,
                        instance.info.name,
                        instance.info.version,
                        lib.path.display()
                    );
                    LoadedStrategy::InProcess(instance)
                }
            };
            instances.insert(s.name.clone(), loaded);
        }
        Ok(Strategies { instances })
    }

    /// The loaded instance named `name`.
    pub fn get(&self, name: &str) -> Option<&dyn StrategyHandle> {
        self.instances.get(name).map(LoadedStrategy::handle)
    }
}

/// Refuse options the plugin does not declare (or of the wrong type) before it is built;
/// a plugin that declares none takes its options unchecked.
fn check_declared_options(
    scenario: &Scenario,
    s: &crate::scenario::StrategySpec,
    schema: Option<&[hotplug_core::OptionSpec]>,
) -> Result<(), RunError> {
    let Some(schema) = schema else { return Ok(()) };
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

/// What a step that ended with `outcome` broke, with `before` the model as it was: a
/// failed step must leave it exactly as it was, and every step its invariants (the
/// runner's `check_invariants`, and `host mount --check-invariants` after each write).
pub fn broken_invariant(model: &Model, before: &Model, outcome: &Outcome) -> Option<String> {
    if let Outcome::Failed(e) = outcome {
        let changed = model.differences(before);
        if !changed.is_empty() {
            return Some(format!("the step failed ({}) but changed {}", e.code, changed.join(", ")));
        }
    }
    model.check_invariants().err()
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
    let boot_start = std::time::Instant::now();
    let mut model = Model::boot(&scenario.machine).map_err(RunError::Boot)?;
    let boot_elapsed = boot_start.elapsed();
    let check = options.check_invariants || cfg!(debug_assertions);
    let mut history = Vec::new();
    if options.keep_history {
        history.push(model.clone());
    }
    let mut steps = Vec::new();
    let last = options.stop_after.unwrap_or(usize::MAX);
    for spec in scenario.steps.iter().take_while(|s| s.index <= last) {
        // A compare or --strategy run forces the strategy of add steps; a memremap step
        // resolves its free region (no `start`) against this run's model.
        let forced = strategy.map_or(Cow::Borrowed(&spec.step), |name| Cow::Owned(spec.step.with_add_strategy(name)));
        let to_run = model.resolve_step(&forced);
        let (shown_start, shown_size) = shown_range(&model, spec, &to_run);
        let strategy_name = to_run.strategy().map(str::to_string);
        log::debug!("step {}: {} {shown_start:#x}+{shown_size:#x} node {}", spec.index, spec.op().as_str(), spec.node);
        // With checks on, keep a copy to prove a failed step changed nothing.
        let before = check.then(|| model.clone());
        // Timed: the step itself, not the checks around it.
        crate::loader::watch::set_context(&format!("step #{} ({})", spec.index, spec.op().as_str()));
        let step_start = std::time::Instant::now();
        let outcome = model.apply(&to_run, strategies);
        let elapsed = step_start.elapsed();
        match &outcome {
            Outcome::Failed(e) => log::debug!("step {} failed: {e}", spec.index),
            _ => log::debug!("step {} ok", spec.index),
        }
        if let Some(message) = before.as_ref().and_then(|before| broken_invariant(&model, before, &outcome)) {
            return Err(RunError::Invariant { step: spec.index, message });
        }
        let expect = spec.expect_for(strategy);
        let matched = expect.matches(&outcome);
        steps.push(StepResult {
            index: spec.index,
            op: spec.op(),
            name: spec.name.clone(),
            start: shown_start,
            size: shown_size,
            node: spec.node,
            strategy: strategy_name,
            online_type: match to_run.as_ref() {
                Step::Online { online_type, .. } => Some(*online_type),
                _ => None,
            },
            expect: expect.to_string(),
            outcome,
            matched,
            elapsed,
        });
        if options.keep_history {
            history.push(model.clone());
        }
    }
    Ok(RunReport { strategy: strategy.map(str::to_string), steps, model, history, boot_elapsed })
}

/// The range the report shows for a step: as written, except a memremap's found free
/// region and a shrink's, which is its device's region (what it unplugs need not be
/// contiguous: the outcome says how much went).
fn shown_range(model: &Model, spec: &StepSpec, step: &Step) -> (u64, u64) {
    match step {
        Step::Memremap { pgmap, find_free: false, .. } if spec.start == 0 => (pgmap.ranges.first().map_or(0, |r| r.start()), spec.size),
        Step::Shrink { device, size, .. } => match model.virtio.get(device) {
            Some(d) if *size > 0 => (d.start, d.region_size),
            _ => (spec.start, spec.size),
        },
        _ => (spec.start, spec.size),
    }
}
