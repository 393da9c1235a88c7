//! The layer rules ARCHITECTURE.md states, checked: the model crate knows no serde, TOML
//! or CLI and does no I/O, so everything that reads, writes or prints stays in the host.

use hotplug_tests::workspace_root;

#[test]
fn the_model_crate_depends_on_the_contract_and_no_serialisation_or_cli() {
    let manifest: toml::Table = std::fs::read_to_string(workspace_root().join("host/model/Cargo.toml")).unwrap().parse().unwrap();
    let deps = manifest["dependencies"].as_table().expect("[dependencies]");
    let mut names: Vec<&str> = deps.keys().map(String::as_str).collect();
    names.sort_unstable();
    // abi_stable for the contract's FFI types; thiserror for StepError's Display; log,
    // the facade only, for RUST_LOG=debug's kernel-like sub-steps.
    assert_eq!(names, ["abi_stable", "hotplug-core", "log", "thiserror"], "the model's dependencies changed");
    assert_eq!(
        deps["hotplug-core"].get("default-features").and_then(toml::Value::as_bool),
        Some(false),
        "not the options parser (serde, toml)"
    );
    assert!(manifest.get("dev-dependencies").is_none() && manifest.get("build-dependencies").is_none());
}

#[test]
fn the_model_sources_do_no_io_and_use_no_serde() {
    let dir = workspace_root().join("host/model/src");
    let forbidden = ["std::fs", "std::io", "std::net", "std::process", "std::env", "serde", "toml", "clap", "println!", "eprintln!"];
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        files += 1;
        // Code, not the comments that explain the rule.
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with("//")) {
            for word in forbidden {
                assert!(!line.contains(word), "{}:{} uses {word}: {line}", path.display(), i + 1);
            }
        }
    }
    assert!(files >= 20, "{files} model files read");
}
