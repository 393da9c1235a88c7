//! Fidelity round 2: layouts and drivers as a real kernel lays them out, each expected
//! number worked out by hand from the kernel rule named beside it.

use hotplug_tests::{run_host, write_config, Profile};
use serde_json::Value;

const P: Profile = Profile::Debug;

/// Run `config` with invariants checked after every step; the JSON report.
fn run_checked(test: &str, config: &str) -> Value {
    let cfg = write_config(test, P, config);
    let run = run_host(P, &["--config", cfg.to_str().unwrap(), "--format", "json", "--check-invariants"]);
    assert_eq!(run.code, 0, "exit {}: {}{}", run.code, run.stderr, run.stdout);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", run.stdout))
}

/// (start_pfn, spanned, present, managed) of `name` on `node` after the run.
fn zone(v: &Value, node: u64, name: &str) -> (u64, u64, u64, u64) {
    let z = v["runs"][0]["state"]["zones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["node"] == node && z["zone"] == name)
        .unwrap_or_else(|| panic!("no zone {name}"));
    (z["start_pfn"].as_u64().unwrap(), z["spanned"].as_u64().unwrap(), z["present"].as_u64().unwrap(), z["managed"].as_u64().unwrap())
}

#[test]
fn bare_metal_boot_range_ending_inside_a_2_gib_block_keeps_its_invariants() {
    // RAM 0-3 GiB and 4-129 GiB, block size probed: bare metal with boot memory ending at
    // or above 64 GiB takes the largest block, 2 GiB (arch/x86/mm/init_64.c
    // probe_memory_block_size). 129 GiB ends inside memory64 (128-130 GiB): that boot
    // block is online in Normal, and Normal spans only to 129 GiB (the zone spans its
    // memblock RAM, free_area_init), so the block's boot RAM, not the whole block, lies
    // inside the span. A `set` step changes nothing of that and the invariants hold.
    let config = r#"
[machine]
memory_block_size = "auto"
plugin_dirs = ["@PLUGINS@"]

[[machine.node]]
id = 0
boot = [{ start = "0", size = "3GiB" }, { start = "4GiB", size = "125GiB" }]

[[step]]
op = "set"
auto_online_blocks = "online"
"#;
    let v = run_checked("bare_metal_2g", config);
    // 2 GiB blocks: 129 GiB of address space holds memory0..memory64, 65 blocks, all online
    // (boot blocks are online), the last one partly RAM.
    assert_eq!(v["runs"][0]["state"]["memory_blocks"], 65);
    assert_eq!(v["runs"][0]["state"]["online_blocks"], 65);
    // Normal: pfn 0x100000 (4 GiB) to 129 GiB = 125 GiB = 32,768,000 pages spanned and present.
    let (start, spanned, present, _) = zone(&v, 0, "Normal");
    assert_eq!((start, spanned, present), (0x100000, 32_768_000, 32_768_000));
    // DMA32: pfn 0x1000 (16 MiB) to 4 GiB spanned = 1,048,576 - 4,096 = 1,044,480; present
    // 16 MiB-3 GiB = 786,432 - 4,096 = 782,336.
    let (start, spanned, present, _) = zone(&v, 0, "DMA32");
    assert_eq!((start, spanned, present), (0x1000, 1_044_480, 782_336));
}

/// The first step's outcome.
fn first_outcome(v: &Value) -> &Value {
    &v["runs"][0]["steps"][0]["outcome"]
}

/// A zone's `free` and watermarks `(free, min, low, high)` after the run.
fn marks(v: &Value, node: u64, name: &str) -> (u64, u64, u64, u64) {
    let z = v["runs"][0]["state"]["zones"].as_array().unwrap().iter().find(|z| z["node"] == node && z["zone"] == name).unwrap();
    (z["free"].as_u64().unwrap(), z["min"].as_u64().unwrap(), z["low"].as_u64().unwrap(), z["high"].as_u64().unwrap())
}

/// The memmap pages each node holds for hot-added memory, by node id.
fn memmap_taken(v: &Value) -> Vec<(u64, u64)> {
    v["runs"][0]["state"]["nodes"].as_array().unwrap().iter().map(|n| (n["node"].as_u64().unwrap(), n["memmap_taken"].as_u64().unwrap())).collect()
}

/// Node 0 with 4 GiB of RAM at 0 (DMA 4,096 pages, DMA32 1,044,480 present, 1,028,096
/// managed once memblock took the 32 boot sections' memmap, 16,384 pages) and `node1`.
fn two_nodes(node1: &str, steps: &str) -> String {
    format!(
        "[machine]\nplugin_dirs = [\"@PLUGINS@\"]\n\n[[machine.node]]\nid = 0\nboot = [{{ start = \"0\", size = \"4GiB\" }}]\n\n\
         [[machine.node]]\nid = 1\n{node1}\n\n[[strategy]]\nname = \"base\"\nplugin = \"system-ram\"\n{steps}"
    )
}

#[test]
fn a_hot_add_to_a_memoryless_node_takes_its_memmap_from_node_0() {
    // Node 1 has no memory and no CPUs. 1 GiB at 8 GiB on node 1, auto-onlined: the add
    // brings the node online (hotadd_init_pgdat builds its zonelist alone), and its
    // memmap (8 sections x 512 = 4,096 pages) is allocated before the node has memory,
    // so vmemmap_alloc_block's alloc_pages_node(1) falls back along node 1's zonelist,
    // whose only node with memory is node 0: DMA32 pays all 8 PMDs (far above its low
    // watermark). Node 1's Normal zone then holds the whole GiB: [0x200000, +262,144).
    let steps = "\n[[step]]\nop = \"add\"\nstart = \"8GiB\"\nsize = \"1GiB\"\nnode = 1\n";
    let config = two_nodes("cpus = false", steps).replace("[machine]\n", "[machine]\nauto_online_blocks = \"online\"\n");
    let v = run_checked("memoryless_node", &config);
    let a = first_outcome(&v);
    assert_eq!(a["result"], "added", "{a}");
    assert_eq!((a["memmap_nid"].as_u64(), a["memmap_node_pages"].as_u64()), (Some(0), Some(4_096)));
    assert_eq!(memmap_taken(&v), [(0, 4_096), (1, 0)]);
    assert_eq!(zone(&v, 1, "Normal"), (0x200000, 262_144, 262_144, 262_144));
    // Node 0's DMA32: 1,028,096 free less the 4,096.
    assert_eq!(marks(&v, 0, "DMA32").0, 1_024_000);
}

#[test]
fn memmap_falls_back_to_the_next_node_once_the_own_node_reaches_its_low_watermark() {
    // Node 1: 512 MiB of RAM at 4 GiB, Normal only: 131,072 present, 129,024 managed (4
    // boot sections' memmap). Watermarks at boot (THP on): khugepaged's min_free_kbytes
    // = 3 populated zones (node 0 DMA, DMA32; node 1 Normal) x 11 x 512 = 16,896 pages,
    // shared by managed pages over 4,096 + 1,028,096 + 129,024 = 1,161,216: node 1
    // Normal min 16,896 x 129,024 / 1,161,216 = 1,877, low + max(469, 129) = 2,346;
    // node 0 DMA32 min 14,959, low 18,698 (reserve 0: node 0 has no Normal zone).
    // 64 GiB at 8 GiB on node 1, left offline: 512 PMDs, node 1's zonelist [1, 0]. The
    // fast path takes from node 1 while it keeps more than its low mark after a PMD:
    // (129,024 - 2,346) / 512 = 247 PMDs, leaving 2,560; then node 0's DMA32 (1,971
    // above low) pays the other 265. Node 1 never drops to its min watermark.
    let steps = "\n[[step]]\nop = \"add\"\nstart = \"8GiB\"\nsize = \"64GiB\"\nnode = 1\n";
    let v = run_checked("fallback_node", &two_nodes("boot = [{ start = \"4GiB\", size = \"512MiB\" }]", steps));
    let a = first_outcome(&v);
    assert_eq!(a["result"], "added", "{a}");
    assert_eq!(memmap_taken(&v), [(0, 265 * 512), (1, 247 * 512)]);
    assert_eq!(a["memmap_nid"], 1);
    assert_eq!(marks(&v, 1, "Normal"), (2_560, 1_877, 2_346, 2_815));
    // The text report names both payers, in the order they paid.
    let cfg = write_config("fallback_node_text", P, &two_nodes("boot = [{ start = \"4GiB\", size = \"512MiB\" }]", steps));
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    assert!(run.stdout.contains("memmap 1 GiB from nodes 1 (494 MiB), 0 (530 MiB)"), "{}", run.stdout);
}

#[test]
fn transparent_hugepages_never_moves_the_small_vm_enomem_to_section_501() {
    // The 1 GiB guest (DMA 4,096, DMA32 253,952 managed). THP never: khugepaged does not
    // run, but hugepage_init still recomputes min_free_kbytes once the first watermarks
    // exist (set_recommended_min_free_kbytes -> calculate_min_free_kbytes): the boot
    // value isqrt(1,032,192 x 16) = 4,063 (1,015 pages: DMA min 16 + 2 x 4, DMA32 min
    // 998 + 2 x 253) set high watermarks DMA 24, DMA32 1,504, so nr_free_buffer_pages
    // = 4,072 + 252,448 = 256,520 and isqrt(256,520 x 4 x 16 = 16,417,280) = 4,051 kB
    // = 1,012 pages: DMA min 16, low 20 (reserve 992); DMA32 min 995, low 1,248.
    // 64 GiB: DMA32 (253,952 - 1,248) / 512 = 493 and DMA (4,096 - 1,012) / 512 = 6
    // PMDs above low, DMA32 1 more above min; base pages 12 + 29 + 4 = 45 < 513: 500
    // sections fit, section 501 fails (with THP on: 481).
    let config = "[machine]\ntransparent_hugepage = \"never\"\nplugin_dirs = [\"@PLUGINS@\"]\n\n[[machine.node]]\nid = 0\n\
                  boot = [{ start = \"0\", size = \"1GiB\" }]\n\n[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"64GiB\"\nexpect = \"ENOMEM\"\n";
    let v = run_checked("thp_never", config);
    let reason = first_outcome(&v)["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("section 501 of 512"), "{reason}");
    assert_eq!(marks(&v, 0, "DMA32"), (253_952, 995, 1_248, 1_501));
    // madvise starts khugepaged as always does: section 481.
    let v = run_checked("thp_madvise", &config.replace("\"never\"", "\"madvise\""));
    assert!(first_outcome(&v)["reason"].as_str().unwrap().contains("section 481 of 512"));
}
