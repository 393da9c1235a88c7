//! Using `host` outside the source tree's build directory, as after `cargo install`:
//! shipped configs come from the binary, plugins from `--plugin-dir` or
//! `HOTPLUG_PLUGIN_PATH`, and a mistyped config name gets the closest shipped ones.

use std::process::Command;

use hotplug_tests::{host_exe, scratch, Profile, Run};

const P: Profile = Profile::Debug;

/// The debug `host` copied into a directory of its own (no plugins beside it), run from
/// `/` with `args` and the environment `env`.
fn installed(test: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let bin = scratch(test).join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let host = bin.join("host");
    std::fs::copy(host_exe(P), &host).unwrap();
    let mut cmd = Command::new(&host);
    cmd.current_dir("/").args(args).env_remove("RUST_LOG").env_remove("HOTPLUG_PLUGIN_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the copied host").into()
}

#[test]
fn host_configs_lists_every_built_in_scenario_with_its_question() {
    let run = installed("configs-list", &["configs"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Every file in configs/ but the captured machine (it needs the capture's files).
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 13, "{}", run.stdout);
    let device = lines.iter().find(|l| l.starts_with("device.toml ")).expect("device.toml listed");
    assert!(device.contains("how much memmap does ZONE_DEVICE memory cost"), "{device}");
    assert!(!run.stdout.contains("captured-vm"), "{}", run.stdout);
}

#[test]
fn a_shipped_config_runs_from_any_directory_and_a_typo_gets_suggestions() {
    let run = installed("shipped-from-root", &["--config", "small-vm.toml"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("ENOMEM"), "{}", run.stdout);
    let run = installed("shipped-typo", &["--config", "smal-vm.toml"], &[]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("smal-vm.toml: cannot read config: no such file"), "{}", run.stderr);
    assert!(run.stderr.contains("similar name: small-vm.toml"), "{}", run.stderr);
}

#[test]
fn plugins_are_found_through_plugin_dir_and_hotplug_plugin_path() {
    // A config naming a plugin but no plugin_dirs, beside a host with no plugins.
    let dir = scratch("plugin-path");
    let cfg = dir.join("scenario.toml");
    std::fs::write(&cfg, "[machine]\n[[strategy]]\nname = \"mom\"\nplugin = \"memmap-on-memory\"\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    let plugins = hotplug_tests::plugin_path(P, "memmap-on-memory").parent().unwrap().display().to_string();
    let run = installed("plugin-path-none", &["--config", cfg], &[]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("libmemmap_on_memory.so"), "{}", run.stderr);
    let run = installed("plugin-path-env", &["--config", cfg], &[("HOTPLUG_PLUGIN_PATH", &format!("/nonexistent:{plugins}"))]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = installed("plugin-path-flag", &["--config", cfg, "--plugin-dir", &plugins], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // `host plugins` lists what the path holds.
    let run = installed("plugin-path-list", &["plugins"], &[("HOTPLUG_PLUGIN_PATH", &plugins)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("memmap-on-memory"), "{}", run.stdout);
}
