//! The fuzz targets, shared by the libFuzzer binaries (fuzz_targets/) and the stable
//! harness (src/bin/fuzz-stable.rs). A target panics only on a real bug: a panic in the
//! host, an invariant broken, or a failed step that changed the model.

use arbitrary::{Arbitrary, Unstructured};
use hotplug_host::config::{AutoOnline, OnlinePolicy, Op};
use hotplug_host::loader::StaticStrategy;
use hotplug_host::model::boot::MachineSpec;
use hotplug_host::model::geometry::preset;
use hotplug_host::model::ops::{StrategyHandle, StrategyLookup};
use hotplug_host::model::step::{Outcome, SampleSpace, Step, StepSeed};
use hotplug_host::model::Model;

/// Any bytes as a scenario file: parse, resolve, boot, then run its steps (at most 64)
/// with the shipped strategies linked statically. Errors are fine; panics, broken
/// invariants and failed steps that changed the model are not.
pub fn config_target(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    run_config_text(std::path::Path::new("fuzz.toml"), text);
}

/// [`config_target`] on config text whose relative paths resolve from `path`'s directory.
fn run_config_text(path: &std::path::Path, text: &str) {
    let Ok(loaded) = hotplug_host::config::parse(path, text.to_string()) else { return };
    let Ok(scenario) = hotplug_host::scenario::resolve(&loaded, None) else { return };
    // Resolve already booted the machine once; boot again as the runner would.
    let Ok(mut m) = Model::boot(&scenario.machine) else { return };
    let Some(strategies) = ByName::of(&scenario) else { return };
    for spec in scenario.steps.iter().take(64) {
        let before = m.clone();
        let step = m.resolve_step(&spec.step).into_owned();
        if let Outcome::Failed(e) = m.apply(&step, &strategies) {
            let changed = m.differences(&before);
            assert!(changed.is_empty(), "step {} ({step:?}) failed ({e}) but changed {changed:?}", spec.index);
        }
        if let Err(e) = m.check_invariants() {
            panic!("after step {} ({step:?}): {e}", spec.index);
        }
    }
}

/// A config's `[[strategy]]` instances, each its shipped plugin linked statically.
struct ByName(std::collections::BTreeMap<String, Box<dyn StrategyHandle>>);

impl ByName {
    /// `None` when a strategy names a plugin we do not link, or refuses its options.
    fn of(scenario: &hotplug_host::scenario::Scenario) -> Option<ByName> {
        let g = scenario.machine.geometry;
        let mut out = std::collections::BTreeMap::new();
        for s in &scenario.strategies {
            let (name, plugin, options) = (s.name.as_str(), s.plugin.as_str(), s.options.as_str());
            let handle: Box<dyn StrategyHandle> = match plugin {
                "system-ram" => Box::new(StaticStrategy::<system_ram::SystemRam>::new(name, plugin, options, &scenario.machine).ok()?),
                "memmap-on-memory" => {
                    Box::new(StaticStrategy::<memmap_on_memory::MemmapOnMemory>::new(name, plugin, options, &scenario.machine).ok()?)
                }
                "device-pgmap" => Box::new(StaticStrategy::<device_pgmap::DevicePgmap>::new(name, plugin, options, g).ok()?),
                _ => return None,
            };
            out.insert(name.to_string(), handle);
        }
        Some(ByName(out))
    }
}

impl StrategyLookup for ByName {
    fn strategy(&self, name: &str) -> Option<&dyn StrategyHandle> {
        self.0.get(name).map(|b| b.as_ref())
    }
}

/// The files of a capture (`host snapshot`'s layout), in the order [`capture_target`]
/// splits its input into, with a 0xff byte between them (never in text).
pub const CAPTURE_FILES: &[&str] = &[
    "proc/iomem",
    "proc/zoneinfo",
    "proc/meminfo",
    "sys/devices/system/memory/block_size_bytes",
    "sys/devices/system/memory/auto_online_blocks",
    "sys/module/memory_hotplug/parameters/online_policy",
    "sys/module/memory_hotplug/parameters/auto_movable_ratio",
];

