//! What contract 1.1 added, each with its hand-worked numbers: strided marks checked as
//! the single marks they stand for, an ordered list of memmap nodes, node facts and the
//! distance service, and the `[[machine.node]]` keys that set them.
//!
//! The strategies here are linked into the test process (`StaticStrategy`), so each can
//! say exactly what a misbehaving plugin would.

use std::path::Path;
use std::sync::Mutex;

use hotplug_core::{errno, Altmap, Host, Ops, PluginError, Request, RequestKinds, RestrictionFlags, Restrictions, Strategy, StridedRange};
use hotplug_host::config::{AutoOnline, OnlinePolicy};
use hotplug_host::loader::StaticStrategy;
use hotplug_host::model::boot::{MachineSpec, NodeSpec};
use hotplug_host::model::geometry::preset;
use hotplug_host::model::hotplug::AddParams;
use hotplug_host::model::numa::NodeFacts;
use hotplug_host::model::{Model, PageState, PhysRange};
use hotplug_tests::{run_host, write_config, Profile};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// 128 MiB blocks of 4 KiB pages.
const BLOCK_PAGES: u64 = 32768;
/// A 128 MiB block's struct pages: 32,768 x 64 B = 2 MiB = 512 pages.
const MEMMAP_PAGES: u64 = 512;

/// Nodes `(id, boot bytes at id * 16 GiB, free bytes for memmap)`, min_free 0, so a node's
/// allocatable pages are exactly its free pages.
fn machine(nodes: &[(u32, u64, Option<u64>)]) -> MachineSpec {
    MachineSpec {
        geometry: preset(hotplug_core::Arch::X86_64),
        auto_online_blocks: AutoOnline::Offline,
        online_policy: OnlinePolicy::ContigZones,
        auto_movable_ratio: 301,
        auto_movable_numa_aware: true,
        movable_node: false,
        min_free: Some(0),
        thp: hotplug_host::model::watermarks::Thp::Always,
        kernelcore: None,
        movablecore: None,
        pmem: Vec::new(),
        nodes: nodes
            .iter()
            .map(|&(id, boot, free)| {
                let mut n =
                    NodeSpec::new(id, if boot == 0 { vec![] } else { vec![PhysRange::new(u64::from(id) * 16 * GIB, boot).unwrap()] });
                n.free = free;
                n
            })
            .collect(),
        capture: None,
    }
}

/// How the test strategy's `construct` marks the memmap of an add with per-block altmaps.
#[derive(Debug, Clone, Copy)]
enum Marks {
    OneByOne,
    /// `mark_vmemmap_strided(start + dstart, len, stride, count)`.
    Strided {
        dstart: u64,
        len: u64,
        stride: u64,
        count: u64,
    },
}

/// Memmap on memory (an altmap per block) marked as `marks` says, or baseline placement
/// with `memmap_nodes` when `nodes` is given.
struct Test {
    marks: Marks,
    nodes: Option<Vec<u32>>,
}

impl Strategy for Test {
    const KINDS: RequestKinds = RequestKinds::SYSTEM_RAM;

    fn new(_options: &str, _host: &Host) -> Result<Self, PluginError> {
        Ok(Test { marks: Marks::OneByOne, nodes: None })
    }

    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError> {
        if let Some(nodes) = &self.nodes {
            return Ok(Restrictions::new(RestrictionFlags::MEMORY_BLOCK_DEVICES).with_memmap_nodes(nodes.iter().copied()));
        }
        let mut r = Restrictions::new(RestrictionFlags(RestrictionFlags::MEMORY_BLOCK_DEVICES.0 | RestrictionFlags::MEMMAP_ON_MEMORY.0));
        r.altmap = Some(Altmap { base_pfn: request.start_pfn, end_pfn: 0, reserve: 0, free: MEMMAP_PAGES, align: 0, alloc: 0 }).into();
        Ok(r)
    }

    fn construct(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut Ops<'_>) -> Result<(), PluginError> {
        if restrictions.altmap.is_none() {
            return Ok(());
        }
        match self.marks {
            Marks::OneByOne => {
                for b in 0..request.nr_pages / BLOCK_PAGES {
                    ops.mark_vmemmap(hotplug_core::PfnRange::new(request.start_pfn + b * BLOCK_PAGES, MEMMAP_PAGES))?;
                }
                Ok(())
            }
            Marks::Strided { dstart, len, stride, count } => {
                ops.mark_vmemmap_strided(StridedRange::new(request.start_pfn.wrapping_add(dstart), len, stride, count))
            }
        }
    }
}

