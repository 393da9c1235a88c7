//! The scenario table: each row a scenario, run in-process with the real plugin
//! libraries loaded into the test process, with its expected numbers worked out by hand from the kernel rules
//! (../shared/KERNEL-FACTS.md; the reasoning beside each number).
//!
//! For every row `run_in_process` also checks that each step ended as its `expect` says,
//! that the invariants held after every step, and that every failing step left the model
//! exactly as the snapshot taken before it.
//!
//! Numbers used throughout (x86_64: 4 KiB pages, 64 B struct page, 128 MiB sections):
//! - a section is 32,768 pages; its memmap is 32,768 x 64 B = 2 MiB = 512 pages;
//! - 1 GiB = 262,144 pages = 8 sections = 4,096 memmap pages;
//! - DMA is pfns [0, 4,096), DMA32 [4,096, 1 Mi), Normal from pfn 1 Mi (4 GiB);
//! - the 1 GiB VM below: DMA 4,096 present and managed; DMA32 258,048 present, and its
//!   boot memmap (4,096 pages) taken from it: 253,952 managed. Managed total 258,048
//!   = 1,032,192 kB.
//! - its watermarks at boot (mm/page_alloc.c init_per_zone_wmark_min, then khugepaged's
//!   set_recommended_min_free_kbytes; THP is on by default): first min_free_kbytes =
//!   isqrt(1,032,192 x 16) = 4,063; then khugepaged: 2 populated zones x 11 pageblocks x
//!   512 = 11,264 pages, under 5 % of the pages above the high marks (about 12,826),
//!   so min_free_kbytes = 45,056 = 11,264 pages, shared by managed pages
//!   (__setup_per_zone_wmarks, lowmem 258,048): DMA min 11,264 x 4,096 / 258,048 = 178,
//!   low/high + max(178 / 4, 4,096 / 1,000) = 44 each: 222 / 266; DMA32 min 11,085, gap
//!   max(2,771, 253) = 2,771: low 13,856, high 16,627. lowmem_reserve (ratio 256): DMA
//!   keeps 253,952 / 256 = 992 from GFP_KERNEL; DMA32 keeps nothing (no Normal zone).
//! - memmap for a hot-add comes PMD by PMD (order 9, 512 pages) from node 0's zonelist
//!   (Normal, DMA32, DMA): a zone pays while free - 511 > watermark + reserve, first at
//!   low, then (slow path) at min; after that each PMD is a page-table page plus 512
//!   base pages (vmemmap_populate_hugepages' fall back), order 0 the same way.
//!   From the boot state: DMA32 (253,952 - 13,856) / 512 = 468 PMDs, DMA (4,096 - 1,214)
//!   / 512 = 5; at min DMA32 (14,336 - 11,085) / 512 = 6 more; base pages: DMA 322 above
//!   low + reserve, DMA32 179 above min, DMA 44 more above min + reserve = 545: one PMD
//!   of 513, 32 left. 468 + 5 + 6 + 1 = 480 sections fit; the 481st fails.

use hotplug_host::model::{BlockState, Model, ZoneType};
use hotplug_host::runner::Outcome;
use hotplug_host::views::View;
use hotplug_tests::{added, reason, run_in_process, zone};

/// A 1 GiB guest at pfn 0 with `auto_online_blocks = auto` and extra `[machine]` lines.
fn vm_1g(auto: &str, extra: &str) -> String {
    format!(
        "[machine]\nauto_online_blocks = \"{auto}\"\n{extra}\n[[machine.node]]\nid = 0\nboot = [{{ start = \"0\", size = \"1GiB\" }}]\n"
    )
}

/// A `[[step]]` table.
fn step(op: &str, start: &str, size: &str, extra: &str) -> String {
    format!("\n[[step]]\nop = \"{op}\"\nstart = \"{start}\"\nsize = \"{size}\"\n{extra}\n")
}

fn free(m: &Model, nid: u32) -> u64 {
    m.nodes.get(&nid).unwrap().free_pages()
}

fn mem_total_kb(m: &Model) -> u64 {
    m.total_managed() * 4
}

const GIB_PAGES: u64 = 262_144;

// ---- the add path's errnos, in the kernel's order -------------------------------------

#[test]
fn row01_e2big_past_the_pluggable_range_and_exactly_at_its_edge() {
    // 46 physical address bits: the last pluggable byte is 2^46 - 1 = 64 TiB - 1.
    // [64 TiB - 128 MiB, 64 TiB) ends exactly there: allowed. [64 TiB, +128 MiB) is past
    // it: E2BIG, before the resource or alignment is looked at.
    let cfg = vm_1g("offline", "")
        + &step("add", "0x3ffff8000000", "128MiB", "")
        + &step("add", "64TiB", "128MiB", "expect = \"E2BIG\"")
        + &step("add", "4GiB", "0", "expect = \"E2BIG\"");
    let r = run_in_process("row01", &cfg);
    // The edge block: memoryN with N = (2^46 - 2^27) / 2^27 = 524,287; memmap 512 pages.
    assert_eq!(added(&r, 0).blocks.ids().collect::<Vec<_>>(), vec![524_287]);
    assert_eq!(added(&r, 0).memmap_node_pages, 512);
    assert!(reason(&r, 1).contains("0x3fffffffffff"), "{}", reason(&r, 1));
}

#[test]
fn row02_eexist_before_alignment_einval() {
    // [512 MiB, +128 MiB) lies inside boot System RAM [0, 1 GiB): EEXIST.
    // After a 128 MiB add at 4 GiB, [4 GiB + 64 MiB, +128 MiB) is both misaligned and
    // overlapping: the resource is requested first, so EEXIST, not EINVAL.
    let cfg = vm_1g("offline", "")
        + &step("add", "512MiB", "128MiB", "expect = \"EEXIST\"")
        + &step("add", "4GiB", "128MiB", "")
        + &step("add", "0x104000000", "128MiB", "expect = \"EEXIST\"");
    let r = run_in_process("row02", &cfg);
    assert!(reason(&r, 0).contains("conflicts with \"System RAM\" 0x0-0x3fffffff"), "{}", reason(&r, 0));
    assert!(reason(&r, 2).contains("0x100000000-0x107ffffff"), "{}", reason(&r, 2));
}

