//! Property tests: random sequences of hot-plug operations on small machines keep the
//! model's invariants, leave the model untouched whenever an operation fails, and end in
//! the boot state once everything added is taken away again (max_pfn and the Device
//! zone's span aside, which the kernel does not give back either).
//!
//! Bounded so the test command stays fast: at most 64 operations, machines of at most
//! 16 GiB of address space, proptest's default case count.

use hotplug_core::{Driver, PgmapType};
use hotplug_host::config::{AutoOnline, OnlinePolicy, OnlineType, Op};
use hotplug_host::loader::StrategyInstance;
use hotplug_host::model::boot::MachineSpec;
use hotplug_host::model::device::MemremapParams;
use hotplug_host::model::geometry::preset;
use hotplug_host::model::ops::{StrategyHandle, StrategyLookup};
use hotplug_host::model::step::{Outcome, Step};
use hotplug_host::model::{BlockState, Model};
use proptest::prelude::*;

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 128 * MIB;
/// Hot-plug happens in [4 GiB, 16 GiB): 96 block slots.
const SLOTS: u64 = 96;
const BASE: u64 = 4 << 30;

/// One random operation: an op and the numbers its step is built from.
#[derive(Debug, Clone)]
struct Params {
    op: Op,
    slot: u64,
    blocks: u64,
    /// Picks the driver of an add, the online type of an online.
    choice: usize,
    /// memmap on memory for an add, unmovable for an offline, compound pages for a memremap.
    flag: bool,
    subsections: u64,
}

/// How often each op comes up: adds most, then the block ops.
fn weight(op: Op) -> usize {
    match op {
        Op::Add => 3,
        Op::Online | Op::Offline | Op::Remove => 2,
        Op::Memremap | Op::Memunmap | Op::Grow | Op::Shrink => 1,
    }
}

fn op() -> impl Strategy<Value = Params> {
    let weighted: Vec<Op> = Op::ALL.iter().flat_map(|&op| std::iter::repeat_n(op, weight(op))).collect();
    (proptest::sample::select(weighted), 0..SLOTS, 1..8u64, 0..3usize, any::<bool>(), 1..128u64)
        .prop_map(|(op, slot, blocks, choice, flag, subsections)| Params { op, slot, blocks, choice, flag, subsections })
}

/// The step for `p`; a new op fails to build here until it is generated.
fn step(p: &Params) -> Step {
    let (start, size) = (BASE + p.slot * BLOCK, p.blocks * BLOCK);
    // virtio-mem grows and shrinks by 1 to 3 blocks, at 16 GiB.
    let virtio_size = (p.blocks % 3 + 1) * BLOCK;
    match p.op {
        Op::Add => Step::Add {
            start,
            size,
            node: 0,
            driver: [Driver::NONE, Driver::ACPI_DIMM, Driver::DAX_KMEM][p.choice],
            device: Some(format!("dax{}.0", p.slot)),
            strategy: if p.flag { "mom" } else { "base" }.to_string(),
        },
        Op::Online => {
            Step::Online { start, size, online_type: [OnlineType::Online, OnlineType::OnlineKernel, OnlineType::OnlineMovable][p.choice] }
        }
        Op::Offline => Step::Offline { start, size, unmovable: p.flag },
        Op::Remove => Step::Remove { start, size },
        Op::Grow => {
            Step::Grow { device: "virtio0".into(), start: 16 << 30, size: virtio_size, node: 0, unit: None, strategy: "base".into() }
        }
        Op::Shrink => Step::Shrink { device: "virtio0".into(), size: virtio_size, unmovable: false },
        Op::Memremap => Step::Memremap {
            pgmap: MemremapParams {
                ranges: vec![(start, p.subsections * 2 * MIB)],
                nid: 0,
                pgmap_type: PgmapType::NONE,
                vmemmap_shift: if p.flag { 9 } else { 0 },
                resource: None,
            },
            find_free: false,
            strategy: "dev".into(),
        },
        Op::Memunmap => Step::Memunmap { start },
    }
}

struct Plugins {
    base: StrategyInstance,
    mom: StrategyInstance,
    device: StrategyInstance,
}

