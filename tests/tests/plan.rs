//! `host plan` on the shipped small-VM config: why one 12 GiB add fails, the largest
//! single add, the sequence that gets there, and that the sequence, run as a scenario,
//! succeeds. The numbers are worked out by hand from the kernel rules beside them.

use hotplug_tests::{artifacts, run_host, scratch, Profile};

const P: Profile = Profile::Debug;

fn plan_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["plan", "--config", "small-vm-plan.toml", "--format", "json"];
    all.extend_from_slice(args);
    let r = run_host(P, &all);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

fn strategy<'v>(v: &'v serde_json::Value, name: &str) -> &'v serde_json::Value {
    v["plan"]["strategies"].as_array().unwrap().iter().find(|s| s["strategy"] == name).unwrap_or_else(|| panic!("{name}: {v}"))
}

#[test]
fn a_256_mib_guest_reaches_12_gib_in_two_onlined_steps() {
    let v = plan_json(&[]);
    assert_eq!(v["kind"], "plan");
    let p = &v["plan"];
    // The config: a 256 MiB guest with 128 MiB free after boot = 32,768 pages (4,096 in
    // DMA, 28,672 in DMA32). Managed: 4,096 + 60,416 = 64,512 pages = 258,048 kB, so
    // min_free_kbytes = int_sqrt(16 x 258,048) = 2,031 kB = 507 pages, split by managed
    // pages: DMA 507 x 4,096 / 64,512 = 32, DMA32 507 x 60,416 / 64,512 = 474. DMA also
    // keeps lowmem_reserve 60,416 / 256 = 236 from allocations that could use DMA32.
    // Room for memmap: (4,096 - 32 - 236) + (28,672 - 474) = 32,026 pages.
    assert_eq!(p["numbers"]["free_pages"], 32_768);
    assert_eq!(p["numbers"]["allocatable_pages"], 32_026);
    // 1 GiB / 4 KiB x 64 B = 16 MiB = 4,096 pages of memmap per GiB.
    assert_eq!(p["numbers"]["memmap_pages_per_gib"], 4_096);
    // The adds start at 4 GiB: the first block above the 256 MiB of RAM, not below 4 GiB.
    assert_eq!(p["start"], 4u64 << 30);

    let base = strategy(&v, "base");
    // Each 128 MiB section needs 512 pages: 32,026 / 512 = 62 sections fit (31,744 pages),
    // the 63rd of the 96 a 12 GiB add has fails with ENOMEM.
    assert_eq!(base["single_target"]["code"], "ENOMEM");
    let why = base["single_target"]["reason"].as_str().unwrap();
    assert!(why.contains("section 63 of 96") && why.contains("62 sections' memmap (124 MiB) fit"), "{why}");
    // So the largest single add is 62 blocks = 7,936 MiB.
    assert_eq!(base["largest_single"], 62u64 << 27);
    // Onlined, those 62 blocks (2,031,616 pages) hold the memmap of the other 34 blocks
    // (12 GiB = 96 blocks): two adds, each onlined before the next.
    let seq = base["sequence"].as_array().unwrap();
    assert_eq!(seq.len(), 2, "{base}");
    assert_eq!((seq[0]["size"].as_u64(), seq[1]["size"].as_u64()), (Some(62 << 27), Some(34 << 27)));
    assert_eq!(seq[1]["start"], (4u64 << 30) + (62u64 << 27));
    assert!(seq.iter().all(|s| s["online_step"] == true), "auto_online_blocks is offline: {base}");
    // 62 x 512 and 34 x 512 pages of memmap from node memory.
    assert_eq!((seq[0]["memmap_node_pages"].as_u64(), seq[1]["memmap_node_pages"].as_u64()), (Some(31_744), Some(17_408)));
    assert_eq!(base["reached"], 12u64 << 30);
    assert!(base["stuck"].is_null());

    // Memmap on memory: each block holds its own memmap, one 12 GiB add works, and the
    // largest single add is only the address space's limit (46 bits: 64 TiB - 4 GiB).
    let mom = strategy(&v, "mom");
    assert!(mom["single_target"].is_null(), "{mom}");
    assert_eq!(mom["limited_by_address_space"], true);
    assert_eq!(mom["largest_single"], (64u64 << 40) - (4u64 << 30));
}