#[test]
fn row03_einval_misaligned_start_or_size_then_unknown_node() {
    // Start 4 GiB + 64 MiB, or size 192 MiB: not multiples of the 128 MiB block: EINVAL
    // (and the resource requested a moment before is released). Node 3 does not exist:
    // EINVAL, checked after alignment. The same range then adds cleanly on node 0,
    // which proves no resource was left behind by the failures.
    let cfg = vm_1g("offline", "")
        + &step("add", "0x104000000", "128MiB", "expect = \"EINVAL\"")
        + &step("add", "4GiB", "192MiB", "expect = \"EINVAL\"")
        + &step("add", "4GiB", "128MiB", "node = 3\nexpect = \"EINVAL\"")
        + &step("add", "4GiB", "128MiB", "");
    let r = run_in_process("row03", &cfg);
    assert!(reason(&r, 1).contains("not aligned to the memory block size 128 MiB"), "{}", reason(&r, 1));
    assert!(reason(&r, 2).contains("node 3 does not exist"), "{}", reason(&r, 2));
    assert_eq!(added(&r, 3).blocks.ids().collect::<Vec<_>>(), vec![32]);
}

// ---- memmap from node memory: where a small VM runs out --------------------------------

#[test]
fn row04_small_vm_shipped_config_fails_where_the_rule_predicts() {
    // configs/small-vm-grow.toml: the 1 GiB VM, auto-online.
    // #1 64 GiB: 480 sections' memmap fit (the module's note), section 481 of 512 fails.
    //    They took 479 x 512 + 513 = 245,761 pages; the failing PMD's base pages took the
    //    last 32 above DMA's min + reserve, so nothing is left above any mark.
    // #2 256 GiB (2,048 sections): the same wall, section 481 of 2,048.
    // #3 8 GiB (64 sections, 32,768 pages of memmap) fits (DMA32 alone pays 468 PMDs
    //    above low) and is onlined: Normal 2,097,152 managed; khugepaged's recommendation
    //    is now 3 zones x 11 x 512 = 16,896 pages (5 % of lowmem is far more).
    // #4 256 GiB needs 2,048 x 512 = 1,048,576 pages: Normal alone has (2,097,152 -
    //    18,805 low) / 512 = 4,059 PMDs above low: fits.
    let text = std::fs::read_to_string(hotplug_tests::workspace_root().join("configs/small-vm-grow.toml")).unwrap();
    let r = run_in_process("small-vm-grow", &text);
    assert!(reason(&r, 0).contains("section 481 of 512"), "{}", reason(&r, 0));
    assert!(reason(&r, 0).contains("node 0 DMA free 1,170 (min 178, low 222, reserve 992)"), "{}", reason(&r, 0));
    assert!(reason(&r, 0).contains("node 0 DMA32 free 11,085 (min 11,085, low 13,856, reserve 0)"), "{}", reason(&r, 0));
    assert!(reason(&r, 1).contains("section 481 of 2,048"), "{}", reason(&r, 1));
    // The same numbers as fields: the add starts at 4 GiB (section 32), so its 481st
    // section is number 512 at pfn 512 x 32,768 = 0x1000000.
    let Outcome::Failed(e) = &r.steps[0].outcome else { panic!("step 1 did not fail") };
    let s = e.shortage.as_deref().expect("memmap ENOMEM numbers");
    assert_eq!((s.section, s.index, s.sections, s.pfn), (512, 481, 512, 0x100_0000));
    assert_eq!((s.pages_needed, s.pages_available, s.pages_done, s.nid()), (512, 0, 245_761, Some(0)));
    assert_eq!(added(&r, 2).memmap_node_pages, 32_768);
    assert_eq!(r.history[3].min_free_pages(), 16_896);
    assert_eq!(added(&r, 3).memmap_node_pages, 1_048_576);
    // Normal: 264 GiB from 4 GiB, all online: 264 x 262,144 = 69,206,016 pages.
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0x100000, 69_206_016, 69_206_016, 69_206_016));
    // After 2,112 blocks onlined one by one, each recomputing the watermarks from the
    // last: min_free_kbytes stays khugepaged's 67,584 kB; Normal's min = 16,896 x
    // 69,206,016 / 69,464,064 = 16,833, gap max(4,208, 69,206) = 69,206.
    let n = r.model.nodes.get(&0).unwrap().zone(ZoneType::Normal).watermark;
    assert_eq!((n.min, n.low, n.high), (16_833, 86_039, 155_245));
}

#[test]
fn row05_offline_memory_cannot_hold_memmap() {
    // auto_online_blocks = offline. 8 GiB at 4 GiB takes 32,768 memmap pages (64 PMDs
    // from DMA32, above its low mark) but adds nothing to the free pool: free = 258,048
    // - 32,768 = 225,280, the watermarks as at boot (module note).
    // 64 GiB next: DMA32 (221,184 - 13,856) / 512 = 404 PMDs above low, DMA 5, DMA32 6
    // more above min, one of base pages (as in the module note): 416 fit, section 417
    // fails. Online the 8 GiB: free 225,280 + 2,097,152 = 2,322,432; Normal alone now
    // has (2,097,152 - 18,805 low) / 512 = 4,059 PMDs: the 64 GiB (262,144 pages) fits.
    let cfg = vm_1g("offline", "")
        + &step("add", "4GiB", "8GiB", "")
        + &step("add", "12GiB", "64GiB", "expect = \"ENOMEM\"")
        + &step("online", "4GiB", "8GiB", "")
        + &step("add", "12GiB", "64GiB", "");
    let r = run_in_process("row05", &cfg);
    assert_eq!(free(&r.history[1], 0), 225_280);
    assert!(reason(&r, 1).contains("section 417 of 512"), "{}", reason(&r, 1));
    assert!(reason(&r, 1).contains("no zone of the zonelist (nodes 0)"), "{}", reason(&r, 1));
    assert_eq!(free(&r.history[3], 0), 2_322_432);
    assert_eq!(added(&r, 3).memmap_node_pages, 262_144);
}

