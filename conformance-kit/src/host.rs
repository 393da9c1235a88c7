//! Finding the `host` to run the suite in, and never mistaking another program for it.
//!
//! Many systems have a `host` on the `PATH` that is the DNS lookup tool. Every candidate,
//! however it was found, must say [`IDENTITY`] at the end of its `--version`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// The environment variable an author (or the scaffold's `.cargo/config.toml`) sets to the
/// `host` binary, or to a hotplug-lab checkout whose `host` the kit builds.
pub const HOST_ENV: &str = "HOTPLUG_HOST";

/// What `host --version` ends with when the program is hotplug-lab's `host`.
pub const IDENTITY: &str = "(hotplug-lab)";

/// How long a candidate may take to print its version before it is taken for not ours.
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);

/// The host: `explicit` if given, else `$HOTPLUG_HOST` (a binary, or a checkout to build
/// it in), else the first `host` on the `PATH` that is ours.
pub(crate) fn find(explicit: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(path) = explicit {
        return ours(path, "the host given to Suite::host");
    }
    if let Some(value) = std::env::var_os(HOST_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        if path.is_dir() {
            let built = build_in_checkout(&path)?;
            return ours(&built, &format!("the host built in ${HOST_ENV}={}", path.display()));
        }
        return ours(&path, &format!("${HOST_ENV}"));
    }
    let name = format!("host{}", std::env::consts::EXE_SUFFIX);
    let on_path: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join(&name)).collect()).unwrap_or_default();
    let mut passed_over = Vec::new();
    for candidate in on_path.into_iter().filter(|p| p.is_file()) {
        match version(&candidate) {
            Some(v) if v.ends_with(IDENTITY) => return Ok(candidate),
            _ => passed_over.push(candidate.display().to_string()),
        }
    }
    Err(Error::NoHost { passed_over })
}

/// `path` if it is hotplug-lab's host; `what` says where it came from for the error.
fn ours(path: &Path, what: &str) -> Result<PathBuf, Error> {
    match version(path) {
        Some(v) if v.ends_with(IDENTITY) => Ok(path.to_path_buf()),
        Some(v) => Err(Error::NotOurHost { path: path.to_path_buf(), what: what.to_string(), said: v }),
        None => Err(Error::NotOurHost { path: path.to_path_buf(), what: what.to_string(), said: "nothing (it does not run)".into() }),
    }
}

/// The first line of `path --version`, if it runs, succeeds and answers in time.
fn version(path: &Path) -> Option<String> {
    let mut child = Command::new(path).arg("--version").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) if started.elapsed() > VERSION_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    let line = out.lines().next()?.trim_end();
    Some(line.chars().map(|c| if c.is_control() { '?' } else { c }).take(200).collect())
}

/// Build `host` in a hotplug-lab checkout (cargo decides its target directory).
fn build_in_checkout(checkout: &Path) -> Result<PathBuf, Error> {
    let manifest = checkout.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(Error::Cargo(format!("${HOST_ENV}={} is a directory without a Cargo.toml", checkout.display())));
    }
    let args = ["-p", "hotplug-host", "--bin", "host"].map(std::ffi::OsString::from);
    // The author's test may run under another target directory: the checkout keeps its own.
    let stdout = crate::build::cargo_build(&manifest, &args, 40, |cmd| cmd.env_remove("CARGO_TARGET_DIR"))?;
    let host = crate::build::artifacts(&stdout)
        .filter(|m| m["target"]["name"] == "host")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from));
    host.ok_or_else(|| Error::Cargo(format!("building host in {} produced no executable", checkout.display())))
}
