//! `host sweep`: one scenario over a grid of config values (`--vary`), each point run
//! with each strategy, in parallel; what every run ended with, as numbers a table, a CSV
//! file, a chart or a program reads. Every point is a real run of the model, never a
//! formula: the answers are the ones `host --config` gives for that config.

pub mod vary;

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::loader::Loader;
use crate::model::error::StepError;
use crate::model::Model;
use crate::runner::{self, Outcome, RunOptions, Strategies};
pub use vary::Vary;

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepRequest {
    pub varies: Vec<Vary>,
    /// Run each point with each of these strategies forced on its add steps (empty: the
    /// config's `compare` list, else its steps as written).
    pub strategies: Vec<String>,
    /// Searched for plugins before the config's own `plugin_dirs` (`--plugin-dir`).
    pub plugin_dirs: Vec<PathBuf>,
    /// A point whose config is invalid (or whose plugins do not load) becomes a row
    /// saying why, instead of ending the sweep (`--keep-going`).
    pub keep_going: bool,
}

/// What one run ended with, machine-wide, in bytes and pages.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Metrics {
    /// Hot-added memory present at the end (online or not).
    pub added_bytes: u64,
    pub online_bytes: u64,
    pub device_bytes: u64,
    /// Memmap of the hot-added and device memory, wherever it lives.
    pub memmap_bytes: u64,
    /// ... of it in some node's RAM.
    pub memmap_in_ram_bytes: u64,
    /// ... of it inside the hot-added ranges and the device memory (altmaps).
    pub memmap_inside_bytes: u64,
    /// `memmap_bytes` over `added_bytes + device_bytes`, in per cent (`None`: nothing added).
    pub memmap_share_percent: Option<f64>,
    /// Free pages over all nodes at the end.
    pub free_pages: u64,
}

impl Metrics {
    fn of(model: &Model) -> Metrics {
        let page = model.geometry.page_size();
        let mut all = crate::model::account::NodeMemmap::default();
        for n in model.memmap_account() {
            all.absorb(&n);
        }
        let bytes = |pages: u64| pages.saturating_mul(page);
        let (added, device, memmap) = (bytes(all.added), bytes(all.device), bytes(all.memmap_of_added()));
        Metrics {
            added_bytes: added,
            online_bytes: bytes(all.online_by_zone.iter().map(|&(_, p)| p).sum()),
            device_bytes: device,
            memmap_bytes: memmap,
            memmap_in_ram_bytes: bytes(all.memmap_in_ram.iter().map(|&(_, p)| p).sum()),
            memmap_inside_bytes: bytes(all.memmap_inside + all.memmap_in_device),
            memmap_share_percent: (added + device > 0).then(|| memmap as f64 * 100.0 / (added + device) as f64),
            free_pages: model.nodes.values().map(crate::model::Node::free_pages).sum(),
        }
    }
}

/// One run of one point.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRow {
    /// The varied values, in `--vary` order, as the config was given them.
    pub values: Vec<String>,
    /// The strategy forced on the add steps, or `None` for the steps as written.
    pub strategy: Option<String>,
    /// Steps that ended `ok`, of `steps`.
    pub steps_ok: usize,
    pub steps: usize,
    /// The first step that failed, or that a virtio-mem device did only part of, and
    /// why (`None`: every step succeeded in full).
    pub failed_step: Option<usize>,
    /// That step is a virtio-mem request the device did part of (what it plugged stands).
    pub partial: bool,
    #[serde(serialize_with = "crate::report::json::serialize_opt_error")]
    pub error: Option<StepError>,
    /// What the run ended with (`None`: the point did not run).
    pub metrics: Option<Metrics>,
    /// Why the point did not run: its config is invalid at these values, or a plugin
    /// did not load (only with `keep_going`; such a point has no steps and no metrics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

impl SweepRow {
    /// The row of a point that did not run, for `strategy`.
    fn invalid(values: &[String], strategy: Option<String>, why: &str) -> SweepRow {
        SweepRow {
            values: values.to_vec(),
            strategy,
            steps_ok: 0,
            steps: 0,
            failed_step: None,
            partial: false,
            error: None,
            metrics: None,
            invalid: Some(why.to_string()),
        }
    }
}

/// A whole sweep, rows in grid order (the first vary slowest), strategies in turn.
#[derive(Debug, Clone, Serialize)]
pub struct Sweep {
    pub varies: Vec<VaryReport>,
    pub strategies: Vec<Option<String>>,
    pub rows: Vec<SweepRow>,
}

/// A vary as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VaryReport {
    pub key: String,
    pub values: Vec<String>,
}

/// Why a sweep could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{0}")]
    Vary(String),
    #[error("the config is not TOML: {0}")]
    Toml(String),
    /// A point's config or run failed before its steps could answer.
    #[error("at {point}: {message}")]
    Point { point: String, values: Vec<String>, message: String },
}

