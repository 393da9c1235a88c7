//! The plugin conformance suite: one command that exercises a strategy plugin against the
//! contract and the kernel rules, check by check, the way csi-sanity does for storage
//! drivers.
//!
//! Each check runs in its own child process (the `host` binary in a hidden child mode),
//! so a plugin that aborts the process fails that one check and the others still run.
//! [`run`] is the entry point for `host conformance` and for a plugin author's own
//! `cargo test`; the check bodies are in [`checks`] and run only in the child.

pub mod checks;
mod child;
mod suite;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use child::{run_child, ChildOptions, ChildOutput};
pub use suite::{host_exe, is_hotplug_host, run, HOST_ENV, IDENTITY};

/// One check: its name (for `--only` and reports) and the rule behind it.
#[derive(Debug, Clone, Copy)]
pub struct CheckInfo {
    pub name: &'static str,
    pub summary: &'static str,
}

/// Every check, in the order they run and print. docs/conformance.md explains each.
pub const CHECKS: &[CheckInfo] = &[
    CheckInfo {
        name: "info",
        summary: "info() names the plugin, a semver version, contract 1.x and only request kinds the contract defines",
    },
    CheckInfo {
        name: "options",
        summary: "declared options are well formed, their defaults have the declared type, and the constructor accepts each default",
    },
    CheckInfo {
        name: "kinds",
        summary: "set_up accepts a plain request of each kind the plugin claims and refuses the others with an error",
    },
    CheckInfo {
        name: "set-up-grid",
        summary: "set_up over sizes from a subsection to terabytes, odd starts, every node: valid restrictions or a clean error",
    },
    CheckInfo {
        name: "altmap-bounds",
        summary: "an altmap starts at the range, ends inside it, and its free pages hold the memmap it must carry",
    },
    CheckInfo {
        name: "construct-marks",
        summary: "construct marks only pages inside the range, and every page of the memmap it placed there",
    },
    CheckInfo { name: "add-remove", summary: "add then remove leaves the model as it was (max_pfn aside, as the kernel)" },
    CheckInfo { name: "deterministic", summary: "the same request gives the same restrictions and the same model, call after call" },
    CheckInfo {
        name: "memmap-node",
        summary: "on a machine with a CPU-less expander node and an empty one, each plain hot-plug's memmap is charged only to the nodes the strategy asked, the first with room paying",
    },
    CheckInfo { name: "cycles", summary: "1,000 add/remove cycles leave resources, page marks, reservations and altmaps as at boot" },
    CheckInfo {
        name: "threads",
        summary: "one instance called from several threads at once, each on its own model, behaves as when called alone",
    },
];

/// The name of the child-mode check that only loads the plugin.
pub const LOAD_CHECK: &str = "load";

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub status: Status,
    /// What held (pass), why it did not apply (skip), or what was expected and what came
    /// back (fail).
    pub detail: String,
    /// Wall-clock time of the check's child process, in milliseconds (0 when not run):
    /// a slow check is the first thing to look at when a CI job times out.
    #[serde(default)]
    pub millis: u64,
    /// For a failure with the same detail as an earlier check's: that check. One broken
    /// call (an abort in `set_up`, say) fails several checks; the report names the cause
    /// once and points the rest at it.
    pub same_cause_as: Option<String>,
}

/// What `--only`, `--dir` and friends say.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Directories to look for a plugin given by name (then next to `host`).
    pub dirs: Vec<PathBuf>,
    /// The plugin's options, as the `options` table of a `[[strategy]]` in TOML text.
    pub options: String,
    /// Run only checks whose name matches (`*` wildcards; without one, a substring).
    pub only: Option<String>,
    /// Do not run checks whose name matches one of these (same patterns as `only`);
    /// they are reported as skipped, saying why.
    pub skip: Vec<String>,
    /// Load plugin files that are world-writable or owned by another user.
    pub allow_unsafe_plugin_path: bool,
    /// A check still running after this long fails (its child is killed).
    pub timeout: Duration,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        SuiteOptions {
            dirs: Vec::new(),
            options: String::new(),
            only: None,
            skip: Vec::new(),
            allow_unsafe_plugin_path: false,
            timeout: Duration::from_secs(300),
        }
    }
}

