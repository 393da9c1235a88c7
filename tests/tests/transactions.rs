//! A failing step leaves the model exactly as it was: snapshot before, compare after.
//! In-process, with the real baseline plugin library loaded into the test process.

use hotplug_core::Driver;
use hotplug_host::config::{AutoOnline, OnlinePolicy, OnlineType};
use hotplug_host::loader::StrategyInstance;
use hotplug_host::model::boot::{MachineSpec, NodeSpec};
use hotplug_host::model::geometry::preset;
use hotplug_host::model::hotplug::AddParams;
use hotplug_host::model::ops::{StrategyHandle, StrategyLookup};
use hotplug_host::model::Model;

const GIB: u64 = 1 << 30;

/// One node booted with `[0, boot)` on geometry `g`.
fn boot(g: hotplug_core::Geometry, boot: u64, auto_online_blocks: AutoOnline) -> Model {
    Model::boot(&MachineSpec {
        geometry: g,
        auto_online_blocks,
        online_policy: OnlinePolicy::ContigZones,
        auto_movable_ratio: 301,
        auto_movable_numa_aware: true,
        movable_node: false,
        min_free: None,
        thp: hotplug_host::model::watermarks::Thp::Always,
        kernelcore: None,
        movablecore: None,
        pmem: Vec::new(),
        nodes: vec![NodeSpec::new(0, vec![hotplug_host::model::PhysRange::new(0, boot).unwrap()])],
        capture: None,
    })
    .unwrap()
}

fn machine(size: u64) -> Model {
    boot(preset(hotplug_core::Arch::X86_64), size, AutoOnline::Online)
}

fn base() -> StrategyInstance {
    hotplug_tests::strategy("base", "system-ram", "", preset(hotplug_core::Arch::X86_64))
}

struct One<'a>(&'a dyn StrategyHandle);
impl StrategyLookup for One<'_> {
    fn strategy(&self, _: &str) -> Option<&dyn StrategyHandle> {
        Some(self.0)
    }
}

fn add(start: u64, size: u64) -> AddParams {
    AddParams::for_driver(start, size, 0, Driver::ACPI_DIMM, None)
}

#[test]
fn each_failing_step_leaves_the_model_unchanged() {
    let s = base();
    let mut m = machine(GIB);
    m.add_memory(&add(4 * GIB, GIB), &s).unwrap();
    type Failing = Box<dyn Fn(&mut Model, &dyn StrategyHandle) -> bool>;
    let cases: Vec<(&str, Failing)> = vec![
        ("ENOMEM part-way through the sections", Box::new(|m, s| m.add_memory(&add(8 * GIB, 128 * GIB), s).is_err())),
        ("E2BIG", Box::new(|m, s| m.add_memory(&add(1 << 46, GIB), s).is_err())),
        ("EEXIST", Box::new(|m, s| m.add_memory(&add(4 * GIB, GIB), s).is_err())),
        ("EINVAL misaligned", Box::new(|m, s| m.add_memory(&add(8 * GIB + (64 << 20), GIB), s).is_err())),
        ("EINVAL online twice", Box::new(|m, _| m.online_range(4 * GIB, GIB, OnlineType::Online).is_err())),
        ("EBUSY offline unmovable (after the first blocks succeed)", Box::new(|m, _| m.offline_range(4 * GIB, GIB, true).is_err())),
        ("EBUSY remove online", Box::new(|m, s| m.remove_memory(4 * GIB, GIB, &One(s)).is_err())),
        ("ENOENT online of a missing block", Box::new(|m, _| m.online_range(64 * GIB, GIB, OnlineType::Online).is_err())),
    ];
    for (name, case) in cases {
        let before = m.clone();
        assert!(case(&mut m, &s), "{name}: expected a failure");
        assert!(m == before, "{name}: the model changed");
    }
}

