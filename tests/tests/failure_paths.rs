//! Every way a step can fail leaves the model exactly as it was: one case per failure
//! path, each proven by a snapshot taken before the failing step and compared after it.
//!
//! Kernel errnos run in-process (`run_in_process` compares the snapshots). Plugin
//! errors, plugin panics and validator rejections come from the broken fixtures, which
//! are only ever loaded in a child process: the `host` binary, whose debug build checks
//! the same snapshot equality after every failed step and exits 2 if it breaks.

use hotplug_tests::{run_host, run_in_process, write_config, Profile};

const VM: &str = "[machine]\nauto_online_blocks = \"online\"\n[[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"2GiB\" }]\n\
                  [[strategy]]\nname = \"base\"\nplugin = \"system-ram\"\n\
                  [[strategy]]\nname = \"mom\"\nplugin = \"memmap-on-memory\"\n\
                  [[strategy]]\nname = \"mom67\"\nplugin = \"memmap-on-memory\"\noptions = { per_block = false }\n\
                  [[strategy]]\nname = \"dev\"\nplugin = \"device-pgmap\"\n\
                  [[strategy]]\nname = \"priv\"\nplugin = \"device-pgmap\"\noptions = { type = \"private\" }\n\
                  [[strategy]]\nname = \"pmem\"\nplugin = \"device-pgmap\"\noptions = { type = \"fsdax\", align = \"1GiB\" }\n";

/// A step in TOML.
fn s(fields: &str) -> String {
    format!("\n[[step]]\n{}\n", fields.replace("; ", "\n"))
}

