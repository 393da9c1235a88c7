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

/// The most bytes read of a child's stdout, stderr or verdict (a plugin can print without end).
const CHILD_OUTPUT_LIMIT: u64 = 1 << 20;

/// How long to wait for the pipes to close once the child's process group is gone.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Read `pipe` to its end on a thread, keeping at most [`CHILD_OUTPUT_LIMIT`] bytes; the
/// result arrives on the returned channel (never, if something outside the child's
/// process group keeps the pipe open: the caller waits a bounded time).
fn drain(pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut pipe = pipe;
        let _ = (&mut pipe).take(CHILD_OUTPUT_LIMIT).read_to_end(&mut kept);
        // Past the limit: keep reading into nothing so the child never blocks on a full pipe.
        let _ = std::io::copy(&mut pipe, &mut std::io::sink());
        let _ = tx.send(String::from_utf8_lossy(&kept).into_owned());
    });
    rx
}

/// A secret for one child: the verdict line must start with it. It reaches the child on
/// its standard input, read before the plugin is loaded, so plugin code that prints a
/// verdict (to stdout, or to the verdict descriptor) cannot know it.
fn nonce() -> String {
    let mut bytes = [0u8; 16];
    let from_urandom = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok();
    if !from_urandom {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
        bytes[..8].copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The descriptor the child writes its verdict to (its fd 3: after stdin, stdout, stderr).
pub const VERDICT_FD: i32 = 3;

/// Run one check in a child; `Err` says how the child died (exit status, last stderr lines).
///
/// The verdict comes back on its own pipe (the child's fd 3), prefixed with a nonce the
/// plugin never sees: what plugin code prints, on stdout or anywhere, cannot pass for it.
/// The child leads its own process group, killed whole at the timeout and after the
/// child ends (a plugin that forked a sleeper holding the pipes cannot stretch the wait).
fn spawn(host_exe: &Path, check: &str, plugin: &str, options: &SuiteOptions) -> Result<ChildOutput, String> {
    use std::io::Write as _;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(host_exe);
    cmd.arg("conformance-child").arg("--check").arg(check).arg("--verdict-fd").arg(VERDICT_FD.to_string());
    for d in &options.dirs {
        cmd.arg("--dir").arg(d);
    }
    if !options.options.is_empty() {
        cmd.arg("--options").arg(&options.options);
    }
    if options.allow_unsafe_plugin_path {
        cmd.arg("--allow-unsafe-plugin-path");
    }
    cmd.arg("--").arg(plugin).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors, each owned below by exactly one OwnedFd.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("cannot make the verdict pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fresh descriptors from pipe2, owned by nothing else.
    let (verdict_read, verdict_write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let write_fd = std::os::fd::AsRawFd::as_raw_fd(&verdict_write);
    cmd.process_group(0);
    // SAFETY: between fork and exec only dup2 runs (async-signal-safe); it puts the
    // write end at VERDICT_FD without close-on-exec.
    unsafe {
        cmd.pre_exec(move || if libc::dup2(write_fd, VERDICT_FD) < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", host_exe.display()))?;
    drop(verdict_write);
    let secret = nonce();
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(format!("{secret}\n").as_bytes());
    }
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let verdict = drain(std::fs::File::from(verdict_read));
    let deadline = Instant::now() + options.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                crate::child::kill_group(&child);
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                crate::child::kill_group(&child);
                return Err(format!("waiting for the check's process failed: {e}"));
            }
        }
    };
    // Whatever the child left running goes with it.
    crate::child::kill_group(&child);
    let collect = |rx: std::sync::mpsc::Receiver<String>| rx.recv_timeout(DRAIN_GRACE).unwrap_or_default();
    let verdict = collect(verdict);
    let _ = collect(stdout);
    let tail = stderr_tail(&collect(stderr));
    let Some(status) = status else {
        return Err(format!("timed out after {} s (killed with its process group){tail}", options.timeout.as_secs()));
    };
    let prefix = format!("{secret} ");
    let parsed = verdict.lines().rev().find_map(|l| l.strip_prefix(&prefix)).and_then(|l| serde_json::from_str::<ChildOutput>(l).ok());
    match parsed {
        Some(out) if status.success() => {
            Ok(ChildOutput { detail: crate::model::text::plugin_text(&out.detail, crate::model::text::MAX_PLUGIN_TEXT), ..out })
        }
        _ => Err(format!("expected the check to finish; got its process {}{tail}", describe(status))),
    }
}

/// "exited with code 1" or "killed by signal 6 (SIGABRT)".
fn describe(status: std::process::ExitStatus) -> String {
    if let Some((sig, name)) = crate::child::signal(status) {
        return format!("killed by signal {sig}{}", name.map(|n| format!(" ({n})")).unwrap_or_default());
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
    let tail: Vec<String> = lines[lines.len().saturating_sub(4)..].iter().map(|l| crate::model::text::plugin_text(l, 300)).collect();
    format!("; stderr: {}", tail.join(" | "))
}
