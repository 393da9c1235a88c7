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

#[test]
fn a_world_writable_directory_makes_a_safe_file_unsafe_and_the_flag_works_everywhere() {
    use std::os::unix::fs::PermissionsExt;
    let dir = hotplug_tests::scratch("world_writable_dir").join("open");
    std::fs::create_dir_all(&dir).unwrap();
    // The file is 0755 and ours; its directory is 0777 without the sticky bit.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let lib = dir.join("libsystem_ram.so");
    std::fs::copy(plugin_path(P, "system-ram"), &lib).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = config_with_plugin("world_writable_dir_cfg", lib.to_str().unwrap());
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    assert_one_line_failure(&run, &["world-writable (without the sticky bit)", "--allow-unsafe-plugin-path"]);
    assert_eq!(run_host(P, &["--config", cfg.to_str().unwrap(), "--allow-unsafe-plugin-path"]).code, 0);
    // The flag is global: `plugins` and `conformance` take it too.
    let listed = run_host(P, &["plugins", "--dir", dir.to_str().unwrap()]);
    assert!(listed.stdout.contains("refusing to load"), "{}", listed.stdout);
    let listed = run_host(P, &["plugins", "--dir", dir.to_str().unwrap(), "--allow-unsafe-plugin-path"]);
    assert!(listed.stdout.contains("system-ram"), "{}\n{}", listed.stdout, listed.stderr);
    let suite = run_host(P, &["conformance", lib.to_str().unwrap(), "--only", "info"]);
    assert_eq!(suite.code, 2, "{}", suite.stdout);
    let suite = run_host(P, &["conformance", lib.to_str().unwrap(), "--only", "info", "--allow-unsafe-plugin-path"]);
    assert_eq!(suite.code, 0, "{}\n{}", suite.stdout, suite.stderr);
    // A sticky world-writable directory (like /tmp) is fine: others cannot replace our file.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert_eq!(run_host(P, &["--config", cfg.to_str().unwrap()]).code, 0);
}

#[test]
fn a_bare_name_ending_in_so_loads_the_file_checked_not_one_on_ld_library_path() {
    // `plugin = "libsystem_ram.so"` is the file in the working directory: checked there,
    // and loaded from there by its absolute path, whatever LD_LIBRARY_PATH holds (here a
    // world-writable directory with another library of that name, which would be refused).
    use std::os::unix::fs::PermissionsExt;
    let dir = hotplug_tests::scratch("bare_so");
    let evil = dir.join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::copy(plugin_path(P, "broken-panic-set-up"), evil.join("libsystem_ram.so")).unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::copy(plugin_path(P, "system-ram"), dir.join("libsystem_ram.so")).unwrap();
    std::fs::write(dir.join("c.toml"), "[machine]\n[[strategy]]\nname = \"s\"\nplugin = \"libsystem_ram.so\"\n[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"128MiB\"\n").unwrap();
    let out = std::process::Command::new(hotplug_tests::host_exe(P))
        .current_dir(&dir)
        .env("LD_LIBRARY_PATH", &evil)
        .env("RUST_LOG", "info")
        .args(["--config", "c.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("[s]  ok"), "the system-ram in . ran, not the panicking one");
    let resolved = dir.join("libsystem_ram.so").canonicalize().unwrap();
    assert!(stderr.contains(&format!("loaded plugin {}", resolved.display())), "{stderr}");
}

#[test]
fn a_contract_symbol_at_address_zero_or_a_fifo_is_not_a_plugin_and_no_crash() {
    let dir = hotplug_tests::scratch("symbol_zero");
    // A library whose HOTPLUG_CONTRACT_VERSION is the absolute symbol 0 (ld --defsym).
    let src = dir.join("zero.c");
    std::fs::write(&src, "int unused(void) { return 0; }\n").unwrap();
    let lib = dir.join("libzero.so");
    let built = std::process::Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-Wl,--defsym,HOTPLUG_CONTRACT_VERSION=0")
        .status()
        .expect("gcc");
    assert!(built.success());
    let cfg = config_with_plugin("symbol_zero_cfg", lib.to_str().unwrap());
    let run = run_host(P, &["--config", cfg.to_str().unwrap()]);
    assert_one_line_failure(&run, &["libzero.so: not a hotplug-lab plugin", "HOTPLUG_CONTRACT_VERSION is at address 0x0"]);
    // A FIFO named like a plugin: refused at once, never opened (dlopen would block).
    let fifo = dir.join("libfifo.so");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let cfg = config_with_plugin("fifo_plugin_cfg", fifo.to_str().unwrap());
    assert_one_line_failure(
        &run_host(P, &["--config", cfg.to_str().unwrap()]),
        &["libfifo.so: cannot open: is a FIFO, not a regular file"],
    );
    let listed = run_host(P, &["plugins", "--dir", dir.to_str().unwrap()]);
    assert_eq!(listed.code, 0);
    assert!(listed.stdout.contains("libfifo.so: cannot open: is a FIFO"), "{}", listed.stdout);
}

#[test]
fn plugins_list_as_json_for_programs() {
    let dir = hotplug_tests::artifacts(hotplug_tests::Profile::Debug).display().to_string();
    let r = hotplug_tests::run_host(hotplug_tests::Profile::Debug, &["plugins", "--dir", &dir, "--all", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    assert_eq!(v["kind"], "plugins");
    let list = v["plugins"].as_array().unwrap();
    let by_file = |f: &str| list.iter().find(|p| p["path"].as_str().unwrap().ends_with(f)).unwrap_or_else(|| panic!("{f}: {v}"));
    // The baseline: contract 1.1.0 (this tree's), System RAM only.
    let base = by_file("libsystem_ram.so");
    assert_eq!(
        (base["loads"].as_bool(), base["name"].as_str(), base["contract"].as_str()),
        (Some(true), Some("system-ram"), Some("1.1.0"))
    );
    assert_eq!(base["handles"], serde_json::json!(["system-ram"]));
    // device-pgmap declares `map`, a choice of mem or dev.
    let dev = by_file("libdevice_pgmap.so");
    let map = dev["options"].as_array().unwrap().iter().find(|o| o["name"] == "map").expect("map option");
    assert_eq!((map["type"].as_str(), map["choices"].clone()), (Some("choice"), serde_json::json!(["mem", "dev"])));
    // A library built for contract 2 does not load, and says why.
    let two = by_file("libbroken_contract_2.so");
    assert_eq!(two["loads"], false);
    assert!(two["error"].as_str().unwrap().contains("built for contract 2.0.0"), "{two}");
}
