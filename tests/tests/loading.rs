//! Each way a plugin can fail to load gets one line naming the file and the cause, and
//! `host` exits 2. These run the real binary on the real libraries.

use hotplug_tests::{artifacts, plugin_path, run_host, write_config, Profile};

const P: Profile = Profile::Debug;

fn config_with_plugin(test: &str, plugin: &str) -> std::path::PathBuf {
    write_config(
        test,
        P,
        &format!(
            r#"
[machine]
plugin_dirs = ["@PLUGINS@"]

[[strategy]]
name = "s"
plugin = "{plugin}"

[[step]]
op = "add"
start = "4GiB"
size = "128MiB"
"#
        ),
    )
}

/// Assert one line on stderr, exit 2, and that it contains each of `parts`.
fn assert_one_line_failure(run: &hotplug_tests::Run, parts: &[&str]) {
    assert_eq!(run.code, 2, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {}", run.stderr);
    for p in parts {
        assert!(lines[0].contains(p), "{:?} not in {:?}", p, lines[0]);
    }
}

#[test]
fn missing_plugin_lists_every_directory_searched() {
    let cfg = config_with_plugin("missing_plugin", "no-such-plugin");
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    let dir = artifacts(P).display().to_string();
    assert_one_line_failure(
        &run,
        &["plugin \"no-such-plugin\" not found", "libno_such_plugin.so", &dir, "build the plugins with cargo build --workspace"],
    );
}

#[test]
fn missing_file_by_path() {
    let cfg = config_with_plugin("missing_file", "/nonexistent/libnothing.so");
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    assert_one_line_failure(&run, &["/nonexistent/libnothing.so", "no such file"]);
}

#[test]
fn library_without_root_module_is_not_a_plugin() {
    let lib = plugin_path(P, "broken-no-root");
    let cfg = config_with_plugin("no_root", lib.to_str().unwrap());
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    assert_one_line_failure(&run, &["libbroken_no_root.so", "not a hotplug-lab plugin", "no root module"]);
}

#[test]
fn library_without_contract_symbol_is_not_a_plugin() {
    // Any shared library that is not ours: build a tiny one with the C compiler.
    let dir = hotplug_tests::scratch("no_symbol");
    let src = dir.join("empty.c");
    std::fs::write(&src, "int answer(void) { return 42; }\n").unwrap();
    let lib = dir.join("libempty.so");
    let ok = std::process::Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&lib).arg(&src).status().unwrap().success();
    assert!(ok, "cc failed");
    let cfg = config_with_plugin("no_symbol_cfg", lib.to_str().unwrap());
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    assert_one_line_failure(&run, &["libempty.so", "not a hotplug-lab plugin", "no HOTPLUG_CONTRACT_VERSION symbol"]);
}

#[test]
fn plugin_for_contract_2_names_both_versions() {
    let cfg = config_with_plugin("contract_2", "broken-contract-2");
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    assert_one_line_failure(
        &run,
        &["libbroken_contract_2.so", "built for contract 2.0.0", "this host speaks contract 1.1.0", "another major version"],
    );
}

#[test]
fn plugin_that_does_not_handle_the_request_kind() {
    let cfg = config_with_plugin("wrong_kind", "broken-wrong-kind");
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    assert_one_line_failure(&run, &["libbroken_wrong_kind.so", "does not handle system-ram requests", "it handles: device"]);
}

#[test]
fn bad_plugin_option_names_plugin_key_and_line() {
    let cfg = write_config(
        "bad_option",
        P,
        r#"[machine]
plugin_dirs = ["@PLUGINS@"]

[[strategy]]
name = "base"
plugin = "system-ram"
options = { memmap_nid = 0, memmap_nodes = [0] }
"#,
    );
    // Both keys are declared and well typed, so the host passes them on; the constructor
    // refuses the pair, and the error points at the [[strategy]] table (line 4).
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    assert_one_line_failure(
        &run,
        &["scenario.toml:4:", "strategy \"base\" (plugin system-ram)", "\"memmap_nid\" and \"memmap_nodes\": give one"],
    );
}