/// The whole suite's outcome for one plugin.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The plugin as given (a name or a path).
    pub plugin: String,
    /// The plugin's own description (name, version, contract, kinds, file) once loaded.
    pub loaded: Option<String>,
    /// Why the plugin could not be loaded (the loader's one-line cause); no checks ran.
    pub load_error: Option<String>,
    pub results: Vec<CheckResult>,
}

impl Report {
    fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    pub fn passed(&self) -> usize {
        self.count(Status::Pass)
    }

    pub fn failed(&self) -> usize {
        self.count(Status::Fail)
    }

    pub fn skipped(&self) -> usize {
        self.count(Status::Skip)
    }

    /// The result of the check called `name`, if it ran.
    pub fn result(&self, name: &str) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// 0 when every check passed (or was skipped), 1 when any failed, 2 when the plugin
    /// could not be loaded.
    pub fn exit_code(&self) -> u8 {
        if self.load_error.is_some() {
            2
        } else if self.failed() > 0 {
            1
        } else {
            0
        }
    }

    /// One line per check (status, name, time, detail; a failure that repeats an earlier
    /// one points at it instead), then `N passed, N failed, N skipped`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Some(e) = &self.load_error {
            let _ = writeln!(out, "{e}");
            return out;
        }
        if let Some(l) = &self.loaded {
            let _ = writeln!(out, "conformance of {l}");
        }
        let width = self.results.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for r in &self.results {
            let detail = match &r.same_cause_as {
                Some(first) => format!("the same failure as {first} (its line says why)"),
                None => r.detail.clone(),
            };
            let _ = writeln!(out, "{:<4}  {:<width$}  {:>8}  {detail}", r.status.as_str(), r.name, duration(r.millis));
        }
        let shared = self.results.iter().filter(|r| r.same_cause_as.is_some()).count();
        if shared > 0 {
            let causes = self.failed() - shared;
            let _ = writeln!(
                out,
                "{} failures have {}: fix the first failing line of each and rerun",
                self.failed(),
                hotplug_core::size::count_of(causes as u64, "cause")
            );
        }
        let _ = writeln!(out, "{} passed, {} failed, {} skipped", self.passed(), self.failed(), self.skipped());
        out
    }

    /// The report as JUnit XML, the format CI systems (GitLab, Jenkins, GitHub actions
    /// that publish test results) read: one `<testcase>` per check, with its time; a
    /// plugin that does not load is one `<testcase name="load">` with an `<error>`.
    pub fn junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let suite = xml_escape(&format!("hotplug-lab conformance of {}", self.plugin));
        let class = xml_escape(&format!("conformance.{}", self.plugin));
        let seconds = |ms: u64| format!("{}.{:03}", ms / 1000, ms % 1000);
        let mut cases = String::new();
        let (tests, errors, millis) = match &self.load_error {
            Some(e) => {
                let _ = writeln!(cases, "    <testcase classname=\"{class}\" name=\"load\" time=\"0.000\">");
                let _ = writeln!(cases, "      <error message=\"the plugin cannot be loaded\">{}</error>\n    </testcase>", xml_escape(e));
                (1, 1, 0)
            }
            None => {
                for r in &self.results {
                    junit_case(&mut cases, r, &class, seconds(r.millis));
                }
                (self.results.len(), 0, self.results.iter().map(|r| r.millis).sum())
            }
        };
        let counts = format!(
            "tests=\"{tests}\" failures=\"{}\" errors=\"{errors}\" skipped=\"{}\" time=\"{}\"",
            self.failed(),
            self.skipped(),
            seconds(millis)
        );
        let _ = writeln!(out, "<testsuites name=\"hotplug-lab conformance\" {counts}>");
        let _ = writeln!(out, "  <testsuite name=\"{suite}\" {counts}>");
        out.push_str(&cases);
        let _ = writeln!(out, "  </testsuite>\n</testsuites>");
        out
    }

    /// The report as JSON (`schema_version` 1; fields in docs/conformance.md).
    pub fn json(&self) -> String {
        #[derive(Serialize)]
        struct Json<'a> {
            schema_version: u32,
            #[serde(flatten)]
            report: &'a Report,
            passed: usize,
            failed: usize,
            skipped: usize,
            exit_code: u8,
        }
        let j = Json {
            schema_version: 1,
            report: self,
            passed: self.passed(),
            failed: self.failed(),
            skipped: self.skipped(),
            exit_code: self.exit_code(),
        };
        serde_json::to_string_pretty(&j).expect("report serialises")
    }
}

