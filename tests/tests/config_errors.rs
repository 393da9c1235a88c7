//! Bad configs get one line with the file (and line and column where they apply), exit 2.

use hotplug_tests::{run_host, scratch, write_config, Profile};

const P: Profile = Profile::Debug;

fn one_line_exit_2(run: &hotplug_tests::Run, needle: &str) {
    assert_eq!(run.code, 2, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains(needle), "{needle:?} not in {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn machine_only_config_boots_and_reports() {
    let cfg = write_config("machine_only", P, "[machine]\n");
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Default machine: node 0 with 1 GiB at 0 -> DMA spans pfns 0..4096.
    assert!(run.stdout.contains("0 steps"), "{}", run.stdout);
    assert!(run.stdout.lines().any(|l| l.starts_with("0     DMA ")), "{}", run.stdout);
}

#[test]
fn unknown_key_has_line_and_column() {
    let cfg = write_config("unknown_key", P, "[machine]\npage_size = \"4KiB\"\n  colour = 3\n");
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    one_line_exit_2(&run, "scenario.toml:3:3: unknown field `colour`");
}

#[test]
fn bad_size_has_line_and_column() {
    let cfg = write_config("bad_size", P, "[machine]\n\n[[step]]\nop = \"add\"\nstart = \"4GB\"\nsize = \"1GiB\"\n");
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    one_line_exit_2(&run, "scenario.toml:5:9: unknown unit \"GB\"");
}

#[test]
fn unknown_strategy_in_a_step_is_located() {
    let cfg =
        write_config("unknown_strategy", P, "[machine]\n\n[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"1GiB\"\nstrategy = \"mom\"\n");
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    one_line_exit_2(&run, "scenario.toml:7:12: unknown strategy \"mom\"");
}

#[test]
fn empty_file_is_refused() {
    let cfg = write_config("empty", P, "  \n");
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    one_line_exit_2(&run, "config is empty");
}

#[test]
fn file_over_16_mib_is_refused_before_parsing() {
    let big = format!("[machine]\n#{}\n", "x".repeat(16 << 20));
    let cfg = write_config("big", P, &big);
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    one_line_exit_2(&run, "the limit is 16777216 (16 MiB)");
}

#[test]
fn the_limit_holds_for_what_a_pipe_or_device_gives() {
    // /dev/zero named as the config is a device, refused before any read
    // (hostile.rs has the FIFO); standard input is read with the bound instead.
    let run = run_host(P, &["--config", "/dev/zero"]);
    one_line_exit_2(&run, "/dev/zero: is a character device, not a regular file");
    // Standard input as the config, fed 17 MiB through a pipe: refused the same way
    // (the host stops reading, so the writer may see a broken pipe).
    use std::io::Write;
    let mut child = std::process::Command::new(hotplug_tests::host_exe(P))
        .args(["--config", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run host");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'#'; 1 << 20];
        for _ in 0..17 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().expect("host exits");
    writer.join().unwrap();
    one_line_exit_2(&out.into(), "the limit is 16777216 (16 MiB)");
}

#[test]
fn directory_and_missing_file() {
    let dir = scratch("config_dir");
    let run = run_host(P, &["--config", dir.to_str().unwrap()]);
    one_line_exit_2(&run, "is a directory");
    let run = run_host(P, &["--config", "/nonexistent/x.toml"]);
    one_line_exit_2(&run, "/nonexistent/x.toml: cannot read config: no such file");
}

#[test]
fn non_utf8_is_located() {
    let dir = scratch("non_utf8");
    let path = dir.join("bad.toml");
    std::fs::write(&path, b"[machine]\nx = \"\xff\"\n").unwrap();
    let run = run_host(P, &["--config", path.to_str().unwrap()]);
    one_line_exit_2(&run, "bad.toml:2:6: config is not valid UTF-8");
}

#[test]
fn invalid_geometry_is_explained() {
    let cfg = write_config("geometry", P, "[machine]\nmemory_block_size = \"64MiB\"\n");
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    one_line_exit_2(&run, "scenario.toml:2:21: invalid geometry: memory_block_size must be a multiple of section_size");
}

#[test]
fn host_check_validates_without_running() {
    // A shipped config: two device strategies, two steps, one node; nothing runs.
    let ok = run_host(P, &["check", "--config", "device.toml"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.ends_with("device.toml: ok: 2 steps, 2 strategies (pmem, devdax), 1 node; the machine boots\n"), "{}", ok.stdout);
    // A plugin option outside its schema's choices is found by loading the plugin, with
    // the config's line and column.
    let bad = write_config(
        "check_bad_option",
        P,
        "[machine]\n[[strategy]]\nname = \"x\"\nplugin = \"device-pgmap\"\noptions = { map = \"disk\" }\n",
    );
    let r = run_host(P, &["check", "--config", bad.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("scenario.toml:5:") && r.stderr.contains("takes one of \"mem\", \"dev\", not \"disk\""), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    // A machine that cannot boot: one 4 KiB page cannot hold its own struct page plus the
    // rest of its section's memmap (32,768 x 64 B = 2 MiB), found before any step.
    let boot = write_config("check_bad_boot", P, "[machine]\n[[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"4KiB\" }]\n");
    let r = run_host(P, &["check", "--config", boot.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("boot memory is too small for its own memmap"), "{}", r.stderr);
}
