//! Hostile and tired-user inputs (issue 17): files that are not files, output that cannot
//! be written, captures that lie, arithmetic at the edges. Each must end by itself, with
//! one clear line and exit 2 (or the kernel's errno as a step outcome), and leave nothing
//! half-written. A run that has not ended after HANG seconds is a hang: the test kills it
//! and fails (a hang detector, not a performance target).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hotplug_tests::{host_exe, scratch, write_config, Profile, Run};

const P: Profile = Profile::Debug;
const HANG: Duration = Duration::from_secs(60);
const VM: &str = "[machine]\nplugin_dirs = [\"@PLUGINS@\"]\n[[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"1GiB\" }]\n";

/// Run `host` with `args`, stdin from `stdin` (or nothing), killing it after [`HANG`].
fn run(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut child = Command::new(host_exe(P))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start host");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            use std::io::Write as _;
            let _ = pipe.write_all(&bytes);
        });
    }
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            panic!("host {args:?} hung (killed after {HANG:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
    }
}

/// The run failed with exactly one line on stderr, containing each of `says`.
fn one_line(run: &Run, says: &[&str]) {
    assert_eq!(run.code, 2, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    for s in says {
        assert!(run.stderr.contains(s), "{s:?} not in {}", run.stderr);
    }
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_fifo_or_a_device_as_the_config_is_refused_at_once() {
    let dir = scratch("hostile-config-fifo");
    let fifo = dir.join("config.fifo");
    mkfifo(&fifo);
    // Nobody writes the FIFO: opening it for reading would block for ever.
    one_line(&run(&["--config", s(&fifo)], None), &["config.fifo: is a FIFO, not a regular file"]);
    one_line(&run(&["--config", "/dev/zero"], None), &["/dev/zero: is a character device"]);
    one_line(&run(&["--config", "/dev/null"], None), &["/dev/null: is a character device"]);
}

#[test]
fn standard_input_is_a_config_read_with_the_same_bound() {
    let cfg = VM.replace("@PLUGINS@", &hotplug_tests::artifacts(P).display().to_string());
    let ok = run(&["--config", "-"], Some(cfg.as_bytes()));
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.starts_with("-: 0 steps"), "{}", ok.stdout);
    // 16 MiB + 1 byte of comment: refused after reading 16 MiB + 1, whatever follows.
    let mut big = cfg.into_bytes();
    big.push(b'#');
    big.resize((16 << 20) + 1, b'x');
    one_line(&run(&["--config", "-"], Some(&big)), &["the limit is 16777216 (16 MiB)"]);
}

#[test]
fn compare_with_no_strategies_is_a_located_error() {
    let cfg = write_config("hostile-compare", P, &format!("compare = []\n{VM}"));
    one_line(&run(&["--config", s(&cfg)], None), &["scenario.toml:1:11", "compare = [] names no strategy"]);
    // Also with --sysfs-out, which once panicked on the missing first run.
    let out = cfg.parent().unwrap().join("sysfs");
    one_line(&run(&["--config", s(&cfg), "--sysfs-out", s(&out)], None), &["compare = []"]);
    assert!(!out.exists());
    let twice = write_config(
        "hostile-compare-twice",
        P,
        &format!("compare = [\"a\", \"a\"]\n{VM}[[strategy]]\nname = \"a\"\nplugin = \"system-ram\"\n"),
    );
    one_line(&run(&["--config", s(&twice)], None), &["compare names strategy \"a\" twice"]);
}

#[test]
fn a_full_disk_on_stdout_is_one_line_and_exit_2() {
    let cfg = write_config("hostile-dev-full", P, VM);
    for format in ["text", "json"] {
        let full = std::fs::File::create("/dev/full").expect("/dev/full");
        let out =
            Command::new(host_exe(P)).args(["--config", s(&cfg), "--format", format]).stdout(full).stderr(Stdio::piped()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim(), "host: error: cannot write to standard output: No space left on device (os error 28)");
    }
}

#[test]
fn a_closed_pipe_ends_the_run_quietly() {
    // A report longer than a pipe's buffer (64 KiB), read for one line only: the writes
    // after the reader went away end the process by SIGPIPE, as they would end `cat`.
    let mut steps = String::from(VM);
    for i in 0..400 {
        steps.push_str(&format!("[[step]]\nop = \"add\"\nstart = \"{}GiB\"\nsize = \"128MiB\"\n", 4 + i));
    }
    let cfg = write_config("hostile-head", P, &steps);
    let script = format!("{} --config {} | head -1 >/dev/null; echo \"${{PIPESTATUS[0]}}\"", host_exe(P).display(), cfg.display());
    let out = Command::new("bash").arg("-c").arg(&script).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
    // 141 = 128 + SIGPIPE (13): what a shell reports for a writer whose reader left.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "141");
}

#[test]
fn a_tree_that_cannot_be_written_leaves_the_report_and_no_half_tree() {
    let cfg = write_config("hostile-sysfs-out", P, VM);
    let dir = cfg.parent().unwrap();
    // A file where the tree should go.
    let file = dir.join("in-the-way");
    std::fs::write(&file, "x").unwrap();
    let r = run(&["--config", s(&cfg), "--sysfs-out", s(&file)], None);
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("0 steps"), "the report is printed first: {}", r.stdout);
    assert!(r.stderr.contains("exists and is not a directory"), "{}", r.stderr);
    // A file where the tree's parent should be: nothing can be created, nothing is left.
    let r = run(&["--config", s(&cfg), "--sysroot-out", s(&file.join("tree"))], None);
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("0 steps"));
    assert!(r.stderr.starts_with("host: error: --sysroot-out") && r.stderr.contains("Not a directory"), "{}", r.stderr);
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    // A read-only parent (not for root, who may write there anyway): nothing can be created beside the tree, and nothing is left.
    let ro = dir.join("read-only");
    std::fs::create_dir(&ro).unwrap();
    let mut perms = std::fs::metadata(&ro).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
    std::fs::set_permissions(&ro, perms).unwrap();
    let target = ro.join("sysroot");
    let r = run(&["--config", s(&cfg), "--sysroot-out", s(&target)], None);
    let root = unsafe { libc_geteuid() } == 0;
    if !root {
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stdout.contains("0 steps"));
        assert!(r.stderr.starts_with("host: error: --sysroot-out"), "{}", r.stderr);
        assert_eq!(std::fs::read_dir(&ro).unwrap().count(), 0, "no partial tree");
    }
    // A successful write leaves exactly the tree, no temporary directory beside it.
    let good = dir.join("good");
    let r = run(&["--config", s(&cfg), "--sysroot-out", s(&good)], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains("partial")), "{names:?}");
    assert!(good.join("sys/devices/system/memory/block_size_bytes").is_file());
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// A copy of the captured real machine to break.
fn capture_copy(test: &str) -> PathBuf {
    let real = hotplug_tests::workspace_root().join("../shared/data/real-machines/x86_64-vm-6.18-24g");
    let dir = scratch(test).join("capture");
    let status = Command::new("cp").arg("-r").arg(&real).arg(&dir).status().unwrap();
    assert!(status.success());
    dir
}

