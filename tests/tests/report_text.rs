//! The text report's one style: sizes with page counts, thousands separators, the
//! per-node summary (where each node's memmap lives, its share, what alignment lost),
//! colour only when asked. Every expected number is worked out by hand beside it.

use hotplug_host::report::{self, Paint};
use hotplug_tests::{run_host, run_in_process, workspace_root, Profile};

const P: Profile = Profile::Debug;

fn shipped(name: &str) -> String {
    std::fs::read_to_string(workspace_root().join("configs").join(name)).unwrap()
}

/// The summary row of `node` (cells split on two or more spaces).
fn summary_row(text: &str, node: &str) -> Vec<String> {
    let mut in_summary = false;
    for line in text.lines() {
        if line.starts_with("node  boot memmap") {
            in_summary = true;
            continue;
        }
        if in_summary {
            let cells: Vec<String> = line.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(String::from).collect();
            if cells.first().map(String::as_str) == Some(node) {
                return cells;
            }
        }
    }
    panic!("no summary row for node {node}:\n{text}");
}

#[test]
fn device_summary_puts_each_memmap_where_it_lives() {
    let r = run_in_process("device", &shipped("device.toml"));
    let text = report::text("device.toml", &r);
    // Boot: 8 GiB of RAM = 2,097,152 pages x 64 B of struct page = 128 MiB of memmap.
    // Device: 16 GiB fsdax + 64 GiB devdax = 80 GiB. The fsdax memmap is in the namespace:
    // 16 GiB / 4 KiB x 64 B = 256 MiB. The devdax one (2 MiB compounds) is in RAM: 258 MiB
    // (the outcome line's figure, KERNEL-FACTS 7). Share: (256 + 258) MiB / 80 GiB =
    // 514 / 81,920 = 0.6274 %. Lost to alignment: the namespace sets aside its data
    // offset, 258 MiB (2 reserved + 66,046 free pages = 66,048 pages), of which 256 MiB
    // hold memmap: 512 pages = 2 MiB.
    assert_eq!(
        summary_row(&text, "0"),
        ["0", "128 MiB", "0 B", "0 B", "80 GiB", "258 MiB on node 0", "0 B", "256 MiB", "0.6274 %", "2 MiB"],
        "{text}"
    );
    // One number style: the device pages with their size, the namespace's offset as a size.
    assert!(text.contains("16,126 MiB (4,128,256 pages) of device memory"), "{text}");
    assert!(text.contains("data offset 258 MiB (1.575 %)"), "{text}");
    assert!(text.contains("MemTotal 8,064 MiB (8,257,536 kB)"), "{text}");
}

