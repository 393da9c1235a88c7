//! `host snapshot`: copy the files a capture needs from a live root (read-only), laid out
//! as `[machine] from` reads them.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::model::capture::UnsettledCounters;

/// Files copied as they are, relative to the root.
const FILES: &[&str] = &["proc/iomem", "proc/zoneinfo", "proc/meminfo"];
const MEMORY: &str = "sys/devices/system/memory";
const BLOCK_FILES: &[&str] = &["state", "online", "phys_index", "valid_zones", "phys_device", "removable"];
const PARAMS: &str = "sys/module/memory_hotplug/parameters";
const NODE: &str = "sys/devices/system/node";
/// The node masks (drivers/base/node.c node states), copied when present.
const NODE_MASKS: &[&str] = &["possible", "online", "has_memory", "has_normal_memory", "has_cpu", "has_generic_initiator"];
const NODE_FILES: &[&str] = &["distance", "meminfo", "cpulist"];

/// Whether `name` is `<prefix><number>` (memory12, node3).
fn is_numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// Copy `rel` when it is a regular file (a FIFO or device where a sysfs file should be is
/// left alone rather than read forever); returns whether it was copied.
fn copy_if_file(root: &Path, out: &Path, rel: &str) -> Result<bool, String> {
    if !root.join(rel).metadata().is_ok_and(|m| m.is_file()) {
        return Ok(false);
    }
    copy(root, out, rel).map(|()| true)
}

/// Make the link `rel -> target`, as sysfs has it, in the capture.
fn link(out: &Path, rel: &str, target: &str) -> Result<(), String> {
    let dest = out.join(rel);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("snapshot: cannot create {}: {}", parent.display(), crate::config::io_reason(&e)))?;
    }
    crate::views::sysroot::symlink(target, &dest)
        .map_err(|e| format!("snapshot: cannot link {}: {}", dest.display(), crate::config::io_reason(&e)))
}

/// The entries of `dir` whose names are `<prefix><number>`.
fn numbered(dir: &Path, prefix: &str) -> Vec<String> {
    let Ok(listing) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> =
        listing.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| is_numbered(n, prefix)).collect();
    names.sort();
    names
}

/// The bytes of `rel` under `root`, refused unless a regular file (procfs and sysfs files
/// are; a FIFO or device there would block or never end), at most its capture limit.
fn read(root: &Path, rel: &str) -> Result<Vec<u8>, String> {
    crate::files::read_bounded(&root.join(rel), crate::files::capture_limit(rel))
        .map_err(|e| format!("snapshot: {}: {e}", root.join(rel).display()))
}

fn copy(root: &Path, out: &Path, rel: &str) -> Result<(), String> {
    let text = read(root, rel)?;
    let dest = out.join(rel);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("snapshot: cannot create {}: {}", parent.display(), crate::config::io_reason(&e)))?;
    }
    std::fs::write(&dest, text).map_err(|e| format!("snapshot: cannot write {}: {}", dest.display(), crate::config::io_reason(&e)))
}

/// What a snapshot copied, and whether its counters had settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Files and links written.
    pub files: usize,
    /// The zone counters still disagreed with MemTotal when the wait ran out.
    pub unsettled: Option<UnsettledCounters>,
}

/// The page size of the machine running the snapshot (the root is normally its `/`).
fn page_size() -> u64 {
    #[cfg(unix)]
    // SAFETY: sysconf only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    #[cfg(not(unix))]
    let size = 4096;
    u64::try_from(size).ok().filter(|&s| s >= 1024).unwrap_or(4096)
}

/// Whether `root`'s zone counters disagree with its MemTotal right now.
fn unsettled(root: &Path) -> Option<UnsettledCounters> {
    let zoneinfo = String::from_utf8(read(root, "proc/zoneinfo").ok()?).ok()?;
    let meminfo = String::from_utf8(read(root, "proc/meminfo").ok()?).ok()?;
    let zones = crate::views::capture::zone_counters(&zoneinfo).ok()?;
    UnsettledCounters::check(&zones, crate::views::capture::memtotal_kb(&meminfo)?, page_size())
}

