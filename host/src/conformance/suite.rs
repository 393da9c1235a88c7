//! The parent side: one child process per check, results gathered into a [`Report`].

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{link_shared_causes, matches, CheckResult, ChildOutput, Report, Status, SuiteOptions, CHECKS, LOAD_CHECK};

/// The environment variable naming the `host` binary the suite runs checks in.
pub const HOST_ENV: &str = "HOTPLUG_HOST";

/// What `host --version` prints after the version: how the suite tells our `host` from
/// another program of that name (the DNS lookup tool is `host` on many systems).
pub const IDENTITY: &str = "(hotplug-lab)";

/// Whether `path` is this project's `host`: its `--version` says [`IDENTITY`].
pub fn is_hotplug_host(path: &Path) -> bool {
    Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim_end().ends_with(IDENTITY))
}

/// The `host` binary to run checks in: `$HOTPLUG_HOST` (taken as given); else a `host`
/// next to the running executable or one directory up (where cargo puts it for a test
/// binary in `deps/`); else a `host` on the `PATH`. Found ones must be ours
/// ([`is_hotplug_host`]): a `host` that is some other program is passed over.
pub fn host_exe() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(HOST_ENV) {
        return Some(PathBuf::from(p));
    }
    let name = format!("host{}", std::env::consts::EXE_SUFFIX);
    let beside =
        std::env::current_exe().ok().into_iter().flat_map(|exe| exe.ancestors().skip(1).take(2).map(|d| d.join(&name)).collect::<Vec<_>>());
    let on_path =
        std::env::var_os("PATH").into_iter().flat_map(|paths| std::env::split_paths(&paths).map(|d| d.join(&name)).collect::<Vec<_>>());
    beside.chain(on_path).find(|p| p.is_file() && is_hotplug_host(p))
}

/// Run the suite on `plugin` (a path or a name) with `host_exe` as the child binary.
pub fn run(host_exe: &Path, plugin: &str, options: &SuiteOptions) -> Report {
    let mut report = Report { plugin: plugin.to_string(), loaded: None, load_error: None, results: Vec::new() };
    match spawn(host_exe, LOAD_CHECK, plugin, options) {
        Ok(ChildOutput { status: Some(_), detail }) => report.loaded = Some(detail),
        Ok(ChildOutput { status: None, detail }) => {
            report.load_error = Some(detail);
            return report;
        }
        Err(crash) => {
            report.load_error = Some(format!("{plugin}: loading it killed the process: {crash}"));
            return report;
        }
    }
    let selected: Vec<&str> = CHECKS.iter().map(|c| c.name).filter(|n| options.only.as_deref().is_none_or(|p| matches(p, n))).collect();
    // Run the children a few at a time; results keep the checks' order.
    let results: Vec<Mutex<Option<CheckResult>>> = selected.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&name) = selected.get(i) else { break };
                let result = match options.skip.iter().find(|p| matches(p, name)) {
                    Some(pattern) => CheckResult {
                        name: name.to_string(),
                        status: Status::Skip,
                        detail: format!("not run (--skip {pattern})"),
                        millis: 0,
                        same_cause_as: None,
                    },
                    None => run_check(host_exe, name, plugin, options),
                };
                *results[i].lock().expect("result slot") = Some(result);
            });
        }
    });
    report.results = results.into_iter().filter_map(|m| m.into_inner().ok().flatten()).collect();
    link_shared_causes(&mut report.results);
    report
}

/// Check `name` in its own child, timed.
fn run_check(host_exe: &Path, name: &str, plugin: &str, options: &SuiteOptions) -> CheckResult {
    let started = Instant::now();
    let (status, detail) = match spawn(host_exe, name, plugin, options) {
        Ok(ChildOutput { status: Some(status), detail }) => (status, detail),
        Ok(ChildOutput { status: None, detail }) => (Status::Fail, format!("the plugin did not load this time: {detail}")),
        Err(crash) => (Status::Fail, crash),
    };
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    CheckResult { name: name.to_string(), status, detail, millis, same_cause_as: None }
}

/// Run one check in a child; `Err` says how the child died (exit status, last stderr lines).
fn spawn(host_exe: &Path, check: &str, plugin: &str, options: &SuiteOptions) -> Result<ChildOutput, String> {
    let mut cmd = Command::new(host_exe);
    cmd.arg("conformance-child").arg("--check").arg(check);
    for d in &options.dirs {
        cmd.arg("--dir").arg(d);
    }
    if !options.options.is_empty() {
        cmd.arg("--options").arg(&options.options);
    }
    if options.allow_unsafe_plugin_path {
        cmd.arg("--allow-unsafe-plugin-path");
    }
    cmd.arg("--").arg(plugin).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", host_exe.display()))?;
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + options.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for the check's process failed: {e}")),
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let tail = stderr_tail(&stderr);
    let Some(status) = status else {
        return Err(format!("timed out after {} s (killed){tail}", options.timeout.as_secs()));
    };
    let parsed = stdout.lines().rev().find(|l| l.starts_with('{')).and_then(|l| serde_json::from_str::<ChildOutput>(l).ok());
    match parsed {
        Some(out) if status.success() => Ok(out),
        _ => Err(format!("expected the check to finish; got its process {}{tail}", describe(status))),
    }
}

/// "exited with code 1" or "killed by signal 6 (SIGABRT)".
fn describe(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(sig) = status.signal() {
            let name = match sig {
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                4 => " (SIGILL)",
                7 => " (SIGBUS)",
                _ => "",
            };
            return format!("killed by signal {sig}{name}");
        }
    }
    match status.code() {
        Some(c) => format!("exited with code {c}"),
        None => "ended without an exit code".to_string(),
    }
}

/// The last few non-empty stderr lines, as `; stderr: a | b | c`.
fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(4)..];
    format!("; stderr: {}", tail.join(" | "))
}
