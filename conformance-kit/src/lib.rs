//! Run the hotplug-lab conformance suite on your strategy plugin from its own `cargo test`.
//!
//! ```no_run
//! #[test]
//! fn conforms() {
//!     hotplug_conformance::suite!().assert_passes();
//! }
//! ```
//!
//! [`Suite::run`] first builds your crate's `cdylib` (so the library under test is the
//! source you just changed, never a stale one), then finds hotplug-lab's `host` (the one
//! given to [`Suite::host`], else `$HOTPLUG_HOST`, else a `host` on the `PATH` whose
//! `--version` says `(hotplug-lab)`), and runs `host conformance` on the library in a child
//! process. [`Suite::assert_passes`] fails your test with the suite's own lines.
//!
//! The kit never links the host: it only runs it, so your crate builds as quickly as the
//! contract crate alone.

mod build;
mod host;

use std::path::PathBuf;
use std::process::Command;

pub use host::{HOST_ENV, IDENTITY};

/// A suite run on one plugin crate, set up builder-style.
#[derive(Debug, Clone)]
pub struct Suite {
    manifest_dir: PathBuf,
    host: Option<PathBuf>,
    options: Option<String>,
    only: Option<String>,
    skip: Vec<String>,
    junit: Option<PathBuf>,
}

/// The suite for the crate whose tests call it: `Suite::for_crate(env!("CARGO_MANIFEST_DIR"))`.
#[macro_export]
macro_rules! suite {
    () => {
        $crate::Suite::for_crate(env!("CARGO_MANIFEST_DIR"))
    };
}

impl Suite {
    /// The suite for the plugin crate at `manifest_dir` (the directory of its Cargo.toml).
    pub fn for_crate(manifest_dir: impl Into<PathBuf>) -> Suite {
        Suite { manifest_dir: manifest_dir.into(), host: None, options: None, only: None, skip: Vec::new(), junit: None }
    }

    /// Run in this `host` binary instead of finding one; it must still be hotplug-lab's.
    pub fn host(mut self, path: impl Into<PathBuf>) -> Suite {
        self.host = Some(path.into());
        self
    }

    /// The plugin's options as TOML text, what a config's `[[strategy]] options` would hold.
    pub fn options(mut self, toml: impl Into<String>) -> Suite {
        self.options = Some(toml.into());
        self
    }

    /// Run only the checks whose name matches (`*` wildcards; else a substring).
    pub fn only(mut self, pattern: impl Into<String>) -> Suite {
        self.only = Some(pattern.into());
        self
    }

    /// Do not run the checks whose name matches; the report lists them as skipped.
    pub fn skip(mut self, pattern: impl Into<String>) -> Suite {
        self.skip.push(pattern.into());
        self
    }

    /// Also write the report as JUnit XML to `path`, for a CI server to show.
    pub fn junit(mut self, path: impl Into<PathBuf>) -> Suite {
        self.junit = Some(path.into());
        self
    }

    /// Build the plugin, find the host, run the suite. An `Err` means the suite could not
    /// run at all; a suite that ran and failed is an `Ok` whose [`Outcome::passed`] is false.
    pub fn run(&self) -> Result<Outcome, Error> {
        let exe = std::env::current_exe().unwrap_or_default();
        // The host first: a missing one is found in a second, not after a build.
        let host = host::find(self.host.as_deref())?;
        let plugin = build::build_cdylib(&self.manifest_dir, &build::BuildLayout::of_test_exe(&exe))?;
        let mut cmd = Command::new(&host);
        cmd.arg("conformance").arg(&plugin).args(["--format", "text"]);
        if let Some(path) = &self.junit {
            cmd.arg("--junit").arg(path);
        }
        if let Some(options) = &self.options {
            cmd.arg("--options").arg(options);
        }
        if let Some(only) = &self.only {
            cmd.arg("--only").arg(only);
        }
        for pattern in &self.skip {
            cmd.arg("--skip").arg(pattern);
        }
        let out = cmd.output().map_err(|e| Error::Spawn { host: host.clone(), cause: e.to_string() })?;
        let exit_code =
            out.status.code().ok_or_else(|| Error::Spawn { host: host.clone(), cause: format!("it was killed ({})", out.status) })?;
        Ok(Outcome {
            exit_code,
            report: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            plugin,
            host,
        })
    }