// ---- online types and zone choice -------------------------------------------------------

#[test]
fn row06_offline_add_pays_memfree_not_memtotal() {
    // 1 GiB added and left offline: MemTotal unchanged (1,032,192 kB), MemFree down by
    // its memmap, 4,096 pages = 16,384 kB (a real 6.12 kernel measured 16,644 kB: the
    // rest is block devices and other small allocations the model does not count).
    // The blocks' valid_zones: no zone spans them, plain online picks Normal, and
    // online_movable offers Movable: "Normal Movable".
    let r = run_in_process("row06", &(vm_1g("offline", "") + &step("add", "4GiB", "1GiB", "")));
    assert_eq!(mem_total_kb(&r.model), 1_032_192);
    assert_eq!(View::Meminfo.render(&r.model), "MemTotal:        1032192 kB\nMemFree:         1015808 kB\n");
    assert!((32..40).all(|b| r.model.blocks.get(&b).unwrap().state == BlockState::Offline));
    assert_eq!(r.model.valid_zones(32).as_deref(), Some("Normal Movable"));
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0, 0, 0, 0));
}

#[test]
fn row07_auto_online_goes_to_the_kernel_zone() {
    // auto_online_blocks = online: 1 GiB at 4 GiB, no DMA/DMA32 span intersects it and
    // no Movable span exists: Normal. start 0x100000, spanned = present = managed =
    // 262,144. MemTotal (258,048 + 262,144) x 4 = 2,080,768 kB. Free 258,048 + 262,144
    // - 4,096 = 516,096. valid_zones of an online block is its zone.
    let r = run_in_process("row07", &(vm_1g("online", "") + &step("add", "4GiB", "1GiB", "")));
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0x100000, GIB_PAGES, GIB_PAGES, GIB_PAGES));
    assert_eq!(mem_total_kb(&r.model), 2_080_768);
    assert_eq!(free(&r.model, 0), 516_096);
    assert_eq!(r.model.valid_zones(39).as_deref(), Some("Normal"));
    assert_eq!(added(&r, 0).onlined.len(), 8);
}

#[test]
fn row08_online_kernel_then_plain_online_beside_it() {
    // Offline add of 1 GiB (blocks 32-39), then online_kernel of blocks 32-33: Normal
    // [0x100000, 0x110000), 65,536 pages. Block 34's valid_zones: Normal's span ends
    // where it starts (no intersection), Movable is empty: default Normal, then Movable.
    // Plain online of block 35 (pfn 0x118000): again neither zone spans it -> Normal;
    // the span grows over the hole at block 34: [0x100000, 0x120000) = 131,072 spanned,
    // 98,304 present and managed.
    let cfg = vm_1g("offline", "")
        + &step("add", "4GiB", "1GiB", "")
        + &step("online", "4GiB", "256MiB", "online_type = \"online_kernel\"")
        + &step("online", "0x118000000", "128MiB", "");
    let r = run_in_process("row08", &cfg);
    assert_eq!(zone(&r.history[2], 0, ZoneType::Normal), (0x100000, 65_536, 65_536, 65_536));
    assert_eq!(r.history[2].valid_zones(34).as_deref(), Some("Normal Movable"));
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0x100000, 131_072, 98_304, 98_304));
    // The hole at block 34 is now inside Normal's span: valid_zones still "Normal Movable".
    assert_eq!(r.model.valid_zones(34).as_deref(), Some("Normal Movable"));
}

#[test]
fn row09_online_movable_and_a_plain_online_that_follows_movable() {
    // online_movable blocks 32 and 34: Movable spans [0x100000, 0x118000). Block 33 lies
    // inside that span and no kernel zone spans it: plain online picks Movable, so its
    // valid_zones is "Movable Normal" (default first, then online_kernel's Normal).
    // After onlining 33: Movable spanned = present = managed = 3 x 32,768 = 98,304.
    let cfg = vm_1g("offline", "")
        + &step("add", "4GiB", "1GiB", "")
        + &step("online", "4GiB", "128MiB", "online_type = \"online_movable\"")
        + &step("online", "0x110000000", "128MiB", "online_type = \"online_movable\"")
        + &step("online", "0x108000000", "128MiB", "");
    let r = run_in_process("row09", &cfg);
    assert_eq!(r.history[3].valid_zones(33).as_deref(), Some("Movable Normal"));
    assert_eq!(zone(&r.model, 0, ZoneType::Movable), (0x100000, 98_304, 98_304, 98_304));
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0, 0, 0, 0));
    // Movable is not a kernel zone but its pages are managed: MemTotal counts them.
    assert_eq!(mem_total_kb(&r.model), (258_048 + 98_304) * 4);
}

#[test]
fn row10_auto_online_movable_and_movable_node() {
    // auto_online_blocks = online_movable: 512 MiB (131,072 pages) lands in Movable.
    let r = run_in_process("row10a", &(vm_1g("online_movable", "") + &step("add", "4GiB", "512MiB", "")));
    assert_eq!(zone(&r.model, 0, ZoneType::Movable), (0x100000, 131_072, 131_072, 131_072));
    assert_eq!(mem_total_kb(&r.model), (258_048 + 131_072) * 4);
    // movable_node with plain online: neither zone spans the range -> Movable.
    let r = run_in_process("row10b", &(vm_1g("online", "movable_node = true") + &step("add", "4GiB", "512MiB", "")));
    assert_eq!(zone(&r.model, 0, ZoneType::Movable), (0x100000, 131_072, 131_072, 131_072));
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0, 0, 0, 0));
}

#[test]
fn row11_online_errors_leave_the_model_unchanged() {
    // Onlining an online block: EINVAL (writing the current state). Offlining a block
    // the step marks unmovable: EBUSY. Removing online memory: EBUSY. A block that does
    // not exist: ENOENT. The range forms run all-or-nothing (snapshots checked).
    let cfg = vm_1g("online", "")
        + &step("add", "4GiB", "512MiB", "")
        + &step("online", "4GiB", "512MiB", "expect = \"EINVAL\"")
        + &step("offline", "4GiB", "512MiB", "unmovable = true\nexpect = \"EBUSY\"")
        + &step("remove", "4GiB", "512MiB", "expect = \"EBUSY\"")
        + &step("online", "64GiB", "128MiB", "expect = \"ENOENT\"");
    let r = run_in_process("row11", &cfg);
    assert!(reason(&r, 2).contains("unmovable"), "{}", reason(&r, 2));
    assert!(reason(&r, 3).contains("memory32 is online"), "{}", reason(&r, 3));
}

