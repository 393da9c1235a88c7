//! A whole system root as tools read it: `sys/devices/system/memory` (sysfs.rs) with each
//! block's `nodeN` and `subsystem` links, `sys/devices/system/node` (drivers/base/node.c),
//! `sys/bus/memory/devices` (the bus's links to its blocks), and
//! `proc/{iomem,zoneinfo,meminfo}`, so `lsmem --sysroot DIR` or scripts that walk sysfs
//! (by device or by bus) run on the model as on a real machine.
//!
//! Node facts follow the kernel's node states: a node directory exists for each online node
//! (`register_one_node()`: a node is online with CPUs or once memory was added to it);
//! `has_memory` is N_MEMORY (online memory in any zone but ZONE_DEVICE), `has_normal_memory`
//! N_NORMAL_MEMORY (online memory in a zone up to ZONE_NORMAL), `has_cpu` N_CPU. The model
//! knows no CPU numbers, so no `cpulist`/`cpumap`; node meminfo has only the lines the
//! model knows (MemTotal, MemFree, MemUsed), as /proc/meminfo does.

use std::fmt::Write as _;
use std::path::Path;

use super::View;
use crate::model::{Model, ZoneType};

/// One entry of the tree, relative to its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A file, its text and its mode (the kernel's: 0444, or 0644 where it takes writes).
    File(String, String, u32),
    /// A symbolic link and its (relative) target, as sysfs makes them.
    Link(String, String),
}

const MEMORY: &str = "sys/devices/system/memory";
const NODE: &str = "sys/devices/system/node";
const BUS_DEVICES: &str = "sys/bus/memory/devices";

/// `memoryN/nodeK`: the block's node (register_memory_block_under_node).
pub fn block_node_target(nid: u32) -> String {
    format!("../../node/node{nid}")
}

/// `nodeK/memoryN`: the node's block.
pub fn node_block_target(block: u64) -> String {
    format!("../../memory/memory{block}")
}

/// `memoryN/subsystem`: the memory bus (bus_add_device links it), by which tools such as
/// udevadm tell a device's subsystem.
pub const SUBSYSTEM_TARGET: &str = "../../../../bus/memory";

/// `sys/bus/memory/devices/memoryN`: the bus's link to each of its devices (bus_add_device
/// too), how udevadm and libudev enumerate the memory subsystem.
pub fn bus_device_target(block: u64) -> String {
    format!("../../../devices/system/memory/memory{block}")
}

/// Every entry of the tree.
pub fn entries(model: &Model) -> Vec<Entry> {
    let mut out: Vec<Entry> =
        super::sysfs::files(model).into_iter().map(|(rel, text, mode)| Entry::File(format!("{MEMORY}/{rel}"), text, mode)).collect();
    // register_memory_block_under_node(): a link each way between a block and its node;
    // the driver core's links between the device and its bus (bus_add_device).
    for b in model.blocks.values() {
        out.push(Entry::Link(format!("{MEMORY}/memory{}/node{}", b.id, b.nid), block_node_target(b.nid)));
        out.push(Entry::Link(format!("{NODE}/node{}/memory{}", b.nid, b.id), node_block_target(b.id)));
        out.push(Entry::Link(format!("{MEMORY}/memory{}/subsystem", b.id), SUBSYSTEM_TARGET.to_string()));
        out.push(Entry::Link(format!("{BUS_DEVICES}/memory{}", b.id), bus_device_target(b.id)));
    }
    for (name, mode) in NODE_ROOT_FILES {
        if let Some(text) = node_root_file(model, name) {
            out.push(Entry::File(format!("{NODE}/{name}"), text, mode));
        }
    }
    for n in model.nodes.values().filter(|n| n.online) {
        for (name, mode) in NODE_FILES {
            if let Some(text) = node_file(model, n.id, name) {
                out.push(Entry::File(format!("{NODE}/node{}/{name}", n.id), text, mode));
            }
        }
    }
    for view in View::ALL {
        out.push(Entry::File(format!("proc/{}", view.name()), view.render(model), View::PROC_MODE));
    }
    out
}

/// The files of the node directory itself (node masks), all read-only.
pub const NODE_ROOT_FILES: [(&str, u32); 5] =
    [("possible", 0o444), ("online", 0o444), ("has_memory", 0o444), ("has_normal_memory", 0o444), ("has_cpu", 0o444)];

/// The files of each online node's directory.
pub const NODE_FILES: [(&str, u32); 2] = [("distance", 0o444), ("meminfo", 0o444)];

