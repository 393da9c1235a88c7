//! Plugins that misbehave (issue 17): the broken-hostile fixture, through export_plugin!
//! and safe Rust (but for the crash), exits, aborts, crashes, hangs, prints to stdout and
//! returns text meant to forge report lines. The host names the plugin, the call and the
//! step in one line and exits 3 when the plugin ends the process; everything else is an
//! ordinary step outcome with the plugin's text escaped and bounded.

use std::process::Command;

use hotplug_tests::{host_exe, write_config, Profile, Run};

const P: Profile = Profile::Debug;

/// A 1 GiB VM whose one add step uses broken-hostile with `behaviour`, expecting `expect`.
fn config(test: &str, behaviour: &str, expect: &str) -> std::path::PathBuf {
    write_config(
        test,
        P,
        &format!(
            "[machine]\nplugin_dirs = [\"@PLUGINS@\"]\n[[machine.node]]\nid = 0\nboot = [{{ start = \"0\", size = \"1GiB\" }}]\n\
             [[strategy]]\nname = \"h\"\nplugin = \"broken-hostile\"\noptions = {{ behaviour = \"{behaviour}\" }}\n\
             [[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"128MiB\"\nexpect = \"{expect}\"\n"
        ),
    )
}

fn host(args: &[&str]) -> Run {
    Command::new(host_exe(P)).args(args).env_remove("RUST_LOG").output().expect("run host").into()
}

/// The process ended with exit 3 and one line naming the plugin, `event` and the call.
fn abandoned(run: &Run, event: &str) {
    assert_eq!(run.code, 3, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "no report, not even a partial one: {}", run.stdout);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert_eq!(
        lines[0],
        format!("host: error: plugin broken-hostile {event} in set_up during step #1 (add); the run was abandoned (exit 3)")
    );
}

#[test]
fn exit_in_a_plugin_call_is_never_a_success() {
    for behaviour in ["exit0", "exit1"] {
        let cfg = config(&format!("hostile-{behaviour}"), behaviour, "ok");
        abandoned(&host(&["--config", cfg.to_str().unwrap()]), "called exit");
    }
}

#[test]
fn abort_and_a_crash_are_one_line_naming_the_plugin() {
    let cfg = config("hostile-abort", "abort", "ok");
    abandoned(&host(&["--config", cfg.to_str().unwrap()]), "crashed (SIGABRT)");
    let cfg = config("hostile-segv", "segv", "ok");
    abandoned(&host(&["--config", cfg.to_str().unwrap()]), "crashed (SIGSEGV)");
}

