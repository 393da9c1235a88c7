//! `host new-plugin` as an author meets it: a crate scaffolded outside this repository
//! builds, passes its own generated `cargo test` (the conformance kit), runs in
//! `host --config` on its generated scenario, and a broken edit is caught, never hidden by
//! a stale library.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hotplug_tests::{host_exe, out_of_tree, workspace_root, Profile::Debug as P};

/// A fresh directory outside the workspace to scaffold into.
fn outside(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hotplug-scaffold-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn new_plugin(args: &[&str]) -> hotplug_tests::Run {
    hotplug_tests::run_host(P, &[&["new-plugin"], args].concat())
}

/// The author's `cargo test`, in the shared out-of-tree target directory (so dependencies
/// compile once for every out-of-tree build), offline as on a machine with the lock's crates.
fn cargo_test(dir: &Path) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .current_dir(dir)
        .args(["test", "--offline", "--target-dir"])
        .arg(out_of_tree::target_dir())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        // The scaffold's .cargo/config.toml names the host; an outer one must not override it.
        .env_remove("HOTPLUG_HOST")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_scaffolded_plugin_builds_conforms_runs_and_catches_a_broken_edit() {
    let parent = outside("demo");
    let run = new_plugin(&["demo-plugin", "--dir", parent.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let dir = parent.join("demo-plugin");
    assert!(run.stdout.contains(&format!("cd {} && cargo test", dir.canonicalize().unwrap().display())), "{}", run.stdout);
    // It names the host that wrote it, by absolute path.
    let config = std::fs::read_to_string(dir.join(".cargo/config.toml")).unwrap();
    let host = host_exe(P).canonicalize().unwrap();
    assert!(config.contains(&format!("HOTPLUG_HOST = \"{}\"", host.display())), "{config}");

    // Its own test: the suite, twice (as generated, and with memmap_on_memory = true).
    let out = cargo_test(&dir);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("test conforms ... ok") && text(&out).contains("test conforms_with_memmap_on_memory ... ok"),
        "{}",
        text(&out)
    );

    // Its scenario, with the plugin found where the build put it. 1 GiB is 8 sections of
    // 32,768 pages; 32,768 x 64-byte struct pages = 2 MiB each, 16 MiB in all: from node 0
    // (sparse_init_one_section via the node's memory), or, with memmap on memory, the first
    // 512 pages of each 128 MiB block (memory_block_memmap_on_memory_pages).
    let plugins = out_of_tree::target_dir().join("debug");
    let scenario = dir.join("scenario.toml");
    let run = hotplug_tests::run_host(P, &["--config", scenario.to_str().unwrap(), "--plugin-dir", plugins.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("[mine]  ok: 8 blocks; memmap 16 MiB (4,096 pages) from node 0"), "{}", run.stdout);
    assert!(run.stdout.contains("[mine-mom]  ok: 8 blocks; memmap 16 MiB (4,096 pages) inside the range"), "{}", run.stdout);
    // Online: all 262,144 pages are present; with memmap on memory 8 x 512 = 4,096 of them
    // hold the memmap and never reach the buddy, so 258,048 are managed.
    assert!(run.stdout.contains("present +262,144, managed +262,144 pages"), "{}", run.stdout);
    assert!(run.stdout.contains("present +262,144, managed +258,048 pages"), "{}", run.stdout);

    // Break the source: flags the contract does not define. `cargo test` alone must see it
    // (the kit rebuilds the cdylib), and say which check and why.
    let lib = dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let broken = source.replacen(
        "Restrictions::new(RestrictionFlags::MEMORY_BLOCK_DEVICES);",
        "Restrictions::new(RestrictionFlags(0xdead_0000));",
        1,
    );
    assert_ne!(broken, source, "the template's set_up changed: update this test's edit");
    std::fs::write(&lib, broken).unwrap();
    let out = cargo_test(&dir);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("fail  set-up-grid"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&parent);
}

#[test]
fn it_never_overwrites_and_refuses_bad_names() {
    let parent = outside("refuse");
    let existing = parent.join("taken");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("keep.txt"), "mine").unwrap();
    let run = new_plugin(&["taken", "--dir", parent.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("already exists") && run.stderr.contains("nothing was written"), "{}", run.stderr);
    assert_eq!(std::fs::read_dir(&existing).unwrap().count(), 1);
    assert_eq!(std::fs::read_to_string(existing.join("keep.txt")).unwrap(), "mine");
    // A symlink by that name is refused too, and its target is not written through.
    std::os::unix::fs::symlink(&existing, parent.join("link")).unwrap();
    let run = new_plugin(&["link", "--dir", parent.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(std::fs::read_dir(&existing).unwrap().count(), 1);

    for (name, why) in [
        ("../escape", "lowercase letters"),
        ("a/b", "lowercase letters"),
        ("Big", "lowercase letters"),
        ("9lives", "starts with a letter"),
        ("fn", "keyword"),
        ("serde", "dependency"),
        ("", "1 to 64"),
    ] {
        let run = new_plugin(&[name, "--dir", parent.to_str().unwrap()]);
        assert_eq!(run.code, 2, "{name:?}");
        assert!(run.stderr.contains(why), "{name:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{name:?}: {}", run.stderr);
    }
    // Nothing but what the test made.
    let mut left: Vec<String> =
        std::fs::read_dir(&parent).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, ["link", "taken"]);

    // --core must be the contract this host speaks, with the kit beside it.
    let run = new_plugin(&["other", "--dir", parent.to_str().unwrap(), "--core", workspace_root().join("host").to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("is hotplug-host") && run.stderr.contains("not hotplug-core 1.1.x"), "{}", run.stderr);
    let run = new_plugin(&["other", "--dir", parent.to_str().unwrap(), "--core", workspace_root().join("core").to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let manifest = std::fs::read_to_string(parent.join("other/Cargo.toml")).unwrap();
    let core = workspace_root().join("core").canonicalize().unwrap();
    assert!(manifest.contains(&format!("hotplug-core = {{ path = \"{}\" }}", core.display())), "{manifest}");
    let _ = std::fs::remove_dir_all(&parent);
}