/// The text of a file of the node directory itself.
pub fn node_root_file(model: &Model, name: &str) -> Option<String> {
    let nodes =
        |pred: &dyn Fn(&crate::model::Node) -> bool| -> Vec<u32> { model.nodes.values().filter(|n| pred(n)).map(|n| n.id).collect() };
    let with = |pred: &dyn Fn(ZoneType) -> bool| nodes(&|n| ZoneType::ALL.iter().any(|&z| pred(z) && n.zone(z).present > 0));
    let list = match name {
        "possible" => nodes(&|_| true),
        "online" => nodes(&|n| n.online),
        "has_memory" => with(&|z| z != ZoneType::Device),
        "has_normal_memory" => with(&|z| z.is_kernel()),
        "has_cpu" => nodes(&|n| n.facts.has_cpus),
        _ => return None,
    };
    Some(format!("{}\n", node_list(&list)))
}

/// The text of file `name` of node `nid`'s directory (`None`: no such file, or the node
/// is not online and so has no directory).
pub fn node_file(model: &Model, nid: u32, name: &str) -> Option<String> {
    let n = model.nodes.get(&nid).filter(|n| n.online)?;
    match name {
        "distance" => {
            let online: Vec<u32> = model.nodes.values().filter(|n| n.online).map(|n| n.id).collect();
            Some(distance_line(model, nid, &online))
        }
        "meminfo" => {
            let page_kb = model.geometry.page_size() / 1024;
            let (total, free) = (n.managed_pages() * page_kb, n.free_pages() * page_kb);
            let mut meminfo = String::new();
            for (label, kb) in [("MemTotal", total), ("MemFree", free), ("MemUsed", total.saturating_sub(free))] {
                // node_read_meminfo: /proc/meminfo's line behind a "Node N " prefix.
                let _ = write!(meminfo, "Node {} ", n.id);
                super::meminfo::line(&mut meminfo, label, kb);
            }
            Some(meminfo)
        }
        _ => None,
    }
}

/// A node mask as the kernel prints it (`%*pbl`): ranges and singles, `0-1,3`; empty: "".
fn node_list(nodes: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < nodes.len() {
        let start = nodes[i];
        let mut end = start;
        while i + 1 < nodes.len() && nodes[i + 1] == end + 1 {
            i += 1;
            end = nodes[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(",")
}

/// node_read_distance(): the distance to each online node, in id order, a space before
/// every entry but node 0's (the kernel tests the node id, not the position).
fn distance_line(model: &Model, from: u32, online: &[u32]) -> String {
    let mut line = String::new();
    for &to in online {
        let d = model.distances.get(from, to).unwrap_or_default();
        let _ = write!(line, "{}{d}", if to != 0 { " " } else { "" });
    }
    line.push('\n');
    line
}

/// Write the tree under `dir` (created if missing; an existing directory must be empty).
/// Returns the number of entries written.
pub fn write(model: &Model, dir: &Path) -> Result<usize, String> {
    write_entries(dir, "--sysroot-out", &entries(model))
}

/// Write `entries` under `dir`, all or nothing (a temporary directory beside it, renamed
/// into place); `dir` must not exist or be empty; errors name `flag`.
pub(super) fn write_entries(dir: &Path, flag: &str, entries: &[Entry]) -> Result<usize, String> {
    let reason = |e: &std::io::Error| crate::config::io_reason(e);
    crate::files::write_tree(dir, flag, |temp| {
        for entry in entries {
            let rel = match entry {
                Entry::File(rel, ..) | Entry::Link(rel, _) => rel,
            };
            let path = temp.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("{flag} {}: {}", dir.display(), reason(&e)))?;
            }
            let written = match entry {
                Entry::File(_, text, mode) => std::fs::write(&path, text).and_then(|()| set_mode(&path, *mode)),
                Entry::Link(_, target) => symlink(target, &path),
            };
            written.map_err(|e| format!("{flag} {}: cannot write {rel}: {}", dir.display(), reason(&e)))?;
        }
        Ok(entries.len())
    })
}

/// Give the file at `path` the kernel's mode for it (files are written 0644 less the
/// umask; sysfs attributes are 0444 unless they take writes).
#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// Make the link `link -> target`, as sysfs has it (shared with `host snapshot`).
#[cfg(unix)]
pub(crate) fn symlink(target: &str, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
pub(crate) fn symlink(target: &str, link: &Path) -> std::io::Result<()> {
    // No symbolic links: a file naming the target, which lsmem-style readers also find.
    std::fs::write(link, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lists_print_as_the_kernel_does() {
        assert_eq!(node_list(&[]), "");
        assert_eq!(node_list(&[0]), "0");
        assert_eq!(node_list(&[0, 1, 2, 4, 6, 7]), "0-2,4,6-7");
    }
}
