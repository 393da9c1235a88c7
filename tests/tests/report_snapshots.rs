//! The text and JSON report of every shipped config, as snapshots (insta): a change to
//! any report shows up as a reviewable diff in tests/tests/snapshots/, and a refactor
//! that must not change behaviour proves it by leaving them alone.
//!
//! Update after an intended change: `INSTA_UPDATE=always cargo test -p hotplug-tests --test
//! report_snapshots`, then review the diff (or use `cargo insta review`).

use std::process::Command;

use hotplug_tests::{host_exe, workspace_root, Profile, Run};

/// `host --config configs/NAME ARGS`, run from the workspace root so the report names the
/// config by its relative path, the same on every machine.
fn report(name: &str, args: &[&str]) -> String {
    let config = format!("configs/{name}");
    let out = Command::new(host_exe(Profile::Debug))
        .current_dir(workspace_root())
        .args(["--config", &config])
        .args(args)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("run host");
    let run: Run = out.into();
    assert_eq!(run.code, 0, "{name}: {}{}", run.stdout, run.stderr);
    run.stdout
}

fn shipped() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("configs"))
        .expect("configs/")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_shipped_config_reports_as_its_snapshot() {
    let names = shipped();
    assert!(names.len() >= 11, "{names:?}");
    for name in names {
        let stem = name.trim_end_matches(".toml");
        insta::assert_snapshot!(format!("{stem}.text"), report(&name, &[]));
        insta::assert_snapshot!(format!("{stem}.json"), report(&name, &["--format", "json"]));
    }
}