impl StrategyLookup for Plugins {
    fn strategy(&self, instance: &str) -> Option<&dyn StrategyHandle> {
        [&self.base, &self.mom, &self.device].into_iter().find(|s| s.name == instance).map(|s| s as &dyn StrategyHandle)
    }
}

fn plugins() -> Plugins {
    let g = preset(hotplug_core::Arch::X86_64);
    Plugins {
        base: hotplug_tests::strategy("base", "system-ram", "", g),
        mom: hotplug_tests::strategy("mom", "memmap-on-memory", "", g),
        device: hotplug_tests::strategy("dev", "device-pgmap", "", g),
    }
}

fn machine(boot_gib: u64, auto: u8, auto_movable: bool) -> Model {
    let mut spec = MachineSpec::new(preset(hotplug_core::Arch::X86_64), &[(0, 0, boot_gib << 30)]);
    spec.auto_online_blocks = [AutoOnline::Offline, AutoOnline::Online, AutoOnline::OnlineMovable][auto as usize];
    spec.online_policy = if auto_movable { OnlinePolicy::AutoMovable } else { OnlinePolicy::ContigZones };
    Model::boot(&spec).unwrap()
}

/// Apply `p`'s step; on failure the model must be exactly as before.
fn apply(m: &mut Model, plugins: &Plugins, p: &Params) -> Result<(), TestCaseError> {
    let before = m.clone();
    let step = step(p);
    if let Outcome::Failed(e) = m.apply(&step, plugins) {
        prop_assert!(*m == before, "{step:?} failed ({e}) and changed {:?}", m.differences(&before));
    }
    m.check_invariants().map_err(|e| TestCaseError::fail(format!("after {step:?}: {e}")))
}

/// Run `step`, which must succeed.
fn must(m: &mut Model, p: &Plugins, step: Step) -> Result<(), TestCaseError> {
    match m.apply(&step, p) {
        Outcome::Failed(e) => Err(TestCaseError::fail(format!("{step:?}: {e}"))),
        _ => Ok(()),
    }
}

/// Take away everything hot-plugged: virtio-mem, pgmaps, then each add (offlined first).
fn clean_up(m: &mut Model, p: &Plugins) -> Result<(), TestCaseError> {
    let device = m.virtio.values().next().cloned();
    if let Some(d) = device {
        must(m, p, Step::Shrink { device: d.name.clone(), size: d.plugged, unmovable: false })?;
    }
    let page = m.geometry.page_size();
    for start in m.pgmaps.values().map(|pg| pg.ranges[0].0 * page).collect::<Vec<_>>() {
        must(m, p, Step::Memunmap { start })?;
    }
    let adds: Vec<(u64, u64)> = m.adds.values().map(|a| (a.start_pfn * page, a.nr_pages * page)).collect();
    for (start, size) in adds {
        let online = m
            .blocks
            .values()
            .filter(|b| !b.early && b.state == BlockState::Online && b.id * BLOCK >= start && b.id * BLOCK < start + size)
            .map(|b| b.id)
            .collect::<Vec<_>>();
        for id in online {
            must(m, p, Step::Offline { start: id * BLOCK, size: BLOCK, unmovable: false })?;
        }
        must(m, p, Step::Remove { start, size })?;
    }
    m.check_invariants().map_err(TestCaseError::fail)
}

proptest! {
    #[test]
    fn random_sequences_keep_invariants_and_unwind_to_boot(
        boot_gib in 1..4u64,
        auto in 0..3u8,
        auto_movable in any::<bool>(),
        ops in proptest::collection::vec(op(), 0..64),
    ) {
        let p = plugins();
        let mut m = machine(boot_gib, auto, auto_movable);
        let boot = m.clone();
        for params in &ops {
            apply(&mut m, &p, params)?;
        }
        clean_up(&mut m, &p)?;
        let diff: Vec<&str> = m.differences(&boot).into_iter().filter(|d| !["max_pfn", "device_zone_spans"].contains(d)).collect();
        prop_assert!(diff.is_empty(), "after clean-up: {diff:?}");
    }
}
