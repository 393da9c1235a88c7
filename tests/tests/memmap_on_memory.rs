//! The memmap-on-memory strategy through the model, in-process, with hand-worked numbers
//! (KERNEL-FACTS sections 2 and 4; the reasoning beside each). The eligibility rules on
//! their own are unit-tested in plugins/memmap-on-memory.
//!
//! x86_64: a 128 MiB block is 32,768 pages; its struct pages take 32,768 x 64 B = 2 MiB =
//! 512 pages, one PMD, pageblock-aligned (512): 512 vmemmap pages, 32,256 usable.
//! The 1 GiB VM: managed 258,048 pages at boot (see scenario_table.rs).

use hotplug_host::model::{Model, ZoneType};
use hotplug_host::runner::Outcome;
use hotplug_tests::{added, run_in_process, zone};

fn machine(extra: &str, auto: &str) -> String {
    format!(
        "[machine]\nauto_online_blocks = \"{auto}\"\n{extra}\n[[machine.node]]\nid = 0\nboot = [{{ start = \"0\", size = \"1GiB\" }}]\n\
         [[strategy]]\nname = \"mom\"\nplugin = \"memmap-on-memory\"\n\
         [[strategy]]\nname = \"force\"\nplugin = \"memmap-on-memory\"\noptions = {{ mode = \"force\" }}\n\
         [[strategy]]\nname = \"mom-6.7\"\nplugin = \"memmap-on-memory\"\noptions = {{ per_block = false }}\n\
         [[strategy]]\nname = \"base\"\nplugin = \"system-ram\"\n"
    )
}

fn step(op: &str, start: &str, size: &str, extra: &str) -> String {
    format!("\n[[step]]\nop = \"{op}\"\nstart = \"{start}\"\nsize = \"{size}\"\n{extra}\n")
}

fn add(start: &str, size: &str, strategy: &str) -> String {
    step("add", start, size, &format!("strategy = \"{strategy}\""))
}

fn vmemmap(m: &Model, block: u64) -> u64 {
    m.blocks.get(&block).unwrap().vmemmap_pages
}

#[test]
fn one_block_holds_512_vmemmap_pages_and_32256_usable() {
    // 128 MiB at 4 GiB = memory32, onlined into Normal: present +32,768, managed +32,256.
    // Its memmap comes from the altmap: 512 pages inside, none from node memory, so node
    // free grows by the managed pages only: 258,048 + 32,256 = 290,304.
    let r = run_in_process("mom-one-block", &(machine("", "online") + &add("4GiB", "128MiB", "mom")));
    let a = added(&r, 0);
    assert_eq!((a.memmap_altmap_pages, a.memmap_node_pages), (512, 0));
    assert_eq!(vmemmap(&r.model, 32), 512);
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0x100000, 32_768, 32_768, 32_256));
    assert_eq!(r.model.nodes.get(&0).unwrap().free_pages(), 290_304);
    // The pages holding the memmap are marked: pfns 0x100000..0x100200.
    assert_eq!(r.model.pages.count(0x100000, 0x108000, |v| *v == hotplug_host::model::PageState::Vmemmap), 512);
}

#[test]
fn one_gib_online_matches_the_real_kernel() {
    // 8 blocks: present +262,144; managed +262,144 - 8 x 512 = 258,048; MemTotal
    // +258,048 x 4 = +1,032,192 kB (measured on 6.12): 1,032,192 + 1,032,192 = 2,064,384.
    let r = run_in_process("mom-1g", &(machine("", "online") + &add("4GiB", "1GiB", "mom")));
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0x100000, 262_144, 262_144, 258_048));
    assert_eq!(r.model.total_managed() * 4, 2_064_384);
    assert_eq!(added(&r, 0).memmap_altmap_pages, 4_096);
    assert!((32..40).all(|b| vmemmap(&r.model, b) == 512));
}

