//! Contract evolution, proven with real libraries: a plugin built for 1.0 (against the
//! frozen layouts, and against the released 1.0.0 sources out of this workspace) runs in
//! the 1.1 host with the numbers of the current plugins; a newer minor and another major
//! are refused in one line; the README's example builds out of tree and passes
//! conformance; declared options are enforced before the run.

use hotplug_tests::out_of_tree;
use hotplug_tests::{artifacts, host_exe, run_host, workspace_root, write_config, Profile, Run};

const P: Profile = Profile::Debug;

/// A 4 GiB machine that hot-adds 16 GiB at 4 GiB through `plugin` (a name or a path),
/// onlines it, offlines it and removes it.
fn cycle_config(test: &str, plugin: &str, options: &str) -> String {
    let path = write_config(
        test,
        P,
        &format!(
            r#"
[machine]
plugin_dirs = ["@PLUGINS@"]

[[machine.node]]
id = 0
boot = [{{ start = "0", size = "4GiB" }}]

[[strategy]]
name = "s"
plugin = "{plugin}"
options = {{ {options} }}

[[step]]
op = "add"
start = "4GiB"
size = "16GiB"

[[step]]
op = "online"
start = "4GiB"
size = "16GiB"

[[step]]
op = "offline"
start = "4GiB"
size = "16GiB"

[[step]]
op = "remove"
start = "4GiB"
size = "16GiB"
"#
        ),
    );
    path.display().to_string()
}

