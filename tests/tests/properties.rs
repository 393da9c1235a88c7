//! Property tests: random sequences of hot-plug operations on small machines keep the
//! model's invariants, leave the model untouched whenever an operation fails, and end in
//! the boot state once everything added is taken away again (max_pfn and the Device
//! zone's span aside, which the kernel does not give back either).
//!
//! Bounded so the test command stays fast: at most 64 operations, machines of at most
//! 16 GiB of address space, proptest's default case count.

use hotplug_host::config::{AutoOnline, OnlinePolicy, OnlineType, Op};
use hotplug_host::loader::StrategyInstance;
use hotplug_host::model::boot::MachineSpec;
use hotplug_host::model::geometry::preset;
use hotplug_host::model::ops::{StrategyHandle, StrategyLookup};
use hotplug_host::model::step::{Outcome, Param, SampleSpace, Step, StepSeed};
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

/// Take away everything hot-plugged: virtio-mem, pgmaps, then each add (offlined first);
/// then write back the runtime parameters `boot` had (a `set` step may have changed them).
fn clean_up(m: &mut Model, p: &Plugins, boot: &Model) -> Result<(), TestCaseError> {
    let device = m.virtio.values().next().cloned();
    if let Some(d) = device {
        must(m, p, Step::Shrink { device: d.name.clone(), size: d.plugged, unmovable: false, unmovable_ranges: Vec::new() })?;
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
    let b = &boot.policy;
    let params = vec![
        Param::AutoOnlineBlocks(b.auto_online_blocks),
        Param::OnlinePolicy(b.online_policy),
        Param::AutoMovableRatio(b.auto_movable_ratio),
        Param::AutoMovableNumaAware(b.auto_movable_numa_aware),
    ];
    must(m, p, Step::Set { params })?;
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
        clean_up(&mut m, &p, &boot)?;
        let diff: Vec<&str> = m.differences(&boot).into_iter().filter(|d| !["max_pfn", "device_zone_spans"].contains(d)).collect();
        prop_assert!(diff.is_empty(), "after clean-up: {diff:?}");
    }
}

/// Online (`kind` 0-2: online, online_kernel, online_movable) or offline (3) the range
/// a run at a time, and block by block in one transaction as the kernel walks it: both
/// must end alike.
fn runs_equal_blocks(m: &Model, start: u64, size: u64, kind: usize) -> Result<(), TestCaseError> {
    let types = [OnlineType::Online, OnlineType::OnlineKernel, OnlineType::OnlineMovable];
    let (mut runs, mut single) = (m.clone(), m.clone());
    let by_runs =
        if kind < 3 { runs.online_range(start, size, types[kind]).map(|_| ()) } else { runs.offline_range(start, size, false).map(|_| ()) };
    let by_blocks = single.transaction(|m| {
        for id in m.blocks_in(start, size)? {
            if kind < 3 {
                m.online_block(id, types[kind]).map(|_| ())?
            } else {
                m.offline_block(id, false)?
            }
        }
        Ok(())
    });
    prop_assert_eq!(by_runs.as_ref().map_err(|e| e.code), by_blocks.as_ref().map_err(|e| e.code));
    prop_assert!(runs == single, "differ in {:?}", runs.differences(&single));
    Ok(())
}

/// Where block-by-block onlining changes its answer part way through a run.
#[test]
fn runs_equal_blocks_where_the_answer_changes_part_way() {
    let p = plugins();
    let add = |start: u64, size: u64| Step::Add {
        start,
        size,
        node: 0,
        driver: hotplug_core::Driver::NONE,
        device: None,
        strategy: "base".into(),
    };
    let online = |start: u64, size: u64, online_type| Step::Online { start, size, online_type };
    // Auto-movable on a 1 GiB machine: Movable only while Movable + 128 MiB <= 301 % of
    // the 258,048 early kernel pages (776,724 pages: 23 blocks of 32,768), then Normal.
    let mut m = machine(1, 0, true);
    let _ = m.apply(&add(4 << 30, 8 << 30), &p);
    runs_equal_blocks(&m, 4 << 30, 8 << 30, 0).unwrap();
    // movable_node with Movable spanning only from 8 GiB: a plain online of [4 GiB,
    // 5.5 GiB) picks Movable for its first block (neither zone spans it), which grows
    // Movable's span leftwards; the rest must follow block by block's answers.
    let mut m = machine(1, 0, false);
    m.policy.movable_node = true;
    let _ = m.apply(&add(4 << 30, 5 << 30), &p);
    let _ = m.apply(&online(8 << 30, BLOCK, OnlineType::OnlineMovable), &p);
    let _ = m.apply(&online(5 << 30, 1 << 30, OnlineType::OnlineKernel), &p);
    let _ = m.apply(&Step::Offline { start: 5 << 30, size: 512 * MIB, unmovable: false }, &p);
    runs_equal_blocks(&m, 4 << 30, 1536 * MIB, 0).unwrap();
}

proptest! {
    /// Onlining or offlining a range a run at a time ends exactly where the kernel's
    /// block-by-block walk does, under every policy, online type and prior history.
    #[test]
    fn a_run_at_a_time_equals_block_by_block(
        boot_gib in 1..4u64,
        auto in 0..3u8,
        auto_movable in any::<bool>(),
        ops in proptest::collection::vec(op(), 0..24),
        slot in 0..SLOTS,
        blocks in 1..64u64,
        kind in 0..4usize,
    ) {
        let p = plugins();
        let mut m = machine(boot_gib, auto, auto_movable);
        // Adds of up to 32 blocks, so runs are long enough to cross zone spans and the
        // auto-movable allowance part way.
        let wide = SampleSpace { max_blocks: 32, ..space() };
        for seed in &ops {
            let _ = m.apply(&Step::sample(seed, &wide), &p);
        }
        // The range: the tail of one of the adds from block `blocks % its length` (blocks
        // that exist), else anything.
        let page = m.geometry.page_size();
        let adds: Vec<(u64, u64)> = m.adds.values().map(|a| (a.pfns.start() * page, a.pfns.count() * page)).collect();
        let (start, size) = match adds.get(slot as usize % adds.len().max(1)) {
            Some(&(s, n)) => {
                let skip = blocks % (n / BLOCK) * BLOCK;
                (s + skip, n - skip)
            }
            None => (BASE + slot * BLOCK, blocks.min(SLOTS - slot) * BLOCK),
        };
        runs_equal_blocks(&m, start, size, kind)?;
    }
}
