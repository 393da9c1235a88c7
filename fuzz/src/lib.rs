//! The fuzz targets, shared by the libFuzzer binaries (fuzz_targets/) and the stable
//! harness (src/bin/fuzz-stable.rs). A target panics only on a real bug: a panic in the
//! host, an invariant broken, or a failed step that changed the model.

use arbitrary::{Arbitrary, Unstructured};
use hotplug_core::{Driver, PgmapType};
use hotplug_host::config::{AutoOnline, OnlinePolicy, OnlineType};
use hotplug_host::loader::StaticStrategy;
use hotplug_host::model::boot::MachineSpec;
use hotplug_host::model::device::MemremapParams;
use hotplug_host::model::geometry::preset;
use hotplug_host::model::hotplug::AddParams;
use hotplug_host::model::ops::{StrategyHandle, StrategyLookup};
use hotplug_host::model::Model;

/// Any bytes as a scenario file: parse, resolve, boot. Errors are fine; panics are not.
pub fn config_target(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = std::path::Path::new("fuzz.toml");
    let Ok(loaded) = hotplug_host::config::parse(path, text.to_string()) else { return };
    let Ok(scenario) = hotplug_host::scenario::resolve(&loaded, None) else { return };
    // Resolve already booted the machine once; boot again as the runner would.
    let _ = Model::boot(&scenario.machine);
}

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 128 * MIB;

/// One operation of a random sequence, in block slots above 4 GiB.
#[derive(Debug, Arbitrary)]
enum Op {
    Add { slot: u8, blocks: u8, driver: u8, mom: bool },
    Online { slot: u8, blocks: u8, kind: u8 },
    Offline { slot: u8, blocks: u8, unmovable: bool },
    Remove { slot: u8, blocks: u8 },
    Grow { blocks: u8 },
    Shrink { blocks: u8, unmovable: bool },
    Memremap { slot: u8, subsections: u16, shift: u8, private: bool },
    Memunmap { slot: u8 },
}

#[derive(Debug)]
struct Scenario {
    boot_gib: u8,
    auto: u8,
    auto_movable: bool,
    ratio: u16,
    ops: Vec<Op>,
}

/// A scenario from the bytes: the machine first, then operations until the bytes (or
/// 64 operations) run out. (`Vec::arbitrary` stops after a few elements on random data.)
fn scenario(mut u: Unstructured<'_>) -> arbitrary::Result<Scenario> {
    let mut s = Scenario { boot_gib: u.arbitrary()?, auto: u.arbitrary()?, auto_movable: u.arbitrary()?, ratio: u.arbitrary()?, ops: Vec::new() };
    while !u.is_empty() && s.ops.len() < 64 {
        s.ops.push(Op::arbitrary(&mut u)?);
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
    spec.auto_online_blocks = [AutoOnline::Offline, AutoOnline::Online, AutoOnline::OnlineKernel, AutoOnline::OnlineMovable][usize::from(s.auto % 4)];
    spec.online_policy = if s.auto_movable { OnlinePolicy::AutoMovable } else { OnlinePolicy::ContigZones };
    spec.auto_movable_ratio = u32::from(s.ratio % 1000);
    let mut m = Model::boot(&spec).expect("the fuzz machine boots");
    let at = |slot: u8| (4 << 30) + u64::from(slot % 96) * BLOCK;
    let n = |b: u8| u64::from(b % 8 + 1) * BLOCK;
    for op in s.ops.iter().take(64) {
        let before = m.clone();
        let result = match *op {
            Op::Add { slot, blocks, driver, mom } => {
                let driver = [Driver::NONE, Driver::ACPI_DIMM, Driver::DAX_KMEM][usize::from(driver % 3)];
                let p = AddParams::for_driver(at(slot), n(blocks), 0, driver, None);
                m.add_memory(&p, if mom { &l.mom as &dyn StrategyHandle } else { &l.base }).map(|_| ())
            }
            Op::Online { slot, blocks, kind } => {
                let t = [OnlineType::Online, OnlineType::OnlineKernel, OnlineType::OnlineMovable][usize::from(kind % 3)];
                m.online_range(at(slot), n(blocks), t).map(|_| ())
            }
            Op::Offline { slot, blocks, unmovable } => m.offline_range(at(slot), n(blocks), unmovable).map(|_| ()),
            Op::Remove { slot, blocks } => m.remove_memory(at(slot), n(blocks), &l).map(|_| ()),
            Op::Grow { blocks } => m.virtio_grow("v", Some(16 << 30), n(blocks), 0, None, &l.base).map(|_| ()),
            Op::Shrink { blocks, unmovable } => m.virtio_shrink("v", n(blocks), unmovable, &l).map(|_| ()),
            Op::Memremap { slot, subsections, shift, private } => {
                let p = MemremapParams {
                    ranges: vec![(at(slot), u64::from(subsections % 512 + 1) * 2 * MIB)],
                    nid: 0,
                    pgmap_type: PgmapType::NONE,
                    vmemmap_shift: [0, 9, 18][usize::from(shift % 3)],
                    resource: None,
                };
                m.memremap(&p, if private { &l.private as &dyn StrategyHandle } else { &l.dev }).map(|_| ())
            }
            Op::Memunmap { slot } => m.memunmap(at(slot), &l).map(|_| ()),
        };
        if let Err(e) = result {
            let changed = m.differences(&before);
            assert!(changed.is_empty(), "{op:?} failed ({e}) but changed {changed:?}");
        }
        if let Err(e) = m.check_invariants() {
            panic!("after {op:?}: {e}");
        }
    }
}