/// One check as a `<testcase>`: a failure with the check's full detail, a skip with its
/// reason.
fn junit_case(out: &mut String, r: &CheckResult, class: &str, time: String) {
    let open = format!("    <testcase classname=\"{class}\" name=\"{}\" time=\"{time}\"", xml_escape(&r.name));
    match r.status {
        Status::Pass => {
            let _ = writeln!(out, "{open}/>");
        }
        Status::Skip => {
            let _ = writeln!(out, "{open}>\n      <skipped message=\"{}\"/>\n    </testcase>", xml_escape(&r.detail));
        }
        Status::Fail => {
            let message = match &r.same_cause_as {
                Some(first) => format!("the same failure as {first}"),
                None => "the check failed".to_string(),
            };
            let _ = writeln!(
                out,
                "{open}>\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                xml_escape(&message),
                xml_escape(&r.detail)
            );
        }
    }
}

/// A check's time for the text report: `12 ms`, or `3.4 s` from ten seconds on.
fn duration(millis: u64) -> String {
    if millis < 10_000 {
        format!("{millis} ms")
    } else {
        format!("{}.{} s", millis / 1000, millis % 1000 / 100)
    }
}

/// `text` made safe inside an XML attribute or element (what XML 1.0 cannot hold as `?`).
fn xml_escape(text: &str) -> String {
    crate::svg::xml_escape(text, '?')
}

/// Point each failure whose detail repeats an earlier failure's at that check.
fn link_shared_causes(results: &mut [CheckResult]) {
    for i in 0..results.len() {
        if results[i].status != Status::Fail {
            continue;
        }
        let first = results[..i].iter().find(|r| r.status == Status::Fail && r.same_cause_as.is_none() && r.detail == results[i].detail);
        results[i].same_cause_as = first.map(|r| r.name.clone());
    }
}

/// Whether check `name` matches an `--only` pattern: `*` matches any run of characters;
/// a pattern without `*` matches as a substring.
pub fn matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return name.contains(pattern);
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_patterns() {
        assert!(matches("grid", "set-up-grid"));
        assert!(matches("set-up-*", "set-up-grid"));
        assert!(matches("*-marks", "construct-marks"));
        assert!(matches("a*d*e", "add-remove"));
        assert!(!matches("set-up-*", "info"));
        assert!(!matches("info*x", "info"));
        assert!(matches("*", "threads"));
    }

    fn result(name: &str, status: Status, detail: &str) -> CheckResult {
        CheckResult { name: name.into(), status, detail: detail.into(), millis: 1234, same_cause_as: None }
    }

    #[test]
    fn a_repeated_failure_points_at_its_first_check() {
        let mut results = vec![
            result("info", Status::Pass, "ok"),
            result("kinds", Status::Fail, "expected x; got abort"),
            result("set-up-grid", Status::Fail, "expected y; got z"),
            result("threads", Status::Fail, "expected x; got abort"),
            result("cycles", Status::Skip, "expected x; got abort"),
        ];
        link_shared_causes(&mut results);
        let links: Vec<Option<&str>> = results.iter().map(|r| r.same_cause_as.as_deref()).collect();
        assert_eq!(links, [None, None, None, Some("kinds"), None]);
        let report = Report { plugin: "p".into(), loaded: None, load_error: None, results };
        let text = report.text();
        // Three failures, two different details: two causes, said once.
        assert!(text.contains("threads       1234 ms  the same failure as kinds"), "{text}");
        assert!(text.contains("3 failures have 2 causes"), "{text}");
        assert!(text.ends_with("1 passed, 3 failed, 1 skipped\n"), "{text}");
    }

    #[test]
    fn junit_escapes_what_a_plugin_says() {
        let results = vec![result("kinds", Status::Fail, "expected <a> & \"b\"; got \u{1b}[31m")];
        let report = Report { plugin: "p".into(), loaded: None, load_error: None, results };
        let xml = report.junit();
        assert!(xml.contains(">expected &lt;a&gt; &amp; &quot;b&quot;; got ?[31m</failure>"), "{xml}");
        assert!(xml.contains("name=\"kinds\" time=\"1.234\""), "{xml}");
    }

    #[test]
    fn check_names_are_unique_and_lowercase() {
        let mut names: Vec<&str> = CHECKS.iter().map(|c| c.name).collect();
        assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '-')));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CHECKS.len());
        assert!(!names.contains(&LOAD_CHECK));
    }
}