// ---- geometry ---------------------------------------------------------------------------

#[test]
fn row12_two_gib_blocks_from_the_probe() {
    // memory_block_size = "auto" on a hypervisor with boot RAM ending at 98 GiB: the end
    // is >= 64 GiB, so the probe takes the largest of 2 GiB..128 MiB dividing 98 GiB:
    // 2 GiB (98 = 49 x 2). A 2 GiB add at 128 GiB is one block, memory64, with 16
    // sections x 512 = 8,192 memmap pages. A 1 GiB add is not a block multiple: EINVAL.
    // Normal at boot: [4 GiB, 98 GiB) = [0x100000, 0x1880000); after onlining the new
    // block it spans to 130 GiB = 0x2080000: spanned 0x1f80000 = 33,030,144 pages,
    // present (94 + 2) GiB = 25,165,824 pages.
    let machine = "[machine]\nauto_online_blocks = \"online\"\nmemory_block_size = \"auto\"\nhypervisor = true\n\
                   [[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"98GiB\" }]\n";
    let cfg = machine.to_string() + &step("add", "128GiB", "2GiB", "") + &step("add", "130GiB", "1GiB", "expect = \"EINVAL\"");
    let r = run_in_process("row12", &cfg);
    assert_eq!(r.model.geometry.g.memory_block_size, 2 << 30);
    assert_eq!(added(&r, 0).blocks.ids().collect::<Vec<_>>(), vec![64]);
    assert_eq!(added(&r, 0).memmap_node_pages, 8_192);
    let (start, spanned, present, _) = zone(&r.model, 0, ZoneType::Normal);
    assert_eq!((start, spanned, present), (0x100000, 33_030_144, 25_165_824));
    assert!(reason(&r, 1).contains("block size 2 GiB"), "{}", reason(&r, 1));
}

// ---- NUMA -------------------------------------------------------------------------------

#[test]
fn row13_two_nodes_memmap_on_the_adding_node_or_on_memmap_nid() {
    // Node 0 [0, 2 GiB): DMA 4,096; DMA32 520,192 present, 16 boot sections' memmap
    // (8,192) taken from it: 512,000 managed; node managed 516,096.
    // Node 1 [4 GiB, 6 GiB): Normal [0x100000, 0x180000), 524,288 present, 516,096 managed.
    // #1 1 GiB at 8 GiB on node 1: memmap 4,096 pages from node 1; onlined into node 1's
    //    Normal, which spans [0x100000, 0x240000) = 1,310,720 with 786,432 present.
    //    Node 1 free = 516,096 + 262,144 - 4,096 = 774,144.
    // #2 the same at 12 GiB through a strategy with memmap_nid = 0: the memmap comes from
    //    node 0 (free 516,096 - 4,096 = 512,000); node 1 free rises by 262,144 to
    //    1,036,288; Normal spans [0x100000, 0x340000) = 2,359,296, present 1,048,576.
    // #3 node 2 does not exist: EINVAL.
    let cfg = "[machine]\nauto_online_blocks = \"online\"\n\
               [[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"2GiB\" }]\n\
               [[machine.node]]\nid = 1\nboot = [{ start = \"4GiB\", size = \"2GiB\" }]\n\
               [[strategy]]\nname = \"base\"\nplugin = \"system-ram\"\n\
               [[strategy]]\nname = \"far\"\nplugin = \"system-ram\"\noptions = { memmap_nid = 0 }\n"
        .to_string()
        + &step("add", "8GiB", "1GiB", "node = 1\nstrategy = \"base\"")
        + &step("add", "12GiB", "1GiB", "node = 1\nstrategy = \"far\"")
        + &step("add", "16GiB", "128MiB", "node = 2\nstrategy = \"base\"\nexpect = \"EINVAL\"");
    let r = run_in_process("row13", &cfg);
    let boot = &r.history[0];
    assert_eq!(zone(boot, 0, ZoneType::Dma32), (4_096, 520_192, 520_192, 512_000));
    assert_eq!(zone(boot, 1, ZoneType::Normal), (0x100000, 524_288, 524_288, 516_096));
    assert_eq!((added(&r, 0).memmap_nid, added(&r, 0).memmap_node_pages), (1, 4_096));
    assert_eq!(zone(&r.history[1], 1, ZoneType::Normal), (0x100000, 1_310_720, 786_432, 778_240));
    assert_eq!(free(&r.history[1], 1), 774_144);
    assert_eq!((added(&r, 1).memmap_nid, added(&r, 1).memmap_node_pages), (0, 4_096));
    assert_eq!(free(&r.model, 0), 512_000);
    assert_eq!(free(&r.model, 1), 1_036_288);
    // Watermarks after the 16 blocks onlined one by one (init_per_zone_wmark_min each
    // time): khugepaged's 3 zones x 11 x 512 = 16,896 pages (67,584 kB); lowmem 4,096 +
    // 512,000 + 1,040,384 = 1,556,480; node 1 Normal min 16,896 x 1,040,384 / 1,556,480
    // = 11,293, gap max(2,823, 1,040) = 2,823: low 14,116, high 16,939, promo 19,762.
    let zoneinfo = View::Zoneinfo.render(&r.model);
    assert!(
        zoneinfo.contains(
            "Node 1, zone   Normal\n  pages free     1036288\n        boost    0\n        min      11293\n        low      14116\n        \
             high     16939\n        promo    19762\n        spanned  2359296\n        present  1048576\n        managed  1040384\n        \
             cma      0\n        protection: (0, 0, 0, 0, 0)\n  start_pfn:           1048576\n"
        ),
        "{zoneinfo}"
    );
}

// ---- offline, span shrinking, remove ----------------------------------------------------

