//! docs/cli.md is the `--help` of every command, checked here against the binary so the
//! page cannot drift from what `host` says. After an intended change to the CLI,
//! regenerate it: `UPDATE_CLI_DOC=1 cargo nextest run -p hotplug-tests --test cli_doc`.

use hotplug_tests::{run_host, workspace_root, Profile};

const INTRO: &str = "# The `host` command line

Generated from `host --help` and each command's `--help`, and checked against the binary
by `tests/tests/cli_doc.rs` (regenerate with `UPDATE_CLI_DOC=1 cargo nextest run -p
hotplug-tests --test cli_doc`). What the reports mean: docs/report.md, docs/report-json.md;
`host plan`: docs/plan.md; the config: docs/config.md; conformance: docs/conformance.md.

Exit status everywhere: 0 success, 1 a run whose steps did not end as expected (or a
conformance check that failed, or a plan that reaches its target with no strategy), 2 an
error (one line on stderr, with the config's file, line and column where it applies),
3 a plugin that ended the process or hung (docs/reliability.md).
";

/// `host`, then every command `host --help` lists but `help`, in its order (the hidden
/// ones, for the host's own children, are not listed): a command added to the binary is
/// in the page without anyone remembering to add it here.
fn commands() -> Vec<String> {
    let r = run_host(Profile::Debug, &["--help"]);
    assert_eq!(r.code, 0, "host --help: {}", r.stderr);
    let listed = r.stdout.lines().skip_while(|l| *l != "Commands:").skip(1).take_while(|l| !l.is_empty());
    let mut out = vec![String::new()];
    out.extend(listed.filter_map(|l| l.split_whitespace().next()).filter(|c| *c != "help").map(String::from));
    assert!(out.len() > 8, "host --help lists too few commands: {}", r.stdout);
    out
}

fn page() -> String {
    let mut out = INTRO.to_string();
    for cmd in &commands() {
        let mut args: Vec<&str> = if cmd.is_empty() { vec![] } else { vec![cmd.as_str()] };
        args.push("--help");
        let r = run_host(Profile::Debug, &args);
        assert_eq!(r.code, 0, "host {args:?}: {}", r.stderr);
        let title = if cmd.is_empty() { "host".to_string() } else { format!("host {cmd}") };
        out.push_str(&format!("\n## `{title}`\n\n```text\n{}```\n", r.stdout));
    }
    out
}

#[test]
fn docs_cli_md_is_the_help_of_every_command() {
    let path = workspace_root().join("docs/cli.md");
    let want = page();
    if std::env::var_os("UPDATE_CLI_DOC").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/cli.md differs from the binary's --help: regenerate it with UPDATE_CLI_DOC=1 cargo nextest run -p hotplug-tests --test cli_doc\n--- first differing line ---\n{}",
        have.lines().zip(want.lines()).find(|(a, b)| a != b).map(|(a, b)| format!("doc:    {a}\nbinary: {b}")).unwrap_or_else(|| "(one is a prefix of the other)".into())
    );
}
