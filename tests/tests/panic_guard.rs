//! A plugin that panics in `set_up` through `export_plugin!` costs that step, not the
//! process: in debug and in release builds.

use hotplug_tests::{run_host, write_config, Profile};

fn panicking_run(profile: Profile, test: &str) {
    let cfg = write_config(
        test,
        profile,
        r#"[machine]
plugin_dirs = ["@PLUGINS@"]

[[strategy]]
name = "boom"
plugin = "broken-panic-set-up"

[[strategy]]
name = "base"
plugin = "system-ram"

[[step]]
op = "add"
start = "4GiB"
size = "128MiB"
strategy = "boom"

[[step]]
op = "add"
start = "4GiB"
size = "128MiB"
strategy = "base"
"#,
    );
    let run = run_host(profile, &["--config", cfg.to_str().unwrap()]);
    // Step 1 fails (it expected ok), so exit 1 -- not a crash (101, or a signal).
    assert_eq!(run.code, 1, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    // 4 GiB = pfn 0x100000: the message carries the panic text.
    assert!(
        run.stdout
            .contains("EPLUGIN: plugin broken-panic-set-up set_up: plugin panicked in set_up: set_up deliberately panics for pfn 0x100000"),
        "{}",
        run.stdout
    );
    // The failed step left nothing behind: the same range is added by the next step.
    assert!(run.stdout.contains("[base]  ok: 1 block;"), "{}", run.stdout);
    assert!(!run.stderr.contains("panicked at"), "the guard reports the panic once, as the step's error: {}", run.stderr);
}

#[test]
fn panic_in_set_up_is_a_step_failure_debug() {
    panicking_run(Profile::Debug, "panic_debug");
}

#[test]
fn panic_in_set_up_is_a_step_failure_release() {
    panicking_run(Profile::Release, "panic_release");
}
