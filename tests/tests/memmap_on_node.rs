//! The memmap-on-node strategy through the real `host` binary and plugin libraries, with
//! the numbers worked out by hand (the reasoning beside each), and the conformance suite
//! on it. Its ordering rule on its own is unit-tested in plugins/memmap-on-node.
//!
//! x86_64: 4 KiB pages, 128 MiB sections; a section's memmap is 32,768 x 64 B = 2 MiB =
//! 512 pages. A node's `free_pages` in a request is what its zones hold above their
//! min watermarks and lowmem reserves.

use hotplug_tests::{artifacts, run_host, workspace_root, write_config, Profile};
use serde_json::Value;

const P: Profile = Profile::Debug;

/// `host --config PATH --format json`, which must exit 0.
fn run_json(config: &str) -> Value {
    let run = run_host(P, &["--config", config, "--format", "json"]);
    assert_eq!(run.code, 0, "{config}: {}{}", run.stdout, run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", run.stdout))
}

/// The run of strategy `name` in a compare report.
fn run_of<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["runs"].as_array().unwrap().iter().find(|r| r["strategy"] == name).unwrap_or_else(|| panic!("no run {name}"))
}

/// Step `i`'s outcome in `run`.
fn outcome(run: &Value, i: usize) -> &Value {
    &run["steps"][i]["outcome"]
}

