//! Scenarios run through the real `host` binary, with the expected numbers worked out by
//! hand from the kernel rules (the reasoning beside each).

use hotplug_tests::{run_host, write_config, Profile};
use serde_json::Value;

const P: Profile = Profile::Debug;

fn run_json(test: &str, config: &str) -> (i32, Value) {
    let cfg = write_config(test, P, config);
    let run = run_host(P, &["--config", cfg.to_str().unwrap(), "--format", "json"]);
    assert!(run.code == 0 || run.code == 1, "exit {}: {}", run.code, run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", run.stdout));
    (run.code, v)
}

fn zone(v: &Value, node: u64, name: &str) -> (u64, u64, u64, u64) {
    hotplug_tests::json_zone_counters(v, node, name)
}

fn step(v: &Value, i: usize) -> &Value {
    &v["runs"][0]["steps"][i]
}

const ONE_GIB_VM: &str = r#"
[machine]
auto_online_blocks = "online"
plugin_dirs = ["@PLUGINS@"]

[[machine.node]]
id = 0
boot = [{ start = "0", size = "1GiB" }]
"#;

#[test]
fn small_vm_runs_out_of_memmap_at_the_predicted_section() {
    // Boot: 1 GiB = 262,144 pages in 8 sections; their memmap (8 x 512 = 4,096 pages)
    // comes from memblock, so managed = free = 258,048 pages (DMA 4,096, DMA32 253,952).
    // Watermarks with THP on (khugepaged): min_free_kbytes = 2 zones x 11 x 512 pages =
    // 45,056 kB; DMA32 min 11,085, low 13,856; DMA min 178, low 222, and 992 kept from
    // GFP_KERNEL (lowmem_reserve, 253,952 / 256).
    // Memmap PMD by PMD while a zone keeps more than its mark: DMA32 468 and DMA 5 above
    // low, DMA32 6 more above min, then one PMD of base pages (513, from the 545 left
    // above min): 480 sections, 479 x 512 + 513 = 245,761 pages = 983,044 KiB. 64 GiB
    // = 512 sections: section 481 fails with ENOMEM.
    let config = format!("{ONE_GIB_VM}\n[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"64GiB\"\nexpect = \"ENOMEM\"\n");
    let (code, v) = run_json("small_vm", &config);
    assert_eq!(code, 0);
    assert_eq!(v["schema_version"], 2);
    let s = step(&v, 0);
    assert_eq!(s["outcome"]["result"], "failed");
    assert_eq!(s["outcome"]["code"], "ENOMEM");
    let reason = s["outcome"]["reason"].as_str().unwrap();
    assert!(reason.contains("section 481 of 512"), "{reason}");
    assert!(reason.contains("node 0 DMA32 free 11,085 (min 11,085, low 13,856, reserve 0)"), "{reason}");
    assert!(reason.contains("480 sections' memmap (983,044 KiB) fit"), "{reason}");
    // The failed add left nothing behind: memmap freed, no blocks, DMA32 as at boot.
    assert_eq!(v["runs"][0]["state"]["memmap"]["node_pages"], 0);
    assert_eq!(v["runs"][0]["state"]["memory_blocks"], 8);
}

#[test]
fn one_gib_online_raises_present_and_managed() {
    // 1 GiB at 4 GiB = pfns 0x100000..0x140000: 8 blocks auto-onlined (online) into the
    // kernel zone: no DMA/DMA32 span intersects, no Movable span: Normal.
    // Normal: start 0x100000, spanned = present = managed = 262,144 (memmap in node memory).
    // MemTotal = (258,048 boot managed + 262,144) x 4 kB = 2,080,768 kB.
    // Node free = 258,048 + 262,144 onlined - 4,096 memmap = 516,096 pages.
    let config = format!("{ONE_GIB_VM}\n[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"1GiB\"\n");
    let (code, v) = run_json("one_gib", &config);
    assert_eq!(code, 0);
    assert_eq!(zone(&v, 0, "Normal"), (0x100000, 262_144, 262_144, 262_144));
    assert_eq!(v["runs"][0]["state"]["mem_total_kb"], 2_080_768);
    assert_eq!(v["runs"][0]["state"]["nodes"][0]["free"], 516_096);
    assert_eq!(step(&v, 0)["outcome"]["memmap_node_pages"], 4_096);
}

#[test]
fn add_path_errnos_in_kernel_order() {
    // E2BIG: 64 TiB is past 2^46 - 1 (max_phys_bits 46), checked first.
    // EEXIST: [512 MiB, 640 MiB) overlaps boot System RAM (the resource comes before alignment).
    // EINVAL: 4 GiB + 64 MiB is not a multiple of the 128 MiB block.
    // EINVAL: node 3 does not exist (checked after alignment).
    // E2BIG again: size 0 is an empty range.
    let config = format!(
        "{ONE_GIB_VM}
[[step]]
op = \"add\"
start = \"64TiB\"
size = \"128MiB\"
expect = \"E2BIG\"

[[step]]
op = \"add\"
start = \"512MiB\"
size = \"128MiB\"
expect = \"EEXIST\"

[[step]]
op = \"add\"
start = \"0x104000000\"
size = \"128MiB\"
expect = \"EINVAL\"

[[step]]
op = \"add\"
start = \"4GiB\"
size = \"128MiB\"
node = 3
expect = \"EINVAL\"

[[step]]
op = \"add\"
start = \"4GiB\"
size = \"0\"
expect = \"E2BIG\"
"
    );
    let (code, v) = run_json("errnos", &config);
    assert_eq!(code, 0, "{v}");
    assert!(step(&v, 1)["outcome"]["reason"].as_str().unwrap().contains("conflicts with \"System RAM\" 0x0-0x3fffffff"));
    assert!(step(&v, 3)["outcome"]["reason"].as_str().unwrap().contains("node 3 does not exist"));
}

#[test]
fn online_movable_then_offline_remove_restores_counters() {
    // 512 MiB at 4 GiB (4 blocks, left offline by auto_online_blocks = "offline"), then
    // online_movable: Movable spans 0x100000 + 131,072 pages, present = managed = 131,072.
    // Offline: present and managed drop to 0 and the span shrinks to nothing (no online
    // memory left in the zone). Remove: the 4 x 512 memmap pages go back to node 0.
    let config = r#"
[machine]
plugin_dirs = ["@PLUGINS@"]

[[machine.node]]
id = 0
boot = [{ start = "0", size = "2GiB" }]

[[step]]
op = "add"
start = "4GiB"
size = "512MiB"

[[step]]
op = "online"
online_type = "online_movable"
start = "4GiB"
size = "512MiB"

[[step]]
op = "remove"
start = "4GiB"
size = "512MiB"
expect = "EBUSY"

[[step]]
op = "offline"
start = "4GiB"
size = "512MiB"

[[step]]
op = "offline"
start = "4GiB"
size = "128MiB"
expect = "EINVAL"

[[step]]
op = "remove"
start = "4GiB"
size = "512MiB"
"#;
    let (code, v) = run_json("movable_cycle", config);
    assert_eq!(code, 0, "{v}");
    assert_eq!(step(&v, 1)["outcome"]["present_delta"], 131_072);
    assert_eq!(step(&v, 3)["outcome"]["managed_delta"], -131_072);
    assert_eq!(zone(&v, 0, "Movable"), (0, 0, 0, 0));
    assert_eq!(step(&v, 5)["outcome"]["memmap_freed_node_pages"], 2_048);
    assert_eq!(v["runs"][0]["state"]["memmap"]["node_pages"], 0);
    // 2 GiB boot: 16 sections x 512 = 8,192 memmap pages; free back to 524,288 - 8,192.
    assert_eq!(v["runs"][0]["state"]["nodes"][0]["free"], 516_096);
}

#[test]
fn mismatched_expectation_exits_1_and_says_so() {
    let config = format!("{ONE_GIB_VM}\n[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"64GiB\"\n");
    let cfg = write_config("mismatch", P, &config);
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("ENOMEM") && run.stdout.contains("<< expected ok"), "{}", run.stdout);
}

