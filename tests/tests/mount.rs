//! `host mount`: the model as a live sysfs, used by real clients: util-linux's lsmem and
//! chmem (from Debian's packages), and a shell onlining agent (tests/agents/). Each test
//! that mounts needs /dev/fuse and fusermount3 (Debian: fuse3); without them it fails
//! with a message saying so, unless HOTPLUG_SKIP_FUSE_TESTS=1 says to skip it.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hotplug_tests::{host_exe, run_host, scratch, workspace_root, write_config, Profile};

const P: Profile = Profile::Debug;
const MEMORY: &str = "sys/devices/system/memory";

/// Whether this machine can mount FUSE; panics with what is missing unless told to skip.
fn fuse_or_skip(test: &str) -> bool {
    let fuse = Path::new("/dev/fuse").exists();
    let fusermount = Command::new("fusermount3").arg("-V").output().is_ok_and(|o| o.status.success());
    if fuse && fusermount {
        return true;
    }
    let missing = if fuse { "fusermount3 (Debian package fuse3)" } else { "/dev/fuse" };
    if std::env::var_os("HOTPLUG_SKIP_FUSE_TESTS").is_some_and(|v| v == "1") {
        eprintln!("{test}: skipped: no {missing} (HOTPLUG_SKIP_FUSE_TESTS=1)");
        return false;
    }
    panic!("{test}: host mount needs {missing}; install it, or set HOTPLUG_SKIP_FUSE_TESTS=1 to skip the mount tests");
}

/// A running `host mount`, unmounted (SIGTERM) when dropped.
struct Mounted {
    dir: PathBuf,
    child: Child,
    /// What it said on stderr before its banner.
    said: Vec<String>,
}

impl Mounted {
    /// Mount `config` at a fresh directory of `test`'s, once the banner says it is there.
    fn start(test: &str, config: &str, extra: &[&str]) -> Mounted {
        Mounted::start_as(test, config, extra, None)
    }

    /// ... with `--check-invariants`: after every write, the model's invariants, and that
    /// a refused write changed nothing (a broken one fails the write with EIO).
    fn start_checked(test: &str, config: &str, extra: &[&str]) -> Mounted {
        Mounted::start_as(test, config, &[extra, &["--check-invariants"]].concat(), None)
    }

