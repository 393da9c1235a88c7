//! Fidelity round 2: layouts and drivers as a real kernel lays them out, each expected
//! number worked out by hand from the kernel rule named beside it.

use hotplug_host::runner::Outcome;
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

fn zone(v: &Value, node: u64, name: &str) -> (u64, u64, u64, u64) {
    hotplug_tests::json_zone_counters(v, node, name)
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
    let z = hotplug_tests::json_zone(v, node, name);
    (z["free"].as_u64().unwrap(), z["min"].as_u64().unwrap(), z["low"].as_u64().unwrap(), z["high"].as_u64().unwrap())
}

/// The memmap pages each node holds for hot-added memory, by node id.
fn memmap_taken(v: &Value) -> Vec<(u64, u64)> {
    v["runs"][0]["state"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"].as_u64().unwrap(), n["memmap_taken"].as_u64().unwrap()))
        .collect()
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
    assert!(run.stdout.contains("memmap 1 GiB (262,144 pages) from nodes 1 (494 MiB), 0 (530 MiB)"), "{}", run.stdout);
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

// ---- virtio-mem at its own granularity (drivers/virtio/virtio_mem.c, sub-block mode) ----
//
// x86_64, 128 MiB memory blocks, the device's 2 MiB blocks: sub-blocks of max(2 MiB,
// pageblock 2 MiB) = 2 MiB, 64 per memory block, 512 pages each.

/// A 4 GiB guest (DMA 4,096 + DMA32 1,044,480 boot pages), new blocks onlined at once,
/// with `extra` `[machine]` lines and `steps`.
fn guest_4g(extra: &str, steps: &str) -> String {
    format!("[machine]\nauto_online_blocks = \"online\"\n{extra}\n[[machine.node]]\nid = 0\nboot = [{{ start = \"0\", size = \"4GiB\" }}]\n{steps}")
}

/// A virtio-mem `grow` (`start` only on the first) or `shrink` of device virtio0.
fn resize(op: &str, start: Option<&str>, size: &str, extra: &str) -> String {
    let start = start.map(|s| format!("start = \"{s}\"\n")).unwrap_or_default();
    format!("\n[[step]]\nop = \"{op}\"\ndevice = \"virtio0\"\n{start}size = \"{size}\"\n{extra}\n")
}

/// Device virtio0's plugged sub-blocks of memory block `id`, as indices.
fn plugged_sub_blocks(m: &hotplug_host::model::Model, id: u64) -> Vec<u64> {
    let dev = m.virtio.get(&"virtio0".to_string()).expect("virtio0 exists");
    assert!(dev.block_ids(m.geometry.g.memory_block_size).contains(&id), "memory{id} is in virtio0's region");
    let sbs = m.virtio_blocks.get(&id).expect("the device holds the block");
    (0..64).filter(|&i| sbs.is_plugged(i)).collect()
}

#[test]
fn a_300_mib_virtio_mem_grow_adds_three_blocks_and_manages_only_what_is_plugged() {
    use hotplug_host::model::ZoneType;
    use hotplug_host::views::View;
    // 300 MiB = 150 sub-blocks: blocks 32 and 33 full (64 each), block 34 with its lowest
    // 22 (virtio_mem_sbm_plug_and_add_mb plugs sub-blocks 0..count-1). Every block is
    // added and onlined whole: Normal present 3 x 32,768 = 98,304; its unplugged 42
    // sub-blocks are fake-offline (virtio_mem_online_page keeps them from the buddy), so
    // managed = 150 x 512 = 76,800; MemTotal grows by 76,800 x 4 = 307,200 kB.
    // /proc/iomem: the region the model sized for the request, 300 MiB rounded up to
    // blocks = 384 MiB, "virtio0"; inside it the three adds merged.
    let r = hotplug_tests::run_in_process("virtio300", &guest_4g("", &resize("grow", Some("4GiB"), "300MiB", "")));
    let (_, spanned, present, managed) = hotplug_tests::zone(&r.model, 0, ZoneType::Normal);
    assert_eq!((spanned, present, managed), (98_304, 98_304, 76_800));
    assert_eq!(r.model.total_managed() - r.history[0].total_managed(), 76_800);
    assert_eq!(plugged_sub_blocks(&r.model, 34), (0..22).collect::<Vec<_>>());
    assert_eq!(
        View::Iomem.render(&r.model),
        "00000000-ffffffff : System RAM\n100000000-117ffffff : virtio0\n  100000000-117ffffff : System RAM (virtio_mem)\n"
    );
}

#[test]
fn a_shrink_unplugs_the_partial_block_first_then_sub_blocks_from_the_top_around_unmovable_ones() {
    // After the 300 MiB grow (blocks 32, 33 full; 34 holds sub-blocks 0..21), unplug 100
    // MiB = 50 sub-blocks, virtio_mem_sbm_unplug_request's order: kernel-zone partial
    // blocks first: block 34's 22 go and, empty, it is offlined and removed; then full
    // kernel-zone blocks, highest first: block 33, 28 sub-blocks from its highest (fewer
    // than a whole block is asked, so one by one), but sub-block 62 lies in the
    // unmovable range [4 GiB + 128 MiB + 124 MiB, +2 MiB): skipped, it stays plugged
    // (virtio_mem_sbm_unplug_any_sb_online). So 63, 61, 60, ..., 35 go: block 33 keeps
    // 0..34 and 62, a hole at 63. Plugged 200 MiB; Normal present 65,536, managed
    // (64 + 36) x 512 = 51,200.
    let steps = resize("grow", Some("4GiB"), "300MiB", "")
        + &resize("shrink", None, "100MiB", "unmovable_ranges = [{ start = \"0x10fc00000\", size = \"2MiB\" }]");
    let r = hotplug_tests::run_in_process("virtio-shrink", &guest_4g("", &steps));
    let Outcome::Resized(out) = &r.steps[1].outcome else { panic!("{:?}", r.steps[1].outcome) };
    assert_eq!((out.plugged_before, out.plugged, out.blocks.ids().collect::<Vec<_>>()), (300 << 20, 200 << 20, vec![34]));
    let mut kept: Vec<u64> = (0..35).collect();
    kept.push(62);
    assert_eq!(plugged_sub_blocks(&r.model, 33), kept);
    let (_, _, present, managed) = hotplug_tests::zone(&r.model, 0, hotplug_host::model::ZoneType::Normal);
    assert_eq!((present, managed), (65_536, 51_200));
}

#[test]
fn a_shrink_that_cannot_take_everything_is_partial_and_says_how_far_it_got() {
    // 256 MiB plugged (blocks 32, 33, full, online). Shrink 256 MiB with the whole of
    // block 32 unmovable: block 33 (highest) goes whole; block 32's 64 sub-blocks are
    // all busy, skipped: 128 MiB stay plugged of the 0 asked. Outcome `partial`, EBUSY.
    let steps = resize("grow", Some("4GiB"), "256MiB", "")
        + &resize("shrink", None, "256MiB", "unmovable_ranges = [{ start = \"4GiB\", size = \"128MiB\" }]\nexpect = \"partial\"");
    let r = hotplug_tests::run_in_process("virtio-partial", &guest_4g("", &steps));
    let Outcome::Partial(out) = &r.steps[1].outcome else { panic!("{:?}", r.steps[1].outcome) };
    assert_eq!((out.requested, out.plugged_before, out.plugged), (0, 256 << 20, 128 << 20));
    assert_eq!(out.stopped.as_ref().map(|e| e.code.name()), Some("EBUSY".to_string()));
}

#[test]
fn an_unplug_under_auto_movable_takes_movable_blocks_before_normal_ones() {
    // The 4 GiB guest with auto-movable grows virtio0 by 16 GiB at 8 GiB: 96 blocks
    // Movable, then (1 Normal, 3 Movable) x 8 (the ratio 301 allowance, as in
    // scenario_table row21): Normal blocks 160, 164, ..., 188. Unplug 1 GiB = 8 full
    // blocks: virtio_mem_sbm_unplug_request takes full Movable blocks before full
    // kernel-zone ones, highest first: 191, 190, 189, 187, 186, 185, 183, 182; the
    // Normal blocks 188 and 184 between them stay.
    let steps = resize("grow", Some("8GiB"), "16GiB", "") + &resize("shrink", None, "1GiB", "");
    let r = hotplug_tests::run_in_process("virtio-automovable", &guest_4g("online_policy = \"auto-movable\"", &steps));
    let Outcome::Resized(out) = &r.steps[1].outcome else { panic!("{:?}", r.steps[1].outcome) };
    let mut removed: Vec<u64> = out.blocks.ids().collect();
    removed.sort_unstable();
    assert_eq!(removed, vec![182, 183, 185, 186, 187, 189, 190, 191]);
    assert!(r.model.blocks.get(&188).is_some() && r.model.blocks.get(&184).is_some());
}

#[test]
fn offline_virtio_mem_memory_is_capped_at_one_gib_until_it_is_onlined() {
    // auto_online_blocks = offline: virtio_mem_could_add_memory refuses a block once
    // added-but-offline memory plus the block passes max(2 blocks, 1 GiB): 8 blocks (1
    // GiB) go in, the 9th is ENOSPC: a 2 GiB grow ends partial at 1 GiB.
    let steps = resize("grow", Some("4GiB"), "2GiB", "expect = \"partial\"");
    let cfg = guest_4g("", &steps).replace("auto_online_blocks = \"online\"", "auto_online_blocks = \"offline\"");
    let r = hotplug_tests::run_in_process("virtio-offline-cap", &cfg);
    let Outcome::Partial(out) = &r.steps[0].outcome else { panic!("{:?}", r.steps[0].outcome) };
    assert_eq!((out.requested, out.plugged), (2 << 30, 1 << 30));
    assert_eq!(out.stopped.as_ref().map(|e| e.code.name()), Some("ENOSPC".to_string()));
}

// ---- boot as firmware and the command line describe it -----------------------------------

#[test]
fn a_byte_granular_e820_map_and_the_reserved_first_mib_give_a_real_guests_dma_zone() {
    use hotplug_host::model::ZoneType;
    use hotplug_host::views::View;
    // QEMU's e820 for a 2 GiB guest, RAM entries as the kernel keeps them: 0x1000-0x9fbff
    // and 1 MiB-0x7ffdffff. Pages: the whole pages inside (start up, end down): pfns
    // 1..0x9f (0x9fc00 is mid-page) = 158, and 0x100..0x7ffe0. DMA [0, 4,096): present
    // 158 + (4,096 - 256) = 3,998, spanned from its first pfn 1: 4,095. x86 reserves its
    // first MiB (reserve_real_mode: memblock_reserve(0, 1 MiB)): its 158 RAM pages are
    // present but never managed: DMA managed 3,840, as a real 6.12 guest's zoneinfo shows.
    // /proc/iomem prints the entries as the firmware gave them.
    let config = "[machine]\n[[machine.node]]\nid = 0\n\
                  boot = [{ start = \"0x1000\", size = \"0x9ec00\" }, { start = \"1MiB\", size = \"0x7fee0000\" }]\n\
                  reserved_ranges = [{ start = \"0\", size = \"1MiB\" }]\n";
    let r = hotplug_tests::run_in_process("e820", config);
    assert_eq!(hotplug_tests::zone(&r.model, 0, ZoneType::Dma), (1, 4_095, 3_998, 3_840));
    assert!(View::Iomem.render(&r.model).starts_with("00001000-0009fbff : System RAM\n00100000-7ffdffff : System RAM\n"));
}

#[test]
fn defaults_debian_onlines_new_blocks_as_debians_kernels_do_and_a_key_still_overrides_it() {
    // mm/Kconfig's MHP_DEFAULT_ONLINE_TYPE defaults to offline; Debian's 6.12 config sets
    // CONFIG_MHP_DEFAULT_ONLINE_TYPE_ONLINE_AUTO=y, auto_online_blocks "online": 1 GiB at
    // 4 GiB goes online into Normal (8 blocks). With the kernel's defaults, or with
    // auto_online_blocks = "offline" given beside `defaults = "debian"`, it stays offline.
    let cfg = |machine: &str| {
        format!("[machine]\n{machine}\n[[machine.node]]\nid = 0\nboot = [{{ start = \"0\", size = \"1GiB\" }}]\n\n[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"1GiB\"\n")
    };
    let online = |r: &hotplug_host::runner::RunReport| {
        r.model.blocks.values().filter(|b| !b.early && b.state == hotplug_host::model::BlockState::Online).count()
    };
    assert_eq!(online(&hotplug_tests::run_in_process("debian", &cfg("defaults = \"debian\""))), 8);
    assert_eq!(online(&hotplug_tests::run_in_process("kernel", &cfg("defaults = \"kernel\""))), 0);
    assert_eq!(online(&hotplug_tests::run_in_process("override", &cfg("defaults = \"debian\"\nauto_online_blocks = \"offline\""))), 0);
}

/// The 2 GiB QEMU guest of the e820 test, with extra `[machine]` lines.
fn qemu_2g(extra: &str) -> String {
    format!(
        "[machine]\n{extra}\n[[machine.node]]\nid = 0\n\
         boot = [{{ start = \"0x1000\", size = \"0x9ec00\" }}, {{ start = \"1MiB\", size = \"0x7fee0000\" }}]\n\
         reserved_ranges = [{{ start = \"0\", size = \"1MiB\" }}]\n"
    )
}

#[test]
fn movablecore_and_kernelcore_carve_a_boot_time_movable_zone_as_the_kernel_does() {
    use hotplug_host::model::{BlockState, ZoneType};
    // Boot RAM pages: 158 + (0x7ffe0 - 0x100) = 524,158 (early_calculate_totalpages); one
    // node; the highest zone with a range is DMA32 (RAM ends below 4 GiB), so Movable is
    // carved from it, no lower than DMA32's first pfn 4,096 (find_usable_zone_for_movable).
    // movablecore=1G: 262,144 pages (already a multiple of MAX_ORDER_NR_PAGES, 1,024);
    // kernelcore = 524,158 - 262,144 = 262,014; the node's pages below 4,096 (158 +
    // 3,840) count first, then 258,016 from pfn 4,096: Movable at 262,112, rounded up to
    // 1,024: 262,144 = 0x40000 (find_zone_movable_pfns_for_nodes). Movable spans
    // [0x40000, 0x7ffe0) = 262,112 pages, all present; DMA32 [4,096, 0x40000) = 258,048.
    // memblock puts the 16 boot sections' memmap (8,192 pages) top-down: in Movable,
    // managed 262,112 - 8,192 = 253,920. Blocks 8..15 (pfn 0x40000 on) are boot blocks in
    // Movable.
    let r = hotplug_tests::run_in_process("movablecore", &qemu_2g("movablecore = \"1G\""));
    assert_eq!(hotplug_tests::zone(&r.model, 0, ZoneType::Movable), (0x40000, 262_112, 262_112, 253_920));
    let (start, spanned, present, managed) = hotplug_tests::zone(&r.model, 0, ZoneType::Dma32);
    assert_eq!((start, spanned, present, managed), (4_096, 258_048, 258_048, 258_048));
    assert!((8..16).all(|b| r.model.blocks.get(&b).is_some_and(|b| b.state == BlockState::Online && b.zone == Some(ZoneType::Movable))));
    // kernelcore=50%: 524,158 x 100 x 50 / 10,000 = 262,079 kernel pages: 3,998 below
    // pfn 4,096, 258,081 from it: 262,177, rounded up to 263,168 = 0x40400. Movable
    // [0x40400, 0x7ffe0) = 261,088; block 8 (0x40000-0x47fff) now spans DMA32 and
    // Movable: no zone.
    let r = hotplug_tests::run_in_process("kernelcore", &qemu_2g("kernelcore = \"50%\""));
    let (start, spanned, present, _) = hotplug_tests::zone(&r.model, 0, ZoneType::Movable);
    assert_eq!((start, spanned, present), (0x40400, 261_088, 261_088));
    assert_eq!(r.model.blocks.get(&8).map(|b| b.zone), Some(None));
}

// ---- device memory as /proc/iomem shows it -------------------------------------------------

#[test]
fn a_devdax_namespace_splits_into_its_metadata_and_dax0_0_and_kmem_takes_the_data_part() {
    use hotplug_host::views::View;
    // A 4 GiB NFIT region at 5 GiB ("Persistent Memory"). A devdax namespace over all of
    // it, map = "dev": nd_pfn's data offset = ALIGN(start + 8 KiB info block + 64 B x
    // npfns, 2 MiB) - start, npfns = (4 GiB - 8 KiB) / 4 KiB = 1,048,574: 8,192 +
    // 67,108,736 = 0x4002000, up to 2 MiB: 0x4200000. The namespace's claim keeps
    // [5 GiB, +0x4200000) (info block and memmap); dax0.0 (dax/bus.c) holds the rest;
    // both nest in the region. Then dax/kmem takes dax0.0 over (daxctl reconfigure-device
    // --mode=system-ram): device_dax lets go (the pgmap is unmapped, its claim
    // released), kmem claims the data part trimmed inward to 128 MiB blocks,
    // [0x148000000, 0x240000000) = 31 blocks, as a non-busy "dax0.0" with
    // "System RAM (kmem)" inside; the namespace keeps its claim.
    let config = "[machine]\nauto_online_blocks = \"online\"\nplugin_dirs = [\"@PLUGINS@\"]\n\
                  [[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"4GiB\" }]\n\
                  [[machine.pmem]]\nstart = \"5GiB\"\nsize = \"4GiB\"\n\
                  [[strategy]]\nname = \"base\"\nplugin = \"system-ram\"\n\
                  [[strategy]]\nname = \"devdax\"\nplugin = \"device-pgmap\"\noptions = { type = \"generic\", map = \"dev\" }\n\
                  [[step]]\nop = \"memremap\"\nstart = \"5GiB\"\nsize = \"4GiB\"\nstrategy = \"devdax\"\nresource = \"dax0.0\"\nnamespace = \"namespace0.0\"\n\
                  [[step]]\nop = \"add\"\ndriver = \"dax-kmem\"\ndevice = \"dax0.0\"\nstrategy = \"base\"\n";
    let cfg = write_config("devdax_split", P, config);
    let r = hotplug_tests::run_in_process("devdax-split", &std::fs::read_to_string(cfg).unwrap());
    assert_eq!(
        View::Iomem.render(&r.history[1]),
        "00000000-ffffffff : System RAM\n140000000-23fffffff : Persistent Memory\n  140000000-1441fffff : namespace0.0\n  \
         144200000-23fffffff : dax0.0\n"
    );
    let Outcome::Added(a) = &r.steps[1].outcome else { panic!("{:?}", r.steps[1].outcome) };
    assert_eq!(a.blocks.len(), 31);
    assert!(r.model.pgmaps.is_empty());
    assert_eq!(
        View::Iomem.render(&r.model),
        "00000000-ffffffff : System RAM\n140000000-23fffffff : Persistent Memory\n  140000000-1441fffff : namespace0.0\n  \
         148000000-23fffffff : dax0.0\n    148000000-23fffffff : System RAM (kmem)\n"
    );
}

#[test]
fn writing_min_free_kbytes_at_run_time_moves_the_small_vm_wall() {
    // The 1 GiB guest boots with khugepaged's 45,056 kB (section 481 is its wall). A `set`
    // step writes 4,063 to vm.min_free_kbytes (min_free_kbytes_sysctl_handler: the value
    // and setup_per_zone_wmarks): pages_min 1,015, DMA min 16 low 20 (reserve 992), DMA32
    // min 998 low 1,251. 64 GiB: DMA32 (253,952 - 1,251) / 512 = 493 and DMA (4,096 -
    // 1,012) / 512 = 6 above low, DMA32 (1,536 - 998) / 512 = 1 above min; base pages
    // 12 + 26 + 4 = 42 < 513: 500 fit, section 501 fails.
    let config = "[machine]\nplugin_dirs = [\"@PLUGINS@\"]\n\n[[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"1GiB\" }]\n\n\
                  [[step]]\nop = \"set\"\nmin_free_kbytes = 4063\n\n\
                  [[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"64GiB\"\nexpect = \"ENOMEM\"\n";
    let v = run_checked("min_free_write", config);
    let set = &v["runs"][0]["steps"][0]["outcome"]["params"][0];
    assert_eq!((set["name"].as_str(), set["old"].as_str(), set["new"].as_str()), (Some("min_free_kbytes"), Some("45056"), Some("4063")));
    let reason = v["runs"][0]["steps"][1]["outcome"]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("section 501 of 512"), "{reason}");
    assert_eq!(marks(&v, 0, "DMA32").1, 998);
}

#[test]
fn device_memory_on_a_node_without_ram_takes_its_memmap_from_the_nearest_node_with_some() {
    // A CPU-less, memory-less node 1 (a CXL device's node). 1 GiB of device-dax at 8 GiB
    // on node 1, memmap in RAM (map = "mem", no compound pages): 8 sections x 512 pages,
    // PMD by PMD. pagemap_range's arch_add_memory(1) allocates with node 1's zonelist,
    // which holds only node 0 (node 1 has no memory): node 0 pays all 4,096 pages.
    let steps = "\n[[strategy]]\nname = \"dax\"\nplugin = \"device-pgmap\"\noptions = { type = \"generic\" }\n\n\
                 [[step]]\nop = \"memremap\"\nstart = \"8GiB\"\nsize = \"1GiB\"\nnode = 1\nstrategy = \"dax\"\n";
    let v = run_checked("device_fallback", &two_nodes("cpus = false", steps));
    let m = first_outcome(&v);
    assert_eq!(m["result"], "mapped", "{m}");
    assert_eq!((m["memmap_node_pages"].as_u64(), m["memmap_nid"].as_u64()), (Some(4_096), Some(0)));
    assert_eq!(memmap_taken(&v), [(0, 4_096), (1, 0)]);
}

#[test]
fn a_grows_onlined_blocks_are_counted_by_zone() {
    // configs/virtio-mem.toml: 16 GiB in 128 MiB blocks = 128 blocks under auto-movable
    // on a 4 GiB VM. The first 96 fit the 301 % ratio (96 x 128 MiB = 12 GiB = 3 x 4 GiB
    // of boot memory, just under 301 %) and go Movable; from then on each kernel block
    // the group gets allows three more Movable ones: the other 32 are 8 Normal and 24
    // Movable. So 120 Movable and 8 Normal, said as counts, not one name per run.
    let cfg = hotplug_tests::workspace_root().join("configs/virtio-mem.toml");
    let dir = hotplug_tests::artifacts(hotplug_tests::Profile::Debug).display().to_string();
    let run = hotplug_tests::run_host(hotplug_tests::Profile::Debug, &["--config", cfg.to_str().unwrap(), "--plugin-dir", &dir]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let grow = run.stdout.lines().find(|l| l.starts_with("#1 ")).unwrap();
    assert!(grow.ends_with("; onlined 128: 120 Movable, 8 Normal"), "{grow}");
}
