//! The report's standard output, kept for the host alone.
//!
//! Plugin code runs in our process and may print; if it could write to the real standard
//! output it would corrupt `--format json` and the kernel views. [`claim_stdout`] moves
//! the real stdout to a private descriptor and points descriptor 1 at standard error, so
//! whatever else prints lands among the diagnostics. The host writes its output with
//! [`print`], which reports a write error as a value (`> /dev/full` is one line and exit
//! 2, never a panic); a closed pipe (`| head -1`) ends the process by SIGPIPE, quietly, as
//! `cat` would.

use std::fs::File;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// The real standard output, once [`claim_stdout`] moved it.
static REAL_STDOUT: OnceLock<Mutex<File>> = OnceLock::new();

/// Why the host's own output could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {}", crate::config::io_reason(.0))]
pub struct OutputError(pub std::io::Error);

impl From<std::io::Error> for OutputError {
    fn from(e: std::io::Error) -> Self {
        OutputError(e)
    }
}

/// Keep the real stdout for [`print`] and send everything else written to descriptor 1
/// to standard error. Call once, before any plugin is loaded; a second call does nothing.
#[cfg(unix)]
pub fn claim_stdout() {
    use std::os::fd::FromRawFd;
    if REAL_STDOUT.get().is_some() {
        return;
    }
    // SAFETY: plain descriptor calls; the duplicate is owned by the File made from it and
    // nothing else uses it. F_DUPFD_CLOEXEC keeps it out of child processes, which get
    // their own descriptors explicitly.
    unsafe {
        let saved = libc::fcntl(libc::STDOUT_FILENO, libc::F_DUPFD_CLOEXEC, 3);
        if saved < 0 {
            return; // no stdout at all: print() falls back to descriptor 1
        }
        if libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) < 0 {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            if null >= 0 {
                libc::dup2(null, libc::STDOUT_FILENO);
                libc::close(null);
            }
        }
        let _ = REAL_STDOUT.set(Mutex::new(File::from_raw_fd(saved)));
    }
}

#[cfg(not(unix))]
pub fn claim_stdout() {}

/// Write `text` to the real standard output, all of it, and flush it.
pub fn print(text: &str) -> Result<(), OutputError> {
    match REAL_STDOUT.get() {
        Some(file) => {
            let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            file.write_all(text.as_bytes())?;
            file.flush()?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(())
}

/// Whether the report may be coloured: the real standard output is a terminal and
/// `NO_COLOR` (no-color.org) is unset or empty. Pipes and files always get plain text.
pub fn colour() -> bool {
    use std::io::IsTerminal;
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    match REAL_STDOUT.get() {
        Some(file) => file.lock().map(|f| f.is_terminal()).unwrap_or(false),
        None => std::io::stdout().is_terminal(),
    }
}

/// [`print`] with a newline after `text`.
pub fn println(text: &str) -> Result<(), OutputError> {
    print(&format!("{text}\n"))
}