fn strategy(marks: Marks, nodes: Option<Vec<u32>>, spec: &MachineSpec) -> StaticStrategy<Test> {
    let mut s = StaticStrategy::<Test>::new("t", "test", "", spec).unwrap();
    s.strategy_mut().marks = marks;
    s.strategy_mut().nodes = nodes;
    s
}

/// Hot-add 4 blocks (512 MiB) at 4 GiB on node 0 with `marks`.
fn add_marked(marks: Marks) -> (Model, Model, Result<(), String>) {
    let spec = machine(&[(0, 4 * GIB, None)]);
    let mut m = Model::boot(&spec).unwrap();
    let before = m.clone();
    let s = strategy(marks, None, &spec);
    let r = m.add_memory(&AddParams::plain(4 * GIB, 4 * 128 * MIB, 0), &s).map(|_| ()).map_err(|e| e.to_string());
    (before, m, r)
}

#[test]
fn strided_marks_are_the_single_marks_they_stand_for() {
    // 4 blocks from pfn 0x100000 (4 GiB): runs of 512 pages every 32,768 pages.
    let (_, one, r) = add_marked(Marks::OneByOne);
    r.unwrap();
    let (_, strided, r) = add_marked(Marks::Strided { dstart: 0, len: MEMMAP_PAGES, stride: BLOCK_PAGES, count: 4 });
    r.unwrap();
    assert!(one == strided, "{:?}", one.differences(&strided));
    let marked: Vec<(u64, u64)> = strided.pages.iter().filter(|(_, _, v)| **v == PageState::Vmemmap).map(|(s, e, _)| (s, e - s)).collect();
    assert_eq!(marked, [(0x100000, 512), (0x108000, 512), (0x110000, 512), (0x118000, 512)]);
    // No runs at all is no calls at all: nothing marked, and nothing to refuse.
    let (_, none, r) = add_marked(Marks::Strided { dstart: 0, len: MEMMAP_PAGES, stride: BLOCK_PAGES, count: 0 });
    r.unwrap();
    assert_eq!(none.pages.iter().count(), 0);
}

#[test]
fn strided_marks_are_refused_where_a_single_mark_would_be() {
    let cases = [
        // The fifth run would start at the next block, outside the 4-block add.
        ("a run past the range", Marks::Strided { dstart: 0, len: MEMMAP_PAGES, stride: BLOCK_PAGES, count: 5 }, "not all inside"),
        ("empty runs", Marks::Strided { dstart: 0, len: 0, stride: BLOCK_PAGES, count: 4 }, "not all inside"),
        // start + 3 * stride wraps past 2^64.
        ("a stride that wraps", Marks::Strided { dstart: 0, len: 1, stride: u64::MAX / 2, count: 4 }, "not all inside"),
        ("a start below the range", Marks::Strided { dstart: u64::MAX, len: 2, stride: BLOCK_PAGES, count: 1 }, "not all inside"),
        // Inside the range but 512 pages on, past each block's memmap area.
        ("runs outside the altmap", Marks::Strided { dstart: 512, len: 1, stride: BLOCK_PAGES, count: 4 }, "outside the altmap"),
    ];
    for (what, marks, why) in cases {
        let (before, after, r) = add_marked(marks);
        let e = r.expect_err(what);
        assert!(e.starts_with("EINVAL") && e.contains(why), "{what}: {e}");
        assert!(before == after, "{what} changed {:?}", after.differences(&before));
    }
}

