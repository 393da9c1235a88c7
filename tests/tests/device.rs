//! ZONE_DEVICE through the model with the device-pgmap strategy, in-process, with
//! hand-worked numbers (KERNEL-FACTS sections 6 and 7; the reasoning beside each).
//!
//! x86_64: a 128 MiB section is 32,768 pages; its memmap 512 pages (one PMD); a 2 MiB
//! subsection's memmap is 512 x 64 B = 32 KiB = 8 pages. The machine: 8 GiB of boot RAM
//! on node 0 ([0, 8 GiB)), so device memory goes at 16 GiB and above.

use hotplug_core::PgmapType;
use hotplug_host::model::{Model, PageState, PhysRange, ZoneType};
use hotplug_host::runner::Outcome;
use hotplug_host::views::View;
use hotplug_tests::{mapped, reason, run_in_process};

const MACHINE: &str = "[machine]\n[[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"8GiB\" }]\n";

fn strategy(name: &str, options: &str) -> String {
    format!("\n[[strategy]]\nname = \"{name}\"\nplugin = \"device-pgmap\"\noptions = {{ {options} }}\n")
}

fn memremap(strategy: &str, start: &str, size: &str, extra: &str) -> String {
    let start = if start.is_empty() { String::new() } else { format!("start = \"{start}\"\n") };
    format!("\n[[step]]\nop = \"memremap\"\nstrategy = \"{strategy}\"\n{start}size = \"{size}\"\n{extra}\n")
}

fn memunmap(start: &str) -> String {
    format!("\n[[step]]\nop = \"memunmap\"\nstart = \"{start}\"\n")
}

fn device_zone(m: &Model) -> (u64, u64, u64, u64) {
    let z = m.nodes.get(&0).unwrap().zone(ZoneType::Device);
    (z.start_pfn, z.spanned, z.present, z.managed)
}

#[test]
fn fsdax_16_gib_map_dev_keeps_its_memmap_in_the_namespace() {
    // nd_pfn_init with --map=dev: npfns0 = (16 GiB - 8 KiB) / 4 KiB = 4,194,302; data
    // offset = round up (8 KiB + 64 B x 4,194,302) to 2 MiB = 258 MiB; altmap base =
    // start (16 GiB = pfn 0x400000), reserve 2, free (258 MiB - 8 KiB) / 4 KiB = 66,046.
    // The 128 sections' memmap, PMD by PMD: the first allocation needs the next pfn
    // (base + 2) rounded up to 512: gap 510; then 128 x 512 = 65,536 back to back:
    // align 510, alloc 65,536, free left 0. Memmap at base+512 .. base+66,047; device
    // pages from base + 66,048: 4,194,304 - 66,048 = 4,128,256, each initialised.
    // Nothing from RAM. The Device zone spans the 16 GiB, present and managed stay 0.
    let cfg = MACHINE.to_string()
        + &strategy("pmem", "type = \"fsdax\", map = \"dev\"")
        + &memremap("pmem", "16GiB", "16GiB", "resource = \"namespace0.0\"");
    let r = run_in_process("fsdax-16g", &cfg);
    let m = mapped(&r, 0);
    assert_eq!((m.memmap_device_pages, m.memmap_node_pages), (65_536, 0));
    assert_eq!((m.device_pages, m.pages_initialised), (4_128_256, 4_128_256));
    assert!(m.note.contains("data offset 258 MiB"), "{}", m.note);
    let pg = r.model.pgmaps.get(&m.pgmap_id).unwrap();
    let a = pg.ranges[0].restrictions.altmap.into_option().unwrap();
    assert_eq!((a.base_pfn, a.reserve, a.free, a.align, a.alloc), (0x400000, 2, 66_046, 510, 65_536));
    // The first device page carries pgmap 1 with a refcount of 1 (fsdax); the page before
    // it holds memmap.
    let first = 0x400000 + 66_048;
    assert_eq!(
        r.model.pages.overlapping(first, first + 1)[0].2,
        PageState::Device { nid: 0, pgmap_id: m.pgmap_id, compound_order: 0, refcount: 1 }
    );
    assert_eq!(r.model.pages.overlapping(first - 1, first)[0].2, PageState::Vmemmap);
    assert_eq!(device_zone(&r.model), (0x400000, 4_194_304, 0, 0));
    // zoneinfo: the Device zone spans but is not populated, so no start_pfn line; it
    // manages nothing, so its watermarks are 0.
    assert!(View::Zoneinfo.render(&r.model).ends_with(
        "Node 0, zone   Device\n  pages free     0\n        boost    0\n        min      0\n        low      0\n        high     0\n        \
         promo    0\n        spanned  4194304\n        present  0\n        managed  0\n        cma      0\n        protection: (0, 0, 0, 0, 0)\n"
    ));
    assert!(View::Iomem.render(&r.model).contains("400000000-7ffffffff : namespace0.0\n"));
}

