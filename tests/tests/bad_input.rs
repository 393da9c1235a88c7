//! The bad-input table: one row per way a user can get it wrong, each asserting the exit
//! code (2: the run could not start; 1: a step ended otherwise than its `expect`) and the
//! one clear line that says why, with file, line and column where they apply. No input
//! may print a panic or a backtrace.

use hotplug_tests::{run_host, scratch, write_config, Profile};

const P: Profile = Profile::Debug;
const VM: &str = "[machine]\nplugin_dirs = [\"@PLUGINS@\"]\n[[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"1GiB\" }]\n";

/// What a row feeds `host`.
enum Input {
    /// A config file's text (`@PLUGINS@` is the plugin directory); extra arguments.
    Config(&'static str, &'static [&'static str]),
    /// A config made of the VM above plus this text.
    Steps(&'static str),
    /// Arguments only.
    Args(&'static [&'static str]),
}

struct Row {
    name: &'static str,
    input: Input,
    code: i32,
    /// Substrings of the one line on stderr (code 2) or of the report (code 1).
    says: &'static [&'static str],
}

fn rows() -> Vec<Row> {
    use Input::*;
    let r = |name, input, code, says| Row { name, input, code, says };
    vec![
        r("malformed TOML", Config("[machine\n", &[]), 2, &["scenario.toml:1:9", "unclosed table"]),
        r("unknown top-level key", Config("colour = 1\n[machine]\n", &[]), 2, &["scenario.toml:1:1", "unknown field `colour`"]),
        r("unknown key in a step", Steps("[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"1GiB\"\nspeed = 3\n"), 2, &["scenario.toml:10:1", "unknown field `speed`"]),
        r("wrong type: page_size", Config("[machine]\npage_size = true\n", &[]), 2, &["scenario.toml:2:13"]),
        r("wrong type: node id", Config("[machine]\n[[machine.node]]\nid = \"zero\"\nboot = []\n", &[]), 2, &["scenario.toml:3:6"]),
        r("size over 64 bits", Steps("[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"20000000PiB\"\n"), 2, &["scenario.toml:9:8", "64 bits"]),
        r("hex address over 64 bits", Steps("[[step]]\nop = \"add\"\nstart = \"0x1_0000_0000_0000_0000\"\nsize = \"1GiB\"\n"), 2, &["scenario.toml:8:9"]),
        r("negative size", Steps("[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = -1\n"), 2, &["scenario.toml:9:8", "negative"]),
        r("zero size add", Steps("[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"0\"\n"), 1, &["E2BIG", "<< expected ok"]),
        r("start above the pluggable range", Steps("[[step]]\nop = \"add\"\nstart = \"1PiB\"\nsize = \"1GiB\"\n"), 1, &["E2BIG", "pluggable range"]),
        r(
            "overlapping steps",
            Steps("[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"1GiB\"\n[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"128MiB\"\n"),
            1,
            &["EEXIST", "conflicts with \"System RAM\""],
        ),
        r("removing what was never added", Steps("[[step]]\nop = \"remove\"\nstart = \"8GiB\"\nsize = \"128MiB\"\n"), 1, &["ENOENT", "memory64 does not exist"]),
        r(
            "offlining twice",
            Steps("[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"128MiB\"\n[[step]]\nop = \"offline\"\nstart = \"4GiB\"\nsize = \"128MiB\"\n"),
            1,
            &["EINVAL", "already offline"],
        ),
        r("unknown plugin", Steps("[[strategy]]\nname = \"x\"\nplugin = \"no-such-plugin\"\n"), 2, &["scenario.toml:6: strategy \"x\"", "no libno_such_plugin.so in"]),
        r("unknown strategy in a step", Steps("[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"1GiB\"\nstrategy = \"mom\"\n"), 2, &["scenario.toml:10:12", "unknown strategy \"mom\""]),
        r(
            "plugin option of the wrong type",
            Steps("[[strategy]]\nname = \"base\"\nplugin = \"system-ram\"\noptions = { memmap_nid = \"zero\" }\n"),
            2,
            // The host checks the declared type before the plugin runs: the [[strategy]] is
            // line 6, `options` line 9, and the value starts at column 26.
            &["scenario.toml:9:26", "strategy \"base\"", "option \"memmap_nid\" of plugin system-ram takes an integer, not \"zero\""],
        ),
        r(
            "plugin directory that does not exist",
            Config("[machine]\nplugin_dirs = [\"/no/such/dir\"]\n[[strategy]]\nname = \"x\"\nplugin = \"nowhere\"\n", &[]),
            2,
            &["/no/such/dir"],
        ),
        r("empty file", Config("\n\n", &[]), 2, &["config is empty"]),
        r("no [machine]", Config("[[step]]\nop = \"add\"\n", &[]), 2, &["machine"]),
        r("unknown op", Steps("[[step]]\nop = \"plug\"\n"), 2, &["scenario.toml:7:6", "unknown variant `plug`"]),
        r("unknown online_type", Steps("[[step]]\nop = \"online\"\nstart = \"0\"\nsize = \"128MiB\"\nonline_type = \"fast\"\n"), 2, &["scenario.toml:10:15"]),
        r("unknown driver", Steps("[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"1GiB\"\ndriver = \"pcie\"\n"), 2, &["scenario.toml:10:10", "unknown driver \"pcie\""]),
        r("unknown expect", Steps("[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"1GiB\"\nexpect = \"EWHAT\"\n"), 2, &["scenario.toml:10:10", "unknown expect \"EWHAT\""]),
        r("unknown arch", Config("[machine]\narch = \"riscv\"\n", &[]), 2, &["scenario.toml:2:8", "unknown arch \"riscv\""]),
        r("block not a multiple of the section", Config("[machine]\nmemory_block_size = \"64MiB\"\n", &[]), 2, &["scenario.toml:2:21", "invalid geometry"]),
        r("page size not a power of two", Config("[machine]\npage_size = \"3KiB\"\n", &[]), 2, &["scenario.toml:2:13", "invalid geometry"]),
        r(
            "boot ranges of two nodes overlap",
            Config("[machine]\n[[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"2GiB\" }]\n[[machine.node]]\nid = 1\nboot = [{ start = \"1GiB\", size = \"2GiB\" }]\n", &[]),
            2,
            &["scenario.toml:2:1", "boot ranges overlap"],
        ),
        r(
            "a node listed twice",
            Config("[machine]\n[[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"1GiB\" }]\n[[machine.node]]\nid = 0\nboot = [{ start = \"2GiB\", size = \"1GiB\" }]\n", &[]),
            2,
            &["node 0 is listed twice"],
        ),
        r(
            "boot range that wraps past 2^64",
            Config("[machine]\n[[machine.node]]\nid = 0\nboot = [{ start = \"0xfffffffffffff000\", size = \"8KiB\" }]\n", &[]),
            2,
            // The range table starts at line 4, column 9.
            &["scenario.toml:4:9", "node 0: boot range 0xfffffffffffff000+0x2000 passes 2^64"],
        ),
        r(
            "memremap range that wraps past 2^64",
            Steps("[[step]]\nop = \"memremap\"\nranges = [{ start = \"0xffffffffffe00000\", size = \"4MiB\" }]\n"),
            2,
            // [[step]] is line 6 (as in "a step without its size"), `ranges` line 8, its array at column 10.
            &["scenario.toml:8:10", "step 1: range 0xffffffffffe00000+0x400000 passes 2^64"],
        ),
        r("boot range holding no whole page", Config("[machine]\n[[machine.node]]\nid = 0\nboot = [{ start = \"0x800\", size = \"0x1000\" }]\n", &[]), 2, &["holds no whole 4 KiB page"]),
        r("compare names an unknown strategy", Config("compare = [\"a\"]\n[machine]\n", &[]), 2, &["scenario.toml:1:11", "compare names unknown strategy \"a\""]),
        r("--strategy names an unknown strategy", Config("[machine]\n", &["--strategy", "mom"]), 2, &["--strategy mom"]),
        r("--view-after past the last step", Config("[machine]\n", &["--view", "iomem", "--view-after", "3"]), 2, &["--view-after 3", "has 0 step(s)"]),
        r("--view of an unknown file", Config("[machine]\n", &["--view", "slabinfo"]), 2, &["slabinfo"]),
        r("config that does not exist", Args(&["--config", "/no/such/config.toml"]), 2, &["/no/such/config.toml"]),
        r("config path that is a directory", Args(&["--config", "/tmp"]), 2, &["/tmp", "directory"]),
        r("a step without its size", Steps("[[step]]\nop = \"add\"\nstart = \"4GiB\"\n"), 2, &["scenario.toml:6:1", "needs `size`"]),
        r(
            "memremap with both ranges and start",
            Steps("[[step]]\nop = \"memremap\"\nstart = \"16GiB\"\nranges = [{ start = \"16GiB\", size = \"1GiB\" }]\n"),
            2,
            &["either `ranges`"],
        ),
        r("grow without a device", Steps("[[step]]\nop = \"grow\"\nsize = \"1GiB\"\n"), 2, &["scenario.toml:6:1", "needs `device`"]),
        r("unknown pgmap_type", Steps("[[step]]\nop = \"memremap\"\nsize = \"1GiB\"\npgmap_type = \"hbm\"\n"), 2, &["scenario.toml:9:14", "unknown pgmap_type \"hbm\""]),
        r(
            "from together with nodes",
            Config("[machine]\nfrom = \"/tmp\"\n[[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"1GiB\" }]\n", &[]),
            2,
            &["scenario.toml:2:8", "drop [[machine.node]]"],
        ),
        r("from a directory that is not a capture", Config("[machine]\nfrom = \"/tmp\"\n", &[]), 2, &["scenario.toml:2:8", "cannot read proc/iomem"]),
        r(
            "expect table naming an unknown strategy",
            Steps("[[step]]\nop = \"add\"\nstart = \"4GiB\"\nsize = \"1GiB\"\nexpect = { nope = \"ok\" }\n"),
            2,
            &["scenario.toml:10:10", "expect names unknown strategy \"nope\""],
        ),
        r(
            "a strategy defined twice",
            Steps("[[strategy]]\nname = \"a\"\nplugin = \"system-ram\"\n[[strategy]]\nname = \"a\"\nplugin = \"system-ram\"\n"),
            2,
            &["scenario.toml:10:8", "strategy \"a\" is defined twice"],
        ),
        r("nothing to do", Args(&[]), 2, &["nothing to do"]),
        r("conformance on a pattern that matches no check", Args(&["conformance", "system-ram", "--only", "zzz"]), 2, &["--only zzz", "no check matches"]),
        r("snapshot of a root that is not a machine", Args(&["snapshot", "--root", "/no/such/root", "--out", "/tmp/never-written"]), 2, &["/no/such/root/proc/iomem"]),
    ]
}

#[test]
fn every_bad_input_gets_one_clear_line() {
    let rows = rows();
    assert!(rows.len() >= 40, "{} rows", rows.len());
    let mut failures = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let test = format!("bad-input-{i}");
        let run = match &row.input {
            Input::Config(text, args) => {
                let path = write_config(&test, P, text);
                let mut all = vec!["--config", path.to_str().unwrap()];
                all.extend_from_slice(args);
                run_host(P, &all)
            }
            Input::Steps(text) => {
                let path = write_config(&test, P, &format!("{VM}{text}"));
                run_host(P, &["--config", path.to_str().unwrap()])
            }
            Input::Args(args) => run_host(P, args),
        };
        let name = row.name;
        let text = if row.code == 2 { &run.stderr } else { &run.stdout };
        let mut wrong = Vec::new();
        if run.code != row.code {
            wrong.push(format!("exit {} (want {})", run.code, row.code));
        }
        if run.stderr.contains("panicked") || run.stderr.contains("RUST_BACKTRACE") {
            wrong.push("a panic".to_string());
        }
        // clap's own usage errors start with "error:" and may take a few lines; ours take one.
        if row.code == 2 && !run.stderr.starts_with("error:") && run.stderr.lines().count() != 1 {
            wrong.push(format!("{} lines on stderr", run.stderr.lines().count()));
        }
        wrong.extend(row.says.iter().filter(|s| !text.contains(*s)).map(|s| format!("no {s:?}")));
        if !wrong.is_empty() {
            failures.push(format!(
                "{name}: {}\n    stderr: {}    stdout: {}",
                wrong.join(", "),
                run.stderr,
                run.stdout.lines().take(6).collect::<Vec<_>>().join(" / ")
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows wrong:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

#[test]
fn bytes_that_are_not_utf8_or_too_many() {
    for (name, bytes, says) in [
        ("non-UTF-8", b"[machine]\n# \xff\xfe\n".to_vec(), "scenario.toml:2:3"),
        ("over 16 MiB", format!("[machine]\n#{}\n", "x".repeat(16 << 20)).into_bytes(), "16 MiB"),
    ] {
        let path = scratch(&format!("bytes-{name}")).join("scenario.toml");
        std::fs::write(&path, bytes).unwrap();
        let run = run_host(P, &["--config", path.to_str().unwrap()]);
        assert_eq!(run.code, 2, "{name}");
        assert_eq!(run.stderr.lines().count(), 1, "{name}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{name}: {}", run.stderr);
    }
}

#[test]
fn a_reader_that_stops_early_ends_the_run_quietly() {
    // `host ... | head`: 2,000 steps print far more than a pipe holds (64 KiB on Linux),
    // so host is still printing when the reader goes away.
    let mut text = String::from(VM);
    text.push_str("[[strategy]]\nname = \"base\"\nplugin = \"system-ram\"\n");
    for i in 0..2000u64 {
        text.push_str(&format!("[[step]]\nop = \"add\"\nstart = \"{}GiB\"\nsize = \"128MiB\"\n", 4 + i));
    }
    let config = write_config("sigpipe", P, &text);
    let mut child = std::process::Command::new(hotplug_tests::host_exe(P))
        .args(["--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Ended by SIGPIPE as `cat` would be (or done before it noticed).
    use std::os::unix::process::ExitStatusExt;
    assert!(out.status.signal() == Some(13) || out.status.code().is_some(), "{:?}", out.status);
}