#[test]
fn the_planned_sequence_runs_as_a_scenario() {
    let dir = scratch("plan-write-scenario");
    let file = dir.join("planned.toml");
    let r = run_host(P, &["plan", "--config", "small-vm-plan.toml", "--strategy", "base", "--write-scenario", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("one add of 12 GiB fails: ENOMEM"), "{}", r.stdout);
    assert!(r.stdout.contains("in steps (2 adds, each onlined before the next)"), "{}", r.stdout);
    // Run it: 2 adds and 2 onlines, all ok.
    let plugins = artifacts(P).display().to_string();
    let run = run_host(P, &["--config", file.to_str().unwrap(), "--plugin-dir", &plugins]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(": 4 steps, 4 as expected"), "{}", run.stdout);
    // 12 GiB onlined = 3,145,728 pages present on node 0, in Normal.
    assert!(run.stdout.contains("12 GiB Normal"), "{}", run.stdout);
}

#[test]
fn a_plan_needs_a_target_in_whole_blocks() {
    let r = run_host(P, &["plan", "--config", "system-ram.toml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no target: give --target SIZE"), "{}", r.stderr);
    let r = run_host(P, &["plan", "--config", "small-vm-plan.toml", "--target", "100MiB"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("positive multiple of the memory block size 128 MiB"), "{}", r.stderr);
    let r = run_host(P, &["plan", "--config", "small-vm-plan.toml", "--strategy", "nope"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--strategy nope"), "{}", r.stderr);
}

/// A 256 MiB guest with a 64 GiB virtio-mem region whose memory is onlined Movable.
const VIRTIO_GUEST: &str = r#"
[machine]
auto_online_blocks = "online_movable"
plugin_dirs = ["@PLUGINS@"]
[[machine.node]]
id = 0
boot = [{ start = "0", size = "256MiB" }]
[[step]]
op = "grow"
device = "virtio0"
start = "4GiB"
size = "128MiB"
region_size = "64GiB"
"#;

#[test]
fn virtio_mem_gets_its_largest_requested_size_step_and_why_not_more() {
    let config = hotplug_tests::write_config("plan_virtio", P, VIRTIO_GUEST);
    let r = run_host(P, &["plan", "--config", config.to_str().unwrap(), "--target", "32GiB", "--format", "json"]);
    // Exit 1: no DIMM sequence reaches 32 GiB either (the same memmap room runs out).
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let p = &v["plan"];
    let d = &p["virtio"][0];
    assert_eq!(d["device"], "virtio0");
    assert_eq!((d["plugged"].as_u64(), d["sb_size"].as_u64()), (Some(128 << 20), Some(2 << 20)));
    // The adds of the plan start above the device's region (4 GiB + 64 GiB), not inside it.
    assert_eq!(p["start"], 68u64 << 30);
    // 32 GiB is less than the 64 GiB - 128 MiB the region has left: asked for whole.
    assert_eq!(d["target_step"], 32u64 << 30);
    // Every block the device adds is onlined Movable, and Movable memory never holds
    // memmap: each 128 MiB block's 2 MiB (512 pages) of memmap comes from the guest's
    // own memory above its watermarks. So the largest step plugged in full is as many
    // blocks as that room holds 512 pages of, and one sub-block more needs a block more.
    let room = p["numbers"]["allocatable_pages"].as_u64().unwrap();
    let blocks = room / 512;
    assert!(blocks > 0 && blocks < 256, "{room}");
    assert_eq!(d["largest_step"].as_u64(), Some(blocks * (128 << 20)));
    assert_eq!(d["next_stops"]["code"], "ENOMEM");
    // A step of the target stops where the memmap runs out; what it plugged stands.
    assert_eq!(d["target_plugged"], d["largest_step"]);
    assert_eq!(d["target_stopped"]["code"], "ENOMEM");

    // The answer, run as scenarios: the largest step plugs in full, 2 MiB more does not.
    let largest = d["largest_step"].as_u64().unwrap();
    for (size, want) in [(largest, "ok"), (largest + (2 << 20), "partial")] {
        let text = format!("{VIRTIO_GUEST}[[step]]\nop = \"grow\"\ndevice = \"virtio0\"\nsize = \"{size:#x}\"\nexpect = \"{want}\"\n");
        let config = hotplug_tests::write_config("plan_virtio_run", P, &text);
        let r = run_host(P, &["--config", config.to_str().unwrap()]);
        assert_eq!(r.code, 0, "a grow of {size:#x} is not {want}:\n{}{}", r.stdout, r.stderr);
    }

    let text = run_host(P, &["plan", "--config", config.to_str().unwrap(), "--target", "32GiB"]).stdout;
    assert!(
        text.contains("virtio-mem virtio0 (node 0, region 0x100000000-0x10ffffffff, 64 GiB; 128 MiB plugged; 2 MiB sub-blocks):"),
        "{text}"
    );
    assert!(text.contains("  largest requested-size step plugged in full: +"), "{text}");
}
