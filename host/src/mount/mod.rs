//! `host mount`: the model served live as the kernel's memory sysfs (and /proc files) over
//! FUSE, so onlining agents, udev-style rules, `lsmem` and `chmem` run unchanged against a
//! simulated machine. tree.rs names the entries, live.rs does what writes do, events.rs
//! keeps the uevents, fs.rs answers FUSE.
//!
//! Safety first: the mount point must be an empty directory we may write, never a real
//! /sys or /proc path outside a private mount namespace; SIGINT and SIGTERM unmount before
//! the process ends, so no stale mount is left.

pub mod events;
pub mod fs;
pub mod live;
pub mod tree;

use std::path::{Path, PathBuf};

/// Why a mount could not start or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount point {path}: {why}")]
    MountPoint { path: String, why: String },
    #[error("--uevent-log {path}: {why}")]
    UeventLog { path: String, why: String },
    #[error("cannot mount at {path}: {why}")]
    Mount { path: String, why: String },
    #[error("the mount at {path} ended with an error: {why}")]
    Session { path: String, why: String },
}

/// The directory `path` may be mounted on: it exists, is a directory, is empty and we
/// may write it; and it is no /sys or /proc path unless this process is in a private
/// mount namespace (where a mount over them is the caller's own). Returns it resolved.
pub fn check_mount_point(path: &Path) -> Result<PathBuf, MountError> {
    let fail = |why: String| MountError::MountPoint { path: path.display().to_string(), why };
    let resolved = path.canonicalize().map_err(|e| fail(crate::config::io_reason(&e)))?;
    let meta = std::fs::metadata(&resolved).map_err(|e| fail(crate::config::io_reason(&e)))?;
    if !meta.is_dir() {
        return Err(fail("not a directory".into()));
    }
    let system = ["/sys", "/proc", "/dev"].iter().any(|p| resolved.starts_with(p));
    if system && !in_private_mount_namespace() {
        return Err(fail("a system path: mount there only inside a private mount namespace (unshare -m)".into()));
    }
    let mut entries = std::fs::read_dir(&resolved).map_err(|e| fail(crate::config::io_reason(&e)))?;
    if entries.next().is_some() {
        return Err(fail("not empty (a mount would hide what is in it)".into()));
    }
    if !writable(&resolved) {
        return Err(fail("not writable by this user".into()));
    }
    Ok(resolved)
}

#[cfg(unix)]
fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// Whether this process's mount namespace is not init's (`unshare -m`, a container).
/// Unknown (no /proc, no permission to read init's) counts as not private.
fn in_private_mount_namespace() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata("/proc/self/ns/mnt"), std::fs::metadata("/proc/1/ns/mnt")) {
        (Ok(mine), Ok(init)) => (mine.dev(), mine.ino()) != (init.dev(), init.ino()),
        _ => false,
    }
}

/// Open the `--uevent-log` file for appending: a regular file or a new one (a FIFO or a
/// device would block or swallow the log).
pub fn open_uevent_log(path: &Path) -> Result<std::fs::File, MountError> {
    let fail = |why: String| MountError::UeventLog { path: path.display().to_string(), why };
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| fail(crate::config::io_reason(&e)))
}

/// Serve `live` at `mount_point` (already checked) until it is unmounted: by SIGINT or
/// SIGTERM (which unmount it here) or by `fusermount3 -u`. `mounted` runs once the
/// mount is in place (the banner).
pub fn serve(live: live::Live, mount_point: &Path, uevent_log: Option<std::fs::File>, mounted: impl FnOnce()) -> Result<(), MountError> {
    let shown = mount_point.display().to_string();
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("hotplug-lab".into()),
        fuser::MountOption::Subtype("hotplug-lab".into()),
        // The kernel checks each entry's mode, as it does for sysfs.
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoAtime,
    ];
    config.n_threads = Some(1);
    let mut session = fuser::Session::new(fs::LiveFs::new(live, uevent_log), mount_point, &config).map_err(|e| MountError::Mount {
        path: shown.clone(),
        why: if std::path::Path::new("/dev/fuse").exists() {
            e.to_string()
        } else {
            format!("{e} (no /dev/fuse: this machine or container has no FUSE)")
        },
    })?;
    let mut unmount = session.unmount_callable();
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .map_err(|e| MountError::Mount { path: shown.clone(), why: format!("cannot watch for signals: {e}") })?;
    let handle = signals.handle();
    let detach_point = mount_point.to_path_buf();
    let watcher = std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            if let Err(e) = unmount.unmount() {
                // Busy (a reader still has a file open): detach it now, as umount -l
                // does, and end; the readers' next calls fail instead of hanging on a
                // mount nobody serves.
                log::info!("unmount: {e}; detaching");
                let detached = std::process::Command::new("fusermount3").arg("-u").arg("-z").arg(&detach_point).status();
                match detached {
                    Ok(s) if s.success() => eprintln!("host: {} unmounted (detached: files were still open)", detach_point.display()),
                    _ => eprintln!("host: error: cannot unmount {}: {e}", detach_point.display()),
                }
                std::process::exit(0);
            }
        }
    });
    mounted();
    let ended = session.run();
    handle.close();
    let _ = watcher.join();
    ended.map_err(|e| MountError::Session { path: shown, why: e.to_string() })
}
