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
pub fn target_dir() -> PathBuf {
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
const SHIPPED_PLUGINS: &[&str] = &["system-ram", "memmap-on-memory", "memmap-on-node", "device-pgmap"];

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
/// Zone `name` of `node` in a JSON report's first run.
pub fn json_zone<'v>(v: &'v serde_json::Value, node: u64, name: &str) -> &'v serde_json::Value {
    v["runs"][0]["state"]["zones"]
        .as_array()
        .expect("the report lists zones")
        .iter()
        .find(|z| z["node"] == node && z["zone"] == name)
        .unwrap_or_else(|| panic!("no zone {name} on node {node}"))
}

/// (start_pfn, spanned, present, managed) of zone `name` of `node` in a JSON report.
pub fn json_zone_counters(v: &serde_json::Value, node: u64, name: &str) -> (u64, u64, u64, u64) {
    let z = json_zone(v, node, name);
    let n = |k: &str| z[k].as_u64().unwrap_or_else(|| panic!("zone {name}: no {k}"));
    (n("start_pfn"), n("spanned"), n("present"), n("managed"))
}

pub fn zone(m: &hotplug_host::model::Model, nid: u32, z: hotplug_host::model::ZoneType) -> (u64, u64, u64, u64) {
    let zone = m.nodes.get(&nid).expect("node exists").zone(z);
    (zone.start_pfn, zone.spanned, zone.present, zone.managed)
}

/// Building plugins out of this workspace (the README example, the frozen 1.0 sources)
/// the way an author would: a crate of its own in a temporary directory, built with
/// `--offline` into one shared target directory (`target/out-of-tree`), with this
/// workspace's Cargo.lock and `[profile]` sections so dependencies compile once and
/// match.
pub mod out_of_tree {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The shared target directory of every out-of-tree build.
    pub fn target_dir() -> PathBuf {
        super::target_dir().join("out-of-tree")
    }

    /// A fresh directory outside the workspace for crate `name`.
    pub fn crate_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hotplug-out-of-tree-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create out-of-tree dir");
        dir
    }

    /// This workspace's manifest.
    fn workspace_manifest() -> toml::Table {
        let text = std::fs::read_to_string(super::workspace_root().join("Cargo.toml")).expect("read Cargo.toml");
        text.parse().expect("Cargo.toml parses")
    }

    /// The `[profile.*]` sections of this workspace, as TOML text (as `host new-plugin`
    /// copies them).
    pub fn profiles() -> String {
        hotplug_host::new_plugin::profiles()
    }

    /// A `[workspace]` root for `members`, with this workspace's `[workspace.package]`,
    /// `[workspace.lints]` and registry `[workspace.dependencies]` (for crates that
    /// inherit them, like the released core/) and its profiles.
    pub fn workspace_root_manifest(members: &[&str]) -> String {
        let manifest = workspace_manifest();
        let ws = manifest["workspace"].as_table().expect("[workspace]");
        let mut deps = ws["dependencies"].as_table().expect("[workspace.dependencies]").clone();
        deps.retain(|_, v| v.get("path").is_none());
        let mut workspace = toml::Table::new();
        workspace.insert("resolver".into(), "2".into());
        workspace.insert("members".into(), members.iter().map(|m| toml::Value::from(*m)).collect::<Vec<_>>().into());
        workspace.insert("package".into(), ws["package"].clone());
        workspace.insert("dependencies".into(), deps.into());
        if let Some(lints) = ws.get("lints") {
            workspace.insert("lints".into(), lints.clone());
        }
        let mut root = toml::Table::new();
        root.insert("workspace".into(), workspace.into());
        format!("{}\n{}", toml::to_string(&root).expect("workspace serialises"), profiles())
    }

    /// Copy the directory tree `from` to `to`.
    pub fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("create dir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("dir entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("file type").is_dir() {
                copy_tree(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).expect("copy file");
            }
        }
    }

    /// `cargo build --offline --lib` of the workspace at `dir` (after copying this
    /// workspace's Cargo.lock there); returns the cdylib of package `lib_name`.
    pub fn build(dir: &Path, lib_name: &str) -> PathBuf {
        std::fs::copy(super::workspace_root().join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(dir)
            .args(["build", "--offline", "--quiet", "--lib", "--target-dir"])
            .arg(target_dir())
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .output()
            .expect("run cargo build");
        assert!(out.status.success(), "out-of-tree build in {} failed:\n{}", dir.display(), String::from_utf8_lossy(&out.stderr));
        target_dir().join("debug").join(format!("lib{}.so", lib_name.replace('-', "_")))
    }
}