    /// [`Suite::run`], and panic (failing the calling test) unless every check passed;
    /// the panic message is the suite's report.
    #[track_caller]
    pub fn assert_passes(&self) -> Outcome {
        match self.run() {
            Ok(outcome) if outcome.passed() => outcome,
            Ok(outcome) => panic!("the conformance suite failed:\n{outcome}"),
            Err(e) => panic!("the conformance suite could not run: {e}"),
        }
    }
}

/// What one run of the suite said.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `host conformance`'s exit status: 0 every check passed, 1 some check failed, 2 the
    /// plugin could not be loaded.
    pub exit_code: i32,
    /// The suite's text report: one line per check, then the summary.
    pub report: String,
    /// What the host said on stderr (the loader's cause when `exit_code` is 2).
    pub stderr: String,
    /// The library that was built and tested.
    pub plugin: PathBuf,
    /// The host the suite ran in.
    pub host: PathBuf,
}

impl Outcome {
    /// Whether every check passed (skips allowed).
    pub fn passed(&self) -> bool {
        self.exit_code == 0
    }

    /// The status (`pass`, `fail`, `skip`) of one check, if the report has a line for it.
    pub fn status(&self, check: &str) -> Option<&str> {
        self.report.lines().find_map(|l| {
            let (status, rest) = l.split_once("  ")?;
            let rest = rest.trim_start();
            rest.strip_prefix(check).filter(|r| r.starts_with("  ")).map(|_| status)
        })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} on {} (exit {})", self.host.display(), self.plugin.display(), self.exit_code)?;
        f.write_str(&self.report)?;
        if !self.stderr.trim().is_empty() {
            write!(f, "stderr:\n{}", self.stderr)?;
        }
        Ok(())
    }
}

/// Why the suite could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// cargo failed to build the plugin (or the host in a checkout): the end of its log.
    #[error("building {} failed:\n{log}", manifest.display())]
    Build {
        /// The manifest that was built.
        manifest: PathBuf,
        /// The last lines of cargo's output: where the compiler errors are.
        log: String,
    },
    /// The crate builds no dynamic library for the host to load.
    #[error("{} builds no cdylib: add `crate-type = [\"cdylib\", \"rlib\"]` to its [lib]", manifest.display())]
    NoCdylib {
        /// The plugin crate's manifest.
        manifest: PathBuf,
    },
    /// cargo itself could not be run, or its answer was not what the kit expects.
    #[error("{0}")]
    Cargo(String),
    /// No host was given and none of ours is on the PATH.
    #[error("no hotplug-lab host: set {HOST_ENV} to a built `host` (or to a hotplug-lab checkout){}", passed_over_note(.passed_over))]
    NoHost {
        /// The `host` programs on the PATH that are not ours.
        passed_over: Vec<String>,
    },
    /// A host was named, but it is not hotplug-lab's.
    #[error("{what} ({}) is not hotplug-lab's host: its --version said {said:?}, not ...{IDENTITY}", path.display())]
    NotOurHost {
        /// The program that was named.
        path: PathBuf,
        /// Where the name came from.
        what: String,
        /// What its `--version` said.
        said: String,
    },
    /// The host could not be started, or died before it could report.
    #[error("running {}: {cause}", host.display())]
    Spawn {
        /// The host binary.
        host: PathBuf,
        /// What went wrong.
        cause: String,
    },
}

fn passed_over_note(passed_over: &[String]) -> String {
    if passed_over.is_empty() {
        String::new()
    } else {
        format!("; passed over {} (not ours)", passed_over.join(", "))
    }
}