/// Run the config `text` (read from `path`) at every point of the grid, each point
/// with each strategy, `progress` called once per point done (from any thread).
pub fn sweep(path: &Path, text: &str, request: &SweepRequest, loader: &Loader, progress: &(dyn Fn() + Sync)) -> Result<Sweep, SweepError> {
    let doc: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| SweepError::Toml(e.message().trim().replace('\n', " ")))?;
    let points = vary::grid(&request.varies).map_err(SweepError::Vary)?;
    // Every vary's path must hold in the config before any run starts.
    for v in &request.varies {
        v.apply(&mut doc.clone(), &v.values[0]).map_err(SweepError::Vary)?;
    }
    let results: Vec<Result<PointRuns, SweepError>> = points
        .par_iter()
        .map(|values| {
            let out = run_point(path, &doc, values, request, loader);
            crate::loader::watch::set_scope("");
            progress();
            out
        })
        .collect();
    // The strategies every point runs with: the first point that ran says which (the
    // same config gives the same list); with none, those asked for, or the steps as written.
    let strategies = match results.iter().find_map(|r| r.as_ref().ok()) {
        Some(point) => point.strategies.clone(),
        None if request.strategies.is_empty() => vec![None],
        None => request.strategies.iter().cloned().map(Some).collect(),
    };
    let mut rows = Vec::new();
    for r in results {
        match r {
            Ok(point) => rows.extend(point.rows),
            Err(SweepError::Point { values, message, .. }) if request.keep_going => {
                rows.extend(strategies.iter().map(|s| SweepRow::invalid(&values, s.clone(), &message)));
            }
            Err(e) => return Err(e),
        }
    }
    let varies = request.varies.iter().map(|v| VaryReport { key: v.key.clone(), values: v.values.clone() }).collect();
    Ok(Sweep { varies, strategies, rows })
}

/// One point's runs, and the strategies they were run with.
struct PointRuns {
    rows: Vec<SweepRow>,
    strategies: Vec<Option<String>>,
}

/// One point: its config, loaded and run with each strategy.
fn run_point(
    path: &Path,
    doc: &toml_edit::DocumentMut,
    values: &[String],
    request: &SweepRequest,
    loader: &Loader,
) -> Result<PointRuns, SweepError> {
    let point = request.varies.iter().zip(values).map(|(v, x)| format!("{}={x}", v.key)).collect::<Vec<_>>().join(" ");
    // A plugin that hangs or ends the process is named with the point it ran for; the
    // worker thread's next point says its own.
    crate::loader::watch::set_scope(&format!("at {point}"));
    let fail = |message: String| SweepError::Point { point: point.clone(), values: values.to_vec(), message };
    let mut doc = doc.clone();
    for (v, x) in request.varies.iter().zip(values) {
        v.apply(&mut doc, x).map_err(&fail)?;
    }
    let loaded = crate::config::parse(path, doc.to_string()).map_err(|e| fail(e.to_string()))?;
    let mut scenario = crate::scenario::resolve(&loaded, None).map_err(|e| fail(e.to_string()))?;
    scenario.plugin_dirs.splice(0..0, request.plugin_dirs.iter().cloned());
    let mut loader = loader.clone();
    let strategies = Strategies::load(&scenario, &mut loader).map_err(|e| fail(e.to_string()))?;
    let names: Vec<Option<String>> = match (&scenario.compare, request.strategies.as_slice()) {
        (_, [_, ..]) => request.strategies.iter().cloned().map(Some).collect(),
        (Some(list), []) => list.iter().cloned().map(Some).collect(),
        (None, []) => vec![None],
    };
    let options = RunOptions::default();
    let mut rows = Vec::new();
    for name in &names {
        let run = runner::run(&scenario, &strategies, name.as_deref(), &options).map_err(|e| fail(e.to_string()))?;
        // The first step that failed, or a virtio-mem request that got part of the way.
        let failed = run.steps.iter().find_map(|s| match &s.outcome {
            Outcome::Failed(e) => Some((s.index, e.clone(), false)),
            Outcome::Partial(out) => out.stopped.clone().map(|e| (s.index, e, true)),
            _ => None,
        });
        rows.push(SweepRow {
            values: values.to_vec(),
            strategy: name.clone(),
            steps_ok: run.steps.iter().filter(|s| !matches!(s.outcome, Outcome::Failed(_) | Outcome::Partial(_))).count(),
            steps: run.steps.len(),
            failed_step: failed.as_ref().map(|(i, _, _)| *i),
            partial: failed.as_ref().is_some_and(|(_, _, partial)| *partial),
            error: failed.map(|(_, e, _)| e),
            metrics: Some(Metrics::of(&run.model)),
            invalid: None,
        });
    }
    Ok(PointRuns { rows, strategies: names })
}