#[test]
fn memmap_is_paid_by_the_first_listed_node_with_room() {
    // Node 1 has 64 MiB = 16,384 pages free: the memmap of 32 sections (512 pages each).
    // 16 GiB on node 0 is 128 sections: 32 paid by node 1, the other 96 by node 0
    // (96 x 512 = 49,152 pages).
    let spec = machine(&[(0, 8 * GIB, None), (1, 4 * GIB, Some(64 * MIB))]);
    let mut m = Model::boot(&spec).unwrap();
    let s = strategy(Marks::OneByOne, Some(vec![1, 0]), &spec);
    let out = m.add_memory(&AddParams::plain(64 * GIB, 16 * GIB, 0), &s).unwrap();
    assert_eq!(out.memmap_node_pages, 65_536);
    assert_eq!(out.memmap_by_node, [(1, 16_384), (0, 49_152)]);
    assert_eq!(out.memmap_nid, 1, "the first node that paid");
    assert_eq!((m.nodes.get(&1).unwrap().memmap_taken, m.nodes.get(&0).unwrap().memmap_taken), (16_384, 49_152));
    // Removing gives each node back what it paid.
    let boot = Model::boot(&spec).unwrap();
    struct One<'a>(&'a dyn hotplug_host::model::ops::StrategyHandle);
    impl hotplug_host::model::ops::StrategyLookup for One<'_> {
        fn strategy(&self, _: &str) -> Option<&dyn hotplug_host::model::ops::StrategyHandle> {
            Some(self.0)
        }
    }
    m.remove_memory(64 * GIB, 16 * GIB, &One(&s)).unwrap();
    assert_eq!(m.differences(&boot), ["max_pfn"]);
}

#[test]
fn no_listed_node_with_room_is_enomem_and_changes_nothing() {
    // Node 1 holds 32 sections' memmap, node 2 only 8 MiB = 2,048 pages = 4 sections':
    // the first 36 sections fit, the 37th does not. Both nodes are Normal only (no
    // lowmem_reserve), and min_free_kbytes is 0, so each node pays down to a min
    // watermark of 0 once its low one (managed / 1,000) is reached.
    let spec = machine(&[(1, 4 * GIB, Some(64 * MIB)), (2, 4 * GIB, Some(8 * MIB))]);
    let mut m = Model::boot(&spec).unwrap();
    let before = m.clone();
    let s = strategy(Marks::OneByOne, Some(vec![1, 2]), &spec);
    let e = m.add_memory(&AddParams::plain(64 * GIB, 16 * GIB, 1), &s).unwrap_err();
    assert_eq!(e.code, "ENOMEM");
    assert!(
        e.reason.contains("section 37 of 128")
            && e.reason.contains("no zone of memmap_nodes (nodes 1, 2)")
            && e.reason.contains("36 sections"),
        "{e}"
    );
    assert!(m == before, "{:?}", m.differences(&before));
}

#[test]
fn the_validator_refuses_impossible_node_lists() {
    let spec = machine(&[(0, 8 * GIB, None), (1, 4 * GIB, None)]);
    let m = Model::boot(&spec).unwrap();
    let page = 4096;
    let check = |r: Restrictions, kind| m.validate_restrictions(kind, &r, 64 * GIB / page, 16 * GIB / page, "t").map_err(|e| e.reason);
    let base = || Restrictions::new(RestrictionFlags::MEMORY_BLOCK_DEVICES);
    let sys = hotplug_core::RequestKind::SYSTEM_RAM;
    assert!(check(base().with_memmap_nodes([1, 0]), sys).is_ok());
    assert!(check(base().with_memmap_nodes([1, 5]), sys).unwrap_err().contains("node 5, which does not exist"));
    assert!(check(base().with_memmap_nodes([1, 1]), sys).unwrap_err().contains("node 1 twice"));
    let mut both = base().with_memmap_nodes([1]);
    both.memmap_nid = Some(0).into();
    assert!(check(both, sys).unwrap_err().contains("both memmap_nid and memmap_nodes"));
    let device = Restrictions::new(RestrictionFlags(0)).with_memmap_nodes([1]);
    assert!(check(device, hotplug_core::RequestKind::DEVICE).unwrap_err().contains("device memory"));
}

/// Per node: id, has_cpus, tier, and the distance from the request's node.
type Seen = Vec<(u32, bool, u32, Option<u32>)>;

/// Records what `set_up` saw of the nodes and the distances.
struct Observer {
    host: Host,
    seen: Mutex<Seen>,
}

impl Strategy for Observer {
    const KINDS: RequestKinds = RequestKinds::SYSTEM_RAM;

    fn new(_options: &str, host: &Host) -> Result<Self, PluginError> {
        Ok(Observer { host: host.clone(), seen: Mutex::new(Vec::new()) })
    }

    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError> {
        let seen = request.nodes.iter().map(|n| (n.id, n.has_cpus, n.tier, self.host.distance(request.nid, n.id))).collect();
        *self.seen.lock().unwrap() = seen;
        Err(PluginError::errno(errno::EINVAL, "observed"))
    }
}