/// Every config shipped in configs/.
fn shipped_configs() -> Vec<String> {
    let dir = hotplug_tests::workspace_root().join("configs");
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n.ends_with(".toml")).collect();
    names.sort();
    assert!(names.len() >= 2, "{names:?}");
    names
}

#[test]
fn shipped_configs_run_and_match_their_expectations() {
    for name in shipped_configs() {
        let run = run_host(P, &["--config", &name]);
        assert_eq!(run.code, 0, "{name}: {}\n{}", run.stdout, run.stderr);
    }
}

#[test]
fn every_shipped_config_prints_the_kernel_views() {
    for name in shipped_configs() {
        let run = run_host(P, &["--config", &name, "--view", "zoneinfo", "--view", "iomem", "--view", "meminfo"]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        // Only the views on stdout, each under a `head`-style header.
        let headers: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("==> ")).collect();
        // A `compare` config shows each strategy's run: "==> zoneinfo (strategy base) <==".
        assert!(!headers.is_empty() && headers.len() % 3 == 0, "{name}: {headers:?}");
        for (h, view) in headers.iter().zip(["zoneinfo", "iomem", "meminfo"].iter().cycle()) {
            assert!(h.starts_with(&format!("==> {view}")) && h.ends_with(" <=="), "{name}: {h}");
        }
        assert!(run.stdout.contains("Node 0, zone      DMA\n"), "{name}: {}", run.stdout);
        assert!(run.stdout.contains(" : System RAM\n"), "{name}");
        assert!(run.stdout.contains("MemTotal: "), "{name}");
    }
}