#[test]
fn a_cxl_nodes_memmap_is_counted_on_the_node_whose_ram_holds_it() {
    let r = run_host(P, &["--config", "cxl-expander.toml", "--strategy", "node"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // 256 GiB hot-added on CPU-less node 2 and onlined Movable; its memmap, 256 GiB / 64 =
    // 4 GiB, comes from node 0 (the `node` strategy): 4 / 256 = 1.5625 %. Node 0 and 1
    // gained nothing: share "-".
    assert_eq!(
        summary_row(&r.stdout, "2"),
        ["2", "0 B", "256 GiB", "256 GiB Movable", "0 B", "4 GiB on node 0", "0 B", "0 B", "1.5625 %", "0 B"],
        "{}",
        r.stdout
    );
    assert_eq!(summary_row(&r.stdout, "1")[8], "-");
    // Boot memmap: node 0's zones span 4,096 + 1,044,480 + 15,728,640 = 16,777,216 pages
    // (64 GiB) -> 64 GiB / 64 = 1 GiB; node 1's 1,048,576 pages (4 GiB) -> 64 MiB. The
    // "all" row sums them: 1,088 MiB.
    assert_eq!(summary_row(&r.stdout, "all")[1], "1,088 MiB");
    // The step line: 2,048 blocks, 4 GiB (1,048,576 pages) of memmap.
    assert!(r.stdout.contains("ok: 2,048 blocks; memmap 4 GiB (1,048,576 pages) from node 0"), "{}", r.stdout);
}

#[test]
fn memmap_on_memory_is_counted_inside_the_ranges() {
    let r = run_host(P, &["--config", "small-vm.toml", "--strategy", "mom"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // 64 + 512 GiB added and onlined Normal, each 128 MiB block holding its own 2 MiB of
    // memmap: 576 GiB / 64 = 9 GiB inside, 1.5625 %, nothing lost (512 pages is a whole
    // number of pageblocks).
    assert_eq!(
        summary_row(&r.stdout, "0"),
        ["0", "16 MiB", "576 GiB", "576 GiB Normal", "0 B", "0 B", "9 GiB", "0 B", "1.5625 %", "0 B"],
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("memmap on memory: 2 MiB (512 pages) of each block's 32,768 pages (1.5625 %)"), "{}", r.stdout);
}

#[test]
fn colour_only_when_asked_and_never_through_a_pipe() {
    let r = run_in_process("virtio-mem", &shipped("virtio-mem.toml"));
    let plain = report::text("virtio-mem.toml", &r);
    let painted = report::text_painted("virtio-mem.toml", &r, Paint { colour: true });
    assert!(!plain.contains('\x1b'));
    // The verdict word is coloured, the rest of the clause list is not: stripping the
    // escapes gives the plain report back.
    assert!(painted.contains("\x1b[32mok\x1b[0m: virtio0 plugged 16 GiB"), "{painted}");
    let stripped = painted.replace("\x1b[32m", "").replace("\x1b[1;31m", "").replace("\x1b[1m", "").replace("\x1b[0m", "");
    assert_eq!(stripped, plain);
    // The tests read the host through a pipe: no escapes, with or without NO_COLOR.
    let piped = run_host(P, &["--config", "virtio-mem.toml"]);
    assert!(!piped.stdout.contains('\x1b'), "{}", piped.stdout);
}

#[test]
fn check_invariants_says_once_what_it_checked() {
    let r = run_host(P, &["--config", "small-vm.toml", "--check-invariants"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // small-vm.toml compares two strategies over its two steps: 2 runs x 2 steps.
    let lines: Vec<&str> = r.stderr.lines().filter(|l| l.contains("invariants")).collect();
    assert_eq!(lines, ["host: invariants held after every step (4 checked in 2 runs)"], "{}", r.stderr);
    assert!(!r.stdout.contains("invariants"), "the report itself is unchanged: {}", r.stdout);
}

#[test]
fn two_socket_server_with_2_gib_blocks_puts_a_cxl_memmap_on_the_nearer_socket() {
    let near = run_host(P, &["--config", "two-socket-cxl.toml", "--strategy", "near"]);
    assert_eq!(near.code, 0, "{}", near.stderr);
    // 2 TiB / 2 GiB = 1,024 blocks; memmap 2 TiB / 4 KiB x 64 B = 32 GiB = 8,388,608
    // pages, all from node 1 (SLIT 20 beats node 0's 32), which has 256 GiB: one eighth.
    assert!(near.stdout.contains("ok: 1,024 blocks; memmap 32 GiB (8,388,608 pages) from node 1"), "{}", near.stdout);
    assert_eq!(summary_row(&near.stdout, "2")[5], "32 GiB on node 1");
    // Memmap on memory: 2 GiB / 4 KiB = 524,288 pages per block, 8,192 of them (32 MiB)
    // its memmap; online, each block manages 524,288 - 8,192: 1,024 x 516,096 = 528,482,304.
    let mom = run_host(P, &["--config", "two-socket-cxl.toml", "--strategy", "mom"]);
    assert_eq!(mom.code, 0, "{}", mom.stderr);
    assert!(mom.stdout.contains("32 MiB (8,192 pages) of each block's 524,288 pages (1.5625 %)"), "{}", mom.stdout);
    assert!(mom.stdout.contains("present +536,870,912, managed +528,482,304 pages"), "{}", mom.stdout);
    assert_eq!(summary_row(&mom.stdout, "2")[6], "32 GiB");
}

#[test]
fn the_readme_excerpt_is_real_output() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let marker = "<!-- excerpt of: host --config device.toml";
    let after = &readme[readme.find(marker).expect("the README's excerpt marker")..];
    let block = after.split("```text\n").nth(1).and_then(|b| b.split("```").next()).expect("a text block after the marker");
    let run = run_host(P, &["--config", "device.toml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    for line in block.lines().filter(|l| *l != "...") {
        // The report shows the config's full path; the excerpt its name.
        assert!(
            lines.iter().any(|l| *l == line || l.ends_with(&format!("/{line}"))),
            "README line not in the report: {line:?}\n{}",
            run.stdout
        );
    }
}
