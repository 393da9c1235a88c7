//! `--sysroot-out DIR`: the system root real tools read. util-linux's `lsmem --sysroot`
//! runs on it (the NODE column comes from each block's `nodeN` link), and the node tree's
//! masks, distances and meminfo are checked against numbers worked out by hand.

use std::path::Path;
use std::process::Command;

use hotplug_tests::{run_host, scratch, Profile::Debug as P};

fn sysroot(test: &str, config: &str, extra: &[&str]) -> std::path::PathBuf {
    let dir = scratch(test).join("root");
    let run = run_host(P, &[&["--config", config, "--sysroot-out", dir.to_str().unwrap()], extra].concat());
    assert_eq!(run.code, 0, "{}", run.stderr);
    dir
}

/// `lsmem --sysroot DIR` with the columns of a memory-hotplug check, as rows of words.
fn lsmem(root: &Path) -> (Vec<Vec<String>>, String) {
    let out = Command::new("lsmem")
        .arg("--sysroot")
        .arg(root)
        .args(["-o", "RANGE,SIZE,STATE,BLOCK,NODE,ZONES"])
        .output()
        .expect("lsmem (util-linux) is installed: .ci/run installs it when missing");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (table, summary) = text.split_once("\n\n").expect("a table, a blank line, a summary");
    let rows = table.lines().skip(1).map(|l| l.split_whitespace().map(str::to_string).collect()).collect();
    (rows, summary.to_string())
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn lsmem_reads_the_nodes_of_a_cxl_machine() {
    // configs/cxl-expander.toml, first run (memmap-on-node). 128 MiB blocks. Node 0: boot
    // RAM [0, 64 GiB) = blocks 0-511; block 0 spans ZONE_DMA [0, 16 MiB) and DMA32, so its
    // valid_zones is "none" (lsmem: None); DMA32 ends at 4 GiB: blocks 1-31; Normal
    // 4-64 GiB: 32-511. Node 1: [64 GiB, 68 GiB) = blocks 512-543, Normal. Node 2: 256 GiB
    // hot-added at 0x4000000000 = 256 GiB, blocks 2048-4095, onlined movable.
    let root = sysroot("sysroot-cxl", "cxl-expander.toml", &[]);
    let (rows, summary) = lsmem(&root);
    let expected = [
        ["0x0000000000000000-0x0000000007ffffff", "128M", "online", "0", "0", "None"],
        ["0x0000000008000000-0x00000000ffffffff", "3.9G", "online", "1-31", "0", "DMA32"],
        ["0x0000000100000000-0x0000000fffffffff", "60G", "online", "32-511", "0", "Normal"],
        ["0x0000001000000000-0x00000010ffffffff", "4G", "online", "512-543", "1", "Normal"],
        ["0x0000004000000000-0x0000007fffffffff", "256G", "online", "2048-4095", "2", "Movable"],
    ];
    assert_eq!(rows, expected.map(|r| r.map(str::to_string).to_vec()), "{rows:?}");
    // 64 + 4 + 256 GiB online.
    assert!(summary.contains("Total online memory:     324G"), "{summary}");

    let node = |rel: &str| read(&root, &format!("sys/devices/system/node/{rel}"));
    // Node 2 has no CPUs; it came online with its memory (add_memory -> __try_online_node)
    // and that memory is all in ZONE_MOVABLE: N_MEMORY but not N_NORMAL_MEMORY.
    assert_eq!(node("possible"), "0-2\n");
    assert_eq!(node("online"), "0-2\n");
    assert_eq!(node("has_cpu"), "0-1\n");
    assert_eq!(node("has_memory"), "0-2\n");
    assert_eq!(node("has_normal_memory"), "0-1\n");
    // node_read_distance(): the config's SLIT (2 is 20 from 1, 32 from 0; 0-1 default 20).
    assert_eq!(node("node0/distance"), "10 20 32\n");
    assert_eq!(node("node2/distance"), "32 20 10\n");
    // Node 2 meminfo: 67,108,864 pages onlined, its memmap on node 0 (memmap-on-node), so
    // all managed and all free: 268,435,456 kB; MemUsed 0.
    assert_eq!(
        node("node2/meminfo"),
        "Node 2 MemTotal:       268435456 kB\nNode 2 MemFree:        268435456 kB\nNode 2 MemUsed:               0 kB\n"
    );
    // The links, both ways, resolve inside the tree.
    let link = root.join("sys/devices/system/memory/memory2048/node2");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("../../node/node2"));
    assert!(link.join("distance").is_file());
    assert!(root.join("sys/devices/system/node/node1/memory512/state").is_file());
    // And the proc files.
    assert!(read(&root, "proc/meminfo").starts_with("MemTotal:"));
    assert!(read(&root, "proc/iomem").contains("System RAM (kmem)"));
}