#[test]
fn view_after_shows_the_state_after_that_step() {
    // small-vm-grow.toml, a 1 GiB VM: after step 0 (boot) MemTotal is 258,048 managed pages
    // = 1,032,192 kB and iomem holds the boot range only. A single view prints bare.
    let run = run_host(P, &["--config", "small-vm-grow.toml", "--view", "meminfo", "--view-after", "0"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "MemTotal:        1032192 kB\nMemFree:         1032192 kB\n");
    // After step 3 (8 GiB onlined at 4 GiB): a second System RAM line.
    let run = run_host(P, &["--config", "small-vm-grow.toml", "--view", "iomem", "--view-after", "3"]);
    assert_eq!(run.stdout, "00000000-3fffffff : System RAM\n100000000-2ffffffff : System RAM\n");
    // A step past the end is a one-line error, exit 2.
    let run = run_host(P, &["--config", "small-vm-grow.toml", "--view", "iomem", "--view-after", "5"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--view-after 5") && run.stderr.contains("has 4 step(s)"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn device_toml_reports_the_hand_worked_numbers() {
    // configs/device.toml (the README's main job). Step 1, 16 GiB fsdax --map=dev: data
    // offset 258 MiB = 264,192 KiB; memmap 128 x 512 = 65,536 pages = 256 MiB in the
    // device, none in RAM; 4,194,304 - 66,048 = 4,128,256 device pages, all initialised.
    // Step 2, 64 GiB device-dax with 2 MiB compounds, memmap in RAM: 512 sections x 129 =
    // 66,048 pages = 258 MiB; 262,144 - 66,048 = 196,096 pages = 766 MiB saved;
    // 32,768 compounds x 128 = 4,194,304 struct pages initialised.
    let run = run_host(P, &["--config", "device.toml"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let line = |n: &str| run.stdout.lines().find(|l| l.starts_with(n)).unwrap_or_else(|| panic!("no step {n}: {}", run.stdout)).to_string();
    let one = line("#1 ");
    for want in [
        "16,126 MiB (4,128,256 pages) of device memory",
        "memmap 0 B in RAM",
        "256 MiB (65,536 pages) in the device",
        "4,128,256 struct pages initialised",
        "data offset 258 MiB",
    ] {
        assert!(one.contains(want), "{want}: {one}");
    }
    let two = line("#2 ");
    for want in [
        "64 GiB (16,777,216 pages) of device memory in order-9 compounds",
        "memmap 258 MiB (66,048 pages) in RAM",
        "766 MiB saved by compound pages",
        "4,194,304 struct pages initialised",
    ] {
        assert!(two.contains(want), "{want}: {two}");
    }
    // The Device zone spans [16 GiB, 128 GiB) = 29,360,128 pages, none present, none
    // managed or free, watermarks 0.
    assert!(
        run.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "Device", "0x400000", "29,360,128", "0", "0", "0", "0/0/0"]),
        "{}",
        run.stdout
    );
}

#[test]
fn every_shipped_config_writes_a_sysfs_tree() {
    for name in shipped_configs() {
        let dir = hotplug_tests::scratch(&format!("sysfs-{name}")).join("memory");
        let run = run_host(P, &["--config", &name, "--sysfs-out", dir.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let bs = std::fs::read_to_string(dir.join("block_size_bytes")).unwrap();
        assert!(u64::from_str_radix(bs.trim(), 16).is_ok(), "{name}: {bs:?}");
        // Every memoryN directory has the six kernel attributes, state matching online.
        for entry in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap()).filter(|e| e.file_name().to_string_lossy().starts_with("memory"))
        {
            let state = std::fs::read_to_string(entry.path().join("state")).unwrap();
            let online = std::fs::read_to_string(entry.path().join("online")).unwrap();
            assert_eq!((state == "online\n"), (online == "1\n"), "{name}: {:?}", entry.path());
            for f in ["phys_index", "valid_zones", "phys_device", "removable"] {
                assert!(entry.path().join(f).is_file(), "{name}: {f}");
            }
        }
    }
}

#[test]
fn timings_go_to_stderr_and_leave_the_json_clean() {
    // Two steps on the 1 GiB VM (auto-online): 1 GiB fits and is onlined, leaving
    // 258,048 + 262,144 - 4,096 = 516,096 free pages; 256 GiB then needs 2,048 x 512 =
    // 1,048,576 pages of memmap: ENOMEM, accepted by `expect = "any"`.
    let config = format!(
        "{ONE_GIB_VM}\n[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"1GiB\"\n\
         [[step]]\nop = \"add\"\nstart = \"8GiB\"\nsize = \"256GiB\"\nexpect = \"any\"\n"
    );
    let cfg = write_config("timings", P, &config);
    let run = run_host(P, &["--config", cfg.to_str().unwrap(), "--format", "json", "--timings"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).expect("stdout is only the JSON report");
    assert_eq!(step(&v, 1)["outcome"]["code"], "ENOMEM");
    assert_eq!(step(&v, 1)["expect"], "any");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(lines[0].starts_with("timings: config parse ") && lines[0].contains(", plugins "), "{}", run.stderr);
    assert!(lines.iter().any(|l| l.starts_with("timings: #1     add ") && l.ends_with(" ms (ok)")), "{}", run.stderr);
    assert!(lines.iter().any(|l| l.starts_with("timings: #2     add ") && l.ends_with(" ms (ENOMEM)")), "{}", run.stderr);
    let last = lines.last().unwrap();
    assert!(last.starts_with("timings: 2 step(s), ") && last.contains("peak memory (VmHWM) "), "{last}");
}