fn boot_capture(capture: &Path) -> Run {
    let cfg = capture.parent().unwrap().join("c.toml");
    std::fs::write(&cfg, format!("[machine]\nfrom = \"{}\"\n", capture.display())).unwrap();
    run(&["--config", s(&cfg)], None)
}

#[test]
fn capture_files_that_are_not_files_are_refused_without_blocking() {
    let capture = capture_copy("hostile-capture-fifo");
    std::fs::remove_file(capture.join("proc/zoneinfo")).unwrap();
    mkfifo(&capture.join("proc/zoneinfo"));
    one_line(&boot_capture(&capture), &["c.toml:2:8", "cannot read proc/zoneinfo: it is a FIFO, not a regular file"]);
    // /dev/zero behind a symlink: refused as a link out of the capture before any read.
    std::fs::remove_file(capture.join("proc/zoneinfo")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", capture.join("proc/zoneinfo")).unwrap();
    one_line(&boot_capture(&capture), &["cannot read proc/zoneinfo: it is a symlink out of the capture directory"]);
    // A big regular file: read up to its limit only (64 MiB for zoneinfo).
    std::fs::remove_file(capture.join("proc/zoneinfo")).unwrap();
    let f = std::fs::File::create(capture.join("proc/zoneinfo")).unwrap();
    f.set_len((64 << 20) + 1).unwrap();
    one_line(&boot_capture(&capture), &["cannot read proc/zoneinfo: it is more than 67108864 bytes"]);
}

#[test]
fn a_capture_symlink_to_the_environment_never_quotes_it() {
    let capture = capture_copy("hostile-capture-environ");
    std::fs::remove_file(capture.join("proc/iomem")).unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", capture.join("proc/iomem")).unwrap();
    std::fs::write(capture.parent().unwrap().join("c.toml"), format!("[machine]\nfrom = \"{}\"\n", capture.display())).unwrap();
    let out = Command::new(host_exe(P))
        .args(["--config", s(&capture.parent().unwrap().join("c.toml"))])
        .env("HOSTILE_SECRET", "do-not-print-me")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr.contains("do-not-print-me"), "{stderr}");
    assert!(stderr.contains("symlink out of the capture directory"), "{stderr}");
    // A long garbage line inside the capture is quoted by its first 48 bytes only.
    std::fs::remove_file(capture.join("proc/iomem")).unwrap();
    std::fs::write(capture.join("proc/iomem"), format!("{}\n", "A".repeat(10_000))).unwrap();
    let r = boot_capture(&capture);
    one_line(&r, &["proc/iomem line 1", &format!("\"{}... (10000 bytes)\"", "A".repeat(48))]);
    assert!(r.stderr.len() < 400, "{}", r.stderr);
}

