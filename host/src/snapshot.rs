//! `host snapshot`: copy the files a capture needs from a live root (read-only), laid out
//! as `[machine] from` reads them.

use std::path::Path;

/// Files copied as they are, relative to the root.
const FILES: &[&str] = &["proc/iomem", "proc/zoneinfo", "proc/meminfo"];
const MEMORY: &str = "sys/devices/system/memory";
const BLOCK_FILES: &[&str] = &["state", "online", "phys_index", "valid_zones", "phys_device", "removable"];
const PARAMS: &str = "sys/module/memory_hotplug/parameters";

fn copy(root: &Path, out: &Path, rel: &str) -> Result<(), String> {
    let text = std::fs::read(root.join(rel))
        .map_err(|e| format!("snapshot: cannot read {}: {}", root.join(rel).display(), crate::config::io_reason(&e)))?;
    let dest = out.join(rel);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("snapshot: cannot create {}: {}", parent.display(), crate::config::io_reason(&e)))?;
    }
    std::fs::write(&dest, text).map_err(|e| format!("snapshot: cannot write {}: {}", dest.display(), crate::config::io_reason(&e)))
}

/// Capture `root` into `out`; returns the number of files copied. Optional files (the
/// module parameters, KERNEL_RELEASE) are copied when present.
pub fn take(root: &Path, out: &Path) -> Result<usize, String> {
    if out.exists()
        && std::fs::read_dir(out).map_err(|e| format!("snapshot: {}: {}", out.display(), crate::config::io_reason(&e)))?.next().is_some()
    {
        return Err(format!("snapshot: {} is not empty", out.display()));
    }
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
    }
    if let Ok(params) = std::fs::read_dir(root.join(PARAMS)) {
        for entry in params.filter_map(Result::ok) {
            copy(root, out, &format!("{PARAMS}/{}", entry.file_name().to_string_lossy()))?;
            n += 1;
        }
    }
    let release = ["proc/sys/kernel/osrelease", "KERNEL_RELEASE"].iter().find_map(|r| std::fs::read(root.join(r)).ok());
    if let Some(text) = release {
        std::fs::write(out.join("KERNEL_RELEASE"), text).map_err(|e| format!("snapshot: {}", crate::config::io_reason(&e)))?;
        n += 1;
    }
    Ok(n)
}
