//! The conformance suite's own tests: the baseline passes, each broken fixture fails the
//! check for its fault, the unloadable ones exit 2 with the loader's cause. Every fixture
//! is only ever loaded in the suite's child processes, never in this test process.

use hotplug_host::conformance::{self, Status, SuiteOptions, CHECKS};
use hotplug_tests::{artifacts, host_exe, plugin_path, run_host, Profile};

const P: Profile = Profile::Debug;

fn suite(plugin: &str, extra: &[&str]) -> hotplug_tests::Run {
    let dir = artifacts(P).display().to_string();
    let mut args = vec!["conformance", plugin, "--dir", dir.as_str()];
    args.extend_from_slice(extra);
    run_host(P, &args)
}

/// The status printed on the line for `check`.
fn status_of<'a>(stdout: &'a str, check: &str) -> Option<(&'a str, &'a str)> {
    stdout.lines().find_map(|l| {
        let mut parts = l.splitn(2, "  ");
        let status = parts.next()?;
        let rest = parts.next()?.trim_start();
        let after = rest.strip_prefix(check).filter(|r| r.starts_with("  "))?.trim_start();
        // The time column: "NNN ms" right-aligned, then two spaces, then the detail.
        let (millis, detail) = after.split_once(" ms  ")?;
        millis.parse::<u64>().ok()?;
        Some((status, detail))
    })
}