#[test]
fn one_and_four_gib_namespaces_fill_their_altmaps_exactly() {
    // 1 GiB: data offset 18 MiB, free (18 MiB - 8 KiB) / 4 KiB = 4,606 = 510 gap + 8 x 512.
    // 4 GiB: data offset 66 MiB, free 16,894 = 510 + 32 x 512.
    let cfg = MACHINE.to_string()
        + &strategy("pmem", "type = \"fsdax\", map = \"dev\"")
        + &memremap("pmem", "16GiB", "1GiB", "")
        + &memremap("pmem", "32GiB", "4GiB", "");
    let r = run_in_process("fsdax-1g-4g", &cfg);
    for (i, (free, alloc)) in [(4_606, 4_096), (16_894, 16_384)].into_iter().enumerate() {
        let pg = r.model.pgmaps.get(&mapped(&r, i).pgmap_id).unwrap();
        let a = pg.ranges[0].restrictions.altmap.into_option().unwrap();
        assert_eq!((a.free, a.align, a.alloc), (free, 510, alloc), "step {i}");
        assert_eq!(mapped(&r, i).memmap_device_pages, alloc);
    }
}

#[test]
fn map_mem_takes_the_memmap_from_ram() {
    // --map=mem: 128 sections x 512 = 65,536 pages of RAM (16,384 kB per GiB: 262,144 kB),
    // every one of the 4,194,304 pages a device page. MemFree drops by 262,144 kB,
    // MemTotal does not move.
    let cfg = MACHINE.to_string() + &strategy("pmem", "type = \"fsdax\", map = \"mem\"") + &memremap("pmem", "16GiB", "16GiB", "");
    let r = run_in_process("fsdax-mem", &cfg);
    let m = mapped(&r, 0);
    assert_eq!((m.memmap_node_pages, m.memmap_device_pages, m.device_pages), (65_536, 0, 4_194_304));
    let free_kb = |m: &Model| m.nodes.get(&0).unwrap().free_pages() * 4;
    assert_eq!(free_kb(&r.history[0]) - free_kb(&r.model), 262_144);
    assert_eq!(r.model.total_managed(), r.history[0].total_managed());
}

#[test]
fn compound_pages_deduplicate_the_vmemmap() {
    // 2 MiB compounds (vmemmap_shift 9), no altmap, on 64 GiB: per section 64 compounds x
    // 2 unique vmemmap pages + 1 page-table page = 129, not 512: 512 sections x 129 =
    // 66,048 pages (258 MiB) instead of 262,144; saved 196,096. memmap_init_zone_device
    // initialises 128 struct pages per compound: 32,768 x 128 = 4,194,304.
    // 1 GiB compounds (shift 18) on 4 GiB: each compound 2 unique pages + 8 page-table
    // pages (one per section) = 10, x 4 = 40 pages; 4 x 128 = 512 initialised.
    let cfg = MACHINE.to_string()
        + &strategy("dax2m", "vmemmap_shift = 9")
        + &strategy("dax1g", "vmemmap_shift = 18")
        + &memremap("dax2m", "64GiB", "64GiB", "")
        + &memremap("dax1g", "16GiB", "4GiB", "");
    let r = run_in_process("compound", &cfg);
    let m = mapped(&r, 0);
    assert_eq!((m.compound_order, m.memmap_node_pages, m.memmap_saved_pages, m.pages_initialised), (9, 66_048, 196_096, 4_194_304));
    let m = mapped(&r, 1);
    assert_eq!((m.compound_order, m.memmap_node_pages, m.pages_initialised), (18, 40, 512));
}