    /// ... as user `uid` (with its group of the same number) when given: the mount point
    /// is theirs, and `setpriv` (util-linux) runs the host as them.
    fn start_as(test: &str, config: &str, extra: &[&str], uid: Option<u32>) -> Mounted {
        // A mount an earlier, killed run left behind would keep the directory busy.
        let stale = hotplug_tests::target_dir().join("test-scratch").join(test).join("mnt");
        let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&stale).stderr(Stdio::null()).status();
        let dir = scratch(test).join("mnt");
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = match uid {
            None => Command::new(host_exe(P)),
            Some(uid) => {
                std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}")).arg(format!("--regid={uid}")).arg("--clear-groups").arg(host_exe(P));
                c
            }
        };
        let mut child = command
            .args(["mount", "--config", config])
            .arg(&dir)
            .args(extra)
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .expect("run host mount");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut said = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(" mounted at ") => {
                    assert!(line.contains(&format!("stop with Ctrl-C or fusermount3 -u {}", dir.display())), "{line}");
                    break;
                }
                Ok(line) => {
                    eprintln!("host mount: {line}");
                    said.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("host mount did not come up: {:?}\n{}", child.wait(), said.join("\n"));
                }
            }
        }
        Mounted { dir, child, said }
    }

    /// Write `data` to `rel` in one write, then close it: Ok, or the errno of the write or
    /// of close(2) (which carries a `ctl` step's).
    fn write_and_close(&self, rel: &str, data: &[u8]) -> Result<(), i32> {
        use std::os::fd::IntoRawFd as _;
        let mut f = std::fs::OpenOptions::new().write(true).open(self.path(rel)).map_err(|e| e.raw_os_error().unwrap_or(-1))?;
        f.write_all(data).map_err(|e| e.raw_os_error().unwrap_or(-1))?;
        // SAFETY: the descriptor is ours alone (into_raw_fd gave it up), closed once.
        match unsafe { libc::close(f.into_raw_fd()) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)),
        }
    }

    /// Send SIG`signal` (`TERM`, `INT`) and wait (at most 10 s) for the exit.
    fn stop(&mut self, signal: &str) -> std::process::ExitStatus {
        Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        let mut status = None;
        wait_until(
            10,
            || format!("host mount still running 10 s after SIG{signal}"),
            || {
                status = self.child.try_wait().unwrap();
                status.is_some()
            },
        );
        status.unwrap()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Write `data` to `rel` in one write: Ok, or the errno.
    fn write(&self, rel: &str, data: &[u8]) -> Result<(), i32> {
        let mut f = std::fs::OpenOptions::new().write(true).open(self.path(rel)).map_err(|e| e.raw_os_error().unwrap_or(-1))?;
        f.write_all(data).map_err(|e| e.raw_os_error().unwrap_or(-1))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&self.dir).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until `done` holds, checking every 20 ms; panics saying `what` after `secs`.
fn wait_until(secs: u64, what: impl Fn() -> String, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{} (waited {secs} s)", what());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lsmem(root: &Path) -> String {
    let out =
        Command::new("lsmem").arg("--sysroot").arg(root).args(["-o", "RANGE,SIZE,STATE,BLOCK,NODE,ZONES"]).output().expect("run lsmem");
    assert!(out.status.success(), "lsmem: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Every entry under `root`, links not followed: (path, file mode and text, or link
/// target).
fn walk(root: &Path) -> Vec<(String, String)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.push((rel, format!("-> {}", std::fs::read_link(&path).unwrap().display())));
            } else if meta.is_dir() {
                // Ours, not the kernel's (and `events` would wait for an event).
                if rel != "hotplug-lab" {
                    todo.push(path);
                }
            } else if !rel.ends_with("/probe") && !rel.ends_with("/uevent") {
                let mode = meta.permissions().mode() & 0o7777;
                out.push((rel, format!("{mode:o} {}", std::fs::read_to_string(&path).unwrap())));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn lsmem_and_the_static_tree_agree_with_the_mount() {
    if !fuse_or_skip("lsmem_and_the_static_tree_agree_with_the_mount") {
        return;
    }
    let m = Mounted::start("mount_lsmem", "acpi-dimm.toml", &[]);
    let stat = scratch("mount_lsmem_static").join("root");
    let r = run_host(P, &["--config", "acpi-dimm.toml", "--sysroot-out", stat.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Every file and link of the static tree, with the same mode and text, and nothing
    // else but what is ours (hotplug-lab/) and the files that only act when written
    // (probe, each block's uevent).
    assert_eq!(walk(&m.dir), walk(&stat));
    // lsmem reads both alike. acpi-dimm.toml: 4 GiB at boot, two 8 GiB DIMMs from 8 GiB,
    // all online: the first (blocks 64-127: 8 GiB / 128 MiB = 64) Movable, the second
    // (128-191) over the auto-movable ratio, so Normal; 20 GiB online.
    let listing = lsmem(&m.dir);
    assert_eq!(listing, lsmem(&stat));
    assert!(listing.contains("Total online memory:      20G"), "{listing}");
    let row = |range: &str, rest: &str| {
        listing.lines().any(|l| l.starts_with(range) && l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ") == rest)
    };
    assert!(row("0x0000000200000000-0x00000003ffffffff", "8G online 64-127 0 Movable"), "{listing}");
    assert!(row("0x0000000400000000-0x00000005ffffffff", "8G online 128-191 0 Normal"), "{listing}");
    // The memory bus lists its blocks, and each block names its bus, as bus_add_device
    // links them: scripts that walk /sys/bus/memory/devices reach the same files.
    assert_eq!(m.read("sys/bus/memory/devices/memory64/state"), "online\n");
    assert_eq!(std::fs::read_link(m.path(&format!("{MEMORY}/memory64/subsystem"))).unwrap(), Path::new("../../../../bus/memory"));
    assert!(m.path(&format!("{MEMORY}/memory64/subsystem/devices/memory64")).exists());
    // The kernel's modes: state writable by root, the rest read-only, probe write-only.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |rel: &str| std::fs::metadata(m.path(rel)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&format!("{MEMORY}/memory64/state")), 0o644);
    assert_eq!(mode(&format!("{MEMORY}/memory64/phys_index")), 0o444);
    assert_eq!(mode(&format!("{MEMORY}/probe")), 0o200);
    // /proc files are read-only for all, iomem too (proc's default mode).
    assert_eq!(mode("proc/iomem"), 0o444);
    assert_eq!(mode("sys/devices/system/node/has_memory"), 0o444);
}

#[test]
fn writes_do_what_the_kernel_does_and_a_bad_one_changes_nothing() {
    if !fuse_or_skip("writes_do_what_the_kernel_does_and_a_bad_one_changes_nothing") {
        return;
    }
    let log = scratch("mount_writes_log").join("uevents.log");
    let m = Mounted::start_checked("mount_writes", "acpi-dimm.toml", &["--uevent-log", log.to_str().unwrap()]);
    let state = format!("{MEMORY}/memory100/state");
    assert_eq!(m.read(&state), "online\n");
    let before = m.read("hotplug-lab/state.json");
    // Bad writes: EINVAL (22), and the model exactly as it was.
    for bad in [&b"bogus\n"[..], b"online\n\n", b" online", b"\xff\xfe", &[b'o'; 5000]] {
        assert_eq!(m.write(&state, bad), Err(22), "{:?}", String::from_utf8_lossy(&bad[..bad.len().min(20)]));
    }
    // state_store of a block already online: device_online returns 1, the store EINVAL.
    assert_eq!(m.write(&state, b"online_movable\n"), Err(22));
    assert_eq!(m.write(&format!("{MEMORY}/probe"), b"0x800000001\n"), Err(22), "an unaligned probe");
    assert_eq!(m.read("hotplug-lab/state.json"), before, "a refused write changed the model");

    assert_eq!(m.write(&state, b"offline\n"), Ok(()));
    assert_eq!(m.read(&state), "offline\n");
    assert_eq!(m.read(&format!("{MEMORY}/memory100/online")), "0\n");
    assert_eq!(m.write(&state, b"offline"), Err(22), "already offline");
    // online_store: kstrtobool, and a block already in that state is no error.
    assert_eq!(m.write(&format!("{MEMORY}/memory100/online"), b"1\n"), Ok(()));
    assert_eq!(m.read(&state), "online\n");
    assert_eq!(m.write(&format!("{MEMORY}/memory100/online"), b"y"), Ok(()));

    // probe at 32 GiB (above the DIMMs, which end at 24 GiB): block 256 appears and,
    // auto_online_blocks being online, is onlined.
    assert_eq!(m.write(&format!("{MEMORY}/probe"), b"0x800000000\n"), Ok(()));
    assert_eq!(m.read(&format!("{MEMORY}/memory256/state")), "online\n");
    assert_eq!(m.write(&format!("{MEMORY}/auto_online_blocks"), b"offline\n"), Ok(()));
    assert_eq!(m.read(&format!("{MEMORY}/auto_online_blocks")), "offline\n");

    // ctl: the step runs when the descriptor closes; a read tells how it went.
    // A bad step is EINVAL, located in what was written: `size` has an unknown unit,
    // its value on line 3 at column 8; a step missing a key is about the step as a whole
    // (line 1); two steps in one write are refused.
    m.write("hotplug-lab/ctl", b"op = \"add\"\nstart = \"40GiB\"\nsize = \"12XB\"\n").unwrap();
    let said = m.read("hotplug-lab/ctl");
    assert!(said.starts_with("EINVAL: hotplug-lab/ctl:3:8: "), "{said}");
    m.write("hotplug-lab/ctl", b"op = \"add\"\nstart = \"40GiB\"\n").unwrap();
    let said = m.read("hotplug-lab/ctl");
    assert!(said.starts_with("EINVAL: hotplug-lab/ctl:1:1: ") && said.contains("size"), "{said}");
    m.write(
        "hotplug-lab/ctl",
        b"op = \"online\"\nstart = \"8GiB\"\nsize = \"128MiB\"\n[[step]]\nop = \"offline\"\nstart = \"8GiB\"\nsize = \"128MiB\"\n",
    )
    .unwrap();
    assert_eq!(m.read("hotplug-lab/ctl"), "EINVAL: hotplug-lab/ctl: one step per write, not 2\n");
    m.write("hotplug-lab/ctl", b"op = \"add\"\nstart = \"40GiB\"\nsize = \"256MiB\"\n").unwrap();
    // 256 MiB at 40 GiB: blocks 320 and 321, left offline now.
    assert_eq!(m.read("hotplug-lab/ctl"), "ok: add: 2 events\n");
    assert_eq!(m.read(&format!("{MEMORY}/memory321/state")), "offline\n");

    // The uevent log: one line per event, in order.
    let lines = std::fs::read_to_string(&log).unwrap();
    let events: Vec<&str> = lines.lines().map(|l| l.split_once(' ').unwrap().1).collect();
    assert_eq!(
        events,
        [
            "offline /devices/system/memory/memory100 (memory)",
            "online /devices/system/memory/memory100 (memory)",
            "add /devices/system/memory/memory256 (memory)",
            "online /devices/system/memory/memory256 (memory)",
            "add /devices/system/memory/memory320 (memory)",
            "add /devices/system/memory/memory321 (memory)",
        ]
    );
}

#[test]
fn chmem_in_a_private_namespace_changes_the_model() {
    if !fuse_or_skip("chmem_in_a_private_namespace_changes_the_model") {
        return;
    }
    let m = Mounted::start("mount_chmem", "acpi-dimm.toml", &[]);
    // chmem knows only /sys/devices/system/memory: bind the mount over it in a mount
    // namespace of its own, so the machine's real sysfs is never touched.
    let script = format!("mount --bind {0}/{MEMORY} /{MEMORY} && chmem --disable 1G && chmem --enable 512M", m.dir.display());
    let out = Command::new("unshare").args(["-m", "sh", "-c", &script]).output().expect("run unshare");
    assert!(out.status.success(), "unshare/chmem: {}", String::from_utf8_lossy(&out.stderr));
    // chmem --disable 1G offlines the 8 highest online removable blocks (184-191, the
    // top of the second DIMM), then --enable 512M onlines the 4 lowest offline ones:
    // 188-191 stay offline.
    let listing = lsmem(&m.dir);
    assert!(
        listing.lines().any(|l| l.starts_with("0x00000005e0000000-0x00000005ffffffff") && l.contains("offline") && l.contains("188-191")),
        "{listing}"
    );
    let state: serde_json::Value = serde_json::from_str(&m.read("hotplug-lab/state.json")).unwrap();
    let offline: Vec<u64> = state["block_runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["state"] == "offline")
        .flat_map(|b| b["first"].as_u64().unwrap()..=b["last"].as_u64().unwrap())
        .collect();
    assert_eq!(offline, [188, 189, 190, 191]);
}

/// A 4 GiB machine (blocks 0-31) whose hot-added memory stays offline until user space
/// onlines it.
const SMALL_VM_OFFLINE: &str =
    "[machine]\nauto_online_blocks = \"offline\"\n[[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"4GiB\" }]\n";

/// Start tests/agents/online-movable.sh on `m`; returns once it listens (its shell holds
/// the events file open).
fn start_agent(m: &Mounted) -> Child {
    let script = workspace_root().join("tests/agents/online-movable.sh");
    let agent = Command::new("sh").arg(&script).arg(&m.dir).spawn().expect("start the agent");
    let events = m.path("hotplug-lab/events");
    let fds = format!("/proc/{}/fd", agent.id());
    wait_until(
        20,
        || format!("the agent never opened {}", events.display()),
        || std::fs::read_dir(&fds).unwrap().any(|fd| std::fs::read_link(fd.unwrap().path()).is_ok_and(|t| t == events)),
    );
    agent
}

/// Wait until each of `blocks` is online, and check it went to ZONE_MOVABLE.
fn wait_online_movable(m: &Mounted, blocks: std::ops::Range<u64>) {
    for id in blocks {
        wait_until(20, || format!("memory{id} never came online"), || m.read(&format!("{MEMORY}/memory{id}/state")) == "online\n");
        assert_eq!(m.read(&format!("{MEMORY}/memory{id}/valid_zones")), "Movable\n");
    }
}

#[test]
fn an_onlining_agent_onlines_hot_added_blocks_movable() {
    if !fuse_or_skip("an_onlining_agent_onlines_hot_added_blocks_movable") {
        return;
    }
    let config = write_config("mount_agent_config", P, SMALL_VM_OFFLINE);
    let m = Mounted::start("mount_agent", config.to_str().unwrap(), &[]);
    // Hot-add only once the agent listens.
    let mut agent = start_agent(&m);
    m.write("hotplug-lab/ctl", b"op = \"add\"\nstart = \"8GiB\"\nsize = \"1GiB\"\n").unwrap();
    assert_eq!(m.read("hotplug-lab/ctl"), "ok: add: 8 events\n");
    // 1 GiB at 8 GiB: blocks 64 to 71, added offline (auto_online_blocks = offline); the
    // agent onlines each Movable, so each ends online with Movable as its zone.
    wait_online_movable(&m, 64..72);
    let _ = agent.kill();
    let _ = agent.wait();
}

#[test]
fn a_mount_point_that_is_not_an_empty_directory_is_refused() {
    // No FUSE needed: these are refused before anything mounts.
    let dir = scratch("mount_refused");
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let full = dir.join("full");
    std::fs::create_dir_all(full.join("inside")).unwrap();
    for (point, says) in [
        (dir.join("missing"), "no such file"),
        (file, "not a directory"),
        (full, "not empty"),
        (PathBuf::from("/sys/devices/system/memory"), "a system path: mount there only inside a private mount namespace"),
    ] {
        let r = run_host(P, &["mount", "--config", "acpi-dimm.toml", point.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{}: {}", point.display(), r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.starts_with("host: error: mount point ") && r.stderr.contains(says), "{}: {}", point.display(), r.stderr);
    }
}

#[test]
fn events_can_be_polled_and_a_killed_reader_is_let_go() {
    use std::io::Read as _;
    use std::os::unix::io::AsRawFd as _;
    use std::os::unix::process::ExitStatusExt as _;
    if !fuse_or_skip("events_can_be_polled_and_a_killed_reader_is_let_go") {
        return;
    }
    let m = Mounted::start("mount_events", "acpi-dimm.toml", &[]);
    let events_path = m.path("hotplug-lab/events");
    let mut events = std::fs::File::open(&events_path).unwrap();
    let fd = events.as_raw_fd();
    let poll = |timeout_ms: i32| {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
        p.revents & libc::POLLIN != 0
    };
    // Nothing has happened since the file was opened.
    assert!(!poll(0), "readable with no event");
    // A poll that waits is woken by the event a write causes.
    let state = m.path(&format!("{MEMORY}/memory100/state"));
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        std::fs::write(state, "offline\n")
    });
    assert!(poll(20_000), "poll was not woken by the offline event");
    writer.join().unwrap().expect("offline memory100");
    // memory100 online to offline: one event, the first of this mount.
    let mut buf = [0u8; 4096];
    let n = events.read(&mut buf).unwrap();
    assert_eq!(
        std::str::from_utf8(&buf[..n]).unwrap(),
        "ACTION=offline\nDEVPATH=/devices/system/memory/memory100\nSUBSYSTEM=memory\nSEQNUM=1\n\n"
    );
    assert!(!poll(0), "readable after the only event was read");

    // A reader parked in read(2) on events is let go by a fatal signal, as in any
    // interruptible wait (FUSE alone would keep it in D state until the next event).
    for (signal, number) in [("KILL", libc::SIGKILL), ("TERM", libc::SIGTERM)] {
        let mut cat = Command::new("cat").arg(&events_path).stdout(Stdio::null()).spawn().expect("run cat");
        let syscall = format!("/proc/{}/syscall", cat.id());
        // Parked: in read(2) (its syscall number first in /proc/PID/syscall).
        let read = libc::SYS_read.to_string();
        wait_until(
            20,
            || format!("cat never blocked in read: {:?}", std::fs::read_to_string(&syscall)),
            || std::fs::read_to_string(&syscall).is_ok_and(|s| s.split_whitespace().next() == Some(read.as_str())),
        );
        std::thread::sleep(Duration::from_millis(200));
        assert!(cat.try_wait().unwrap().is_none(), "cat returned with no event to read");
        Command::new("kill").arg(format!("-{signal}")).arg(cat.id().to_string()).status().unwrap();
        let mut status = None;
        wait_until(
            10,
            || format!("cat still parked after SIG{signal}"),
            || {
                status = cat.try_wait().unwrap();
                status.is_some()
            },
        );
        let status = status.unwrap();
        assert_eq!(status.signal(), Some(number), "cat after SIG{signal}: {status:?}");
    }
    // The mount goes on serving.
    assert_eq!(m.read(&format!("{MEMORY}/memory100/state")), "offline\n");
}

#[test]
fn ctl_steps_announce_blocks_in_the_kernels_order() {
    if !fuse_or_skip("ctl_steps_announce_blocks_in_the_kernels_order") {
        return;
    }
    // No [[strategy]]: an add gets system-ram; the memremap below needs device-pgmap,
    // which the mount loads when a ctl step first asks for it.
    let config = write_config(
        "mount_ctl_order_config",
        P,
        "[machine]\nauto_online_blocks = \"online_movable\"\n[[machine.node]]\nid = 0\nboot = [{ start = \"0\", size = \"4GiB\" }]\n",
    );
    let log = scratch("mount_ctl_order_log").join("uevents.log");
    let m = Mounted::start_checked("mount_ctl_order", config.to_str().unwrap(), &["--uevent-log", log.to_str().unwrap()]);
    let ctl = |step: &str| {
        m.write("hotplug-lab/ctl", step.as_bytes()).unwrap();
        m.read("hotplug-lab/ctl")
    };
    // virtio-mem plugs 512 MiB from 8 GiB: blocks 64-67 (8 GiB / 128 MiB = 64), each added
    // and auto-onlined before the next is added (add_memory_driver_managed per block).
    assert_eq!(ctl("op = \"grow\"\ndevice = \"virtio0\"\nstart = \"8GiB\"\nsize = \"512MiB\"\n"), "ok: grow: 8 events\n");
    // Unplugging 256 MiB takes whole Movable blocks, highest first: 67, then 66; each
    // is online, so offline_and_remove_memory offlines it before its device goes.
    assert_eq!(ctl("op = \"shrink\"\ndevice = \"virtio0\"\nsize = \"256MiB\"\n"), "ok: shrink: 4 events\n");
    // A device-dax device (ZONE_DEVICE: no memory blocks, no events), then dax/kmem
    // takes it over (daxctl reconfigure-device --mode=system-ram): 1 GiB at 16 GiB is
    // blocks 128-135, all added, then each onlined.
    assert_eq!(ctl("op = \"memremap\"\nstart = \"16GiB\"\nsize = \"1GiB\"\nresource = \"dax0.0\"\n"), "ok: memremap: 0 events\n");
    assert_eq!(ctl("op = \"add\"\ndriver = \"dax-kmem\"\ndevice = \"dax0.0\"\n"), "ok: add: 16 events\n");
    assert_eq!(m.read(&format!("{MEMORY}/memory135/valid_zones")), "Movable\n");

    let lines = std::fs::read_to_string(&log).unwrap();
    let got: Vec<String> = lines.lines().map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).collect();
    let mut want = Vec::new();
    let mut event = |seq: usize, action: &str, block: u64| {
        want.push(format!("{seq} {action} /devices/system/memory/memory{block}"));
    };
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };
    for b in 64..68 {
        event(next(), "add", b);
        event(next(), "online", b);
    }
    for b in [67, 66] {
        event(next(), "offline", b);
        event(next(), "remove", b);
    }
    for b in 128..136 {
        event(next(), "add", b);
    }
    for b in 128..136 {
        event(next(), "online", b);
    }
    assert_eq!(got, want);
}

/// Whether `dir` is a mount point in this mount namespace.
fn mounted_at(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(dir.to_str().unwrap()))
}

#[test]
fn a_signal_unmounts_and_leaves_no_stale_mount() {
    use std::io::Read as _;
    if !fuse_or_skip("a_signal_unmounts_and_leaves_no_stale_mount") {
        return;
    }
    // Idle: SIGTERM unmounts, exit 0.
    let mut m = Mounted::start("mount_signal_idle", "acpi-dimm.toml", &[]);
    assert!(mounted_at(&m.dir));
    let status = m.stop("TERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!mounted_at(&m.dir), "{} still mounted after SIGTERM", m.dir.display());
    // Busy (a reader holds `events` open): SIGINT detaches the mount, exit 0; the
    // reader's next call fails instead of waiting on a mount nobody serves.
    let mut m = Mounted::start("mount_signal_busy", "acpi-dimm.toml", &[]);
    let mut events = std::fs::File::open(m.path("hotplug-lab/events")).unwrap();
    let status = m.stop("INT");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!mounted_at(&m.dir), "{} still mounted after SIGINT", m.dir.display());
    assert!(events.read(&mut [0u8; 64]).is_err(), "a read on a detached mount succeeded");
}

#[test]
fn a_coldplug_trigger_replays_add_and_the_agent_onlines_what_was_there() {
    if !fuse_or_skip("a_coldplug_trigger_replays_add_and_the_agent_onlines_what_was_there") {
        return;
    }
    let config = write_config("mount_coldplug_config", P, SMALL_VM_OFFLINE);
    let log = scratch("mount_coldplug_log").join("uevents.log");
    let m = Mounted::start("mount_coldplug", config.to_str().unwrap(), &["--uevent-log", log.to_str().unwrap()]);
    // 1 GiB hot-added before any agent runs: blocks 64-71, left offline, their `add`
    // events gone by.
    m.write("hotplug-lab/ctl", b"op = \"add\"\nstart = \"8GiB\"\nsize = \"1GiB\"\n").unwrap();
    assert_eq!(m.read("hotplug-lab/ctl"), "ok: add: 8 events\n");
    // A block's uevent reads empty, takes writes (0644), and refuses what
    // kobject_synth_uevent refuses.
    let uevent = format!("{MEMORY}/memory64/uevent");
    assert_eq!(m.read(&uevent), "");
    assert_eq!(m.write(&uevent, b"bogus\n"), Err(22));
    assert_eq!(m.write(&uevent, b"add 1234\n"), Err(22), "a bad UUID");

    let mut agent = start_agent(&m);
    // What `udevadm trigger --action=add --subsystem-match=memory` does: `add` into every
    // block's uevent. The agent sees 40 synthetic adds (32 boot blocks, all online, and
    // the 8 offline ones) and onlines the offline ones Movable.
    let trigger = format!("for u in {}/{MEMORY}/memory*/uevent; do echo add > \"$u\" || exit 1; done", m.dir.display());
    let out = Command::new("sh").arg("-c").arg(&trigger).output().unwrap();
    assert!(out.status.success(), "trigger: {}", String::from_utf8_lossy(&out.stderr));
    wait_online_movable(&m, 64..72);
    let _ = agent.kill();
    let _ = agent.wait();
    // The log: the ctl add's 8 adds, the trigger's 40 and the agent's 8 onlines (the
    // agent's may come between the trigger's).
    let lines = std::fs::read_to_string(&log).unwrap();
    let actions: Vec<&str> = lines.lines().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    let count = |a: &str| actions.iter().filter(|&&x| x == a).count();
    assert_eq!((actions.len(), count("add"), count("online")), (56, 48, 8), "{lines}");
}

/// A 4 GiB machine with the fixture plugin broken-hostile as strategy `evil` doing
/// `behaviour` (`isolate` as given) beside the baseline `base`; no steps.
fn hostile_config(test: &str, behaviour: &str, isolate: bool) -> PathBuf {
    write_config(
        test,
        P,
        &format!(
            "[machine]\nplugin_dirs = [\"@PLUGINS@\"]\n[[machine.node]]\nid = 0\nboot = [{{ start = \"0\", size = \"4GiB\" }}]\n\
             [[strategy]]\nname = \"evil\"\nplugin = \"broken-hostile\"\nisolate = {isolate}\noptions = {{ behaviour = \"{behaviour}\" }}\n\
             [[strategy]]\nname = \"base\"\nplugin = \"system-ram\"\n"
        ),
    )
}

#[test]
fn an_isolated_plugin_that_crashes_fails_only_its_write() {
    if !fuse_or_skip("an_isolated_plugin_that_crashes_fails_only_its_write") {
        return;
    }
    let config = hostile_config("mount_isolated_config", "abort", true);
    let m = Mounted::start_checked("mount_isolated", config.to_str().unwrap(), &[]);
    let before = m.read("hotplug-lab/state.json");
    // The isolated plugin aborts in set_up: the step fails, close(2) says EIO, ctl says
    // how the plugin's process ended, and the model is as it was.
    let add = |strategy: &str| format!("op = \"add\"\nstart = \"8GiB\"\nsize = \"128MiB\"\nstrategy = \"{strategy}\"\n");
    assert_eq!(m.write_and_close("hotplug-lab/ctl", add("evil").as_bytes()), Err(libc::EIO));
    let said = m.read("hotplug-lab/ctl");
    assert!(said.starts_with("EPLUGIN: plugin broken-hostile set_up: its isolated process crashed (SIGABRT)"), "{said}");
    assert_eq!(m.read("hotplug-lab/state.json"), before, "a failed step changed the model");
    // The mount goes on: the same range adds with the baseline (8 GiB / 128 MiB = block 64).
    assert_eq!(m.write_and_close("hotplug-lab/ctl", add("base").as_bytes()), Ok(()));
    // auto_online_blocks is the kernel's default, offline: one `add` event.
    assert_eq!(m.read("hotplug-lab/ctl"), "ok: add: 1 event\n");
    assert_eq!(m.read(&format!("{MEMORY}/memory64/state")), "offline\n");
}

#[test]
fn a_plugin_that_ends_the_host_takes_the_mount_with_it() {
    if !fuse_or_skip("a_plugin_that_ends_the_host_takes_the_mount_with_it") {
        return;
    }
    // In the host's own process, the plugin calls exit(0) in set_up: the host ends with
    // exit 3 (docs/reliability.md), and fusermount3's auto_unmount takes the mount down
    // instead of leaving one nobody serves.
    let config = hostile_config("mount_exit_config", "exit0", false);
    let mut m = Mounted::start("mount_exit", config.to_str().unwrap(), &[]);
    let step = b"op = \"add\"\nstart = \"8GiB\"\nsize = \"128MiB\"\nstrategy = \"evil\"\n";
    assert!(m.write_and_close("hotplug-lab/ctl", step).is_err(), "the step's close succeeded");
    let mut status = None;
    wait_until(
        10,
        || "the host did not end".to_string(),
        || {
            status = m.child.try_wait().unwrap();
            status.is_some()
        },
    );
    assert_eq!(status.unwrap().code(), Some(3));
    wait_until(10, || format!("{} still mounted after the host ended", m.dir.display()), || !mounted_at(&m.dir));
}

#[test]
fn a_user_mounts_a_machine_of_their_own() {
    if !fuse_or_skip("a_user_mounts_a_machine_of_their_own") {
        return;
    }
    // SAFETY: geteuid only reads the process's id.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test becomes nobody with setpriv: run the tests as root (README)");
    const NOBODY: u32 = 65534;
    let m = Mounted::start_as("mount_user", "acpi-dimm.toml", &[], Some(NOBODY));
    // fusermount3 grants auto_unmount's allow_root to a user only under
    // user_allow_other; without it the host mounts without and says what to do.
    let allow_other = std::fs::read_to_string("/etc/fuse.conf").is_ok_and(|t| t.lines().any(|l| l.trim() == "user_allow_other"));
    let warned = m.said.iter().any(|l| l.contains("no user_allow_other in /etc/fuse.conf") && l.contains("fusermount3 -u"));
    assert_eq!(warned, !allow_other, "{:?}", m.said);
    // The user reads it as root reads a root mount (acpi-dimm.toml: 20 GiB online) ...
    let as_user = Command::new("setpriv")
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .args(["lsmem", "--sysroot"])
        .arg(&m.dir)
        .output()
        .unwrap();
    assert!(as_user.status.success(), "{}", String::from_utf8_lossy(&as_user.stderr));
    assert!(String::from_utf8_lossy(&as_user.stdout).contains("Total online memory:      20G"));
    // ... and it is theirs alone (FUSE's default), but for root under allow_root.
    let as_root = Command::new("lsmem").arg("--sysroot").arg(&m.dir).output().unwrap();
    assert_eq!(as_root.status.success(), allow_other, "{}", String::from_utf8_lossy(&as_root.stderr));
    // SIGTERM unmounts through the setuid fusermount3 as for root.
    let mut m = m;
    let status = m.stop("TERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!mounted_at(&m.dir), "{} still mounted after SIGTERM", m.dir.display());
}