#[test]
fn before_its_memory_arrives_a_cpu_less_node_is_possible_not_online() {
    // The same machine right after boot: node 2 has neither CPUs nor memory.
    let root = sysroot("sysroot-boot", "cxl-expander.toml", &["--view-after", "0"]);
    let node = |rel: &str| read(&root, &format!("sys/devices/system/node/{rel}"));
    assert_eq!(node("possible"), "0-2\n");
    assert_eq!(node("online"), "0-1\n");
    assert_eq!(node("has_memory"), "0-1\n");
    assert!(!root.join("sys/devices/system/node/node2").exists());
    // Distances are printed to online nodes only.
    assert_eq!(node("node1/distance"), "20 10\n");
    let (rows, _) = lsmem(&root);
    assert_eq!(rows.len(), 4, "{rows:?}");
}

#[test]
fn lsmem_on_the_baseline_config() {
    // configs/system-ram.toml: boot [0, 3 GiB) and [4 GiB, 5 GiB) = blocks 0-23 and 32-39;
    // DIMM 1 (4 GiB at 8 GiB = blocks 64-95) auto-onlined, offlined, onlined movable; the
    // remove of online memory fails (EBUSY) and the overlapping add fails (EEXIST).
    let root = sysroot("sysroot-baseline", "system-ram.toml", &[]);
    let (rows, summary) = lsmem(&root);
    let expected = [
        ["0x0000000000000000-0x0000000007ffffff", "128M", "online", "0", "0", "None"],
        ["0x0000000008000000-0x00000000bfffffff", "2.9G", "online", "1-23", "0", "DMA32"],
        ["0x0000000100000000-0x000000013fffffff", "1G", "online", "32-39", "0", "Normal"],
        ["0x0000000200000000-0x00000002ffffffff", "4G", "online", "64-95", "0", "Movable"],
    ];
    assert_eq!(rows, expected.map(|r| r.map(str::to_string).to_vec()), "{rows:?}");
    // 3 + 1 + 4 GiB.
    assert!(summary.contains("Total online memory:       8G"), "{summary}");
}

#[test]
fn an_existing_tree_is_never_mixed_into() {
    let dir = scratch("sysroot-nonempty");
    std::fs::write(dir.join("keep"), "x").unwrap();
    let run = run_host(P, &["--config", "system-ram.toml", "--sysroot-out", dir.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not empty"), "{}", run.stderr);
}

#[test]
fn a_snapshot_keeps_the_node_links_and_tree() {
    // The model's own tree stands in for a live machine's /: `host snapshot` must carry the
    // block-node links and the node tree over, so lsmem on the capture still has NODE.
    let root = sysroot("sysroot-snapshot-src", "cxl-expander.toml", &[]);
    // A FIFO where a node mask should be: skipped, not read forever.
    let has_cpu = root.join("sys/devices/system/node/has_cpu");
    std::fs::remove_file(&has_cpu).unwrap();
    assert!(Command::new("mkfifo").arg(&has_cpu).status().unwrap().success());
    let out = scratch("sysroot-snapshot").join("capture");
    let run = run_host(P, &["snapshot", "--root", root.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(lsmem(&out), lsmem(&root));
    let node = "sys/devices/system/node";
    for rel in ["possible", "online", "has_memory", "has_normal_memory", "node0/distance", "node2/distance", "node2/meminfo"] {
        assert_eq!(read(&out, &format!("{node}/{rel}")), read(&root, &format!("{node}/{rel}")), "{rel}");
    }
    assert!(!out.join(format!("{node}/has_cpu")).exists(), "the FIFO was not copied");
    assert_eq!(std::fs::read_link(out.join(format!("{node}/node1/memory512"))).unwrap(), Path::new("../../memory/memory512"));
    assert_eq!(std::fs::read_link(out.join("sys/devices/system/memory/memory0/node0")).unwrap(), Path::new("../../node/node0"));
}

#[test]
fn a_snapshot_of_a_root_with_a_fifo_for_a_required_file_fails_in_one_line() {
    let root = sysroot("sysroot-snapshot-fifo", "system-ram.toml", &[]);
    let iomem = root.join("proc/iomem");
    std::fs::remove_file(&iomem).unwrap();
    assert!(Command::new("mkfifo").arg(&iomem).status().unwrap().success());
    let out = scratch("sysroot-snapshot-fifo-out").join("capture");
    let run = run_host(P, &["snapshot", "--root", root.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("proc/iomem: is a FIFO, not a regular file"), "{}", run.stderr);
    // Nothing half-written: the capture was being made beside `out`, and is gone.
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(out.parent().unwrap()).unwrap().count(), 0);
}