#[test]
fn offline_range_failing_midway_rolls_back_the_blocks_already_offlined() {
    let s = base();
    let mut m = machine(GIB);
    m.add_memory(&add(4 * GIB, GIB), &s).unwrap();
    // Take one block back offline by itself so that the range offline fails on it
    // after offlining the seven others (EINVAL: already offline).
    m.offline_range(4 * GIB + 7 * (128 << 20), 128 << 20, false).unwrap();
    let before = m.clone();
    let err = m.offline_range(4 * GIB, GIB, false).unwrap_err();
    assert_eq!(err.code, "EINVAL");
    assert!(m == before);
}

#[test]
fn add_then_remove_256_tib_costs_operations_not_pages() {
    // 256 TiB is 2^36 pages: per-page storage would need hundreds of GiB. The model
    // keeps sections (2 M of them) and blocks, never a slot per page.
    let s = base();
    let mut g = preset(hotplug_core::Arch::X86_64);
    g.max_phys_bits = 52;
    g.memory_block_size = 2 * GIB;
    // Enough boot memory (8 TiB) to hold 4 TiB of memmap (1/64 of 256 TiB).
    let mut m = boot(g, 8 << 40, AutoOnline::Offline);
    let before = m.clone();
    let out = m.add_memory(&add(16 << 40, 256 << 40), &s).unwrap();
    // 256 TiB / 2 GiB = 131,072 blocks; memmap 256 TiB / 64 = 4 TiB = 2^30 pages.
    assert_eq!(out.blocks.len(), 131_072);
    assert_eq!(out.memmap_node_pages, 1 << 30);
    m.remove_memory(16 << 40, 256 << 40, &One(&s)).unwrap();
    // Everything is as at boot except max_pfn, which x86_64 never lowers on remove.
    assert_eq!(m.differences(&before), vec!["max_pfn"]);
}

#[test]
fn four_pib_in_128_mib_blocks_costs_runs_not_blocks() {
    // A 53-bit machine hot-adds 4 PiB with memmap on memory in 128 MiB blocks: 2^52 /
    // 2^27 = 33,554,432 blocks and as many sections. In a debug build this finishes only
    // if nothing is done per block or per section (the invariants are checked after
    // every step, and every step's state is kept).
    let cfg = "[machine]\nmax_phys_bits = 53\nmemory_block_size = \"128MiB\"\n\
               [[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"4GiB\" }]\n\
               [[strategy]]\nname = \"mom\"\nplugin = \"memmap-on-memory\"\n\
               [[step]]\nop = \"add\"\nstart = \"16GiB\"\nsize = \"4PiB\"\nstrategy = \"mom\"\n\
               [[step]]\nop = \"online\"\nstart = \"16GiB\"\nsize = \"4PiB\"\n\
               [[step]]\nop = \"offline\"\nstart = \"16GiB\"\nsize = \"4PiB\"\n\
               [[step]]\nop = \"remove\"\nstart = \"16GiB\"\nsize = \"4PiB\"\n";
    let r = hotplug_tests::run_in_process("four-pib", cfg);
    let added = hotplug_tests::added(&r, 0);
    // Each block's 32,768 pages hold 32,768 x 64 B = 2 MiB = 512 pages of memmap at
    // their start: 2^25 x 512 = 2^34 pages inside the range, none from node memory.
    assert_eq!(added.blocks.len(), 1 << 25);
    assert_eq!((added.memmap_altmap_pages, added.memmap_node_pages), (1 << 34, 0));
    // Online: present +2^52 / 2^12 = 2^40 pages, managed +(32,768 - 512) x 2^25.
    let hotplug_host::runner::Outcome::Blocks(online) = &r.steps[1].outcome else { panic!("{:?}", r.steps[1].outcome) };
    assert_eq!((online.present_delta, online.managed_delta), (1 << 40, 32_256 << 25));
    // Blocks, sections and marks stayed runs: one of each for the whole add.
    let after_add = &r.history[1];
    assert_eq!((after_add.blocks.len(), after_add.sections.present_count()), ((1 << 25) + 32, (1 << 25) + 32));
    assert!(after_add.blocks.run_count() <= 3 && after_add.sections.run_count() <= 3 && after_add.pages.run_count() <= 2);
    // Removed: as at boot, but max_pfn, which x86_64 never lowers.
    assert_eq!(r.model.differences(&r.history[0]), vec!["max_pfn"]);
}
