//! `--isolate` and `isolate = true` (issue 17): a plugin in a child process of its own,
//! called over a pipe with MemmapOps included. What it does to its process fails only
//! that step (EPLUGIN, saying how the process ended), the model stays as it was, and the
//! run goes on; a well-behaved plugin gives the same report as in-process.

use std::process::Command;

use hotplug_tests::{host_exe, workspace_root, write_config, Profile, Run};

const P: Profile = Profile::Debug;

fn host(args: &[&str]) -> Run {
    Command::new(host_exe(P)).args(args).env_remove("RUST_LOG").output().expect("run host").into()
}

/// A VM with an isolated broken-hostile strategy `h` doing `behaviour`, and the baseline
/// `base` in-process; step 1 adds with `h`, step 2 with `base`.
fn config(test: &str, behaviour: &str) -> std::path::PathBuf {
    write_config(
        test,
        P,
        &format!(
            "[machine]\nplugin_dirs = [\"@PLUGINS@\"]\n[[machine.node]]\nid = 0\nboot = [{{ start = \"0\", size = \"1GiB\" }}]\n\
             [[strategy]]\nname = \"h\"\nplugin = \"broken-hostile\"\nisolate = true\noptions = {{ behaviour = \"{behaviour}\" }}\n\
             [[strategy]]\nname = \"base\"\nplugin = \"system-ram\"\n\
             [[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"128MiB\"\nstrategy = \"h\"\nexpect = \"EPLUGIN\"\n\
             [[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"128MiB\"\nstrategy = \"base\"\n"
        ),
    )
}

/// The run went on past the isolated failure (exit 0, both steps as expected) and step
/// 1's line says `what`.
fn contained(run: &Run, what: &str) {
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("2 steps, 2 as expected"), "{}", run.stdout);
    let line = run.stdout.lines().find(|l| l.starts_with("#1 ")).unwrap();
    assert!(line.contains(&format!("EPLUGIN: plugin broken-hostile {what}")), "{line}");
    // The same range then adds cleanly: the failed step left nothing behind.
    assert!(run.stdout.lines().any(|l| l.starts_with("#2 ") && l.contains("ok: 1 block;")), "{}", run.stdout);
}

#[test]
fn a_crash_exit_or_abort_in_an_isolated_plugin_fails_only_its_step() {
    for (behaviour, what) in [
        ("abort", "set_up: its isolated process crashed (SIGABRT) during set_up"),
        ("segv", "set_up: its isolated process crashed (SIGSEGV) during set_up"),
        ("exit0", "set_up: its isolated process exited with code 0 during set_up"),
        // A MemmapOps call reserved a page in the host's model, then the process died:
        // the step unwinds the reservation (--check-invariants compares the model).
        ("construct-abort", "construct: its isolated process crashed (SIGABRT) during construct"),
    ] {
        let cfg = config(&format!("isolate-{behaviour}"), behaviour);
        contained(&host(&["--config", cfg.to_str().unwrap(), "--check-invariants"]), what);
    }
}

#[test]
fn an_isolated_hang_is_killed_at_the_timeout_and_the_run_goes_on() {
    let cfg = config("isolate-sleep", "sleep");
    let started = std::time::Instant::now();
    let run = host(&["--config", cfg.to_str().unwrap(), "--plugin-timeout", "1"]);
    contained(&run, "set_up: its isolated process did not answer within 1 s (--plugin-timeout) and was killed during set_up");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn isolated_plugins_give_the_same_reports_as_in_process() {
    // memmap-on-memory (strided vmemmap marks), device (device pages, compound orders,
    // altmaps), virtio-mem (grow and shrink, adds and removes) and small-vm (ENOMEM,
    // two strategies compared): every MemmapOps call through the pipe, same numbers.
    for name in ["memmap-on-memory.toml", "device.toml", "virtio-mem.toml", "small-vm.toml"] {
        let cfg = workspace_root().join("configs").join(name);
        let plain = host(&["--config", cfg.to_str().unwrap(), "--plugin-dir", &hotplug_tests::artifacts(P).display().to_string()]);
        let isolated =
            host(&["--config", cfg.to_str().unwrap(), "--isolate", "--plugin-dir", &hotplug_tests::artifacts(P).display().to_string()]);
        assert_eq!(plain.code, 0, "{name}: {}", plain.stderr);
        assert_eq!(isolated.code, 0, "{name}: {}", isolated.stderr);
        assert_eq!(plain.stdout, isolated.stdout, "{name}");
    }
}

#[test]
fn an_isolated_plugins_options_are_checked_as_in_process() {
    let cfg = write_config(
        "isolate-options",
        P,
        "[machine]\nplugin_dirs = [\"@PLUGINS@\"]\n[[strategy]]\nname = \"mom\"\nplugin = \"memmap-on-memory\"\nisolate = true\noptions = { mod = 1 }\n",
    );
    let run = host(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("scenario.toml:7:13: strategy \"mom\": plugin memmap-on-memory has no option \"mod\""), "{}", run.stderr);
}