/// The kernel views after step `after` (the plugin's own name never appears in them).
fn views(config: &str, after: &str) -> String {
    let run = run_host(P, &["--config", config, "--view", "zoneinfo", "--view", "iomem", "--view", "meminfo", "--view-after", after]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
}

fn report(config: &str) -> String {
    let run = run_host(P, &["--config", config]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    run.stdout
}

/// Both configs end every step alike: the same views after the add+online and at the end.
fn assert_same_machine(a: &str, b: &str) {
    for after in ["1", "2", "4"] {
        assert_eq!(views(a, after), views(b, after), "views after step {after} differ");
    }
}

// Hand-worked (KERNEL-FACTS 1, 3): 16 GiB is 128 sections of 128 MiB; each section's
// 32,768 struct pages of 64 bytes are 2 MiB = 512 pages, so the add's memmap is
// 128 x 512 = 65,536 pages = 256 MiB. From node memory, online gives all 16 GiB =
// 4,194,304 pages to the buddy; inside the blocks (memmap on memory), 4,194,304 - 65,536
// = 4,128,768.
const NODE_MEMMAP: &str = "ok: 128 blocks; memmap 256 MiB (65,536 pages) from node 0";
const INSIDE_MEMMAP: &str = "ok: 128 blocks; memmap 256 MiB (65,536 pages) inside the range";
const ONLINE_ALL: &str = "present +4,194,304, managed +4,194,304 pages";
const ONLINE_MINUS_MEMMAP: &str = "present +4,194,304, managed +4,128,768 pages";

#[test]
fn frozen_1_0_fixture_runs_with_the_numbers_of_the_current_plugins() {
    let old = cycle_config("compat_old_base", "plugin-contract-1-0", "");
    let new = cycle_config("compat_new_base", "system-ram", "");
    let text = report(&old);
    assert!(text.contains(NODE_MEMMAP) && text.contains(ONLINE_ALL), "{text}");
    assert_same_machine(&old, &new);

    // Its memmap-on-memory mode marks block by block through the 1.0 MemmapOps; the
    // current plugin marks with one strided call: the same pages, the same machine.
    let old = cycle_config("compat_old_mom", "plugin-contract-1-0", "memmap_on_memory = true");
    let new = cycle_config("compat_new_mom", "memmap-on-memory", "");
    let text = report(&old);
    assert!(text.contains(INSIDE_MEMMAP) && text.contains(ONLINE_MINUS_MEMMAP), "{text}");
    assert_same_machine(&old, &new);
}

#[test]
fn frozen_1_0_fixture_passes_conformance_with_host_enforced_kinds() {
    let dir = artifacts(P).display().to_string();
    for options in ["", "memmap_on_memory = true"] {
        let run = run_host(P, &["conformance", "plugin-contract-1-0", "--dir", &dir, "--options", options]);
        assert_eq!(run.code, 0, "options {options:?}:\n{}{}", run.stdout, run.stderr);
        // The fixture never checks the kind itself: the host's 1.0 adapter refuses device
        // requests before its set_up runs.
        assert!(run.stdout.contains("refuses device (EOPNOTSUPP)"), "{}", run.stdout);
        assert!(run.stdout.contains("(contract 1.0.0, handles system-ram)"), "{}", run.stdout);
    }
}

#[test]
fn a_1_0_plugin_takes_its_options_unchecked() {
    // 1.0 had no options schema: an unknown key reaches the plugin's own constructor,
    // whose error names it, at the [[strategy]] table's line (9).
    let config = cycle_config("compat_old_unknown_option", "plugin-contract-1-0", "colour = 1");
    let run = run_host(P, &["--config", &config]);
    assert_one_line(&run, &["scenario.toml:9:", "strategy \"s\" (plugin plugin-contract-1-0)", "colour"]);
}

#[test]
fn host_plugins_shows_versions_and_optional_operations() {
    let dir = artifacts(P).display().to_string();
    let run = run_host(P, &["plugins", "--dir", &dir, "--verbose", "--all"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let block = |lib: &str| -> String {
        let lines: Vec<&str> = run.stdout.lines().collect();
        let i = lines.iter().position(|l| l.contains(lib)).unwrap_or_else(|| panic!("no {lib}:\n{}", run.stdout));
        lines[i..].iter().take_while(|l| l.contains(lib) || l.starts_with("    ")).copied().collect::<Vec<_>>().join("\n")
    };
    let old = block("libplugin_contract_1_0.so");
    assert!(old.contains("contract 1.0.0") && old.contains("layout: contract 1.0, adapted"), "{old}");
    assert!(old.contains("options reach its constructor unchecked"), "{old}");
    let mom = block("libmemmap_on_memory.so");
    assert!(mom.contains("contract 1.1.0") && mom.contains("options_schema (2 options)"), "{mom}");
    assert!(mom.contains("option mode = \"strict\" | \"force\" (default \"strict\")"), "{mom}");
    let sys = block("libsystem_ram.so");
    assert!(sys.contains("option memmap_nodes = integer list (default [])"), "{sys}");
    assert!(sys.contains("option memmap_nid = integer (default: the range's node)"), "{sys}");
    assert!(block("libplugin_contract_1_2.so").contains("built for contract 1.2.0"));
}

fn assert_one_line(run: &Run, parts: &[&str]) {
    assert_eq!(run.code, 2, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {}", run.stderr);
    for p in parts {
        assert!(lines[0].contains(p), "{p:?} not in {:?}", lines[0]);
    }
}

#[test]
fn versions_load_by_the_minor_rule() {
    // 1.0 (older minor): loads. 1.1 (this host's): loads. 1.2 (newer minor) and 2.0
    // (another major): one line naming both versions.
    for plugin in ["plugin-contract-1-0", "system-ram"] {
        let config = cycle_config(&format!("compat_loads_{plugin}"), plugin, "");
        assert_eq!(run_host(P, &["--config", &config]).code, 0, "{plugin}");
    }
    let config = cycle_config("compat_1_2", "plugin-contract-1-2", "");
    assert_one_line(
        &run_host(P, &["--config", &config]),
        &["libplugin_contract_1_2.so", "built for contract 1.2.0", "this host speaks contract 1.1.0", "loads plugins for 1.0 to 1.1"],
    );
    let config = cycle_config("compat_2_0", "broken-contract-2", "");
    assert_one_line(
        &run_host(P, &["--config", &config]),
        &["libbroken_contract_2.so", "built for contract 2.0.0", "this host speaks contract 1.1.0", "another major version"],
    );
}

#[test]
fn an_undeclared_option_is_refused_with_plugin_key_line_and_the_keys_it_takes() {
    // Line 12, column 13 is the key `mod` inside `options = { mod = "force" }`.
    let config = cycle_config("compat_undeclared", "memmap-on-memory", "mod = \"force\"");
    assert_one_line(
        &run_host(P, &["--config", &config]),
        &["scenario.toml:12:13: strategy \"s\": plugin memmap-on-memory has no option \"mod\"; it takes: mode, per_block"],
    );
    // A declared key with a value of the wrong type is located at the value (column 20).
    let config = cycle_config("compat_wrong_type", "memmap-on-memory", "mode = \"fast\"");
    assert_one_line(
        &run_host(P, &["--config", &config]),
        &["scenario.toml:12:20: strategy \"s\": option \"mode\" of plugin memmap-on-memory takes one of \"strict\", \"force\", not \"fast\""],
    );
}

/// Remove `//!` lines and the one path a module copy must change.
fn normalised(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//!"))
        .map(|l| l.replace("super::types::", "crate::types::"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_frozen_copy_in_core_matches_the_released_sources() {
    let root = workspace_root();
    for file in ["types.rs", "abi.rs"] {
        let released = std::fs::read_to_string(root.join("tests/compat/hotplug-core-1.0.0/src").join(file)).unwrap();
        let frozen = std::fs::read_to_string(root.join("core/src/compat/v1_0").join(file)).unwrap();
        assert!(normalised(&released) == normalised(&frozen), "core/src/compat/v1_0/{file} drifted from the released 1.0.0 {file}");
    }
}

#[test]
fn a_plugin_built_against_the_released_1_0_sources_loads_in_this_host() {
    let dir = out_of_tree::crate_dir("released-1-0");
    let compat = workspace_root().join("tests/compat");
    out_of_tree::copy_tree(&compat.join("hotplug-core-1.0.0"), &dir.join("hotplug-core"));
    out_of_tree::copy_tree(&compat.join("plugin-1.0"), &dir.join("plugin"));
    std::fs::write(dir.join("Cargo.toml"), out_of_tree::workspace_root_manifest(&["hotplug-core", "plugin"])).unwrap();
    let lib = out_of_tree::build(&dir, "plugin-1-0-verbatim");
    let lib = lib.display().to_string();

    let old = cycle_config("compat_released_base", &lib, "");
    let new = cycle_config("compat_released_base_now", "system-ram", "");
    let text = report(&old);
    assert!(text.contains(NODE_MEMMAP) && text.contains(ONLINE_ALL), "{text}");
    assert_same_machine(&old, &new);
    let old = cycle_config("compat_released_mom", &lib, "memmap_on_memory = true");
    let new = cycle_config("compat_released_mom_now", "memmap-on-memory", "");
    assert!(report(&old).contains(ONLINE_MINUS_MEMMAP));
    assert_same_machine(&old, &new);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README's "Write your own plugin" example: its Rust block and its `[features]` block.
fn readme_example() -> (String, String) {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let section = readme.split("## Write your own plugin").nth(1).expect("the README has the section");
    let block = |fence: &str| {
        let start = section.find(fence).unwrap_or_else(|| panic!("no {fence} block")) + fence.len();
        section[start..].split("```").next().unwrap().to_string()
    };
    (block("```rust\n"), block("```toml\n"))
}

#[test]
fn the_readme_example_builds_out_of_tree_and_passes_conformance() {
    let (code, features) = readme_example();
    assert!(features.contains("[features]"), "{features}");
    let dir = out_of_tree::crate_dir("readme-example");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), code).unwrap();
    let core = workspace_root().join("core");
    let manifest = format!(
        "[package]\nname = \"my-strategy\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n{features}\n\
         [dependencies]\nhotplug-core = {{ path = {:?} }}\n\n[workspace]\n\n{}",
        core.display().to_string(),
        out_of_tree::profiles()
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    let lib = out_of_tree::build(&dir, "my-strategy");
    let out = std::process::Command::new(host_exe(P)).arg("conformance").arg(&lib).env_remove("RUST_LOG").output().unwrap();
    let run: Run = out.into();
    assert_eq!(run.code, 0, "the README example fails conformance:\n{}{}", run.stdout, run.stderr);
    // Its set_up accepts anything; the export adapter refuses the kind it does not claim.
    assert!(run.stdout.contains("refuses device (EOPNOTSUPP)"), "{}", run.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}