/// Wait up to `settle` for deferred struct-page initialisation to finish (the zones'
/// managed pages to reach MemTotal), checking once a second; the last disagreement if
/// it never did.
fn wait_to_settle(root: &Path, settle: Duration) -> Option<UnsettledCounters> {
    let started = Instant::now();
    loop {
        let gap = unsettled(root)?;
        if started.elapsed() >= settle {
            return Some(gap);
        }
        std::thread::sleep(Duration::from_secs(1).min(settle));
    }
}

/// Capture `root` into `out`, first waiting up to `settle` for its counters to agree.
/// Optional files (the module parameters, KERNEL_RELEASE) are copied when present. All
/// or nothing: the capture is written beside `out` and renamed into place.
pub fn take(root: &Path, out: &Path, settle: Duration) -> Result<Taken, String> {
    if out.exists()
        && std::fs::read_dir(out).map_err(|e| format!("snapshot: {}: {}", out.display(), crate::config::io_reason(&e)))?.next().is_some()
    {
        return Err(format!("snapshot: {} is not empty", out.display()));
    }
    let unsettled = wait_to_settle(root, settle);
    crate::files::write_tree(out, "snapshot:", |temp| copy_all(root, temp)).map(|files| Taken { files, unsettled })
}

/// Every file and link of a capture of `root`, into `out`; the number written.
fn copy_all(root: &Path, out: &Path) -> Result<usize, String> {
    let mut n = 0;
    for rel in FILES {
        copy(root, out, rel)?;
        n += 1;
    }
    for rel in ["block_size_bytes", "auto_online_blocks"] {
        copy(root, out, &format!("{MEMORY}/{rel}"))?;
        n += 1;
    }
    let blocks = std::fs::read_dir(root.join(MEMORY))
        .map_err(|e| format!("snapshot: cannot list {}: {}", root.join(MEMORY).display(), crate::config::io_reason(&e)))?;
    for entry in blocks.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.strip_prefix("memory").is_none_or(|id| id.parse::<u64>().is_err()) {
            continue;
        }
        for f in BLOCK_FILES {
            let rel = format!("{MEMORY}/{name}/{f}");
            if root.join(&rel).exists() {
                copy(root, out, &rel)?;
                n += 1;
            }
        }
        // The block's node: a `nodeN` link (register_memory_block_under_node), which is
        // where lsmem reads its NODE column.
        for node in numbered(&root.join(MEMORY).join(&name), "node") {
            link(out, &format!("{MEMORY}/{name}/{node}"), &format!("../../node/{node}"))?;
            n += 1;
        }
    }
    n += take_node_tree(root, out)?;
    if let Ok(params) = std::fs::read_dir(root.join(PARAMS)) {
        for entry in params.filter_map(Result::ok) {
            copy(root, out, &format!("{PARAMS}/{}", entry.file_name().to_string_lossy()))?;
            n += 1;
        }
    }
    let release = ["proc/sys/kernel/osrelease", "KERNEL_RELEASE"].iter().find_map(|r| read(root, r).ok());
    if let Some(text) = release {
        std::fs::write(out.join("KERNEL_RELEASE"), text).map_err(|e| format!("snapshot: {}", crate::config::io_reason(&e)))?;
        n += 1;
    }
    Ok(n)
}

/// The node tree: its masks, and per node its distance, meminfo, cpulist and the links to
/// its memory blocks. A root without one (an old capture, a container) gives nothing.
fn take_node_tree(root: &Path, out: &Path) -> Result<usize, String> {
    let mut n = 0;
    for mask in NODE_MASKS {
        n += usize::from(copy_if_file(root, out, &format!("{NODE}/{mask}"))?);
    }
    for node in numbered(&root.join(NODE), "node") {
        for f in NODE_FILES {
            n += usize::from(copy_if_file(root, out, &format!("{NODE}/{node}/{f}"))?);
        }
        for block in numbered(&root.join(NODE).join(&node), "memory") {
            link(out, &format!("{NODE}/{node}/{block}"), &format!("../../memory/{block}"))?;
            n += 1;
        }
    }
    Ok(n)
}