#[test]
fn captures_that_lie_are_refused_with_file_and_line() {
    let capture = capture_copy("hostile-capture-lies");
    let zoneinfo = std::fs::read_to_string(capture.join("proc/zoneinfo")).unwrap();
    let iomem = std::fs::read_to_string(capture.join("proc/iomem")).unwrap();
    // The capture's zoneinfo: "Node 0, zone      DMA" is line 1 and its managed count
    // (3840) is a few lines below: each lie replaces one counter of the DMA zone.
    let dma_managed = zoneinfo.lines().position(|l| l.trim().starts_with("managed")).unwrap();
    let lie = |what: &str, by: &str| {
        let mut lines: Vec<String> = zoneinfo.lines().map(String::from).collect();
        lines[dma_managed] = lines[dma_managed].replace(what, by);
        lines.join("\n") + "\n"
    };
    let cases = [
        (lie("3840", "18446744073709551615"), vec![format!("proc/zoneinfo line {}", dma_managed + 1), "more pages than".into()]),
        // managed 3999 > present 3998 (the DMA zone's present count).
        (lie("3840", "3999"), vec!["proc/zoneinfo line 1".into(), "managed 3999 <= present 3998".into()]),
    ];
    for (text, says) in cases {
        std::fs::write(capture.join("proc/zoneinfo"), text).unwrap();
        let says: Vec<&str> = says.iter().map(String::as_str).collect();
        one_line(&boot_capture(&capture), &says);
    }
    std::fs::write(capture.join("proc/zoneinfo"), &zoneinfo).unwrap();
    std::fs::write(capture.join("proc/iomem"), format!("{iomem}100000000-ffffffffffffffff : System RAM\n")).unwrap();
    let n = iomem.lines().count() + 1;
    one_line(&boot_capture(&capture), &[&format!("proc/iomem line {n}"), "ffffffffffffffff"]);
    std::fs::write(capture.join("proc/iomem"), &iomem).unwrap();
    let params = capture.join("sys/module/memory_hotplug/parameters");
    for (file, garbage) in [("online_policy", "sideways\n"), ("auto_movable_ratio", "-5\n"), ("auto_movable_numa_aware", "maybe\n")] {
        let before = std::fs::read(params.join(file)).unwrap();
        std::fs::write(params.join(file), garbage).unwrap();
        one_line(&boot_capture(&capture), &[&format!("parameters/{file} line 1"), garbage.trim()]);
        std::fs::write(params.join(file), before).unwrap();
    }
    // Restored, the capture boots.
    assert_eq!(boot_capture(&capture).code, 0);
}