/// Any bytes as a captured machine: split at 0xff into [`CAPTURE_FILES`], then lines of
/// `ID STATE` for the memory blocks; written to a scratch directory and booted through a
/// config with `from`, then two steps (an online and an add) run on it.
pub fn capture_target(data: &[u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut parts = data.split(|&b| b == 0xff);
    let dir = std::env::temp_dir().join(format!("hotplug-fuzz-capture-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed) % 4));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("capture");
    for rel in CAPTURE_FILES {
        let path = root.join(rel);
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(&root));
        let _ = std::fs::write(&path, parts.next().unwrap_or_default());
    }
    let blocks = parts.next().unwrap_or_default();
    for line in String::from_utf8_lossy(blocks).lines().take(512) {
        let mut words = line.split_whitespace();
        let (Some(id), Some(state)) = (words.next(), words.next()) else { continue };
        let Ok(id) = id.parse::<u32>() else { continue };
        let block = root.join(format!("sys/devices/system/memory/memory{id}"));
        let _ = std::fs::create_dir_all(&block);
        let _ = std::fs::write(block.join("state"), format!("{state}\n"));
        let _ = std::fs::write(block.join("valid_zones"), "Normal\n");
    }
    let cfg = dir.join("fuzz.toml");
    let text = "[machine]\nfrom = \"capture\"\n[[step]]\nop = \"online\"\nstart = \"4GiB\"\nsize = \"128MiB\"\nexpect = \"any\"\n\
                [[step]]\nop = \"add\"\nstart = \"64GiB\"\nsize = \"1GiB\"\nexpect = \"any\"\n";
    run_config_text(&cfg, text);
    let _ = std::fs::remove_dir_all(&dir);
}

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 128 * MIB;

/// One operation of a random sequence: an op (any of `Op::ALL`) and the numbers its
/// step is built from, in block slots above 4 GiB.
#[derive(Debug, Arbitrary)]
struct Params {
    op: u8,
    slot: u8,
    blocks: u8,
    choice: u8,
    flag: bool,
    subsections: u16,
}

impl Params {
    fn seed(&self) -> StepSeed {
        StepSeed {
            op: Op::ALL[usize::from(self.op) % Op::ALL.len()],
            slot: self.slot.into(),
            blocks: self.blocks.into(),
            choice: self.choice.into(),
            flag: self.flag,
            subsections: self.subsections.into(),
        }
    }
}

/// Hot-plug in [4 GiB, 16 GiB) in 1 to 8 blocks, memremaps of up to 512 subsections
/// (1 GiB), a virtio-mem device at 16 GiB, both device strategies.
fn space() -> SampleSpace {
    SampleSpace {
        base: 4 << 30,
        slots: 96,
        block_size: BLOCK,
        max_blocks: 8,
        subsection_size: 2 * MIB,
        max_subsections: 512,
        virtio_device: "v".into(),
        virtio_start: 16 << 30,
        system_ram: vec!["base".into(), "mom".into()],
        device: vec!["dev".into(), "private".into()],
    }
}

#[derive(Debug)]
struct Scenario {
    boot_gib: u8,
    auto: u8,
    auto_movable: bool,
    ratio: u16,
    ops: Vec<Params>,
}

/// A scenario from the bytes: the machine first, then operations until the bytes (or
/// 64 operations) run out. (`Vec::arbitrary` stops after a few elements on random data.)
fn scenario(mut u: Unstructured<'_>) -> arbitrary::Result<Scenario> {
    let mut s =
        Scenario { boot_gib: u.arbitrary()?, auto: u.arbitrary()?, auto_movable: u.arbitrary()?, ratio: u.arbitrary()?, ops: Vec::new() };
    while !u.is_empty() && s.ops.len() < 64 {
        s.ops.push(Params::arbitrary(&mut u)?);
    }
    Ok(s)
}

struct Linked {
    base: StaticStrategy<system_ram::SystemRam>,
    mom: StaticStrategy<memmap_on_memory::MemmapOnMemory>,
    dev: StaticStrategy<device_pgmap::DevicePgmap>,
    private: StaticStrategy<device_pgmap::DevicePgmap>,
}

impl StrategyLookup for Linked {
    fn strategy(&self, name: &str) -> Option<&dyn StrategyHandle> {
        match name {
            "base" => Some(&self.base),
            "mom" => Some(&self.mom),
            "dev" => Some(&self.dev),
            "private" => Some(&self.private),
            _ => None,
        }
    }
}

fn linked() -> Linked {
    let g = preset(hotplug_core::Arch::X86_64);
    Linked {
        base: StaticStrategy::new("base", "system-ram", "", g).expect("baseline"),
        mom: StaticStrategy::new("mom", "memmap-on-memory", "", g).expect("mom"),
        dev: StaticStrategy::new("dev", "device-pgmap", "", g).expect("dev"),
        private: StaticStrategy::new("private", "device-pgmap", "type = \"private\"", g).expect("private"),
    }
}

/// Random operations against a small machine: every failed operation must leave the
/// model as it was, and the invariants must hold after each one.
pub fn steps_target(data: &[u8]) {
    let u = Unstructured::new(data);
    let Ok(s) = scenario(u) else { return };
    let l = linked();
    let mut spec = MachineSpec::new(preset(hotplug_core::Arch::X86_64), &[(0, 0, (1 + u64::from(s.boot_gib % 4)) << 30)]);
    spec.auto_online_blocks =
        [AutoOnline::Offline, AutoOnline::Online, AutoOnline::OnlineKernel, AutoOnline::OnlineMovable][usize::from(s.auto % 4)];
    spec.online_policy = if s.auto_movable { OnlinePolicy::AutoMovable } else { OnlinePolicy::ContigZones };
    spec.auto_movable_ratio = u32::from(s.ratio % 1000);
    let mut m = Model::boot(&spec).expect("the fuzz machine boots");
    for params in s.ops.iter().take(64) {
        let before = m.clone();
        let op = Step::sample(&params.seed(), &space());
        if let Outcome::Failed(e) = m.apply(&op, &l) {
            let changed = m.differences(&before);
            assert!(changed.is_empty(), "{op:?} failed ({e}) but changed {changed:?}");
        }
        if let Err(e) = m.check_invariants() {
            panic!("after {op:?}: {e}");
        }
    }
}
