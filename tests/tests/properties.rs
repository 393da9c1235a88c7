//! Property tests: random sequences of hot-plug operations on small machines keep the
//! model's invariants, leave the model untouched whenever an operation fails, and end in
//! the boot state once everything added is taken away again (max_pfn and the Device
//! zone's span aside, which the kernel does not give back either).
//!
//! Bounded so the test command stays fast: at most 64 operations, machines of at most
//! 16 GiB of address space, proptest's default case count.

use hotplug_host::config::{AutoOnline, OnlinePolicy, Op};
use hotplug_host::loader::StrategyInstance;
use hotplug_host::model::boot::MachineSpec;
use hotplug_host::model::geometry::preset;
use hotplug_host::model::ops::{StrategyHandle, StrategyLookup};
use hotplug_host::model::step::{Outcome, SampleSpace, Step, StepSeed};
use hotplug_host::model::{BlockState, Model};
use proptest::prelude::*;

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 128 * MIB;
/// Hot-plug happens in [4 GiB, 16 GiB): 96 block slots.
const SLOTS: u64 = 96;
const BASE: u64 = 4 << 30;

/// How often each op comes up: adds most, then the block ops, every other op (a new one
/// included) once.
fn weight(op: Op) -> usize {
    if op == Op::Add {
        3
    } else if matches!(op, Op::Online | Op::Offline | Op::Remove) {
        2
    } else {
        1
    }
}

/// One random operation: an op (any of `Op::ALL`) and the numbers its step is built from.
fn op() -> impl Strategy<Value = StepSeed> {
    let weighted: Vec<Op> = Op::ALL.iter().flat_map(|&op| std::iter::repeat_n(op, weight(op))).collect();
    (proptest::sample::select(weighted), 0..SLOTS, 0..8u64, 0..3u64, any::<bool>(), 0..127u64)
        .prop_map(|(op, slot, blocks, choice, flag, subsections)| StepSeed { op, slot, blocks, choice, flag, subsections })
}

/// Hot-plug in [4 GiB, 16 GiB) in 1 to 8 blocks, memremaps of 1 to 127 subsections,
/// a virtio-mem device at 16 GiB.
fn space() -> SampleSpace {
    SampleSpace {
        base: BASE,
        slots: SLOTS,
        block_size: BLOCK,
        max_blocks: 8,
        subsection_size: 2 * MIB,
        max_subsections: 127,
        virtio_device: "virtio0".into(),
        virtio_start: 16 << 30,
        system_ram: vec!["base".into(), "mom".into()],
        device: vec!["dev".into()],
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
fn apply(m: &mut Model, plugins: &Plugins, seed: &StepSeed) -> Result<(), TestCaseError> {
    let before = m.clone();
    let step = Step::sample(seed, &space());
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
    for start in m.pgmaps.values().map(|pg| pg.start_pfn() * page).collect::<Vec<_>>() {
        must(m, p, Step::Memunmap { start })?;
    }
    let adds: Vec<(u64, u64)> = m.adds.values().map(|a| (a.pfns.start() * page, a.pfns.count() * page)).collect();
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