/// (failure path, set-up steps, the failing step with its expect).
fn cases() -> Vec<(&'static str, String, String)> {
    let add = |at: &str, size: &str, st: &str| s(&format!("op = \"add\"; start = \"{at}\"; size = \"{size}\"; strategy = \"{st}\""));
    let map = |at: &str, size: &str, st: &str| s(&format!("op = \"memremap\"; start = \"{at}\"; size = \"{size}\"; strategy = \"{st}\""));
    vec![
        ("add E2BIG", String::new(), s("op = \"add\"; start = \"64TiB\"; size = \"1GiB\"; strategy = \"base\"; expect = \"E2BIG\"")),
        (
            "add EEXIST (resource)",
            String::new(),
            s("op = \"add\"; start = \"1GiB\"; size = \"128MiB\"; strategy = \"base\"; expect = \"EEXIST\""),
        ),
        (
            "add EEXIST (device subsection)",
            map("0x108000000", "2MiB", "priv"),
            s("op = \"add\"; start = \"4GiB\"; size = \"1GiB\"; strategy = \"base\"; expect = \"EEXIST\""),
        ),
        (
            "add EINVAL (alignment)",
            String::new(),
            s("op = \"add\"; start = \"0x104000000\"; size = \"128MiB\"; strategy = \"base\"; expect = \"EINVAL\""),
        ),
        (
            "add EINVAL (node)",
            String::new(),
            s("op = \"add\"; start = \"4GiB\"; size = \"128MiB\"; node = 7; strategy = \"base\"; expect = \"EINVAL\""),
        ),
        (
            "add ENOMEM (node memory)",
            String::new(),
            s("op = \"add\"; start = \"4GiB\"; size = \"256GiB\"; strategy = \"base\"; expect = \"ENOMEM\""),
        ),
        (
            "add EINVAL (dax/kmem: no whole block)",
            String::new(),
            s("op = \"add\"; driver = \"dax-kmem\"; start = \"0x100001000\"; size = \"64MiB\"; strategy = \"base\"; expect = \"EINVAL\""),
        ),
        (
            "online EINVAL (already online)",
            add("4GiB", "256MiB", "base"),
            s("op = \"online\"; start = \"4GiB\"; size = \"256MiB\"; expect = \"EINVAL\""),
        ),
        ("online ENOENT", String::new(), s("op = \"online\"; start = \"8GiB\"; size = \"128MiB\"; expect = \"ENOENT\"")),
        (
            "offline EBUSY (unmovable)",
            add("4GiB", "256MiB", "base"),
            s("op = \"offline\"; start = \"4GiB\"; size = \"256MiB\"; unmovable = true; expect = \"EBUSY\""),
        ),
        ("offline EINVAL (spans zones)", String::new(), s("op = \"offline\"; start = \"0\"; size = \"128MiB\"; expect = \"EINVAL\"")),
        (
            "offline EINVAL (already offline, midway)",
            add("4GiB", "256MiB", "base") + &s("op = \"offline\"; start = \"0x108000000\"; size = \"128MiB\""),
            s("op = \"offline\"; start = \"4GiB\"; size = \"256MiB\"; expect = \"EINVAL\""),
        ),
        (
            "remove EBUSY (online)",
            add("4GiB", "256MiB", "base"),
            s("op = \"remove\"; start = \"4GiB\"; size = \"256MiB\"; expect = \"EBUSY\""),
        ),
        ("remove ENOENT", String::new(), s("op = \"remove\"; start = \"8GiB\"; size = \"128MiB\"; expect = \"ENOENT\"")),
        (
            "remove EINVAL (mix of memmap on memory)",
            add("4GiB", "128MiB", "mom")
                + &add("0x108000000", "128MiB", "base")
                + &s("op = \"offline\"; start = \"4GiB\"; size = \"256MiB\""),
            s("op = \"remove\"; start = \"4GiB\"; size = \"256MiB\"; expect = \"EINVAL\""),
        ),
        (
            "remove EINVAL (6.7 granularity)",
            add("4GiB", "128MiB", "mom67")
                + &add("0x108000000", "128MiB", "mom67")
                + &s("op = \"offline\"; start = \"4GiB\"; size = \"256MiB\""),
            s("op = \"remove\"; start = \"4GiB\"; size = \"256MiB\"; expect = \"EINVAL\""),
        ),
        (
            "remove EINVAL (splits an add)",
            add("4GiB", "256MiB", "base") + &s("op = \"offline\"; start = \"4GiB\"; size = \"256MiB\""),
            s("op = \"remove\"; start = \"4GiB\"; size = \"128MiB\"; expect = \"EINVAL\""),
        ),
        (
            "memremap ENXIO (driver: no room)",
            String::new(),
            s("op = \"memremap\"; start = \"16GiB\"; size = \"1GiB\"; strategy = \"pmem\"; expect = \"ENXIO\""),
        ),
        (
            "memremap ENXIO (System RAM)",
            String::new(),
            s("op = \"memremap\"; start = \"1GiB\"; size = \"128MiB\"; strategy = \"dev\"; expect = \"ENXIO\""),
        ),
        (
            "memremap ENOMEM (pgmap collision)",
            map("16GiB", "1GiB", "dev"),
            s("op = \"memremap\"; start = \"0x420000000\"; size = \"1GiB\"; strategy = \"dev\"; expect = \"ENOMEM\""),
        ),
        (
            "memremap EINVAL (range)",
            String::new(),
            s("op = \"memremap\"; start = \"64TiB\"; size = \"1GiB\"; strategy = \"dev\"; expect = \"EINVAL\""),
        ),
        (
            "memremap EEXIST (active subsection)",
            map("0x400200000", "2MiB", "priv"),
            s("op = \"memremap\"; start = \"16GiB\"; size = \"128MiB\"; strategy = \"priv\"; expect = \"EEXIST\""),
        ),
        (
            "memremap EBUSY (iomem region)",
            s("op = \"memremap\"; start = \"0x400200000\"; size = \"2MiB\"; strategy = \"priv\"; resource = \"a\""),
            s("op = \"memremap\"; start = \"16GiB\"; size = \"128MiB\"; strategy = \"priv\"; resource = \"b\"; expect = \"EBUSY\""),
        ),
        ("memunmap EINVAL", String::new(), s("op = \"memunmap\"; start = \"16GiB\"; expect = \"EINVAL\"")),
        (
            "grow ENOSPC (its region is full)",
            s("op = \"grow\"; device = \"v\"; start = \"4GiB\"; size = \"128MiB\"; region_size = \"128MiB\"; strategy = \"base\""),
            s("op = \"grow\"; device = \"v\"; size = \"128MiB\"; strategy = \"base\"; expect = \"ENOSPC\""),
        ),
        (
            "grow EBUSY (a new device's region over System RAM)",
            String::new(),
            s("op = \"grow\"; device = \"v\"; start = \"1GiB\"; size = \"128MiB\"; strategy = \"base\"; expect = \"EBUSY\""),
        ),
        (
            "grow EINVAL (less than a 2 MiB sub-block)",
            String::new(),
            s("op = \"grow\"; device = \"v\"; start = \"4GiB\"; size = \"1MiB\"; strategy = \"base\"; expect = \"EINVAL\""),
        ),
        ("shrink ENODEV", String::new(), s("op = \"shrink\"; device = \"v\"; size = \"128MiB\"; expect = \"ENODEV\"")),
        (
            "shrink EBUSY (midway)",
            s("op = \"grow\"; device = \"v\"; start = \"4GiB\"; size = \"512MiB\"; strategy = \"base\""),
            s("op = \"shrink\"; device = \"v\"; size = \"512MiB\"; unmovable = true; expect = \"EBUSY\""),
        ),
        (
            "plugin error (driver EINVAL: misaligned namespace)",
            String::new(),
            s("op = \"memremap\"; start = \"0x400001000\"; size = \"1GiB\"; strategy = \"pmem\"; expect = \"EINVAL\""),
        ),
    ]
}

