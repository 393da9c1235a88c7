//! Child processes the host starts (conformance checks, isolated plugins): each leads
//! its own process group, so it can be ended with everything it forked, and how it
//! ended is said in words.

/// Kill every process of `child`'s group (the child and anything it forked); the child
/// must have been spawned with `process_group(0)`.
pub fn kill_group(child: &std::process::Child) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on the negative pid of the group the child leads.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// The signal that ended `status`, with its name when it is one a crash or a kill sends.
#[cfg(unix)]
pub fn signal(status: std::process::ExitStatus) -> Option<(i32, Option<&'static str>)> {
    use std::os::unix::process::ExitStatusExt as _;
    let sig = status.signal()?;
    let name = match sig {
        libc::SIGABRT => Some("SIGABRT"),
        libc::SIGSEGV => Some("SIGSEGV"),
        libc::SIGBUS => Some("SIGBUS"),
        libc::SIGILL => Some("SIGILL"),
        libc::SIGFPE => Some("SIGFPE"),
        libc::SIGKILL => Some("SIGKILL"),
        _ => None,
    };
    Some((sig, name))
}

#[cfg(not(unix))]
pub fn signal(_status: std::process::ExitStatus) -> Option<(i32, Option<&'static str>)> {
    None
}