#[test]
fn row14_offline_shrinks_spans_only_at_the_edges_then_remove_restores_boot() {
    // 1 GiB online at 4 GiB: Normal [0x100000, 0x140000), blocks 32-39.
    // #2 offline block 35 (middle): a hole; spanned stays 262,144, present 229,376.
    // #3 offline block 39 (last): the end moves to block 38's end 0x138000: spanned
    //    229,376, present 196,608.
    // #4 offline block 32 (first): the start moves to block 33 (0x108000): spanned
    //    0x30000 = 196,608, present 163,840.
    // #5 remove while 33, 34, 36-38 are online: EBUSY.
    // #6 offline 33-34: the start moves past the hole at 35 to block 36 (0x120000):
    //    spanned 0x18000 = 98,304 = present.
    // #7 offline 36-38: nothing online is left in Normal: span 0.
    // #8 remove: 4,096 memmap pages back to node 0; the machine is as at boot, max_pfn
    //    aside (x86_64 never lowers it).
    let cfg = vm_1g("online", "")
        + &step("add", "4GiB", "1GiB", "")
        + &step("offline", "0x118000000", "128MiB", "")
        + &step("offline", "0x138000000", "128MiB", "")
        + &step("offline", "4GiB", "128MiB", "")
        + &step("remove", "4GiB", "1GiB", "expect = \"EBUSY\"")
        + &step("offline", "0x108000000", "256MiB", "")
        + &step("offline", "0x120000000", "384MiB", "")
        + &step("remove", "4GiB", "1GiB", "");
    let r = run_in_process("row14", &cfg);
    let normal = |i: usize| zone(&r.history[i], 0, ZoneType::Normal);
    assert_eq!(normal(2), (0x100000, 262_144, 229_376, 229_376));
    assert_eq!(normal(3), (0x100000, 229_376, 196_608, 196_608));
    assert_eq!(normal(4), (0x108000, 196_608, 163_840, 163_840));
    assert_eq!(normal(6), (0x120000, 98_304, 98_304, 98_304));
    assert_eq!(normal(7), (0, 0, 0, 0));
    match &r.steps[7].outcome {
        Outcome::Removed(rm) => {
            assert_eq!(rm.memmap_freed_node_pages, 4_096);
            assert_eq!(rm.blocks.len(), 8);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(free(&r.model, 0), 258_048);
    assert_eq!(r.model.differences(&r.history[0]), vec!["max_pfn"]);
    assert_eq!(View::Iomem.render(&r.model), "00000000-3fffffff : System RAM\n");
}

#[test]
fn row15_offline_then_remove_of_two_adds_and_the_hole_between() {
    // Two 512 MiB adds at 4 GiB and 5 GiB, left offline. One remove over
    // [4 GiB, 5.5 GiB) names blocks 36-39 ([4.5 GiB, 5 GiB)), which do not exist: the
    // model refuses with ENOENT (its rule: a remove names existing blocks). Each add
    // removed on its own works; the iomem tree shows both resources until then.
    let cfg = vm_1g("offline", "")
        + &step("add", "4GiB", "512MiB", "")
        + &step("add", "5GiB", "512MiB", "")
        + &step("remove", "4GiB", "1536MiB", "expect = \"ENOENT\"")
        + &step("remove", "5GiB", "512MiB", "")
        + &step("remove", "4GiB", "512MiB", "");
    let r = run_in_process("row15", &cfg);
    assert_eq!(
        View::Iomem.render(&r.history[2]),
        "00000000-3fffffff : System RAM\n100000000-11fffffff : System RAM\n140000000-15fffffff : System RAM\n"
    );
    assert!(reason(&r, 2).contains("memory36 does not exist"), "{}", reason(&r, 2));
    // Offline adds never joined the free pool; removing them gives back their memmap:
    // 258,048 again.
    assert_eq!(free(&r.model, 0), 258_048);
    assert_eq!(r.model.differences(&r.history[0]), vec!["max_pfn"]);
}

#[test]
fn row16_zoneinfo_iomem_meminfo_after_a_grow() {
    // The views after the small VM's 8 GiB grow (configs/small-vm-grow.toml step 3):
    // Normal [0x100000, +2,097,152) all present and managed; MemTotal (258,048 +
    // 2,097,152) x 4 = 9,420,800 kB; MemFree = 2,322,432 x 4 = 9,289,728 kB (row04).
    let text = std::fs::read_to_string(hotplug_tests::workspace_root().join("configs/small-vm-grow.toml")).unwrap();
    let r = run_in_process("small-vm-views", &text);
    let m = &r.history[3];
    // Normal's watermarks after its 64 blocks: khugepaged's 3 zones x 11 x 512 = 16,896
    // pages shared over lowmem 2,355,200: min 16,896 x 2,097,152 / 2,355,200 = 15,044,
    // gap max(3,761, 2,097) = 3,761.
    assert!(View::Zoneinfo.render(m).contains(
        "Node 0, zone   Normal\n  pages free     2097152\n        boost    0\n        min      15044\n        low      18805\n        \
         high     22566\n        promo    26327\n        spanned  2097152\n        present  2097152\n        managed  2097152\n"
    ));
    assert_eq!(View::Meminfo.render(m), "MemTotal:        9420800 kB\nMemFree:         9289728 kB\n");
    assert_eq!(View::Iomem.render(m), "00000000-3fffffff : System RAM\n100000000-2ffffffff : System RAM\n");
}

// ---- part 2: drivers, memory groups, auto-movable, a captured machine --------------------
//
// The 4 GiB VM below: DMA 4,096 + DMA32 [4,096, 1 Mi) = 1,044,480 present at boot, all
// early kernel pages: KERNEL = 1,048,576. auto_movable_ratio 301 allows MOVABLE up to
// 301 x 1,048,576 / 100 = 3,156,213 pages (integer division) machine-wide.

fn vm_4g(extra: &str) -> String {
    format!("[machine]\nauto_online_blocks = \"online\"\nonline_policy = \"auto-movable\"\n{extra}\n[[machine.node]]\nid = 0\nboot = [{{ start = \"0\", size = \"4GiB\" }}]\n")
}

fn dimm(start: &str, size: &str, extra: &str) -> String {
    step("add", start, size, &format!("driver = \"acpi-dimm\"\n{extra}"))
}

#[test]
fn row17_auto_movable_first_dimm_movable_second_normal() {
    // DIMM A, 8 GiB (2,097,152 pages, one static group): 0 + 2,097,152 <= 3,156,213:
    // Movable. DIMM B, 8 GiB: 2,097,152 + 2,097,152 = 4,194,304 > 3,156,213: the whole
    // group goes to the kernel zone, Normal.
    let cfg = vm_4g("") + &dimm("8GiB", "8GiB", "") + &dimm("16GiB", "8GiB", "");
    let r = run_in_process("row17", &cfg);
    assert_eq!(zone(&r.model, 0, ZoneType::Movable), (0x200000, 2_097_152, 2_097_152, 2_097_152));
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0x400000, 2_097_152, 2_097_152, 2_097_152));
    assert_eq!(r.model.valid_zones(64).as_deref(), Some("Movable"));
    // Two static groups, each sized by its DIMM.
    let groups: Vec<_> = r.model.groups.values().map(|g| (g.kind, g.present_movable_pages, g.present_kernel_pages)).collect();
    use hotplug_host::model::groups::GroupKind::Static;
    assert_eq!(groups, vec![(Static { max_pages: 2_097_152 }, 2_097_152, 0), (Static { max_pages: 2_097_152 }, 0, 2_097_152)]);
}