#[test]
fn a_hang_is_cut_by_the_per_call_timeout() {
    let cfg = config("hostile-sleep", "sleep", "ok");
    let started = std::time::Instant::now();
    abandoned(&host(&["--config", cfg.to_str().unwrap(), "--plugin-timeout", "1"]), "did not return within 1 s (--plugin-timeout)");
    // The watchdog fires at the timeout, not at the plugin's own hour of sleep.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // The timeout is checked as a number of seconds, at most a day.
    let run = host(&["--config", cfg.to_str().unwrap(), "--plugin-timeout", "18446744073709551615"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--plugin-timeout"), "{}", run.stderr);
}

#[test]
fn a_hang_in_a_sweep_names_its_point() {
    // The sweep's workers take turns at plugin calls; the line names the step and the
    // point of the call that hung, not whichever point a worker began last.
    let cfg = config("hostile-sweep-sleep", "sleep", "ok");
    let run =
        host(&["sweep", "--config", cfg.to_str().unwrap(), "--vary", "step.1.size=128MiB,256MiB", "--plugin-timeout", "1", "--jobs", "2"]);
    assert_eq!(run.code, 3, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let line = run.stderr.lines().next().unwrap_or_default();
    let said = |size: &str| {
        format!(
            "host: error: plugin broken-hostile did not return within 1 s (--plugin-timeout) in set_up during step #1 (add) at \
             step.1.size={size}; the run was abandoned (exit 3)"
        )
    };
    assert!(line == said("128MiB") || line == said("256MiB"), "{}", run.stderr);
}

#[test]
fn plugin_prints_never_reach_the_report() {
    let cfg = config("hostile-stdout", "stdout", "ok");
    let run = host(&["--config", cfg.to_str().unwrap(), "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is the report's JSON alone");
    assert!(json.get("forged").is_none());
    assert!(run.stderr.contains("{\"forged\": true}"), "the plugin's print went to stderr: {}", run.stderr);
    let run = host(&["--config", cfg.to_str().unwrap(), "--view", "meminfo"]);
    assert!(run.stdout.starts_with("MemTotal:"), "{}", run.stdout);
    assert!(!run.stdout.contains("forged"));
}

#[test]
fn plugin_text_cannot_forge_report_lines() {
    let cfg = config("hostile-forge-error", "forge-error", "EPLUGIN");
    let run = host(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The error's newline, ESC and BEL are shown escaped on the step's own line.
    assert!(run.stdout.contains("no\\n#1 add ok: forged line\\u{1b}[2J\\u{7}"), "{}", run.stdout);
    assert!(!run.stdout.lines().any(|l| l.starts_with("#1 add ok")), "{}", run.stdout);
    assert!(!run.stdout.contains('\u{1b}') && !run.stdout.contains('\u{7}'));
    let cfg = config("hostile-forge-note", "forge-note", "ok");
    let run = host(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("note\\r\\n#9 forged\\u{1b}[31m red"), "{}", run.stdout);
    let run = host(&["--config", cfg.to_str().unwrap(), "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let note = json["runs"][0]["steps"][0]["outcome"]["note"].as_str().unwrap_or_else(|| panic!("{json:#}"));
    assert_eq!(note, "note\\r\\n#9 forged\\u{1b}[31m red");
}

#[test]
fn a_50_mb_note_is_cut_to_4_kib() {
    let cfg = config("hostile-huge-note", "huge-note", "ok");
    let run = host(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // 4,096 bytes of the note, then its length: 50 MiB = 52,428,800 bytes.
    assert!(run.stdout.contains(&format!("{}... (52428800 bytes)", "n".repeat(4096))), "{}", &run.stdout[..run.stdout.len().min(500)]);
    assert!(run.stdout.len() < 16 << 10, "{} bytes of report", run.stdout.len());
}

#[test]
fn errnos_without_a_name_show_as_numbers() {
    for (behaviour, shown) in [("errno-negative", "errno -7"), ("errno-min", "errno -2147483648"), ("errno-unknown", "errno 4000")] {
        let cfg = config(&format!("hostile-{behaviour}"), behaviour, "any");
        let run = host(&["--config", cfg.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.contains(&format!("{shown}: plugin broken-hostile set_up:")), "{}", run.stdout);
        assert!(!run.stdout.contains("E-7") && !run.stdout.contains("E4000"), "{}", run.stdout);
    }
    let cfg = config("hostile-errno-known", "errno-known", "ENOSPC");
    assert_eq!(host(&["--config", cfg.to_str().unwrap()]).code, 0);
}

#[test]
fn panics_whose_payload_or_strategy_destructor_panics_stay_contained() {
    // The payload's destructor panics: still the step's EPLUGIN failure, and the run goes on.
    let cfg = config("hostile-panic-bomb", "panic-bomb", "EPLUGIN");
    let run = host(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("EPLUGIN: plugin broken-hostile set_up: plugin panicked in set_up: a non-string panic payload"),
        "{}",
        run.stdout
    );
    // The strategy's destructor panics when the run is over: the finished run keeps exit 0.
    let cfg = config("hostile-drop-panics", "drop-panics", "ok");
    let run = host(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("1 step, 1 as expected"), "{}", run.stdout);
}

/// `host conformance broken-hostile` with `behaviour`, only `set-up-grid`.
fn conformance(behaviour: &str, extra: &[&str]) -> Run {
    let dir = hotplug_tests::artifacts(P).display().to_string();
    let options = format!("behaviour = \"{behaviour}\"");
    let mut args = vec!["conformance", "broken-hostile", "--dir", dir.as_str(), "--only", "set-up-grid", "--options", options.as_str()];
    args.extend_from_slice(extra);
    host(&args)
}

#[test]
fn a_verdict_printed_by_the_plugin_is_not_a_verdict() {
    // The plugin prints what a passing child prints and exits 0 inside set_up: the parent
    // reads verdicts only from its own pipe, behind a nonce, so the check fails, naming
    // the exit the host caught.
    let run = conformance("forge-verdict", &[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let line = run.stdout.lines().find(|l| l.contains("set-up-grid")).unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(line.starts_with("fail"), "{line}");
    assert!(line.contains("exited with code 3") && line.contains("called exit in set_up during a conformance check"), "{line}");
    // The baseline behaviour passes the same check: the channel works.
    let run = conformance("none", &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

#[test]
fn the_timeout_kills_the_childs_whole_process_group() {
    // set_up forks `sleep 600`, which holds the child's stdout and stderr, then sleeps.
    // At the 2 s timeout the whole group goes; the suite ends well before the sleeper would.
    let started = std::time::Instant::now();
    let run = conformance("fork-sleeper", &["--timeout", "2"]);
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("timed out after 2 s (killed with its process group)"), "{}", run.stdout);
    assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
    // --timeout is a number of seconds from 1 to a day.
    for bad in ["0", "18446744073709551615"] {
        let run = conformance("none", &["--timeout", bad]);
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(run.stderr.contains("--timeout"), "{}", run.stderr);
    }
}

/// broken-hostile with `behaviour` over `steps` (after a 1 GiB VM's node), text report.
fn run_steps(test: &str, behaviour: &str, steps: &str) -> Run {
    let cfg = write_config(
        test,
        P,
        &format!(
            "[machine]\nplugin_dirs = [\"@PLUGINS@\"]\n[[machine.node]]\nid = 0\nboot = [{{ start = \"0\", size = \"1GiB\" }}]\n\
             [[strategy]]\nname = \"h\"\nplugin = \"broken-hostile\"\noptions = {{ behaviour = \"{behaviour}\" }}\n{steps}"
        ),
    );
    host(&["--config", cfg.to_str().unwrap(), "--check-invariants"])
}

fn add(start: &str, expect: &str) -> String {
    format!("[[step]]\nop = \"add\"\nstart = \"{start}\"\nsize = \"128MiB\"\nexpect = \"{expect}\"\n")
}

#[test]
fn a_reservation_is_released_only_by_its_own_add() {
    // Add 1 reserves its first page; add 2's construct releases add 1's handle: refused
    // (EINVAL from the validator), add 2 unwound, add 1's reservation intact.
    let steps = format!("{}{}", add("4GiB", "ok"), add("8GiB", "EINVAL"));
    let run = run_steps("hostile-release-other", "release-other", &steps);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("release_pages of handle 1, a reservation of pfns 0x100000-0x100001 outside the request's range 0x200000-0x208000"),
        "{}",
        run.stdout
    );
}

#[test]
fn device_page_init_over_system_ram_fails_the_step() {
    let run = run_steps("hostile-device-pages-on-ram", "device-pages-on-ram", &add("4GiB", "EINVAL"));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("init_device_pages on pfns 0x100000+0x1 of a System RAM add"), "{}", run.stdout);
}

#[test]
fn restrictions_that_leave_a_range_unremovable_are_refused() {
    let run = run_steps("hostile-altmap-all", "altmap-all", &add("4GiB", "EINVAL"));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // 128 MiB = 32,768 pages, every one of them asked for the memmap.
    assert!(run.stdout.contains("altmap reserve 0 + free 32768 covers all 32768 pages added"), "{}", run.stdout);
    let run = run_steps("hostile-no-blocks", "no-blocks", &add("4GiB", "EINVAL"));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("System RAM without MEMORY_BLOCK_DEVICES"), "{}", run.stdout);
}