/// Each node's `memmap_taken` after the run, by node id.
fn taken(run: &Value) -> Vec<(u64, u64)> {
    run["state"]["nodes"].as_array().unwrap().iter().map(|n| (n["node"].as_u64().unwrap(), n["memmap_taken"].as_u64().unwrap())).collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// 2048 sections x 512 pages: the memmap of 256 GiB, 4 GiB.
const MEMMAP_256G: u64 = 1_048_576;

#[test]
fn cxl_expander_config_puts_the_memmap_where_its_comment_says() {
    let config = workspace_root().join("configs/cxl-expander.toml");
    let v = run_json(config.to_str().unwrap());
    assert_eq!(v["all_matched"], true);

    // node: node 1 (distance 20) can give 1,032,192 - 1,325 (its min watermark) =
    // 1,030,867 pages, short of 1,048,576; node 0 (32) has plenty: memmap_nodes [0, 1],
    // and node 0 pays every section.
    let node = run_of(&v, "node");
    let a = outcome(node, 0);
    assert_eq!(a["result"], "added");
    assert_eq!((u(&a["memmap_node_pages"]), u(&a["memmap_altmap_pages"]), u(&a["memmap_nid"])), (MEMMAP_256G, 0, 0));
    assert_eq!(a["note"], "memmap for far node 2 from nodes [0, 1]: 0 has room for 4 GiB, 1 is the fallback");
    assert_eq!(taken(node), [(0, MEMMAP_256G), (1, 0), (2, 0)]);

    // near: [1, 0] nearest first. Node 1 pays while its Normal zone keeps more than its
    // watermark after a PMD: (1,032,192 - 2,357 low) / 512 = 2,011 PMDs, then (2,560 -
    // 1,325 min) / 512 = 2 more: 2,013 sections = 1,030,656 pages (4026 MiB); node 0 the
    // other 35 = 17,920 pages (70 MiB). (Watermarks: the config's comment.)
    let near = run_of(&v, "near");
    let a = outcome(near, 0);
    assert_eq!((u(&a["memmap_node_pages"]), u(&a["memmap_altmap_pages"]), u(&a["memmap_nid"])), (MEMMAP_256G, 0, 1));
    assert_eq!(taken(near), [(0, 17_920), (1, 1_030_656), (2, 0)]);
    assert_eq!(2013 * 512 + 35 * 512, MEMMAP_256G);
    // Node 1 is left 1,032,192 - 1,030,656 = 1,536 pages.
    assert_eq!(u(&near["state"]["nodes"][1]["free"]), 1_536);

    // mom: 512 pages at the start of each of the 2048 blocks, none from node memory.
    let mom = run_of(&v, "mom");
    let a = outcome(mom, 0);
    assert_eq!((u(&a["memmap_node_pages"]), u(&a["memmap_altmap_pages"])), (0, MEMMAP_256G));
    assert_eq!(taken(mom), [(0, 0), (1, 0), (2, 0)]);

    // MemTotal: boot managed 16,515,072 + 1,032,192 = 17,547,264 pages, plus the onlined
    // 67,108,864 (node, near: memmap in node memory stays managed) or 67,108,864 -
    // 1,048,576 (mom): x 4 kB.
    assert_eq!(u(&node["state"]["mem_total_kb"]), (17_547_264 + 67_108_864) * 4);
    assert_eq!(u(&near["state"]["mem_total_kb"]), (17_547_264 + 67_108_864) * 4);
    assert_eq!(u(&mom["state"]["mem_total_kb"]), (17_547_264 + 67_108_864 - MEMMAP_256G) * 4);

    // The text report says the same, per paying node.
    let run = run_host(P, &["--config", config.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("ok: 2,048 blocks; memmap 4 GiB (1,048,576 pages) from node 0; memmap for far node 2"), "{}", run.stdout);
    assert!(run.stdout.contains("memmap 4 GiB (1,048,576 pages) from nodes 1 (4,026 MiB), 0 (70 MiB)"), "{}", run.stdout);
}

/// The cxl-expander machine with a third socket: node 3 has CPUs but tier-22 memory and
/// 4 GiB, 15 from the expander (20 from nodes 0 and 1, the default).
const OPTIONS_MACHINE: &str = r#"
compare = ["node", "roomy", "tiered"]

[machine]
plugin_dirs = ["@PLUGINS@"]

[[machine.node]]
id = 0
boot = [{ start = "0", size = "64GiB" }]

[[machine.node]]
id = 1
boot = [{ start = "64GiB", size = "4GiB" }]

[[machine.node]]
id = 2
cpus = false
tier = 22
distance = { 0 = 32, 1 = 20, 3 = 15 }

[[machine.node]]
id = 3
tier = 22
boot = [{ start = "68GiB", size = "4GiB" }]

[[strategy]]
name = "node"
plugin = "memmap-on-node"

[[strategy]]
name = "roomy"
plugin = "memmap-on-node"
options = { headroom = "4GiB" }

[[strategy]]
name = "tiered"
plugin = "memmap-on-node"
options = { far_tier = 10 }

[[step]]
op = "add"
start = "256GiB"
size = "16GiB"
node = 2
driver = "dax-kmem"

[[step]]
op = "add"
start = "512GiB"
size = "1GiB"
node = 3
"#;

#[test]
fn headroom_and_far_tier_change_who_pays() {
    // Boot managed: 16,515,072 + 2 x 1,032,192 = 18,579,456 pages. THP on: khugepaged's
    // min_free_kbytes is 5 populated zones x 11 x 512 = 28,160 pages; nodes 1 and 3 each
    // have one Normal zone of 1,032,192 managed pages, min 28,160 x 1,032,192 /
    // 18,579,456 = 1,564, so 1,030,628 pages to give (`free_pages`).
    // Step 1, 16 GiB on node 2: 128 sections x 512 = 65,536 pages (256 MiB) of memmap.
    // Step 2, 1 GiB on node 3: 8 sections x 512 = 4,096 pages (16 MiB).
    let cfg = write_config("memmap-on-node-options", P, OPTIONS_MACHINE);
    let v = run_json(cfg.to_str().unwrap());
    assert_eq!(v["all_matched"], true);

    // node: every node with CPUs is near, node 3 too (no far_tier). Step 1: [3, 1, 0] by
    // distance 15, 20, 32, all with room: node 3 pays. Step 2: node 3 is near, the
    // kernel default: node 3 pays its own 4,096, with no note.
    let node = run_of(&v, "node");
    assert_eq!(outcome(node, 0)["note"], "memmap for far node 2 from nodes [3, 1, 0]: 3, 1, 0 have room for 256 MiB");
    assert_eq!(u(&outcome(node, 0)["memmap_nid"]), 3);
    assert_eq!((u(&outcome(node, 1)["memmap_nid"]), outcome(node, 1)["note"].as_str()), (3, Some("")));
    assert_eq!(taken(node), [(0, 0), (1, 0), (2, 0), (3, 65_536 + 4_096)]);

    // roomy: room means 65,536 + 4 GiB (1,048,576) = 1,114,112 pages: nodes 3 and 1
    // (1,030,628) lack it, node 0 has it: [0, 3, 1], node 0 pays. Step 2 as in node.
    let roomy = run_of(&v, "roomy");
    assert_eq!(
        outcome(roomy, 0)["note"],
        "memmap for far node 2 from nodes [0, 3, 1]: 0 has room for 256 MiB + 4 GiB headroom, 3, 1 are the fallback"
    );
    assert_eq!(taken(roomy), [(0, 65_536), (1, 0), (2, 0), (3, 4_096)]);

    // tiered (far_tier = 10): node 3's tier 22 makes it far. Step 1: [1, 0], node 1 pays.
    // Step 2 is memory on a far node: nodes 0 and 1 both at 20, ties by id: [0, 1], both
    // with room (node 1 still has 1,030,628 - 65,536): node 0 pays.
    let tiered = run_of(&v, "tiered");
    assert_eq!(outcome(tiered, 0)["note"], "memmap for far node 2 from nodes [1, 0]: 1, 0 have room for 256 MiB");
    assert_eq!(outcome(tiered, 1)["note"], "memmap for far node 3 from nodes [0, 1]: 0, 1 have room for 16 MiB");
    assert_eq!(taken(tiered), [(0, 4_096), (1, 65_536), (2, 0), (3, 0)]);
}

/// `host conformance memmap-on-node` with `extra` arguments.
fn suite(plugin: &str, extra: &[&str]) -> hotplug_tests::Run {
    let dir = artifacts(P).display().to_string();
    let mut args = vec!["conformance", plugin, "--dir", dir.as_str()];
    args.extend_from_slice(extra);
    run_host(P, &args)
}

#[test]
fn memmap_on_node_passes_the_conformance_suite() {
    // The suite's machine has two nodes with CPUs in tier 4: without far_tier, and with
    // far_tier = 10, every request is near (the kernel default); far_tier = 4 makes both
    // nodes far with no near node left (the default again, with a note).
    for options in [None, Some("far_tier = 10"), Some("far_tier = 4\nheadroom = \"64MiB\"")] {
        let extra: Vec<&str> = options.map(|o| vec!["--options", o]).unwrap_or_default();
        let run = suite("memmap-on-node", &extra);
        assert_eq!(run.code, 0, "{options:?}:\n{}\n{}", run.stdout, run.stderr);
        let last = run.stdout.lines().last().unwrap_or_default();
        assert!(last.contains(" passed, 0 failed"), "{options:?}: {last}");
        // No altmap: altmap-bounds has nothing to bound.
        assert!(run.stdout.lines().any(|l| l.starts_with("skip") && l.contains("altmap-bounds")), "{}", run.stdout);
    }
}
