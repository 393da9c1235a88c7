//! Helpers for the end-to-end tests: build the workspace once, then run the real `host`
//! binary against the real plugin libraries (never a mock).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Which build of the workspace a test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The target directory the running test binary was built into.
fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() { dir } else { workspace_root().join(dir) };
    }
    // <target>/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(|| workspace_root().join("target"))
}

fn build(profile: Profile) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = target_dir();
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).args(["build", "--workspace", "--quiet", "--target-dir"]).arg(&target);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "cargo build --workspace ({profile:?}) failed");
    target.join(match profile {
        Profile::Debug => "debug",
        Profile::Release => "release",
    })
}

/// The directory holding `host` and the plugin libraries, built on first use.
pub fn artifacts(profile: Profile) -> &'static Path {
    static DEBUG: OnceLock<PathBuf> = OnceLock::new();
    static RELEASE: OnceLock<PathBuf> = OnceLock::new();
    match profile {
        Profile::Debug => DEBUG.get_or_init(|| build(Profile::Debug)),
        Profile::Release => RELEASE.get_or_init(|| build(Profile::Release)),
    }
}

/// The `host` binary of a profile.
pub fn host_exe(profile: Profile) -> PathBuf {
    artifacts(profile).join("host")
}

/// A plugin library by plugin name (`system-ram` -> `libsystem_ram.so`).
pub fn plugin_path(profile: Profile, name: &str) -> PathBuf {
    artifacts(profile).join(format!("lib{}.so", name.replace('-', "_")))
}

/// A scratch directory unique to one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = target_dir().join("test-scratch").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Write `text` as a config in a scratch dir whose `plugin_dirs` resolve to `profile`'s artifacts.
pub fn write_config(test: &str, profile: Profile, text: &str) -> PathBuf {
    let dir = scratch(test);
    let path = dir.join("scenario.toml");
    let text = text.replace("@PLUGINS@", &artifacts(profile).display().to_string());
    std::fs::write(&path, text).expect("write config");
    path
}

/// What a `host` run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Run `host` with `args`.
pub fn run_host(profile: Profile, args: &[&str]) -> Run {
    Command::new(host_exe(profile)).args(args).env_remove("RUST_LOG").output().expect("run host").into()
}

/// The strategies a scenario names, loaded in this process from the real plugin
/// libraries of the debug build (only the shipped, stateless plugins: broken fixtures are
/// only ever loaded in child processes).
pub struct Linked {
    strategies: std::collections::BTreeMap<String, hotplug_host::loader::StrategyInstance>,
}

impl hotplug_host::model::ops::StrategyLookup for Linked {
    fn strategy(&self, instance: &str) -> Option<&dyn hotplug_host::model::ops::StrategyHandle> {
        self.strategies.get(instance).map(|s| s as &dyn hotplug_host::model::ops::StrategyHandle)
    }
}

/// The shipped plugins a test may load in-process.
const SHIPPED_PLUGINS: &[&str] = &["system-ram", "memmap-on-memory", "device-pgmap"];

/// One strategy instance of a shipped plugin, loaded from the debug build.
pub fn strategy(name: &str, plugin: &str, options: &str, geometry: hotplug_core::Geometry) -> hotplug_host::loader::StrategyInstance {
    strategy_for(name, plugin, options, geometry, &[])
}

/// Like [`strategy`], refusing a plugin that does not handle `needs` (as the CLI's loader does).
pub fn strategy_for(
    name: &str,
    plugin: &str,
    options: &str,
    geometry: hotplug_core::Geometry,
    needs: &[hotplug_core::RequestKind],
) -> hotplug_host::loader::StrategyInstance {
    use std::sync::Mutex;
    static LOADER: OnceLock<Mutex<hotplug_host::loader::Loader>> = OnceLock::new();
    assert!(SHIPPED_PLUGINS.contains(&plugin), "plugin {plugin} may only be loaded in a child process");
    let path = plugin_path(Profile::Debug, plugin);
    let lib = LOADER
        .get_or_init(|| Mutex::new(hotplug_host::loader::Loader::new(false)))
        .lock()
        .expect("loader lock")
        .load(&path)
        .unwrap_or_else(|e| panic!("{e}"));
    hotplug_host::loader::StrategyInstance::new(name, &lib, options, geometry, needs).unwrap_or_else(|e| panic!("strategy {name}: {e}"))
}

/// Load the strategies of `scenario` (by their `plugin` name) into the test process.
pub fn link(scenario: &hotplug_host::scenario::Scenario) -> Linked {
    let strategies =
        scenario.strategies.iter().map(|s| (s.name.clone(), strategy(&s.name, &s.plugin, &s.options, scenario.machine.geometry))).collect();
    Linked { strategies }
}

/// Run a scenario given as TOML text in-process, keeping the model after every step, and
/// check what holds for every scenario: each step ends as its `expect` says, the
/// invariants hold after each step, and a failing step leaves the model exactly as it
/// was before it (the snapshot taken before the step equals the state after it).
pub fn run_in_process(name: &str, toml: &str) -> hotplug_host::runner::RunReport {
    use hotplug_host::runner::{run, Outcome, RunOptions};
    let path = PathBuf::from(format!("{name}.toml"));
    let loaded = hotplug_host::config::parse(&path, toml.to_string()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let scenario = hotplug_host::scenario::resolve(&loaded, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    let linked = link(&scenario);
    let options = RunOptions { check_invariants: true, keep_history: true, stop_after: None };
    let report = run(&scenario, &linked, None, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
    for (i, s) in report.steps.iter().enumerate() {
        assert!(s.matched, "{name}: step #{} expected {}, got {}: {:?}", s.index, s.expect, s.outcome.code(), s.outcome);
        if let Outcome::Failed(e) = &s.outcome {
            let (before, after) = (&report.history[i], &report.history[i + 1]);
            assert!(before == after, "{name}: failing step #{} ({e}) changed the model: {:?}", s.index, after.differences(before));
        }
    }
    report
}

/// Step `i`'s add outcome (panics, naming the step, if it did not add).
pub fn added(r: &hotplug_host::runner::RunReport, i: usize) -> &hotplug_host::model::hotplug::AddOutcome {
    match &r.steps[i].outcome {
        hotplug_host::runner::Outcome::Added(a) => a,
        other => panic!("step #{} did not add: {other:?}", i + 1),
    }
}

/// Step `i`'s memremap outcome.
pub fn mapped(r: &hotplug_host::runner::RunReport, i: usize) -> &hotplug_host::model::device::MemremapOutcome {
    match &r.steps[i].outcome {
        hotplug_host::runner::Outcome::Mapped(m) => m,
        other => panic!("step #{} did not map: {other:?}", i + 1),
    }
}

/// Why step `i` failed.
pub fn reason(r: &hotplug_host::runner::RunReport, i: usize) -> &str {
    match &r.steps[i].outcome {
        hotplug_host::runner::Outcome::Failed(e) => &e.reason,
        other => panic!("step #{} did not fail: {other:?}", i + 1),
    }
}

/// A zone's (start_pfn, spanned, present, managed).
pub fn zone(m: &hotplug_host::model::Model, nid: u32, z: hotplug_host::model::ZoneType) -> (u64, u64, u64, u64) {
    let zone = m.nodes.get(&nid).expect("node exists").zone(z);
    (zone.start_pfn, zone.spanned, zone.present, zone.managed)
}