#[test]
fn row18_auto_movable_ratio_zero_never_goes_movable() {
    // auto_movable_ratio = 0: auto_movable_zone_for_pfn returns the kernel zone at once.
    let r = run_in_process("row18", &(vm_4g("auto_movable_ratio = 0") + &dimm("8GiB", "1GiB", "")));
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0x200000, GIB_PAGES, GIB_PAGES, GIB_PAGES));
    assert_eq!(zone(&r.model, 0, ZoneType::Movable), (0, 0, 0, 0));
}

fn two_node_auto_movable(numa_aware: bool) -> String {
    format!(
        "[machine]\nauto_online_blocks = \"online\"\nonline_policy = \"auto-movable\"\nauto_movable_numa_aware = {numa_aware}\n\
         [[machine.node]]\nid = 0\nboot = [{{ start = \"0\", size = \"4GiB\" }}]\n\
         [[machine.node]]\nid = 1\nboot = [{{ start = \"4GiB\", size = \"1GiB\" }}]\n"
    ) + &dimm("8GiB", "2GiB", "node = 1")
        + &dimm("16GiB", "2GiB", "node = 1")
}

#[test]
fn row19_auto_movable_per_node_limit() {
    // KERNEL: node 0 1,048,576, node 1 262,144 (Normal [4 GiB, 5 GiB)); machine-wide
    // 1,310,720 -> limit 3,945,267; node 1's limit 301 x 262,144 / 100 = 789,053.
    // First 2 GiB DIMM on node 1 (524,288): fits both: Movable. Second: node 1 would
    // reach 1,048,576 > 789,053: Normal. Without numa awareness only the machine-wide
    // limit counts: 1,048,576 <= 3,945,267: Movable too.
    let r = run_in_process("row19a", &two_node_auto_movable(true));
    assert_eq!(zone(&r.model, 1, ZoneType::Movable), (0x200000, 524_288, 524_288, 524_288));
    // Node 1's Normal grows from [4 GiB, 5 GiB) to the second DIMM's end, 18 GiB:
    // spanned 14 GiB = 3,670,016 pages, present 262,144 + 524,288.
    let (s, spanned, present, _) = zone(&r.model, 1, ZoneType::Normal);
    assert_eq!((s, spanned, present), (0x100000, 3_670_016, 786_432));
    let r = run_in_process("row19b", &two_node_auto_movable(false));
    assert_eq!(zone(&r.model, 1, ZoneType::Movable), (0x200000, 2_621_440, 1_048_576, 1_048_576));
}

#[test]
fn row20_valid_zones_under_auto_movable_put_movable_first() {
    // An offline block of a fresh 1 GiB DIMM: a plain online would pick Movable
    // (262,144 <= 3,156,213), online_kernel Normal: "Movable Normal".
    let cfg = vm_4g("").replace("auto_online_blocks = \"online\"", "auto_online_blocks = \"offline\"") + &dimm("8GiB", "1GiB", "");
    let r = run_in_process("row20", &cfg);
    assert_eq!(r.model.valid_zones(64).as_deref(), Some("Movable Normal"));
}

#[test]
fn row21_virtio_mem_grow_lets_its_own_kernel_memory_raise_the_allowance() {
    // virtio0 grows by 16 GiB at 8 GiB: 128 blocks, each its own add of one unit (a
    // block) in one dynamic group. Block by block: Movable while (m + 1) x 32,768 <=
    // 301 x (1,048,576 + k x 32,768) / 100, k = the group's kernel blocks. k = 0: 96
    // blocks Movable (96 x 32,768 = 3,145,728; a 97th would be 3,178,496 > 3,156,213),
    // the 97th kernel; k = 1: limit 3,254,845, three more Movable (up to 99 blocks =
    // 3,244,032), then kernel; and so on: 96 Movable, then (1 kernel, 3 Movable) x 8.
    // Movable 120 blocks = 3,932,160 pages, Normal 8 blocks = 262,144.
    // /proc/iomem: the 128 adds merged into one "System RAM (virtio_mem)" line, nested in
    // the device's region (virtio_mem_create_resource: "virtio0", not busy).
    let cfg = vm_4g("") + "\n[[step]]\nop = \"grow\"\ndevice = \"virtio0\"\nstart = \"8GiB\"\nsize = \"16GiB\"\n";
    let r = run_in_process("row21", &cfg);
    let (_, _, movable, _) = zone(&r.model, 0, ZoneType::Movable);
    let (_, _, normal, _) = zone(&r.model, 0, ZoneType::Normal);
    assert_eq!((movable, normal), (3_932_160, 262_144));
    let kernel_blocks: Vec<u64> = r.model.blocks.values().filter(|b| b.zone == Some(ZoneType::Normal)).map(|b| b.id).collect();
    assert_eq!(kernel_blocks, vec![160, 164, 168, 172, 176, 180, 184, 188]);
    assert_eq!(
        View::Iomem.render(&r.model),
        "00000000-ffffffff : System RAM\n200000000-5ffffffff : virtio0\n  200000000-5ffffffff : System RAM (virtio_mem)\n"
    );
}