#[test]
fn two_gib_blocks() {
    // memory_block_size 2 GiB: 524,288 pages x 64 B = 32 MiB = 8,192 pages (16 PMDs,
    // a multiple of 512). A 4 GiB add at 4 GiB = memory2 and memory3, each with 8,192
    // vmemmap pages: present +1,048,576, managed +1,048,576 - 16,384 = 1,032,192.
    let cfg = machine("memory_block_size = \"2GiB\"", "online") + &add("4GiB", "4GiB", "mom");
    let r = run_in_process("mom-2g", &cfg);
    assert_eq!((vmemmap(&r.model, 2), vmemmap(&r.model, 3)), (8_192, 8_192));
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0x100000, 1_048_576, 1_048_576, 1_032_192));
    assert_eq!(added(&r, 0).memmap_altmap_pages, 16_384);
}

#[test]
fn ppc64_radix_strict_refuses_force_wastes() {
    // 64 KiB pages, 256 MiB blocks (4,096 pages), 16 MiB sections, 2 MiB pageblocks (32
    // pages). A block's struct pages: 4,096 x 64 B = 256 KiB = 4 pages. Strict: 4 is not a
    // multiple of 32: node memory, and the note says why. Force: 32 pages (28 wasted);
    // radix with 64 KiB pages has no PMD rule: accepted. The block at 4 GiB is memory16:
    // present 4,096, managed 4,096 - 32 = 4,064.
    let ppc = "arch = \"ppc64-radix\"";
    let cfg = machine(ppc, "online") + &add("4GiB", "256MiB", "mom") + &add("8GiB", "256MiB", "force");
    let r = run_in_process("mom-ppc", &cfg);
    assert_eq!(added(&r, 0).memmap_altmap_pages, 0);
    assert!(added(&r, 0).note.contains("not a multiple of the 32-page pageblock"), "{}", added(&r, 0).note);
    assert!(added(&r, 1).note.contains("28 are force mode's pageblock rounding"), "{}", added(&r, 1).note);
    assert_eq!(vmemmap(&r.model, 32), 32);
    let b = r.model.blocks.get(&32).unwrap();
    assert_eq!(b.altmap.unwrap().free, 32);
    // Normal holds both blocks: 2 x 4,096 present; managed 4,096 (strict) + 4,064 (force).
    let (_, _, present, managed) = zone(&r.model, 0, ZoneType::Normal);
    assert_eq!((present, managed), (8_192, 8_160));
}

#[test]
fn debug_kernel_struct_page_is_refused_in_both_modes() {
    // struct page 80 B: 32,768 x 80 = 2,621,440 B = 640 pages. Strict: not a multiple of
    // 512. Force: 1,024, but 2,621,440 B is 1.25 PMDs: x86_64 refuses. Both fall back to
    // node memory. The section at pfn 0x100000 has struct pages at bytes
    // [0x100000 x 80, +2,621,440) = PMDs [40, 41.25): two PMDs, 1,024 pages from node 0.
    let cfg = machine("struct_page_size = 80", "offline") + &add("4GiB", "128MiB", "mom") + &add("8GiB", "128MiB", "force");
    let r = run_in_process("mom-debug", &cfg);
    for i in 0..2 {
        let a = added(&r, i);
        assert_eq!((a.memmap_altmap_pages, a.memmap_node_pages), (0, 1_024), "step {i}");
        assert!(a.note.starts_with("memmap on memory not used"), "{}", a.note);
    }
    assert!(added(&r, 0).note.contains("640 pages, not a multiple of the 512-page pageblock"));
    assert!(added(&r, 1).note.contains("whole number of PMDs"), "{}", added(&r, 1).note);
}