#[test]
fn every_kernel_failure_path_leaves_the_model_unchanged() {
    let cases = cases();
    assert!(cases.len() >= 28);
    for (name, setup, failing) in cases {
        // run_in_process asserts that each step ends as expected and that the failing
        // step's snapshot before equals the model after.
        let cfg = format!("{VM}{setup}{failing}");
        let r = run_in_process(name, &cfg);
        let last = r.steps.last().unwrap();
        assert_ne!(last.outcome.code(), "ok", "{name}");
    }
}

#[test]
fn plugin_errors_panics_and_validator_rejections_leave_the_model_unchanged() {
    // Each fixture fails in a different place; the debug `host` compares a snapshot
    // before every failed step with the model after it and exits 2 if they differ. The
    // set-up step (a good add) proves there is state to corrupt.
    for (fixture, code) in [
        ("broken-panic-set-up", "EPLUGIN"),
        ("broken-panic-construct", "EPLUGIN"),
        ("broken-nonsense-flags", "EINVAL"),
        ("broken-altmap-outside", "EINVAL"),
        ("broken-altmap-small", "ENOMEM"),
        ("broken-marks-outside", "EINVAL"),
    ] {
        let cfg = format!(
            "[machine]\nauto_online_blocks = \"online\"\nplugin_dirs = [\"@PLUGINS@\"]\n[[machine.node]]\nid = 0\nboot = [{{ start = \"0\", size = \"2GiB\" }}]\n\
             [[strategy]]\nname = \"base\"\nplugin = \"system-ram\"\n[[strategy]]\nname = \"bad\"\nplugin = \"{fixture}\"\n\
             [[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"1GiB\"\nstrategy = \"base\"\n\
             [[step]]\nop = \"add\"\nstart = \"8GiB\"\nsize = \"1GiB\"\nstrategy = \"bad\"\nexpect = \"{code}\"\n"
        );
        let path = write_config(&format!("failure-{fixture}"), Profile::Debug, &cfg);
        let run = run_host(Profile::Debug, &["--config", path.to_str().unwrap(), "--check-invariants"]);
        assert_eq!(run.code, 0, "{fixture}: {}\n{}", run.stdout, run.stderr);
        assert!(run.stdout.contains("(as expected)"), "{fixture}: {}", run.stdout);
    }
}
