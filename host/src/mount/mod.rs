//! `host mount`: the model served live as the kernel's memory sysfs (and /proc files) over
//! FUSE, so onlining agents, udev-style rules, `lsmem` and `chmem` run unchanged against a
//! simulated machine. tree.rs names the entries, live.rs does what writes do, events.rs
//! keeps the uevents, fs.rs answers FUSE.
//!
//! Safety first: the mount point must be an empty directory we may write, never a real
//! /sys or /proc path outside a private mount namespace; SIGINT and SIGTERM unmount before
//! the process ends, and fusermount3's auto_unmount takes the mount down when the process
//! ends any other way (a plugin's exit or crash, SIGKILL), so no stale mount is left.

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

/// Whether fusermount3 will mount with allow_root (which auto_unmount needs): for root,
/// or when /etc/fuse.conf says `user_allow_other`.
fn may_auto_unmount() -> bool {
    // SAFETY: geteuid only reads the process's id.
    let root = unsafe { libc::geteuid() } == 0;
    root || std::fs::read_to_string("/etc/fuse.conf").is_ok_and(|t| t.lines().any(|l| l.trim() == "user_allow_other"))
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
    if may_auto_unmount() {
        // fusermount3 stays behind and unmounts when this process ends, however it ends
        // (a plugin's exit, abort or crash ends it with exit 3): no stale mount. It needs
        // allow_root, which fusermount3 grants to root or under user_allow_other.
        config.mount_options.push(fuser::MountOption::AutoUnmount);
        config.acl = fuser::SessionACL::RootAndOwner;
    } else {
        log::warn!(
            "no user_allow_other in /etc/fuse.conf: if this process is killed or a plugin ends it, run fusermount3 -u {shown} \
             (--isolate keeps plugins out of it)"
        );
    }
    let session = fuser::Session::new(fs::LiveFs::new(live, uevent_log), mount_point, &config).map_err(|e| MountError::Mount {
        path: shown.clone(),
        why: if std::path::Path::new("/dev/fuse").exists() {
            e.to_string()
        } else {
            format!("{e} (no /dev/fuse: this machine or container has no FUSE)")
        },
    })?;
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .map_err(|e| MountError::Mount { path: shown.clone(), why: format!("cannot watch for signals: {e}") })?;
    let handle = signals.handle();
    let point = mount_point.to_path_buf();
    let watcher = std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            // Unmount by the mount point, not through fuser: with auto_unmount, fuser's
            // unmount only lets go of fusermount3's socket, and fusermount3 unmounts
            // only a filesystem whose server is gone. Once unmounted, the session ends.
            let fusermount = |lazy: bool| {
                let mut c = std::process::Command::new("fusermount3");
                c.arg("-u").args(lazy.then_some("-z")).arg("--").arg(&point).stderr(std::process::Stdio::piped());
                c.output()
            };
            match fusermount(false) {
                Ok(out) if out.status.success() => {}
                // Busy (a reader still has a file open): detach it now, as umount -l
                // does, and end; the readers' next calls fail instead of hanging on a
                // mount nobody serves.
                busy => {
                    let why = busy.map_or_else(|e| e.to_string(), |o| String::from_utf8_lossy(&o.stderr).trim().to_string());
                    log::info!("unmount: {why}; detaching");
                    match fusermount(true) {
                        Ok(out) if out.status.success() => {
                            eprintln!("host: {} unmounted (detached: files were still open)", point.display());
                        }
                        _ => eprintln!("host: error: cannot unmount {}: {why}", point.display()),
                    }
                    std::process::exit(0);
                }
            }
        }
    });
    mounted();
    let ended = session.run();
    handle.close();
    let _ = watcher.join();
    ended.map_err(|e| MountError::Session { path: shown, why: e.to_string() })
}