#[test]
fn eight_blocks_per_block_and_single_block_mode() {
    // 6.8+ (mom): 1 GiB = 8 altmaps, 4,096 pages inside. 6.7 rule (mom-6.7): an add of 8
    // blocks may not carry its memmap: 4,096 pages from node memory; a one-block add may:
    // 512 inside.
    let cfg = machine("", "offline") + &add("4GiB", "1GiB", "mom") + &add("8GiB", "1GiB", "mom-6.7") + &add("12GiB", "128MiB", "mom-6.7");
    let r = run_in_process("mom-modes", &cfg);
    assert_eq!((added(&r, 0).memmap_altmap_pages, added(&r, 0).memmap_node_pages), (4_096, 0));
    assert_eq!((added(&r, 1).memmap_altmap_pages, added(&r, 1).memmap_node_pages), (0, 4_096));
    assert!(added(&r, 1).note.contains("this add is 8 blocks"), "{}", added(&r, 1).note);
    assert_eq!((added(&r, 2).memmap_altmap_pages, added(&r, 2).memmap_node_pages), (512, 0));
}

#[test]
fn online_movable_or_kernel_keep_vmemmap_out_of_managed() {
    // Both zones count the vmemmap pages present, not managed: 2 blocks each,
    // present 65,536, managed 65,536 - 1,024 = 64,512.
    let cfg = machine("", "offline")
        + &add("4GiB", "512MiB", "mom")
        + &step("online", "4GiB", "256MiB", "online_type = \"online_movable\"")
        + &step("online", "0x110000000", "256MiB", "online_type = \"online_kernel\"");
    let r = run_in_process("mom-zones", &cfg);
    assert_eq!(zone(&r.model, 0, ZoneType::Movable), (0x100000, 65_536, 65_536, 64_512));
    assert_eq!(zone(&r.model, 0, ZoneType::Normal), (0x110000, 65_536, 65_536, 64_512));
}

#[test]
fn offline_and_remove_restore_everything() {
    // Offline drops present by whole blocks (vmemmap included): -262,144 present,
    // -258,048 managed. Remove gives the 4,096 memmap pages back to the altmaps (none to
    // node memory); the machine is as at boot, max_pfn aside.
    let cfg =
        machine("", "online") + &add("4GiB", "1GiB", "mom") + &step("offline", "4GiB", "1GiB", "") + &step("remove", "4GiB", "1GiB", "");
    let r = run_in_process("mom-remove", &cfg);
    match (&r.steps[1].outcome, &r.steps[2].outcome) {
        (Outcome::Blocks(b), Outcome::Removed(rm)) => {
            assert_eq!((b.present_delta, b.managed_delta), (-262_144, -258_048));
            assert_eq!((rm.memmap_freed_altmap_pages, rm.memmap_freed_node_pages), (4_096, 0));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.model.differences(&r.history[0]), vec!["max_pfn"]);
}

#[test]
fn remove_rules_6_8_mix_and_6_7_granularity() {
    // 6.8+: one remove over blocks with and without altmaps is EINVAL (a mix).
    // 6.7: memory holding its memmap is removed one block at a time: two one-block adds
    // removed together are EINVAL ("wrong granularity"), each alone works.
    let cfg = machine("", "offline")
        + &add("4GiB", "128MiB", "mom")
        + &add("0x108000000", "128MiB", "base")
        + &step("remove", "4GiB", "256MiB", "expect = \"EINVAL\"")
        + &add("8GiB", "128MiB", "mom-6.7")
        + &add("0x208000000", "128MiB", "mom-6.7")
        + &step("remove", "8GiB", "256MiB", "expect = \"EINVAL\"")
        + &step("remove", "8GiB", "128MiB", "")
        + &step("remove", "0x208000000", "128MiB", "");
    let r = run_in_process("mom-remove-rules", &cfg);
    let reason = |i: usize| match &r.steps[i].outcome {
        Outcome::Failed(e) => e.reason.clone(),
        other => panic!("{other:?}"),
    };
    assert!(reason(2).contains("mixes blocks with and without memmap on memory"), "{}", reason(2));
    assert!(reason(5).contains("wrong granularity"), "{}", reason(5));
}
