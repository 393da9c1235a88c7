//! Property tests: random sequences of hot-plug operations on small machines keep the
//! model's invariants, leave the model untouched whenever an operation fails, and end in
//! the boot state once everything added is taken away again (max_pfn and the Device
//! zone's span aside, which the kernel does not give back either).
//!
//! Bounded so the test command stays fast: at most 64 operations, machines of at most
//! 16 GiB of address space, proptest's default case count.

use hotplug_core::{Driver, PgmapType};
use hotplug_host::config::{AutoOnline, OnlinePolicy, OnlineType};
use hotplug_host::loader::StrategyInstance;
use hotplug_host::model::boot::MachineSpec;
use hotplug_host::model::device::MemremapParams;
use hotplug_host::model::geometry::preset;
use hotplug_host::model::hotplug::AddParams;
use hotplug_host::model::ops::{StrategyHandle, StrategyLookup};
use hotplug_host::model::{BlockState, Model};
use proptest::prelude::*;

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 128 * MIB;
/// Hot-plug happens in [4 GiB, 16 GiB): 96 block slots.
const SLOTS: u64 = 96;
const BASE: u64 = 4 << 30;

#[derive(Debug, Clone)]
enum Op {
    Add { slot: u64, blocks: u64, driver: u8, mom: bool },
    Online { slot: u64, blocks: u64, kind: u8 },
    Offline { slot: u64, blocks: u64, unmovable: bool },
    Remove { slot: u64, blocks: u64 },
    Grow { blocks: u64 },
    Shrink { blocks: u64 },
    Memremap { slot: u64, subsections: u64, compound: bool },
    Memunmap { slot: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..SLOTS, 1..8u64, 0..3u8, any::<bool>()).prop_map(|(slot, blocks, driver, mom)| Op::Add { slot, blocks, driver, mom }),
        2 => (0..SLOTS, 1..8u64, 0..3u8).prop_map(|(slot, blocks, kind)| Op::Online { slot, blocks, kind }),
        2 => (0..SLOTS, 1..8u64, any::<bool>()).prop_map(|(slot, blocks, unmovable)| Op::Offline { slot, blocks, unmovable }),
        2 => (0..SLOTS, 1..8u64).prop_map(|(slot, blocks)| Op::Remove { slot, blocks }),
        1 => (1..4u64).prop_map(|blocks| Op::Grow { blocks }),
        1 => (1..4u64).prop_map(|blocks| Op::Shrink { blocks }),
        1 => (0..SLOTS, 1..128u64, any::<bool>()).prop_map(|(slot, subsections, compound)| Op::Memremap { slot, subsections, compound }),
        1 => (0..SLOTS).prop_map(|slot| Op::Memunmap { slot }),
    ]
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

/// Apply `op`; on failure the model must be exactly as before.
fn apply(m: &mut Model, p: &Plugins, op: &Op) -> Result<(), TestCaseError> {
    let before = m.clone();
    let at = |slot: u64| BASE + slot * BLOCK;
    let result = match *op {
        Op::Add { slot, blocks, driver, mom } => {
            let driver = [Driver::NONE, Driver::ACPI_DIMM, Driver::DAX_KMEM][driver as usize];
            let params = AddParams::for_driver(at(slot), blocks * BLOCK, 0, driver, Some(format!("dax{slot}.0")));
            m.add_memory(&params, if mom { &p.mom } else { &p.base }).map(|_| ())
        }
        Op::Online { slot, blocks, kind } => {
            let t = [OnlineType::Online, OnlineType::OnlineKernel, OnlineType::OnlineMovable][kind as usize];
            m.online_range(at(slot), blocks * BLOCK, t).map(|_| ())
        }
        Op::Offline { slot, blocks, unmovable } => m.offline_range(at(slot), blocks * BLOCK, unmovable).map(|_| ()),
        Op::Remove { slot, blocks } => m.remove_memory(at(slot), blocks * BLOCK, p).map(|_| ()),
        Op::Grow { blocks } => m.virtio_grow("virtio0", Some(16 << 30), blocks * BLOCK, 0, None, &p.base).map(|_| ()),
        Op::Shrink { blocks } => m.virtio_shrink("virtio0", blocks * BLOCK, false, p).map(|_| ()),
        Op::Memremap { slot, subsections, compound } => {
            let params = MemremapParams {
                ranges: vec![(at(slot), subsections * 2 * MIB)],
                nid: 0,
                pgmap_type: PgmapType::NONE,
                vmemmap_shift: if compound { 9 } else { 0 },
                resource: None,
            };
            m.memremap(&params, &p.device).map(|_| ())
        }
        Op::Memunmap { slot } => m.memunmap(at(slot), p).map(|_| ()),
    };
    if let Err(e) = &result {
        prop_assert!(*m == before, "{op:?} failed ({e}) and changed {:?}", m.differences(&before));
    }
    m.check_invariants().map_err(|e| TestCaseError::fail(format!("after {op:?}: {e}")))
}

/// Take away everything hot-plugged: virtio-mem, pgmaps, then each add (offlined first).
fn clean_up(m: &mut Model, p: &Plugins) -> Result<(), TestCaseError> {
    let device = m.virtio.values().next().cloned();
    if let Some(d) = device {
        m.virtio_shrink(&d.name, d.plugged, false, p).map_err(|e| TestCaseError::fail(format!("shrink: {e}")))?;
    }
    let page = m.geometry.page_size();
    for start in m.pgmaps.values().map(|pg| pg.ranges[0].0 * page).collect::<Vec<_>>() {
        m.memunmap(start, p).map_err(|e| TestCaseError::fail(format!("memunmap {start:#x}: {e}")))?;
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
            m.offline_range(id * BLOCK, BLOCK, false).map_err(|e| TestCaseError::fail(format!("offline memory{id}: {e}")))?;
        }
        m.remove_memory(start, size, p).map_err(|e| TestCaseError::fail(format!("remove {start:#x}: {e}")))?;
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
        for op in &ops {
            apply(&mut m, &p, op)?;
        }
        clean_up(&mut m, &p)?;
        let diff: Vec<&str> = m.differences(&boot).into_iter().filter(|d| !["max_pfn", "device_zone_spans"].contains(d)).collect();
        prop_assert!(diff.is_empty(), "after clean-up: {diff:?}");
    }
}