#[test]
fn abi_stable_report_only_at_debug_level() {
    let lib = plugin_path(P, "broken-no-root");
    let cfg = config_with_plugin("no_root_debug", lib.to_str().unwrap());
    let quiet = run_host(P, &["--config", cfg.to_str().unwrap()]);
    assert!(!quiet.stderr.contains("abi_stable report"), "{}", quiet.stderr);
    let out = std::process::Command::new(hotplug_tests::host_exe(P))
        .args(["--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("abi_stable report"));
}

#[test]
fn plugins_lists_real_and_broken_libraries() {
    let dir = artifacts(P).display().to_string();
    // By default only the real plugins; the fixtures are never even loaded.
    let real = run_host(P, &["plugins", "--dir", &dir]);
    assert_eq!(real.code, 0, "{}", real.stderr);
    let names: Vec<&str> = real.stdout.lines().map(|l| l.split_whitespace().next().unwrap_or("")).collect();
    assert_eq!(names, ["device-pgmap", "memmap-on-memory", "memmap-on-node", "system-ram"], "{}", real.stdout);
    let run = run_host(P, &["plugins", "--dir", &dir, "--all"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = |needle: &str| {
        run.stdout.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line for {needle}:\n{}", run.stdout)).to_string()
    };
    let sys = line("libsystem_ram.so");
    assert!(
        sys.starts_with("system-ram") && sys.contains("1.0.0") && sys.contains("contract 1.1.0") && sys.contains("system-ram"),
        "{sys}"
    );
    assert!(line("libbroken_no_root.so").contains("no root module"));
    assert!(line("libbroken_contract_2.so").contains("built for contract 2.0.0"));
}

#[test]
fn plugins_with_unreadable_directory_exits_2() {
    let run = run_host(P, &["plugins", "--dir", "/nonexistent-plugin-dir"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("cannot read plugin directory /nonexistent-plugin-dir"), "{}", run.stderr);
}

#[test]
fn two_different_plugins_in_one_run() {
    // abi_stable's load_from_file would hand back the first plugin for the second path;
    // the loader must give each path its own module.
    let cfg = write_config(
        "two_plugins",
        P,
        r#"[machine]
plugin_dirs = ["@PLUGINS@"]

[[strategy]]
name = "base"
plugin = "system-ram"

[[strategy]]
name = "boom"
plugin = "broken-panic-set-up"

[[step]]
op = "add"
start = "4GiB"
size = "128MiB"
strategy = "base"

[[step]]
op = "add"
start = "8GiB"
size = "128MiB"
strategy = "boom"
expect = "EPLUGIN"
"#,
    );
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("[boom]  EPLUGIN: plugin broken-panic-set-up"), "{}", run.stdout);
}

#[test]
fn world_writable_plugin_is_refused_unless_allowed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = hotplug_tests::scratch("world_writable");
    let lib = dir.join("libsystem_ram.so");
    std::fs::copy(plugin_path(P, "system-ram"), &lib).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o666)).unwrap();
    let cfg = config_with_plugin("world_writable_cfg", lib.to_str().unwrap());
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    assert_one_line_failure(&run, &["libsystem_ram.so", "world-writable", "--allow-unsafe-plugin-path"]);
    let run = run_host(P, &["--config", cfg.to_str().unwrap(), "--allow-unsafe-plugin-path"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn the_current_directory_is_never_searched_and_loads_are_logged() {
    // A plugin sitting in the working directory but in no plugin_dirs is not found.
    let dir = hotplug_tests::scratch("cwd_not_searched");
    std::fs::copy(plugin_path(P, "system-ram"), dir.join("libcwd_plugin.so")).unwrap();
    std::fs::write(dir.join("c.toml"), "[machine]\nplugin_dirs = []\n[[strategy]]\nname = \"x\"\nplugin = \"cwd-plugin\"\n").unwrap();
    let out = std::process::Command::new(hotplug_tests::host_exe(P)).current_dir(&dir).args(["--config", "c.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("plugin \"cwd-plugin\" not found"));
    // Every plugin loaded is logged with its resolved path (RUST_LOG=info).
    let cfg = config_with_plugin("logged", "system-ram");
    let out = std::process::Command::new(hotplug_tests::host_exe(P))
        .env("RUST_LOG", "info")
        .args(["--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let resolved = plugin_path(P, "system-ram").canonicalize().unwrap();
    assert!(stderr.contains(&format!("loaded plugin {}", resolved.display())), "{stderr}");
}
