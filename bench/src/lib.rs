//! The jobs behind B0-B6 (docs/PERF.md) and the heap counter that measures them. The
//! bench binary (benches/jobs.rs) times them with criterion; a person times the same
//! configs with `/usr/bin/time -v target/release/host --config bench/...`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use hotplug_host::loader::{Loader, StaticStrategy};
use hotplug_host::model::ops::{StrategyHandle, StrategyLookup};
use hotplug_host::runner::{self, RunOptions, RunReport, Strategies};
use hotplug_host::{config, scenario};

/// The system allocator, counting the bytes live now and the most ever live, so a bench
/// can report a job's peak heap. Install it with `#[global_allocator]` in the binary.
#[derive(Debug)]
pub struct CountingAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counters are only counters.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + (new_size - layout.size());
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// The most heap `f` had live at once beyond what was live before it, in bytes (the
/// host's own allocations; a plugin's go through its own allocator and are not counted).
pub fn peak_heap_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(before))
}

/// The workspace root (bench/ is one level down).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A bench config by file name.
pub fn config_path(name: &str) -> PathBuf {
    root().join("bench").join(name)
}

/// What `host --config PATH` does up to the report: read and resolve the config, load
/// its plugins (the release build's, bench configs name ../target/release), run it.
pub fn run_config(path: &Path) -> RunReport {
    let (scenario, strategies) = prepare_config(path);
    run_prepared(&scenario, &strategies)
}

/// B6's static side: memmap-on-memory linked into this binary, looked up by name.
pub struct Linked(StaticStrategy<memmap_on_memory::MemmapOnMemory>);

impl StrategyLookup for Linked {
    fn strategy(&self, name: &str) -> Option<&dyn StrategyHandle> {
        (name == "mom").then_some(&self.0 as &dyn StrategyHandle)
    }
}

/// A bench config read, resolved and its plugins loaded, ready to run many times (B6
/// times the runs alone, so loading a library is not what it compares).
pub fn prepare_config(path: &Path) -> (scenario::Scenario, Strategies) {
    let loaded = config::load(path).unwrap_or_else(|e| panic!("{e}"));
    let scenario = scenario::resolve(&loaded, None).unwrap_or_else(|e| panic!("{e}"));
    drop(loaded); // as the host does
    let strategies = Strategies::load(&scenario, &mut Loader::new(false)).unwrap_or_else(|e| panic!("{e}"));
    (scenario, strategies)
}

/// [`prepare_config`] with every strategy isolated (`--isolate`): its plugin in a child
/// `host plugin-server` of the release build, started here, outside the timing.
pub fn prepare_isolated(path: &Path) -> (scenario::Scenario, Strategies) {
    let loaded = config::load(path).unwrap_or_else(|e| panic!("{e}"));
    let scenario = scenario::resolve(&loaded, None).unwrap_or_else(|e| panic!("{e}"));
    let isolation = hotplug_host::loader::isolated::IsolationOptions {
        exe: root().join("target/release/host"),
        timeout: Some(std::time::Duration::from_secs(60)),
        allow_unsafe_path: false,
    };
    let strategies =
        Strategies::load_isolating(&scenario, &mut Loader::new(false), Some((&isolation, true))).unwrap_or_else(|e| panic!("{e}"));
    (scenario, strategies)
}

/// The statically linked strategy for a scenario whose one strategy is "mom".
pub fn linked(scenario: &scenario::Scenario) -> Linked {
    Linked(StaticStrategy::new("mom", "memmap-on-memory", "", scenario.machine.geometry).expect("mom"))
}

/// Run a prepared scenario with `strategies` (loaded or linked).
pub fn run_prepared(scenario: &scenario::Scenario, strategies: &dyn StrategyLookup) -> RunReport {
    let report = runner::run(scenario, strategies, None, &RunOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.all_matched(), "{}: a step did not end as expected", scenario.path.display());
    report
}

/// Make sure the release host and plugins the configs load exist and are current, and
/// that B4's generated config is there: `cargo build --release` of the host and the
/// three plugins, then bench/gen-b4.py.
pub fn prepare() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(root())
        .args(["build", "--release", "-p", "hotplug-host", "-p", "system-ram", "-p", "memmap-on-memory", "-p", "device-pgmap"])
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build --release failed");
    let b4 = config_path("b4-random.toml");
    let out = std::process::Command::new("python3").arg(config_path("gen-b4.py")).output().expect("run python3 bench/gen-b4.py");
    assert!(out.status.success(), "gen-b4.py failed");
    std::fs::write(&b4, out.stdout).expect("write bench/b4-random.toml");
}