/// The one-line error of a config, or the report of a run that ended by itself.
fn run_config(test: &str, text: &str, args: &[&str]) -> Run {
    let cfg = write_config(test, P, text);
    let mut all = vec!["--config", s(&cfg)];
    all.extend_from_slice(args);
    let all: Vec<String> = all.iter().map(|a| a.to_string()).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    run(&refs, None)
}

/// The report line of step `n` (`#n ...`).
fn step_line(run: &Run, n: usize) -> String {
    let prefix = format!("#{n} ");
    run.stdout.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no step {n}: {}\n{}", run.stdout, run.stderr)).to_string()
}

#[test]
fn ranges_that_wrap_past_2_64_are_located_errors() {
    // 0xffff_ffff_f000_0000 + 512 MiB = 2^64 + 256 MiB: the end cannot be written.
    let grow = "[[step]]\nop = \"grow\"\nstart = \"0xfffffffff0000000\"\nsize = \"0x20000000\"\ndevice = \"v\"\n";
    one_line(
        &run_config("hostile-wrap-grow", &format!("{VM}{grow}"), &[]),
        &["scenario.toml:9:8", "start 0xfffffffff0000000 + size 0x20000000 passes 2^64"],
    );
    let add = "[[step]]\nop = \"add\"\nstart = \"0xffffffffffffffff\"\nsize = \"2\"\n";
    one_line(&run_config("hostile-wrap-add", &format!("{VM}{add}"), &[]), &["scenario.toml:9:8", "passes 2^64"]);
    let region = "[[step]]\nop = \"grow\"\nstart = \"4GiB\"\nsize = \"1GiB\"\ndevice = \"v\"\nregion_size = \"0xffffffffffffffff\"\n";
    one_line(&run_config("hostile-wrap-region", &format!("{VM}{region}"), &[]), &["scenario.toml:11:15", "region_size"]);
}

#[test]
fn grow_units_the_kernel_refuses_are_einval_not_a_division_by_zero() {
    // memory_group_register_dynamic: a unit of whole memory blocks, a power of two.
    for unit in ["0", "3", "192MiB", "64MiB"] {
        let text = format!(
            "[machine]\nplugin_dirs = [\"@PLUGINS@\"]\nonline_policy = \"auto-movable\"\nauto_online_blocks = \"online\"\n\
             [[machine.node]]\nid = 0\nboot = [{{ start = \"0\", size = \"1GiB\" }}]\n\
             [[step]]\nop = \"grow\"\nstart = \"4GiB\"\nsize = \"256MiB\"\ndevice = \"v\"\nunit = \"{unit}\"\nexpect = \"EINVAL\"\n"
        );
        let r = run_config("hostile-unit", &text, &[]);
        assert_eq!(r.code, 0, "unit {unit}: {}\n{}", r.stdout, r.stderr);
        assert!(step_line(&r, 1).contains("dynamic memory group's unit"), "{}", r.stdout);
    }
}