#[test]
fn requests_carry_node_facts_and_the_host_answers_distances() {
    let mut spec = machine(&[(0, 4 * GIB, None), (1, 4 * GIB, None), (2, 0, None)]);
    spec.nodes[2].facts = NodeFacts { has_cpus: false, tier: 22 };
    spec.nodes[2].distance = [(0, 30), (1, 21)].into();
    let mut m = Model::boot(&spec).unwrap();
    let s = StaticStrategy::<Observer>::new("o", "observer", "", &spec).unwrap();
    let _ = m.add_memory(&AddParams::plain(64 * GIB, GIB, 0), &s);
    // From node 0: itself 10; node 1 the default 20; node 2 says 30 (used both ways).
    let seen = s.strategy().seen.lock().unwrap().clone();
    assert_eq!(seen, [(0, true, 4, Some(10)), (1, true, 4, Some(20)), (2, false, 22, Some(30))]);
}

const P: Profile = Profile::Debug;

/// Three nodes: 0 and 1 with CPUs and 8 GiB each, 2 a CPU-less CXL expander with no boot
/// memory, whose distances to 0 and 1 are `d0` and `d1`.
fn cxl_config(test: &str, d0: u32, d1: u32) -> std::path::PathBuf {
    write_config(
        test,
        P,
        &format!(
            r#"[machine]
plugin_dirs = ["@PLUGINS@"]

[[machine.node]]
id = 0
boot = [{{ start = "0", size = "8GiB" }}]

[[machine.node]]
id = 1
boot = [{{ start = "8GiB", size = "8GiB" }}]

[[machine.node]]
id = 2
cpus = false
tier = 22
distance = {{ 0 = {d0}, 1 = {d1} }}

[[strategy]]
name = "near"
plugin = "system-ram"
options = {{ memmap_policy = "nearest-cpu-node" }}

[[step]]
op = "add"
start = "64GiB"
size = "16GiB"
node = 2
"#
        ),
    )
}

#[test]
fn system_ram_puts_a_cxl_nodes_memmap_on_the_nearest_node_with_cpus() {
    // 16 GiB on node 2 needs 128 x 2 MiB = 256 MiB of memmap; node 2 has no CPUs, so the
    // nearest node with CPUs pays: node 1 at distance 21 before node 0 at 30, and node 0
    // when the distances are the other way round.
    for (d0, d1, payer) in [(30, 21, 1), (21, 30, 0)] {
        let cfg = cxl_config(&format!("cxl_{d0}_{d1}"), d0, d1);
        let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains(&format!("ok: 128 blocks; memmap 256 MiB (65,536 pages) from node {payer}")), "{}", run.stdout);
    }
}

/// Resolve `text` as a config, returning the error's `line:col: message`.
fn config_error(text: &str) -> String {
    let loaded = hotplug_host::config::parse(Path::new("t.toml"), text.to_string()).unwrap();
    hotplug_host::scenario::resolve(&loaded, None).map(|_| ()).unwrap_err().to_string()
}

#[test]
fn node_distances_are_checked_where_they_are_written() {
    let node = |d: &str| format!("[machine]\n[[machine.node]]\nid = 0\n[[machine.node]]\nid = 1\ndistance = {d}\n");
    let cases = [
        ("{ 0 = 20, 3 = 20 }", "t.toml:6:22: distance to node 3, which is not a [[machine.node]]"),
        ("{ 1 = 12 }", "t.toml:6:18: distance 12 from node 1 to node 1: a node's distance to itself is 10"),
        ("{ 0 = 10 }", "t.toml:6:18: distance 10 from node 1 to node 0: a remote distance is 11 to 255"),
        ("{ 0 = 256 }", "t.toml:6:18: distance 256 from node 1 to node 0: a remote distance is 11 to 255"),
        ("{ zero = 20 }", "t.toml:6:14: distance key \"zero\" is not a node id"),
    ];
    for (d, message) in cases {
        assert_eq!(config_error(&node(d)), message, "{d}");
    }
    let ok = hotplug_host::config::parse(Path::new("t.toml"), node("{ 0 = 17, 1 = 10 }")).unwrap();
    let scenario = hotplug_host::scenario::resolve(&ok, None).unwrap();
    assert_eq!(scenario.machine.distances().get(0, 1), Some(17), "given from node 1, used both ways");
}
