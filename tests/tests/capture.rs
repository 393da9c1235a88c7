//! Booting from the captured real machine (../shared/data/real-machines): the model must
//! re-render its sysfs tree, its /proc/iomem and its zones' spanned/present/start_pfn
//! exactly; steps then run on it; `host snapshot` copies a root faithfully.

use std::path::PathBuf;

use hotplug_host::model::ZoneType;
use hotplug_host::runner::Outcome;
use hotplug_host::views::{sysfs, View};
use hotplug_tests::{run_host, run_in_process, scratch, zone, Profile};

fn capture() -> PathBuf {
    hotplug_tests::workspace_root().join("../shared/data/real-machines/x86_64-vm-6.18-24g")
}

fn config(steps: &str) -> String {
    format!("[machine]\nfrom = \"{}\"\n{steps}", capture().display())
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(capture().join(rel)).unwrap()
}

#[test]
fn the_booted_model_reproduces_the_capture() {
    let r = run_in_process("capture-boot", &config(""));
    let m = &r.model;
    // sysfs: every file the model writes equals the captured one, and every captured
    // block file is written.
    let files = sysfs::files(m);
    for (rel, text, _) in &files {
        assert_eq!(text, &read(&format!("sys/devices/system/memory/{rel}")), "{rel}");
    }
    let captured_blocks = std::fs::read_dir(capture().join("sys/devices/system/memory")).unwrap().count() - 2;
    assert_eq!(files.len(), 2 + 6 * captured_blocks);
    // 192 blocks: [0, 3 GiB) is 24 blocks, [4 GiB, 25 GiB) 168.
    assert_eq!(captured_blocks, 192);
    // /proc/iomem, every line (System RAM and the rest).
    assert_eq!(View::Iomem.render(m), read("proc/iomem"));
    // /proc/zoneinfo, the lines the model knows but `pages free` (a running machine's):
    // the counters as captured, and the watermarks and protection the model computes
    // from them, as the real kernel did (khugepaged's 3 zones x 11 x 512 = 16,896 pages
    // over lowmem 1,366,579: DMA min 16,896 x 3,840 / 1,366,579 = 47, gap max(11, 3) =
    // 11; DMA32 9,556 and 2,389; Normal 7,292 and 1,823; DMA's protection 772,915 / 256
    // = 3,019 and (772,915 + 589,824) / 256 = 5,323).
    let known = ["boost", "min", "low", "high", "promo", "spanned", "present", "managed", "cma", "protection:", "start_pfn:"];
    let lines = |text: &str| -> String {
        text.lines()
            .filter(|l| l.starts_with("Node") || l.split_whitespace().next().is_some_and(|w| known.contains(&w)))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    assert_eq!(lines(&View::Zoneinfo.render(m)), lines(&read("proc/zoneinfo")));
    // MemTotal cannot match meminfo (the capture's known quirk: zoneinfo was read during
    // deferred struct-page init): managed 3,840 + 772,915 + 589,824 = 1,366,579 pages.
    assert_eq!(m.total_managed(), 1_366_579);
    assert_eq!(m.nodes.get(&0).unwrap().zone(ZoneType::Dma).start_pfn, 1);
}

#[test]
fn steps_run_on_the_captured_machine() {
    // auto_online_blocks is "offline" in the capture, so 64 GiB at 64 GiB (below the PCI
    // window at 256 GiB) stays offline: 512 blocks, memmap 512 x 512 = 262,144 pages from
    // node 0, whose free memory is its managed pages: 1,366,579 - 262,144 = 1,104,435.
    // min_free_kbytes: THP is on, so khugepaged's 3 zones x 11 pageblocks x 512 = 16,896
    // pages (67,584 kB; the real machine's zoneinfo agrees), all 512 PMDs from Normal
    // ((589,824 - 9,115 low) / 512 = 1,134 fit above its low watermark).
    // 300 GiB lands in "PCI Bus 0000:00" (a non-busy window, so the kernel would nest it)
    // but [256 GiB, 256 GiB + 512 KiB) is the busy virtio BAR: EEXIST.
    let steps = "[[step]]\nop = \"add\"\nstart = \"64GiB\"\nsize = \"64GiB\"\n\
                 [[step]]\nop = \"add\"\nstart = \"256GiB\"\nsize = \"1GiB\"\nexpect = \"EEXIST\"\n";
    let r = run_in_process("capture-steps", &config(steps));
    match &r.steps[0].outcome {
        Outcome::Added(a) => assert_eq!((a.blocks.len(), a.memmap_node_pages), (512, 262_144)),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.history[0].min_free_pages(), 16_896);
    assert_eq!(r.model.nodes.get(&0).unwrap().free_pages(), 1_104_435);
    match &r.steps[1].outcome {
        Outcome::Failed(e) => assert!(e.reason.contains("virtio-pci-modern") || e.reason.contains("0000:00:01.0"), "{}", e.reason),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sysfs_out_and_snapshot_from_the_command_line() {
    let dir = scratch("capture-cli");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, config("")).unwrap();
    let out = dir.join("sysfs");
    let run = run_host(Profile::Debug, &["--config", cfg.to_str().unwrap(), "--sysfs-out", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let status = std::process::Command::new("diff").arg("-r").arg(&out).arg(capture().join("sys/devices/system/memory")).status().unwrap();
    assert!(status.success(), "diff -r found differences");
    // A second run into the same, now full, directory is refused.
    let run = run_host(Profile::Debug, &["--config", cfg.to_str().unwrap(), "--sysfs-out", out.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not empty"), "{}", run.stderr);
    // `host snapshot --root CAPTURE` copies exactly the capture.
    let snap = dir.join("snap");
    let run =
        run_host(Profile::Debug, &["snapshot", "--root", capture().to_str().unwrap(), "--out", snap.to_str().unwrap(), "--settle", "0"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // This capture was taken during deferred struct-page init (../shared/data/real-machines/
    // README.md): zoneinfo's managed pages are 3,840 + 772,915 + 589,824 = 1,366,579 pages
    // = 5,466,316 kB against MemTotal 24,684,084 kB. The counters never settle, so the
    // snapshot says so in one line (and still copies what it read).
    let warning: Vec<&str> = run.stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warning.len(), 1, "{}", run.stderr);
    assert!(warning[0].contains("5466316 kB but meminfo's MemTotal is 24684084 kB"), "{}", run.stderr);
    let status = std::process::Command::new("diff").arg("-r").arg(&snap).arg(capture()).status().unwrap();
    assert!(status.success(), "snapshot differs from its root");
}

#[test]
fn broken_captures_are_one_line_errors_at_the_from_key() {
    let dir = scratch("capture-broken");
    // Missing files: an empty directory.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    // Garbage: a copy whose iomem is nonsense.
    let garbage = dir.join("garbage");
    let run =
        run_host(Profile::Debug, &["snapshot", "--root", capture().to_str().unwrap(), "--out", garbage.to_str().unwrap(), "--settle", "0"]);
    assert_eq!(run.code, 0);
    std::fs::write(garbage.join("proc/iomem"), "this is not iomem\n").unwrap();
    for (root, want) in [(empty, "cannot read proc/iomem"), (garbage, "proc/iomem line 1")] {
        let cfg = dir.join("c.toml");
        std::fs::write(&cfg, format!("[machine]\nfrom = \"{}\"\n", root.display())).unwrap();
        let run = run_host(Profile::Debug, &["--config", cfg.to_str().unwrap()]);
        assert_eq!(run.code, 2, "{}", run.stdout);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains("c.toml:2:8") && run.stderr.contains(want), "{}", run.stderr);
    }
}

#[test]
fn booting_from_a_capture_taken_during_deferred_init_says_so_in_one_line() {
    // Same figures as above: the model boots with zoneinfo's 5,466,316 kB and says that
    // meminfo's MemTotal was 24,684,084 kB, at the config's `from` line.
    let dir = scratch("capture-unsettled");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, config("")).unwrap();
    let run = run_host(Profile::Debug, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].contains("c.toml:") && lines[0].contains("deferred struct-page initialisation"), "{}", run.stderr);
    assert!(lines[0].contains("MemTotal 5466316 kB, not 24684084 kB"), "{}", run.stderr);
    assert!(lines[0].contains("set `settle = true` in [machine] to boot with meminfo's totals"), "{}", run.stderr);
    assert!(run.stdout.contains("MemTotal 5,466,316 kB"), "{}", run.stdout);
}

#[test]
fn settle_boots_an_early_capture_with_meminfos_totals() {
    // The capture's zoneinfo was read during deferred struct-page init: managed 3,840 +
    // 772,915 + 589,824 = 1,366,579 pages = 5,466,316 kB, while meminfo's MemTotal is
    // 24,684,084 kB. `settle = true` gives the 19,217,768 kB = 4,804,442 missing pages
    // to the zone that lacks most (present - managed): Normal, 5,505,024 - 589,824 =
    // 4,915,200 short, so it takes all of them: 5,394,266 managed. MemTotal then matches.
    let r = run_in_process("capture-settle", &config("").replace("[machine]\n", "[machine]\nsettle = true\n"));
    assert_eq!(r.model.total_managed() * 4, 24_684_084);
    assert_eq!(zone(&r.model, 0, ZoneType::Normal).3, 5_394_266);
    assert_eq!(zone(&r.model, 0, ZoneType::Dma32).3, 772_915);
}