#[test]
fn exabyte_ranges_end_at_once_with_the_kernels_errno() {
    // A 64-bit physical address space, so every range below is inside the pluggable one.
    let text = "[machine]\nmax_phys_bits = 64\nplugin_dirs = [\"@PLUGINS@\"]\n\
                [[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"1GiB\" }]\n\
                [[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"8EiB\"\nexpect = \"ENOMEM\"\n\
                [[step]]\nop = \"online\"\nstart = \"0\"\nsize = \"0xffffffff00000000\"\nexpect = \"ENOENT\"\n\
                [[step]]\nop = \"offline\"\nstart = \"0\"\nsize = \"0xffffffff00000000\"\nexpect = \"ENOENT\"\n\
                [[step]]\nop = \"remove\"\nstart = \"8GiB\"\nsize = \"0xfffffffd00000000\"\nexpect = \"ENOENT\"\n\
                [[step]]\nop = \"grow\"\nstart = \"4GiB\"\nsize = \"0xfffffffe00000000\"\ndevice = \"v\"\nexpect = \"partial\"\n\
                [[step]]\nop = \"memremap\"\nsize = \"8EiB\"\nexpect = \"ERANGE\"\n";
    let r = run_config("hostile-exabytes", text, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // 8 EiB of System RAM needs 8 EiB / 64 = 128 PiB of memmap; the 1 GiB boot node runs
    // out at section 481 (as small-vm.toml's first add does: the same zones and watermarks).
    assert!(step_line(&r, 1).contains("ENOMEM: memmap for section 481 of 68,719,476,736"), "{}", r.stdout);
    // The memremap's free-region search finds no 8 EiB slot: the virtio-mem region of
    // step 5 spans 4 GiB up to 16 EiB - 4 GiB.
    assert!(step_line(&r, 6).contains("ERANGE: no free 8 EiB region"), "{}", r.stdout);
    // An 8 EiB boot (2^51 pages; its memmap alone is 2^57 bytes) boots in bounded time.
    let boot = "[machine]\nmax_phys_bits = 64\nmemory_block_size = \"2GiB\"\n[[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"8EiB\" }]\n";
    let r = run_config("hostile-8eib-boot", boot, &["--view", "meminfo"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("MemTotal:"), "{}", r.stdout);
}

#[test]
fn geometry_and_compound_orders_outside_the_kernels_limits_are_refused() {
    let tiny = "[machine]\nsection_size = \"4KiB\"\nsubsection_size = \"4KiB\"\nmemory_block_size = \"4KiB\"\n";
    one_line(&run_config("hostile-4k-sections", tiny, &[]), &["scenario.toml:2:16", "section_size 0x1000 is smaller than a pageblock"]);
    // A pageblock (512 pages = 2 MiB) is the smallest section the kernel builds.
    let smallest = "[machine]\nsection_size = \"2MiB\"\nsubsection_size = \"2MiB\"\nmemory_block_size = \"2MiB\"\n";
    assert_eq!(run_config("hostile-2m-sections", smallest, &[]).code, 0);
    // vmemmap_shift u32::MAX: 2^(2^32 - 1) pages per compound page passes 2^64 bytes; the
    // host refuses it before device-pgmap sees it (it once panicked there).
    let shift =
        format!("{VM}[[step]]\nop = \"memremap\"\nstart = \"16GiB\"\nsize = \"1GiB\"\nvmemmap_shift = 4294967295\nexpect = \"EINVAL\"\n");
    let r = run_config("hostile-vmemmap-shift", &shift, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        step_line(&r, 1).contains("EINVAL: vmemmap_shift 4294967295: a compound page of 2^4294967295 pages passes 2^64 bytes"),
        "{}",
        r.stdout
    );
    // 52 + 12 = 64: the first order too big for 4 KiB pages; 51 is refused by the
    // plugin's own alignment rule, never by a panic.
    let shift = shift.replace("4294967295", "52");
    assert!(step_line(&run_config("hostile-vmemmap-52", &shift, &[]), 1).contains("EINVAL: vmemmap_shift 52"));
    let shift = shift.replace("= 52", "= 51").replace("\"EINVAL\"", "\"any\"");
    let line = step_line(&run_config("hostile-vmemmap-51", &shift, &[]), 1);
    assert!(line.contains("EINVAL") && !line.contains("panicked"), "{line}");
}

#[test]
fn more_nodes_than_max_numnodes_are_refused_and_1024_cost_no_square() {
    let nodes = |n: u32| -> String {
        (0..n).map(|i| format!("[[machine.node]]\nid = {i}\nboot = [{{ start = \"{i}GiB\", size = \"1GiB\" }}]\n")).collect()
    };
    let header = "[machine]\nplugin_dirs = [\"@PLUGINS@\"]\nauto_online_blocks = \"online\"\n";
    // Node ids go up to MAX_NUMNODES - 1 = 1023; the 1,025th node (id 1024) starts at
    // line 3 + 3 x 1024 + 1 = 3076.
    one_line(&run_config("hostile-1025-nodes", &format!("{header}{}", nodes(1025)), &[]), &["scenario.toml:3076:1", "MAX_NUMNODES"]);
    // 1,024 nodes and a hot-add on node 1000: every zonelist is built once (not once per
    // node per add), and the add takes its memmap from node 1000 itself.
    let add = "[[step]]\nop = \"add\"\nstart = \"2000GiB\"\nsize = \"1GiB\"\nnode = 1000\n";
    let r = run_config("hostile-1024-nodes", &format!("{header}{}{add}", nodes(1024)), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(step_line(&r, 1).contains("memmap 16 MiB (4,096 pages) from node 1000"), "{}", step_line(&r, 1));
}

#[test]
fn a_capture_read_with_another_page_size_is_refused_at_boot() {
    // Found by the config fuzzer (fuzz/artifacts/config/crash-61219): the real capture's
    // 4 KiB-page counters read with page_size = 64KiB booted a machine whose blocks lay
    // outside their zones, and the first add broke the invariants. Now the capture is
    // checked once at boot and refused at its `from` key.
    let real = hotplug_tests::workspace_root().join("../shared/data/real-machines/x86_64-vm-6.18-24g");
    let text = format!("[machine]\nfrom = \"{}\"\npage_size = \"64KiB\"\n", real.display());
    let r = run_config("hostile-capture-page-size", &text, &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let error = r.stderr.lines().last().unwrap_or_default();
    assert!(error.contains("scenario.toml:2:8: the capture does not describe a consistent machine with this config"), "{}", r.stderr);
}

#[test]
fn a_virtio_mem_grow_of_a_thousand_gib_costs_its_blocks_not_their_square() {
    // Found by the config fuzzer (seed 2026, an input that ran past 10 s): virtio-mem.toml
    // with its grow raised to 1,446 GiB, 11,568 blocks each added and onlined on its own
    // under auto-movable. Every block cloned the device's map of all its blocks into the
    // undo log and recounted the device's offline blocks: 45 s in release. Now the
    // blocks are journaled one by one and the offline size is kept while the grow runs;
    // the same input takes 0.2 s in release. It must end here (debug, with every step's
    // invariants checked) well within the hang detector.
    let text = "[machine]\nauto_online_blocks = \"online\"\nonline_policy = \"auto-movable\"\nplugin_dirs = [\"@PLUGINS@\"]\n\
                [[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"4GiB\" }]\n\
                [[step]]\nop = \"grow\"\ndevice = \"virtio0\"\nstart = \"8GiB\"\nsize = \"1446GiB\"\nexpect = \"any\"\n\
                [[step]]\nop = \"shrink\"\ndevice = \"virtio0\"\nsize = \"1GiB\"\nexpect = \"any\"\n";
    let r = run_config("hostile-virtio-1446g", text, &["--check-invariants"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(step_line(&r, 1).contains("virtio0 plugged"), "{}", step_line(&r, 1));
}