#[test]
fn row22_virtio_mem_shrink_unplugs_from_the_end() {
    // Grow 2 GiB (16 blocks, all Movable: 524,288 <= limit), shrink 1 GiB: fully plugged
    // Movable blocks go highest first (virtio_mem_sbm_unplug_request), 79..72, each
    // offlined and removed; the merged resource is trimmed to [8 GiB, 9 GiB) inside the
    // device's region, which stays [8 GiB, 10 GiB). Shrinking
    // more than is plugged is EINVAL, an unknown device ENODEV, an unmovable range EBUSY;
    // shrinking the rest leaves the machine as at boot (max_pfn aside).
    let grow = "\n[[step]]\nop = \"grow\"\ndevice = \"virtio0\"\nstart = \"8GiB\"\nsize = \"2GiB\"\n";
    let shrink = |size: &str, extra: &str| format!("\n[[step]]\nop = \"shrink\"\ndevice = \"virtio0\"\nsize = \"{size}\"\n{extra}\n");
    let cfg = vm_4g("")
        + grow
        + &shrink("1GiB", "")
        + &shrink("2GiB", "expect = \"EINVAL\"")
        + &shrink("1GiB", "unmovable = true\nexpect = \"EBUSY\"")
        + "\n[[step]]\nop = \"shrink\"\ndevice = \"virtio9\"\nsize = \"1GiB\"\nexpect = \"ENODEV\"\n"
        + &shrink("1GiB", "");
    let r = run_in_process("row22", &cfg);
    assert_eq!(
        View::Iomem.render(&r.history[2]),
        "00000000-ffffffff : System RAM\n200000000-27fffffff : virtio0\n  200000000-23fffffff : System RAM (virtio_mem)\n"
    );
    assert_eq!(zone(&r.history[2], 0, ZoneType::Movable), (0x200000, GIB_PAGES, GIB_PAGES, GIB_PAGES));
    assert_eq!(r.model.differences(&r.history[0]), vec!["max_pfn"]);
}

#[test]
fn row23_dax_kmem_trims_nests_and_groups() {
    // A DIMM of 8 GiB first (Movable, 2,097,152). dax0.0 at 24 GiB + 4 KiB, 4 GiB long:
    // trimmed inward to whole blocks [24 GiB + 128 MiB, 28 GiB) = 31 blocks = 1,015,808
    // pages; 2,097,152 + 1,015,808 = 3,112,960 <= 3,156,213: Movable, the whole group.
    // dax1.0, 4 GiB at 32 GiB: 3,112,960 + 1,048,576 > 3,156,213: all Normal.
    // A dax device with no whole block in it is EINVAL.
    let kmem = |dev: &str, start: &str, size: &str, extra: &str| {
        step("add", start, size, &format!("driver = \"dax-kmem\"\ndevice = \"{dev}\"\n{extra}"))
    };
    let cfg = vm_4g("")
        + &dimm("8GiB", "8GiB", "")
        + &kmem("dax0.0", "0x600001000", "4GiB", "")
        + &kmem("dax1.0", "32GiB", "4GiB", "")
        + &kmem("dax2.0", "0xa00001000", "64MiB", "expect = \"EINVAL\"");
    let r = run_in_process("row23", &cfg);
    assert_eq!(added(&r, 1).blocks.len(), 31);
    let (_, _, movable, _) = zone(&r.model, 0, ZoneType::Movable);
    assert_eq!(movable, 2_097_152 + 1_015_808);
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0x800000, GIB_PAGES * 4, GIB_PAGES * 4, GIB_PAGES * 4));
    let iomem = View::Iomem.render(&r.model);
    assert!(iomem.contains("608000000-6ffffffff : dax0.0\n  608000000-6ffffffff : System RAM (kmem)\n"), "{iomem}");
    assert!(iomem.contains("800000000-8ffffffff : dax1.0\n  800000000-8ffffffff : System RAM (kmem)\n"), "{iomem}");
}

#[test]
fn row24_a_static_group_with_kernel_memory_goes_all_kernel() {
    // auto_online_blocks offline: a 1 GiB DIMM's first block onlined online_kernel
    // (Normal); then a plain online of the other seven: the group already has kernel
    // pages, so they go to the kernel zone although the ratio would allow Movable.
    let cfg = vm_4g("").replace("auto_online_blocks = \"online\"", "auto_online_blocks = \"offline\"")
        + &dimm("8GiB", "1GiB", "")
        + &step("online", "8GiB", "128MiB", "online_type = \"online_kernel\"")
        + &step("online", "0x208000000", "896MiB", "");
    let r = run_in_process("row24", &cfg);
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0x200000, GIB_PAGES, GIB_PAGES, GIB_PAGES));
    assert_eq!(r.history[2].valid_zones(65).as_deref(), Some("Normal Movable"));
}

#[test]
fn row25_removing_a_dimm_unregisters_its_group_and_resources() {
    // Offline and remove the DIMM and the dax device: groups, iomem (the dax parent
    // too) and zones as at boot, max_pfn aside.
    let cfg = vm_4g("")
        + &dimm("8GiB", "1GiB", "")
        + &step("add", "16GiB", "1GiB", "driver = \"dax-kmem\"\ndevice = \"dax0.0\"")
        + &step("offline", "8GiB", "1GiB", "")
        + &step("remove", "8GiB", "1GiB", "")
        + &step("offline", "16GiB", "1GiB", "")
        + &step("remove", "16GiB", "1GiB", "");
    let r = run_in_process("row25", &cfg);
    assert_eq!(r.history[2].groups.len(), 2);
    assert_eq!(r.model.differences(&r.history[0]), vec!["max_pfn"]);
}