#[test]
fn each_pgmap_type() {
    // private: no direct map, refcount 0; placed by the free-region search when the step
    // gives no start: top-down from the end of the 46-bit space in 128 MiB steps, so
    // 1 GiB lands at 64 TiB - 1 GiB = 0x3fffc0000000. coherent: refcount 0. fsdax, generic,
    // p2pdma: refcount 1.
    let mut cfg = MACHINE.to_string();
    for t in ["private", "coherent", "fsdax", "generic", "p2pdma"] {
        cfg += &strategy(t, &format!("type = \"{t}\""));
    }
    cfg += &memremap("private", "", "1GiB", "");
    for (i, t) in ["coherent", "fsdax", "generic", "p2pdma"].iter().enumerate() {
        cfg += &memremap(t, &format!("{}GiB", 16 + 2 * i), "1GiB", "");
    }
    let r = run_in_process("types", &cfg);
    let refcount = |i: usize, start: u64| match r.model.pages.overlapping(start, start + 1)[0].2 {
        PageState::Device { refcount, pgmap_id, .. } => {
            assert_eq!(pgmap_id, mapped(&r, i).pgmap_id);
            refcount
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(mapped(&r, 0).ranges, vec![PhysRange::new(0x3fffc0000000, 1 << 30).unwrap()]);
    assert_eq!(refcount(0, 0x3fffc0000000 >> 12), 0);
    assert!(View::Iomem.render(&r.model).contains("3fffc0000000-3fffffffffff : device private memory\n"));
    for (i, want) in [0, 1, 1, 1].into_iter().enumerate() {
        assert_eq!(refcount(i + 1, ((16 + 2 * i as u64) << 30) >> 12), want, "step {}", i + 2);
    }
    let private = r.model.pgmaps.get(&mapped(&r, 0).pgmap_id).unwrap();
    assert!(private.ranges[0].restrictions.flags.contains(hotplug_core::RestrictionFlags::NO_DIRECT_MAP));
    assert_eq!(private.pgmap_type, PgmapType::NONE);
}

#[test]
fn errnos_in_the_kernels_order() {
    // ENXIO: align 1 GiB on a 1 GiB namespace: data offset 1 GiB >= size (the driver).
    // EINVAL: a namespace start 4 KiB past 16 GiB is not 2 MiB-aligned (the driver).
    // ENXIO: [4 GiB, +1 GiB) is boot System RAM (pagemap_range).
    // ENOMEM: a pgmap at [16 GiB, +1 GiB), then one starting inside it.
    // EINVAL: a private range at 32 GiB + 1 MiB is not subsection-aligned (__add_pages).
    // EEXIST: a 2 MiB private pgmap at 40 GiB + 2 MiB, then [40 GiB, +128 MiB): its first
    //         and last pfns are in no pgmap, but the subsection is active.
    // EINVAL: past the 46-bit pluggable range.
    let cfg = MACHINE.to_string()
        + &strategy("big-align", "type = \"fsdax\", align = \"1GiB\"")
        + &strategy("pmem", "type = \"fsdax\"")
        + &strategy("private", "type = \"private\"")
        + &memremap("big-align", "16GiB", "1GiB", "expect = \"ENXIO\"")
        + &memremap("pmem", "0x400001000", "1GiB", "expect = \"EINVAL\"")
        + &memremap("pmem", "4GiB", "1GiB", "expect = \"ENXIO\"")
        + &memremap("pmem", "16GiB", "1GiB", "")
        + &memremap("pmem", "0x420000000", "1GiB", "expect = \"ENOMEM\"")
        + &memremap("private", "0x800100000", "2MiB", "expect = \"EINVAL\"")
        + &memremap("private", "0xa00200000", "2MiB", "")
        + &memremap("private", "40GiB", "128MiB", "expect = \"EEXIST\"")
        + &memremap("private", "64TiB", "1GiB", "expect = \"EINVAL\"");
    let r = run_in_process("device-errnos", &cfg);
    assert!(reason(&r, 0).contains("leaves no room"), "{}", reason(&r, 0));
    assert!(reason(&r, 1).contains("not 2 MiB-aligned"), "{}", reason(&r, 1));
    assert!(reason(&r, 2).contains("overlaps \"System RAM\""), "{}", reason(&r, 2));
    assert!(reason(&r, 4).contains("already belongs to pgmap"), "{}", reason(&r, 4));
    assert!(reason(&r, 5).contains("subsection"), "{}", reason(&r, 5));
    assert!(reason(&r, 7).contains("active subsections"), "{}", reason(&r, 7));
    assert!(reason(&r, 8).contains("pluggable range"), "{}", reason(&r, 8));
}

#[test]
fn subsection_sized_pgmaps_use_base_pages() {
    // A 2 MiB private pgmap: a partial section, so base pages from RAM: 8 for its
    // subsection plus one page-table page for the section = 9. A second 2 MiB pgmap in
    // the same section needs 8 more (the page table exists). Unmapping the first gives
    // back exactly its 9.
    let cfg = MACHINE.to_string()
        + &strategy("private", "type = \"private\"")
        + &memremap("private", "16GiB", "2MiB", "")
        + &memremap("private", "0x400400000", "2MiB", "")
        + &memunmap("16GiB");
    let r = run_in_process("subsections", &cfg);
    assert_eq!(mapped(&r, 0).memmap_node_pages, 9);
    assert_eq!(mapped(&r, 1).memmap_node_pages, 8);
    match &r.steps[2].outcome {
        Outcome::Unmapped(u) => assert_eq!(u.memmap_freed_node_pages, 9),
        other => panic!("{other:?}"),
    }
}

#[test]
fn memunmap_restores_everything_but_the_device_spans() {
    // fsdax --map=dev and a 2 MiB-compound devdax, then both unmapped: every table is as
    // at boot except the Device zone's span, which the kernel does not shrink.
    let cfg = MACHINE.to_string()
        + &strategy("pmem", "type = \"fsdax\", map = \"dev\"")
        + &strategy("dax", "vmemmap_shift = 9")
        + &memremap("pmem", "16GiB", "16GiB", "resource = \"namespace0.0\"")
        + &memremap("dax", "64GiB", "4GiB", "resource = \"dax1.0\"")
        + &memunmap("16GiB")
        + &memunmap("64GiB")
        + &memunmap("64GiB").replace("\n[[step]]", "\n[[step]]\nexpect = \"EINVAL\"");
    let r = run_in_process("memunmap", &cfg);
    assert_eq!(r.model.differences(&r.history[0]), vec!["device_zone_spans"]);
    // Device spans [16 GiB, 68 GiB): 13,631,488 pages, still.
    assert_eq!(device_zone(&r.model), (0x400000, 13_631_488, 0, 0));
}

#[test]
fn several_ranges_altmap_on_the_first_only() {
    // One fsdax pgmap with two 1 GiB ranges, --map=dev: the first range's namespace
    // layout holds its memmap (4,096 pages in the device, 4,608 pages before the data),
    // the second range has no altmap: 8 sections x 512 = 4,096 pages from RAM.
    // Device pages: (262,144 - 4,608) + 262,144 = 519,680.
    let cfg = MACHINE.to_string()
        + &strategy("pmem", "type = \"fsdax\", map = \"dev\"")
        + "\n[[step]]\nop = \"memremap\"\nstrategy = \"pmem\"\nranges = [{ start = \"16GiB\", size = \"1GiB\" }, { start = \"32GiB\", size = \"1GiB\" }]\n";
    let r = run_in_process("ranges", &cfg);
    let m = mapped(&r, 0);
    assert_eq!((m.memmap_device_pages, m.memmap_node_pages, m.device_pages), (4_096, 4_096, 519_680));
    assert_eq!(r.model.pgmaps.get(&m.pgmap_id).unwrap().ranges.len(), 2);
}

#[test]
fn system_ram_over_an_active_device_subsection_is_eexist() {
    // Found by the property test: a pgmap without an iomem region at 16 GiB + 128 MiB,
    // then System RAM over [16 GiB, +1 GiB): the resource request succeeds (nothing in
    // iomem), but sparse_add_section finds the device's subsections active: EEXIST, and
    // the add leaves nothing behind (checked by run_in_process).
    let cfg = MACHINE.to_string()
        + &strategy("dax", "")
        + &memremap("dax", "0x408000000", "128MiB", "")
        + "\n[[strategy]]\nname = \"base\"\nplugin = \"system-ram\"\n"
        + "\n[[step]]\nop = \"add\"\nstrategy = \"base\"\nstart = \"16GiB\"\nsize = \"1GiB\"\nexpect = \"EEXIST\"\n";
    let r = run_in_process("ram-over-device", &cfg);
    assert!(reason(&r, 1).contains("already has active subsections"), "{}", reason(&r, 1));
}

#[test]
fn device_memmap_that_does_not_fit_fails_at_its_section_with_the_numbers_as_fields() {
    // 8 GiB boot on x86_64: DMA 4,096, DMA32 1,044,480, Normal 1,048,576 present less
    // the 64 boot sections' memmap (32,768, memblock, top-down): 1,015,808 managed.
    // Watermarks (init_per_zone_wmark_min, then khugepaged, THP on): 3 zones x 11 x 512
    // = 16,896 pages over lowmem 2,064,384: Normal min 8,313, low 10,391; DMA32 min
    // 8,548, low 10,685, and it keeps 1,015,808 / 256 = 3,968 from GFP_KERNEL; DMA
    // keeps 8,048, more than it has.
    // A 1 TiB fsdax namespace with map = "mem" at 16 GiB (section 128) needs 8,192
    // sections' memmap, PMD by PMD from node 0's zonelist (Normal, DMA32, DMA) while
    // free - 511 > mark: Normal (1,015,808 - 10,391) / 512 = 1,963, DMA32 (1,044,480 -
    // 14,653) / 512 = 2,011 above low; Normal (10,752 - 8,313) / 512 = 4 and DMA32
    // (14,848 - 12,516) / 512 = 4 above min; base pages: 391 + 284 = 675 above min, one
    // PMD of 513 (a page table and 512 pages). 3,983 sections fit: section 3,984 of the
    // range (number 128 + 3,983 = 4,111, pfn 4,111 x 32,768 = 0x807_8000) fails, after
    // 3,982 x 512 + 513 = 2,039,297 pages; its own try took the last 162 above DMA32's.
    let cfg = MACHINE.to_string()
        + &strategy("pmem", "type = \"fsdax\"")
        + &memremap("pmem", "16GiB", "1TiB", "resource = \"namespace0.0\"\nexpect = \"ENOMEM\"");
    let r = run_in_process("device-enomem", &cfg);
    let hotplug_host::runner::Outcome::Failed(e) = &r.steps[0].outcome else { panic!("{:?}", r.steps[0].outcome) };
    let s = e.shortage.as_deref().expect("a memmap ENOMEM carries its numbers");
    assert_eq!((s.section, s.index, s.sections, s.pfn), (4_111, 3_984, 8_192, 0x807_8000));
    assert_eq!((s.pages_needed, s.pages_available, s.pages_done, s.nid()), (512, 0, 2_039_297, Some(0)));
    // The one wording of a memmap ENOMEM, shared with System RAM.
    assert!(
        reason(&r, 0).starts_with(
            "memmap for section 3,984 of 8,192 (pfn 0x8078000) needs 2 MiB (512 pages), and no zone of the zonelist (nodes 0) has that"
        ),
        "{}",
        reason(&r, 0)
    );
}