#[test]
fn system_ram_passes_every_check() {
    let run = suite("system-ram", &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for c in CHECKS {
        let (status, detail) = status_of(&run.stdout, c.name).unwrap_or_else(|| panic!("no line for {}: {}", c.name, run.stdout));
        // The baseline returns no altmap: altmap-bounds has nothing to bound.
        let expected = if c.name == "altmap-bounds" { "skip" } else { "pass" };
        assert_eq!(status, expected, "{}: {detail}", c.name);
    }
    assert!(run.stdout.ends_with("10 passed, 0 failed, 1 skipped\n"), "{}", run.stdout);
}

/// Each loadable fixture and the check that exists to catch its fault.
const FAULTS: &[(&str, &str, &str)] = &[
    ("broken-unknown-kinds", "info", "bits contract 1.1.0 does not define (0x80)"),
    ("broken-wrong-kind", "kinds", "since the plugin claims that kind"),
    ("broken-panic-set-up", "set-up-grid", "plugin panicked in set_up"),
    ("broken-nonsense-flags", "set-up-grid", "flags 0xdead0001 has bits contract 1.1.0 does not define"),
    ("broken-altmap-outside", "altmap-bounds", "is not inside"),
    ("broken-altmap-small", "altmap-bounds", "cannot hold the memmap"),
    ("broken-marks-outside", "construct-marks", "outside the request's range"),
    ("broken-panic-construct", "construct-marks", "plugin panicked in construct"),
    ("broken-nondeterministic", "deterministic", "to return what call 1 did"),
    ("broken-leak", "cycles", "1000 reservation(s) never released"),
    ("broken-global-state", "threads", "outside the request's range"),
    // The farthest node from node 0 on the expander machine is node 3, which has no memory.
    ("broken-memmap-node", "memmap-node", "[3] (a strategy must ask nodes that have room"),
    ("broken-options-schema", "options", "the constructor refuses the declared default mode = \"strict\""),
];

#[test]
fn each_fixture_fails_the_check_for_its_fault() {
    for &(fixture, check, why) in FAULTS {
        let run = suite(fixture, &[]);
        assert_eq!(run.code, 1, "{fixture}: {}\n{}", run.stdout, run.stderr);
        let (status, detail) = status_of(&run.stdout, check).unwrap_or_else(|| panic!("{fixture}: no {check} line: {}", run.stdout));
        assert_eq!(status, "fail", "{fixture}: {check}: {detail}");
        assert!(detail.starts_with("expected "), "{fixture}: {detail}");
        assert!(detail.contains(why), "{fixture}: {check}: {detail}");
        // The suite went on: every check has a line and the counts add up.
        assert_eq!(CHECKS.iter().filter(|c| status_of(&run.stdout, c.name).is_some()).count(), CHECKS.len(), "{fixture}");
    }
}

#[test]
fn every_check_is_failed_by_some_fixture() {
    for c in CHECKS {
        assert!(FAULTS.iter().any(|&(_, check, _)| check == c.name) || c.name == "add-remove", "no fixture fails {}", c.name);
    }
    // add-remove is the leak fixture's second failure.
    let run = suite("broken-leak", &["--only", "add-remove"]);
    assert_eq!(run.code, 1);
    let (status, detail) = status_of(&run.stdout, "add-remove").unwrap();
    assert_eq!(status, "fail");
    assert!(detail.contains("reservations differ") && detail.contains("never released"), "{detail}");
}

#[test]
fn a_plugin_that_aborts_fails_its_checks_and_the_suite_goes_on() {
    let run = suite("broken-abort", &[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    // info() does not panic: that check passes in its own child.
    assert_eq!(status_of(&run.stdout, "info").unwrap().0, "pass");
    // Every check that calls set_up loses its process: the exit status and the last
    // stderr lines are the failure.
    let (status, detail) = status_of(&run.stdout, "kinds").unwrap();
    assert_eq!(status, "fail");
    assert!(detail.contains("exited with code") || detail.contains("killed by signal"), "{detail}");
    assert!(detail.contains("Attempted to panic across the ffi boundary"), "{detail}");
    // One root cause, said once: every later check that lost its process the same way
    // points at the first one instead of repeating it.
    for check in ["set-up-grid", "altmap-bounds", "construct-marks", "add-remove", "memmap-node", "deterministic", "cycles", "threads"] {
        let (status, detail) = status_of(&run.stdout, check).unwrap();
        assert_eq!(status, "fail", "{check}");
        assert_eq!(detail, "the same failure as kinds (its line says why)", "{check}");
    }
    assert!(run.stdout.contains("\n9 failures have 1 cause: fix the first failing line of each and rerun\n"), "{}", run.stdout);
    // The JSON keeps every check's full detail and names the shared cause as a field.
    let json = suite("broken-abort", &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let threads = v["results"].as_array().unwrap().iter().find(|r| r["name"] == "threads").unwrap();
    assert_eq!(threads["same_cause_as"], "kinds");
    assert!(threads["detail"].as_str().unwrap().contains("Attempted to panic across the ffi boundary"));
    // It declares no options (a hand-written root module): nothing to check there.
    assert_eq!(status_of(&run.stdout, "options").unwrap().0, "skip");
    assert!(run.stdout.ends_with("1 passed, 9 failed, 1 skipped\n"), "{}", run.stdout);
}

#[test]
fn unloadable_plugins_exit_2_with_the_loaders_one_line_cause() {
    for (fixture, cause) in [("broken-no-root", "no root module"), ("broken-contract-2", "2.0.0")] {
        let run = suite(fixture, &[]);
        assert_eq!(run.code, 2, "{fixture}: {}\n{}", run.stdout, run.stderr);
        assert!(run.stdout.is_empty(), "{fixture}: {}", run.stdout);
        assert_eq!(run.stderr.lines().count(), 1, "{fixture}: {}", run.stderr);
        assert!(run.stderr.contains(cause), "{fixture}: {}", run.stderr);
    }
    let run = suite("no-such-plugin", &[]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn only_json_and_bad_patterns() {
    let run = suite("system-ram", &["--only", "set-up-*", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["results"].as_array().unwrap().len(), 1);
    assert_eq!(v["results"][0]["name"], "set-up-grid");
    assert_eq!(v["results"][0]["status"], "pass");
    assert_eq!(v["exit_code"], 0);
    let run = suite("system-ram", &["--only", "no-such-check"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no check matches") && run.stderr.contains("set-up-grid"), "{}", run.stderr);
}

#[test]
fn the_library_entry_point_is_what_a_plugin_author_calls() {
    // What a plugin author's own `cargo test` does: run the suite on a library path with
    // a host binary (here the workspace's; for them $HOTPLUG_HOST or a `host` on PATH).
    let options = SuiteOptions { only: Some("determ".into()), ..SuiteOptions::default() };
    let report = conformance::run(&host_exe(P), plugin_path(P, "system-ram").to_str().unwrap(), &options);
    assert_eq!(report.exit_code(), 0, "{}", report.text());
    assert_eq!(report.result("deterministic").map(|r| r.status), Some(Status::Pass));
    assert_eq!(report.results.len(), 1);
    let report = conformance::run(&host_exe(P), plugin_path(P, "broken-nondeterministic").to_str().unwrap(), &options);
    assert_eq!(report.exit_code(), 1);
    assert_eq!(report.result("deterministic").map(|r| r.status), Some(Status::Fail));
}

#[test]
fn memmap_on_memory_passes_every_check_in_each_mode() {
    // Default (6.8+ per-block altmaps), force mode, and the 6.7 single-block rule.
    for options in ["", "mode = \"force\"", "per_block = false"] {
        let run = suite("memmap-on-memory", &["--options", options]);
        assert_eq!(run.code, 0, "options {options:?}: {}\n{}", run.stdout, run.stderr);
        assert!(run.stdout.ends_with("11 passed, 0 failed, 0 skipped\n"), "options {options:?}: {}", run.stdout);
    }
    // An option the plugin refuses: the plugin cannot be instantiated, exit 2, the key named.
    let run = suite("memmap-on-memory", &["--options", "mode = \"fast\""]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("option \"mode\""), "{}", run.stderr);
}

#[test]
fn device_pgmap_passes_every_check() {
    // Memmap in RAM (no altmap: altmap-bounds has nothing to bound), 2 MiB compounds, and
    // an fsdax namespace holding its memmap (--map=dev).
    for (options, summary) in [
        ("", "10 passed, 0 failed, 1 skipped\n"),
        ("vmemmap_shift = 9", "10 passed, 0 failed, 1 skipped\n"),
        ("type = \"fsdax\"\nmap = \"dev\"", "11 passed, 0 failed, 0 skipped\n"),
    ] {
        let run = suite("device-pgmap", &["--options", options]);
        assert_eq!(run.code, 0, "options {options:?}: {}\n{}", run.stdout, run.stderr);
        assert!(run.stdout.ends_with(summary), "options {options:?}: {}", run.stdout);
    }
}

#[test]
fn a_host_that_is_not_ours_is_never_taken_for_ours() {
    // The DNS lookup tool is `host` on many systems: it must not run the suite's checks.
    let dir = hotplug_tests::scratch("fake-host");
    let fake = dir.join("host");
    std::fs::write(&fake, "#!/bin/sh\necho 'host 9.18.28-1~deb12u2-Debian'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!conformance::is_hotplug_host(&fake));
    assert!(!conformance::is_hotplug_host(&dir.join("missing")));
    assert!(conformance::is_hotplug_host(&host_exe(P)));
}

#[test]
fn junit_is_what_a_ci_server_reads() {
    // broken-abort: info passes, options is skipped, the nine checks that call set_up fail
    // (see a_plugin_that_aborts_fails_its_checks_and_the_suite_goes_on).
    let dir = hotplug_tests::scratch("junit");
    let file = dir.join("suite.xml");
    let run = suite("broken-abort", &["--format", "junit", "--junit", file.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written, run.stdout, "--junit FILE writes what --format junit prints");
    let doc = roxmltree::Document::parse(&run.stdout).unwrap();
    let suite_el = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
    assert_eq!(suite_el.attribute("tests"), Some(CHECKS.len().to_string().as_str()));
    assert_eq!(suite_el.attribute("failures"), Some("9"));
    assert_eq!(suite_el.attribute("skipped"), Some("1"));
    let cases: Vec<_> = suite_el.children().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), CHECKS.len());
    for case in &cases {
        let time: f64 = case.attribute("time").unwrap().parse().unwrap();
        assert!(time >= 0.0);
    }
    let threads = cases.iter().find(|c| c.attribute("name") == Some("threads")).unwrap();
    let failure = threads.children().find(|n| n.has_tag_name("failure")).unwrap();
    // A CI server shows each case alone: its own full detail, not a pointer to another line.
    assert!(failure.text().unwrap().contains("Attempted to panic across the ffi boundary"));
    let options = cases.iter().find(|c| c.attribute("name") == Some("options")).unwrap();
    assert!(options.children().any(|n| n.has_tag_name("skipped")));

    // A plugin that cannot be loaded is one errored case, so CI still shows a red line.
    let run = suite("broken-no-root", &["--format", "junit"]);
    assert_eq!(run.code, 2);
    let doc = roxmltree::Document::parse(&run.stdout).unwrap();
    let error = doc.descendants().find(|n| n.has_tag_name("error")).unwrap();
    assert!(
        error.attribute("message").unwrap_or_default().contains("no root module")
            || error.text().unwrap_or_default().contains("no root module"),
        "{}",
        run.stdout
    );
}

#[test]
fn skip_and_per_check_time() {
    let run = suite("system-ram", &["--skip", "threads", "--skip", "cyc*", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    // Skipped checks are still listed, so a report shows what was not run and why.
    assert_eq!(results.len(), CHECKS.len());
    for r in results {
        let name = r["name"].as_str().unwrap();
        assert!(r["millis"].is_u64(), "{name}");
        if name == "threads" || name == "cycles" {
            assert_eq!(r["status"], "skip", "{name}");
            assert!(r["detail"].as_str().unwrap().contains("--skip"), "{name}");
        }
    }
    let run = suite("system-ram", &["--skip", "no-such-check"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--skip no-such-check: no check matches"), "{}", run.stderr);
}

#[test]
fn memmap_node_sees_where_the_memmap_went() {
    // 1 GiB is 8 sections of 32,768 pages; 32,768 x 64-byte struct pages = 2 MiB = 512
    // pages each, 4,096 pages per add. Plain system-ram: each range's own node pays.
    let run = suite("system-ram", &["--only", "memmap-node"]);
    let (status, detail) = status_of(&run.stdout, "memmap-node").unwrap();
    assert_eq!(status, "pass", "{detail}");
    assert_eq!(
        detail,
        "memmap where asked: system-ram on node 0: 4096 pages from node 0, system-ram on node 1: 4096 pages from node 1, \
         system-ram on node 2: 4096 pages from node 2"
    );
    // nearest-cpu-node: the CPU-less node 2 is 20 from node 1 and 32 from node 0, so node 1
    // pays for it; nodes 0 and 1 have CPUs and pay for themselves (distance 10).
    let run = suite("system-ram", &["--only", "memmap-node", "--options", "memmap_policy = \"nearest-cpu-node\""]);
    let (status, detail) = status_of(&run.stdout, "memmap-node").unwrap();
    assert_eq!(status, "pass", "{detail}");
    assert!(detail.ends_with("system-ram on node 2: 4096 pages from node 1"), "{detail}");
    // Memmap on memory: nothing from any node.
    let run = suite("memmap-on-memory", &["--only", "memmap-node"]);
    let (status, detail) = status_of(&run.stdout, "memmap-node").unwrap();
    assert_eq!(status, "pass", "{detail}");
    assert_eq!(detail.matches("in the range").count(), 3, "{detail}");
}
