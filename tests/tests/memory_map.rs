//! The SVG memory map (`--svg`, `--svg-each`): its ranges and labels counted against what
//! the kernel rules put where (worked out by hand beside each test), and the picture
//! rasterised (resvg) to check it is drawn, in the right colours, in address order.

use hotplug_host::svg::map::{memory_map, MapHeading};
use hotplug_tests::{run_host, run_in_process, scratch, workspace_root, write_config, Profile};

const P: Profile = Profile::Debug;

fn shipped(name: &str) -> String {
    std::fs::read_to_string(workspace_root().join("configs").join(name)).unwrap()
}

fn map_of(name: &str) -> String {
    let r = run_in_process(name, &shipped(&format!("{name}.toml")));
    memory_map(&r.model, &MapHeading { config: name, strategy: None, moment: "after the last step".into() })
}

/// One `<g class="range">` of the map.
#[derive(Debug)]
struct Range {
    owner: String,
    start: u64,
    end: u64,
    /// Its label lines, in order.
    texts: Vec<String>,
    /// Its memmap rectangles.
    memmap: usize,
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

fn ranges(svg: &str) -> Vec<Range> {
    let doc = roxmltree::Document::parse(svg).expect("the map is well-formed XML");
    doc.descendants()
        .filter(|n| n.attribute("class") == Some("range"))
        .map(|g| Range {
            owner: g.attribute("data-owner").unwrap().to_string(),
            start: hex(g.attribute("data-start").unwrap()),
            end: hex(g.attribute("data-end").unwrap()),
            texts: g.children().filter(|c| c.has_tag_name("text")).map(|c| c.text().unwrap_or_default().to_string()).collect(),
            memmap: g.children().filter(|c| c.attribute("class") == Some("memmap")).count(),
        })
        .collect()
}

const GIB: u64 = 1 << 30;

#[test]
fn device_map_has_each_range_where_the_kernel_puts_it() {
    let svg = map_of("device");
    let got = ranges(&svg);
    // device.toml: 8 GiB of boot RAM at 0; a 16 GiB fsdax namespace memremapped at
    // 16 GiB; a 64 GiB device-dax at 64 GiB. Between them, holes: 8-16 GiB and 32-64 GiB.
    let want = [("boot-ram", 0, 8), ("hole", 8, 16), ("device", 16, 32), ("hole", 32, 64), ("device", 64, 128)];
    let shape: Vec<(&str, u64, u64)> = got.iter().map(|r| (r.owner.as_str(), r.start / GIB, r.end / GIB)).collect();
    assert_eq!(shape, want.to_vec(), "{svg}");
    // Only the fsdax namespace holds its memmap (map = "dev": an altmap); the device-dax
    // one (map = "mem") keeps its memmap in RAM.
    assert_eq!(got.iter().map(|r| r.memmap).collect::<Vec<_>>(), [0, 0, 1, 0, 0]);
    // Each range is labelled with its start in hex; the ranges then name what they are.
    for r in &got {
        assert_eq!(r.texts[0], format!("{:#x}", r.start), "{r:?}");
    }
    assert_eq!(got[0].texts[1], "8 GiB  boot RAM, node 0");
    assert_eq!(got[1].texts[1], "hole, 8 GiB");
    assert_eq!(got[2].texts[1], "16 GiB  ZONE_DEVICE, node 0, namespace0.0");
    // 16 GiB / 4 KiB = 4,194,304 pages; its memmap is 4,194,304 x 64 B = 256 MiB
    // (65,536 pages) in the namespace's first 258 MiB (the data offset: memmap plus the
    // info block, rounded up to 2 MiB).
    assert_eq!(got[2].texts[2], "0x400000000-0x7ffffffff, 4,194,304 pages; memmap 256 MiB (65,536 pages) in its first 258 MiB");
    // The device-dax's memmap, in order-9 compound pages, is in node 0's RAM: 258 MiB
    // (66,048 pages), the figure of KERNEL-FACTS 7.
    assert!(got[4].texts[2].ends_with("; memmap in RAM: 258 MiB (66,048 pages) on node 0"), "{:?}", got[4].texts);
    // The last boundary: the end of the device-dax, 128 GiB.
    assert!(svg.contains(">0x2000000000</text>"), "no end address");
    // The sizes are alike (8 to 64 GiB, a factor of 8): a linear scale.
    assert!(svg.contains("row heights in proportion to size"));
}

#[test]
fn memmap_on_memory_shows_the_memmap_at_the_start_of_each_block() {
    // memmap-on-memory.toml after step 1: 1 GiB of boot RAM, then at 4 GiB one 1 GiB add
    // with memmap on memory: 8 blocks of 128 MiB, each with 512 pages of memmap at its
    // start (32,768 pages x 64 B / 4 KiB). The row is drawn with one stripe per block.
    let dir = scratch("memory_map_each");
    let base = dir.join("mom.svg");
    let run = run_host(P, &["--config", "memmap-on-memory.toml", "--svg", base.to_str().unwrap(), "--svg-each"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // 10 steps: 11 maps, the first right after boot.
    for i in 0..=10 {
        assert!(dir.join(format!("mom-step{i}.svg")).is_file(), "no map for step {i}: {}", run.stderr);
    }
    assert!(run.stderr.contains("11 memory maps written"), "{}", run.stderr);
    let after_boot = ranges(&std::fs::read_to_string(dir.join("mom-step0.svg")).unwrap());
    assert_eq!(after_boot.len(), 1, "{after_boot:?}");
    let step1 = ranges(&std::fs::read_to_string(dir.join("mom-step1.svg")).unwrap());
    let shape: Vec<(&str, u64, u64)> = step1.iter().map(|r| (r.owner.as_str(), r.start >> 20, r.end >> 20)).collect();
    assert_eq!(shape, [("boot-ram", 0, 1024), ("hole", 1024, 4096), ("online-normal", 4096, 5120)]);
    assert_eq!(step1[2].memmap, 8);
    assert!(
        step1[2].texts[2].ends_with("8 blocks; memmap on memory: 2 MiB (512 pages) at the start of each block"),
        "{:?}",
        step1[2].texts
    );
    // Step 5 offlines that add: the same range, now offline (and still holding its memmap).
    let step5 = ranges(&std::fs::read_to_string(dir.join("mom-step5.svg")).unwrap());
    let offline: Vec<&Range> = step5.iter().filter(|r| r.owner == "offline").collect();
    assert_eq!(offline.len(), 1);
    assert_eq!((offline[0].start >> 20, offline[0].end >> 20), (4096, 5120));
    assert!(offline[0].texts[1].starts_with("1 GiB  offline RAM (hot-added)"), "{:?}", offline[0].texts);
}

#[test]
fn virtio_mem_map_uses_a_log_scale_and_shows_the_unplugged_part() {
    let svg = map_of("virtio-mem");
    let got = ranges(&svg);
    // A 12 GiB range beside 128 MiB blocks: a factor of 96, more than the linear scale's 64.
    assert!(svg.contains("log scale"), "not log");
    // virtio-mem.toml ends by shrinking its device: the region's end is not plugged.
    assert!(got.iter().any(|r| r.owner == "unplugged"), "{got:?}");
    // Every byte from 0 to the end is in exactly one range: each starts where the last ended.
    for w in got.windows(2) {
        assert_eq!(w[0].end, w[1].start, "{w:?}");
    }
    assert_eq!(got[0].start, 0);
}

#[test]
fn names_from_the_config_cannot_break_the_picture() {
    // A resource name with markup and a control character: escaped text, valid XML.
    let config = write_config(
        "memory_map_escape",
        P,
        r#"
[machine]
plugin_dirs = ["@PLUGINS@"]
[[machine.node]]
id = 0
boot = [{ start = "0", size = "1GiB" }]
[[strategy]]
name = "pmem"
plugin = "device-pgmap"
options = { type = "fsdax", map = "dev" }
[[step]]
op = "memremap"
start = "4GiB"
size = "1GiB"
strategy = "pmem"
resource = "<g onload='x'>&amp;"
"#,
    );
    let out = config.with_file_name("map.svg");
    let run = run_host(P, &["--config", config.to_str().unwrap(), "--svg", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let svg = std::fs::read_to_string(&out).unwrap();
    let got = ranges(&svg);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[2].texts[1], "1 GiB  ZONE_DEVICE, node 0, <g onload='x'>&amp;");
    assert!(!svg.contains("<g onload"), "markup passed through");
}

/// The picture: the map rasterised, its bar column read top to bottom.
#[test]
fn the_picture_is_drawn_in_address_order() {
    let svg = map_of("device");
    let doc = roxmltree::Document::parse(&svg).unwrap();
    // The owners' colours, as the legend gives them.
    let fill = |owner: &str| -> [u8; 3] {
        let g = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("legend") && n.attribute("data-owner") == Some(owner))
            .unwrap_or_else(|| panic!("no legend entry for {owner}"));
        let h = g.attribute("data-fill").unwrap().trim_start_matches('#');
        [0, 2, 4].map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
    };
    let colours = [("boot-ram", fill("boot-ram")), ("hole", fill("hole")), ("memmap", fill("memmap")), ("device", fill("device"))];

    let tree = resvg::usvg::Tree::from_str(&svg, &resvg::usvg::Options::default()).expect("resvg reads the map");
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());

    let px = |x: u32, y: u32| {
        let p = pixmap.pixel(x, y).unwrap();
        [p.red(), p.green(), p.blue()]
    };
    let non_white = (0..size.height()).flat_map(|y| (0..size.width()).map(move |x| (x, y))).filter(|&(x, y)| px(x, y) != [255, 255, 255]);
    assert!(non_white.count() > 20_000, "the picture is (nearly) blank");

    // Down the middle of the bar (x = 150 + 150 / 2): the owners' colours in turn, each
    // run once (edges, break marks and separators are other colours and are skipped).
    let mut seen: Vec<&str> = Vec::new();
    for y in 0..size.height() {
        if let Some((name, _)) = colours.iter().find(|(_, c)| *c == px(225, y)) {
            if seen.last() != Some(name) {
                seen.push(name);
            }
        }
    }
    // Boot RAM, the hole above 8 GiB, the fsdax namespace (its memmap at its start, then
    // its device pages), the hole above 32 GiB, the device-dax.
    assert_eq!(seen, ["boot-ram", "hole", "memmap", "device", "hole", "device"]);
}