#[test]
fn row26_the_captured_machine_takes_a_64_gib_dimm() {
    // Booted from ../shared's 6.18 capture (auto_online_blocks "offline", contig-zones):
    // 64 GiB at 64 GiB = memory512..1023, offline, memmap 262,144 pages from node 0.
    // Their valid_zones: Normal does not reach 64 GiB and Movable is empty: "Normal
    // Movable".
    let capture = hotplug_tests::workspace_root().join("../shared/data/real-machines/x86_64-vm-6.18-24g");
    let cfg = format!("[machine]\nfrom = \"{}\"\n", capture.display()) + &dimm("64GiB", "64GiB", "");
    let r = run_in_process("row26", &cfg);
    assert_eq!((added(&r, 0).blocks.ids().next(), added(&r, 0).blocks.len()), (Some(512), 512));
    assert_eq!(added(&r, 0).memmap_node_pages, 262_144);
    assert_eq!(r.model.valid_zones(512).as_deref(), Some("Normal Movable"));
}

#[test]
fn row27_auto_movable_ignores_movable_node() {
    // movable_node only steers the contig-zones default; under auto-movable with ratio 0
    // the kernel zone wins.
    let r = run_in_process("row27", &(vm_4g("movable_node = true\nauto_movable_ratio = 0") + &dimm("8GiB", "1GiB", "")));
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0x200000, GIB_PAGES, GIB_PAGES, GIB_PAGES));
}

#[test]
fn row28_virtio_mem_never_gets_memmap_on_memory() {
    // A virtio-mem grow through the memmap-on-memory strategy: the driver never asks
    // for it, so the memmap comes from node memory: 8 blocks x 512 = 4,096 pages.
    let cfg = vm_4g("")
        + "\n[[strategy]]\nname = \"mom\"\nplugin = \"memmap-on-memory\"\n"
        + "\n[[step]]\nop = \"grow\"\ndevice = \"virtio0\"\nstart = \"8GiB\"\nsize = \"1GiB\"\nstrategy = \"mom\"\n";
    let r = run_in_process("row28", &cfg);
    match &r.steps[0].outcome {
        Outcome::Resized(g) => assert_eq!((g.blocks.len(), g.memmap_node_pages), (8, 4_096)),
        other => panic!("{other:?}"),
    }
    assert!(r.model.blocks.values().all(|b| b.vmemmap_pages == 0));
}

#[test]
fn row29_virtio_mem_grow_offline_then_online_by_unit() {
    // auto_online_blocks offline: a 512 MiB grow leaves 4 blocks offline; their
    // valid_zones under auto-movable: "Movable Normal". Onlined: Movable, 131,072 pages.
    let cfg = vm_4g("").replace("auto_online_blocks = \"online\"", "auto_online_blocks = \"offline\"")
        + "\n[[step]]\nop = \"grow\"\ndevice = \"virtio0\"\nstart = \"8GiB\"\nsize = \"512MiB\"\n"
        + &step("online", "8GiB", "512MiB", "");
    let r = run_in_process("row29", &cfg);
    assert_eq!(r.history[1].valid_zones(64).as_deref(), Some("Movable Normal"));
    assert_eq!(zone(&r.model, 0, ZoneType::Movable), (0x200000, 131_072, 131_072, 131_072));
}

#[test]
fn row30_grow_onto_movable_runs_out_of_memmap_and_keeps_what_it_plugged() {
    // The 1 GiB VM, auto_online_blocks = online_movable, grows a virtio-mem device by 64
    // GiB in one step. The driver adds and onlines block by block; Movable memory cannot
    // hold memmap (GFP_KERNEL never takes from ZONE_MOVABLE), and onlining Movable moves
    // neither min_free_kbytes nor the DMA/DMA32 watermarks (they count zones up to
    // Normal only), so the boot memory pays as in the module note: blocks 1..480 get
    // their memmap, block 481 (pfn 0x100000 + 480 x 32,768 = 0x1000000) does not:
    // ENOMEM stops the request, and the device keeps its 480 blocks = 60 GiB: partial.
    let cfg = vm_1g("online_movable", "")
        + "\n[[step]]\nop = \"grow\"\ndevice = \"virtio0\"\nstart = \"4GiB\"\nsize = \"64GiB\"\nexpect = \"partial\"\n";
    let r = run_in_process("row30", &cfg);
    let Outcome::Partial(p) = &r.steps[0].outcome else { panic!("{:?}", r.steps[0].outcome) };
    assert_eq!((p.requested, p.plugged_before, p.plugged), (64 << 30, 0, 60 << 30));
    assert_eq!(p.blocks.len(), 480);
    let stopped = p.stopped.as_ref().expect("why it stopped");
    assert_eq!(stopped.code.name(), "ENOMEM");
    assert!(stopped.reason.contains("section 1 of 1 (pfn 0x1000000)"), "{}", stopped.reason);
    assert_eq!(zone(&r.model, 0, ZoneType::Movable), (0x100000, 480 * 32_768, 480 * 32_768, 480 * 32_768));
}

#[test]
fn row31_a_remove_over_virtio_mem_memory_is_busy() {
    // A virtio-mem device plugs one block at 16 GiB (memory128); a DIMM of 3 blocks sits
    // just below it (memory125-127). A remove of memory125-128 would take the device's
    // block from under it: EBUSY, nothing removed. The device's own shrink then unplugs
    // it, and the DIMM's own range removes it. (Found by the property test.)
    let cfg = vm_4g("").replace("auto_online_blocks = \"online\"", "auto_online_blocks = \"offline\"")
        + "\n[[step]]\nop = \"grow\"\ndevice = \"virtio0\"\nstart = \"16GiB\"\nsize = \"128MiB\"\n"
        + &step("add", "16000MiB", "384MiB", "")
        + &step("remove", "16000MiB", "512MiB", "expect = \"EBUSY\"")
        + "\n[[step]]\nop = \"shrink\"\ndevice = \"virtio0\"\nsize = \"128MiB\"\n"
        + &step("remove", "16000MiB", "384MiB", "");
    let r = run_in_process("row31", &cfg);
    assert!(reason(&r, 2).contains("virtio-mem memory"), "{}", reason(&r, 2));
    assert!(r.model.virtio.is_empty() && r.model.blocks.values().all(|b| b.early));
}
