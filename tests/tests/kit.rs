//! The authors' test kit (`hotplug-conformance`) as a plugin's own `cargo test` uses it.
//! The full out-of-tree path (scaffold, its generated test, a broken edit caught) is in
//! scaffold.rs; these are the kit's answers inside this workspace.

use hotplug_conformance::{Error, Suite};
use hotplug_tests::{host_exe, workspace_root, Profile::Debug as P};

#[test]
fn it_builds_the_crate_and_runs_the_suite_on_what_it_built() {
    // Forces the workspace build first, so the kit's own cargo build has nothing to redo.
    let host = host_exe(P);
    let outcome = Suite::for_crate(workspace_root().join("plugins/system-ram")).host(&host).only("info").run().unwrap();
    assert!(outcome.passed(), "{outcome}");
    assert_eq!(outcome.status("info"), Some("pass"), "{outcome}");
    assert_eq!(outcome.status("kinds"), None, "--only info runs nothing else: {outcome}");
    // The library under test is the one cargo just reported, in this test's target dir.
    assert_eq!(outcome.plugin.file_name().unwrap(), "libsystem_ram.so");
    assert_eq!(outcome.plugin.parent(), host.parent(), "{}", outcome.plugin.display());
}

#[test]
fn a_failing_suite_is_an_outcome_with_the_suites_lines() {
    let outcome =
        Suite::for_crate(workspace_root().join("tests/fixtures/broken-nondeterministic")).host(host_exe(P)).only("determ").run().unwrap();
    assert_eq!(outcome.exit_code, 1, "{outcome}");
    assert_eq!(outcome.status("deterministic"), Some("fail"), "{outcome}");
    let panic = std::panic::catch_unwind(|| {
        Suite::for_crate(workspace_root().join("tests/fixtures/broken-nondeterministic")).host(host_exe(P)).only("determ").assert_passes();
    })
    .unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("fail  deterministic"), "{message}");
    assert!(message.ends_with("0 passed, 1 failed, 0 skipped\n"), "{message}");
}

#[test]
fn a_host_that_is_not_ours_is_refused_by_name() {
    let dir = hotplug_tests::scratch("kit-fake-host");
    let fake = dir.join("host");
    std::fs::write(&fake, "#!/bin/sh\necho 'host 9.18.28-1~deb12u2-Debian'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = Suite::for_crate(workspace_root().join("plugins/system-ram")).host(&fake).run().unwrap_err();
    assert!(matches!(err, Error::NotOurHost { .. }), "{err}");
    assert!(err.to_string().contains("9.18.28"), "{err}");
    // A host that does not run at all is refused the same way, never spawned for checks.
    let err = Suite::for_crate(workspace_root().join("plugins/system-ram")).host(dir.join("missing")).run().unwrap_err();
    assert!(err.to_string().contains("does not run"), "{err}");
}

#[test]
fn a_crate_without_a_cdylib_and_a_crate_that_does_not_build_say_so() {
    // core/ is an rlib only: nothing the host could load.
    let err = Suite::for_crate(workspace_root().join("core")).host(host_exe(P)).run().unwrap_err();
    assert!(matches!(err, Error::NoCdylib { .. }), "{err}");
    assert!(err.to_string().contains("crate-type"), "{err}");
    // A crate with a compile error: the compiler's message is in the error.
    let dir = hotplug_tests::scratch("kit-broken-crate");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"kit-broken\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[lib]\ncrate-type = [\"cdylib\"]\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), "pub fn f() -> u32 { \"not a number\" }\n").unwrap();
    let err = Suite::for_crate(&dir).host(host_exe(P)).run().unwrap_err();
    assert!(matches!(err, Error::Build { .. }), "{err}");
    assert!(err.to_string().contains("mismatched types"), "{err}");
}

#[test]
fn the_kit_and_the_host_agree_on_how_the_host_says_who_it_is() {
    assert_eq!(hotplug_conformance::IDENTITY, hotplug_host::conformance::IDENTITY);
    assert_eq!(hotplug_conformance::HOST_ENV, hotplug_host::conformance::HOST_ENV);
}
