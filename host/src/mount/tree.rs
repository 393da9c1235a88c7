//! The names of the live tree and what each holds, worked out from the model at the
//! moment of the call: no table of paths is kept, so a 64 TiB machine with half a
//! million memory blocks costs a lookup per name, not a walk per change.
//!
//! Every entry has a fixed inode number: its kind in the low byte and, for per-block and
//! per-node entries, the block or node id above it (the root is kind 1 with id 0: FUSE's
//! root inode 1). The layout is the static `--sysroot-out` tree's, plus `hotplug-lab/`.

use crate::model::Model;
use crate::views::sysfs::{BLOCK_FILES, ROOT_FILES};
use crate::views::sysroot::{self, NODE_FILES, NODE_ROOT_FILES};
use crate::views::View;

/// A directory, file or link of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Root,
    Sys,
    Devices,
    System,
    /// sys/devices/system/memory
    Memory,
    /// sys/devices/system/node
    NodeTop,
    Proc,
    /// hotplug-lab/: what is ours.
    Lab,
    /// sys/bus, sys/bus/memory, sys/bus/memory/devices
    Bus,
    BusMemory,
    BusDevices,
    /// sys/bus/memory/devices/memoryN, to the block.
    BusDeviceLink(u64),
    /// memory/block_size_bytes, memory/auto_online_blocks (index into `ROOT_FILES`).
    MemoryFile(usize),
    /// memory/probe (x86: CONFIG_ARCH_MEMORY_PROBE), write-only.
    Probe,
    BlockDir(u64),
    /// memoryN/state ... (index into `BLOCK_FILES`).
    BlockFile(u64, usize),
    /// memoryN/nodeK, to the block's node.
    BlockNodeLink(u64),
    /// memoryN/uevent: reads empty (memory blocks add no variables); a write sends a
    /// synthetic uevent (kobject_synth_uevent), as `udevadm trigger` does.
    BlockUevent(u64),
    /// memoryN/subsystem, to the memory bus.
    BlockSubsystemLink(u64),
    /// node/possible ... (index into `NODE_ROOT_FILES`).
    NodeRootFile(usize),
    NodeDir(u32),
    /// nodeK/distance, nodeK/meminfo (index into `NODE_FILES`).
    NodeFile(u32, usize),
    /// nodeK/memoryN, to block N (K: the block's node).
    NodeMemoryLink(u64),
    ProcFile(View),
    /// hotplug-lab/ctl: one config step per write; reads the last write's result.
    Ctl,
    /// hotplug-lab/events: memory-block uevents, one per read, blocking.
    Events,
    /// hotplug-lab/state.json: the report's state of the model now.
    StateJson,
}

/// What an entry is, for `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Link,
}

const LAB_FILES: [(&str, Node, u32); 3] =
    [("ctl", Node::Ctl, 0o600), ("events", Node::Events, 0o400), ("state.json", Node::StateJson, 0o444)];

impl Node {
    /// The entry's inode number.
    pub fn ino(self) -> u64 {
        let (kind, id): (u64, u64) = match self {
            Node::Root => (1, 0),
            Node::Sys => (2, 0),
            Node::Devices => (3, 0),
            Node::System => (4, 0),
            Node::Memory => (5, 0),
            Node::NodeTop => (6, 0),
            Node::Proc => (7, 0),
            Node::Lab => (8, 0),
            Node::Bus => (9, 0),
            Node::BusMemory => (10, 0),
            Node::BusDevices => (11, 0),
            Node::MemoryFile(i) => (16 + i as u64, 0),
            Node::Probe => (23, 0),
            Node::BlockDir(b) => (24, b),
            Node::BlockFile(b, i) => (32 + i as u64, b),
            Node::BlockNodeLink(b) => (40, b),
            Node::BlockUevent(b) => (41, b),
            Node::BlockSubsystemLink(b) => (42, b),
            Node::BusDeviceLink(b) => (43, b),
            Node::NodeRootFile(i) => (48 + i as u64, 0),
            Node::NodeDir(n) => (56, u64::from(n)),
            Node::NodeFile(n, i) => (64 + i as u64, u64::from(n)),
            Node::NodeMemoryLink(b) => (72, b),
            Node::ProcFile(v) => (80 + View::ALL.iter().position(|x| *x == v).unwrap_or(0) as u64, 0),
            Node::Ctl => (96, 0),
            Node::Events => (97, 0),
            Node::StateJson => (98, 0),
        };
        (id << 8) | kind
    }

    /// The entry an inode number names, if it is one of ours (whether it still exists is
    /// [`exists`]'s question).
    pub fn from_ino(ino: u64) -> Option<Node> {
        let (kind, id) = (ino & 0xff, ino >> 8);
        let fixed = |n: Node| (id == 0).then_some(n);
        match kind {
            1 => fixed(Node::Root),
            2 => fixed(Node::Sys),
            3 => fixed(Node::Devices),
            4 => fixed(Node::System),
            5 => fixed(Node::Memory),
            6 => fixed(Node::NodeTop),
            7 => fixed(Node::Proc),
            8 => fixed(Node::Lab),
            9 => fixed(Node::Bus),
            10 => fixed(Node::BusMemory),
            11 => fixed(Node::BusDevices),
            k @ 16..=22 if ((k - 16) as usize) < ROOT_FILES.len() => fixed(Node::MemoryFile((k - 16) as usize)),
            23 => fixed(Node::Probe),
            24 => Some(Node::BlockDir(id)),
            k @ 32..=39 if ((k - 32) as usize) < BLOCK_FILES.len() => Some(Node::BlockFile(id, (k - 32) as usize)),
            40 => Some(Node::BlockNodeLink(id)),
            41 => Some(Node::BlockUevent(id)),
            42 => Some(Node::BlockSubsystemLink(id)),
            43 => Some(Node::BusDeviceLink(id)),
            k @ 48..=55 if ((k - 48) as usize) < NODE_ROOT_FILES.len() => fixed(Node::NodeRootFile((k - 48) as usize)),
            56 => u32::try_from(id).ok().map(Node::NodeDir),
            k @ 64..=71 if ((k - 64) as usize) < NODE_FILES.len() => u32::try_from(id).ok().map(|n| Node::NodeFile(n, (k - 64) as usize)),
            72 => Some(Node::NodeMemoryLink(id)),
            k @ 80..=95 => View::ALL.get((k - 80) as usize).and_then(|&v| fixed(Node::ProcFile(v))),
            96 => fixed(Node::Ctl),
            97 => fixed(Node::Events),
            98 => fixed(Node::StateJson),
            _ => None,
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Node::Root | Node::Sys | Node::Devices | Node::System | Node::Memory | Node::NodeTop | Node::Proc | Node::Lab => Kind::Dir,
            Node::Bus | Node::BusMemory | Node::BusDevices => Kind::Dir,
            Node::BlockDir(_) | Node::NodeDir(_) => Kind::Dir,
            Node::BlockNodeLink(_) | Node::NodeMemoryLink(_) | Node::BlockSubsystemLink(_) | Node::BusDeviceLink(_) => Kind::Link,
            _ => Kind::File,
        }
    }

    /// Permission bits, as sysfs and procfs give them.
    pub fn mode(self) -> u32 {
        match self {
            n if n.kind() == Kind::Dir => 0o755,
            n if n.kind() == Kind::Link => 0o777,
            Node::MemoryFile(i) => ROOT_FILES[i].1,
            Node::Probe => 0o200,
            Node::BlockUevent(_) => 0o644,
            Node::BlockFile(_, i) => BLOCK_FILES[i].1,
            Node::NodeRootFile(i) => NODE_ROOT_FILES[i].1,
            Node::NodeFile(_, i) => NODE_FILES[i].1,
            Node::ProcFile(_) => View::PROC_MODE,
            Node::Ctl | Node::Events | Node::StateJson => LAB_FILES.iter().find(|f| f.1 == self).map_or(0o444, |f| f.2),
            _ => 0o444,
        }
    }

    /// Whether a write may reach this entry.
    pub fn writable(self) -> bool {
        self.mode() & 0o200 != 0
    }
}

/// x86 kernels have the probe file (CONFIG_ARCH_MEMORY_PROBE); the model's other
/// architectures do not.
fn has_probe(model: &Model) -> bool {
    model.geometry.g.arch == hotplug_core::Arch::X86_64
}

/// Whether `node` exists in the model now.
pub fn exists(model: &Model, node: Node) -> bool {
    match node {
        Node::Probe => has_probe(model),
        Node::BlockDir(b)
        | Node::BlockFile(b, _)
        | Node::BlockNodeLink(b)
        | Node::BlockUevent(b)
        | Node::BlockSubsystemLink(b)
        | Node::BusDeviceLink(b) => model.blocks.contains(b),
        Node::NodeDir(n) | Node::NodeFile(n, _) => model.nodes.get(&n).is_some_and(|n| n.online),
        Node::NodeMemoryLink(b) => model.blocks.get(&b).is_some_and(|blk| model.nodes.get(&blk.nid).is_some_and(|n| n.online)),
        _ => true,
    }
}

/// The entry `name` in directory `dir`.
pub fn lookup(model: &Model, dir: Node, name: &str) -> Option<Node> {
    // `memory42`, never `memory042` or `memory+42`: the kernel's names only.
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()) && (*d == "0" || !d.starts_with('0')))
            .and_then(|d| d.parse::<u64>().ok())
    };
    let found = match dir {
        Node::Root => match name {
            "sys" => Node::Sys,
            "proc" => Node::Proc,
            "hotplug-lab" => Node::Lab,
            _ => return None,
        },
        Node::Sys if name == "devices" => Node::Devices,
        Node::Sys if name == "bus" => Node::Bus,
        Node::Bus if name == "memory" => Node::BusMemory,
        Node::BusMemory if name == "devices" => Node::BusDevices,
        Node::BusDevices => Node::BusDeviceLink(numbered("memory")?),
        Node::Devices if name == "system" => Node::System,
        Node::System if name == "memory" => Node::Memory,
        Node::System if name == "node" => Node::NodeTop,
        Node::Memory => {
            if let Some(i) = ROOT_FILES.iter().position(|f| f.0 == name) {
                Node::MemoryFile(i)
            } else if name == "probe" {
                Node::Probe
            } else {
                Node::BlockDir(numbered("memory")?)
            }
        }
        Node::BlockDir(b) => match BLOCK_FILES.iter().position(|f| f.0 == name) {
            Some(i) => Node::BlockFile(b, i),
            None if name == "uevent" => Node::BlockUevent(b),
            None if name == "subsystem" => Node::BlockSubsystemLink(b),
            None => {
                let nid = model.blocks.get(&b)?.nid;
                (numbered("node")? == u64::from(nid)).then_some(Node::BlockNodeLink(b))?
            }
        },
        Node::NodeTop => match NODE_ROOT_FILES.iter().position(|f| f.0 == name) {
            Some(i) => Node::NodeRootFile(i),
            None => Node::NodeDir(u32::try_from(numbered("node")?).ok()?),
        },
        Node::NodeDir(n) => match NODE_FILES.iter().position(|f| f.0 == name) {
            Some(i) => Node::NodeFile(n, i),
            None => {
                let b = numbered("memory")?;
                (model.blocks.get(&b)?.nid == n).then_some(Node::NodeMemoryLink(b))?
            }
        },
        Node::Proc => Node::ProcFile(View::from_name(name)?),
        Node::Lab => LAB_FILES.iter().find(|f| f.0 == name)?.1,
        _ => return None,
    };
    exists(model, found).then_some(found)
}

/// Where a directory's per-block entries start in its readdir offsets: the fixed
/// entries come first, at offsets below.
pub const FIRST_ID_OFFSET: u64 = 64;

/// A directory's entries from readdir offset `offset` on, each with the offset of the
/// entry after it, at most `limit` of them. Blocks are listed by id from the block the
/// offset names, so a listing of half a million blocks in many calls costs each call
/// only its own entries.
pub fn entries(model: &Model, dir: Node, offset: u64, limit: usize) -> Vec<(u64, Node, String)> {
    let mut fixed: Vec<(Node, String)> = Vec::new();
    match dir {
        Node::Root => fixed.extend([(Node::Sys, "sys".into()), (Node::Proc, "proc".into()), (Node::Lab, "hotplug-lab".into())]),
        Node::Sys => fixed.extend([(Node::Devices, "devices".into()), (Node::Bus, "bus".into())]),
        Node::Bus => fixed.push((Node::BusMemory, "memory".into())),
        Node::BusMemory => fixed.push((Node::BusDevices, "devices".into())),
        Node::Devices => fixed.push((Node::System, "system".into())),
        Node::System => fixed.extend([(Node::Memory, "memory".into()), (Node::NodeTop, "node".into())]),
        Node::Memory => {
            fixed.extend(ROOT_FILES.iter().enumerate().map(|(i, f)| (Node::MemoryFile(i), f.0.to_string())));
            if has_probe(model) {
                fixed.push((Node::Probe, "probe".into()));
            }
        }
        Node::BlockDir(b) => {
            fixed.extend(BLOCK_FILES.iter().enumerate().map(|(i, f)| (Node::BlockFile(b, i), f.0.to_string())));
            fixed.push((Node::BlockUevent(b), "uevent".into()));
            fixed.push((Node::BlockSubsystemLink(b), "subsystem".into()));
            if let Some(blk) = model.blocks.get(&b) {
                fixed.push((Node::BlockNodeLink(b), format!("node{}", blk.nid)));
            }
        }
        Node::NodeTop => fixed.extend(NODE_ROOT_FILES.iter().enumerate().map(|(i, f)| (Node::NodeRootFile(i), f.0.to_string()))),
        Node::NodeDir(n) => fixed.extend(NODE_FILES.iter().enumerate().map(|(i, f)| (Node::NodeFile(n, i), f.0.to_string()))),
        Node::Proc => fixed.extend(View::ALL.iter().map(|&v| (Node::ProcFile(v), v.name().to_string()))),
        Node::Lab => fixed.extend(LAB_FILES.iter().map(|f| (f.1, f.0.to_string()))),
        _ => {}
    }
    let mut out: Vec<(u64, Node, String)> = Vec::new();
    for (i, (node, name)) in fixed.into_iter().enumerate() {
        let at = i as u64;
        if at >= offset && out.len() < limit {
            out.push((at + 1, node, name));
        }
    }
    let from_id = offset.saturating_sub(FIRST_ID_OFFSET);
    match dir {
        Node::Memory | Node::BusDevices => {
            let entry = if dir == Node::Memory { Node::BlockDir } else { Node::BusDeviceLink };
            for (first, end, _) in model.blocks.runs_in(from_id, u64::MAX) {
                for id in first.max(from_id)..end {
                    if out.len() >= limit {
                        return out;
                    }
                    out.push((FIRST_ID_OFFSET + id + 1, entry(id), format!("memory{id}")));
                }
            }
        }
        Node::NodeTop => {
            for n in model.nodes.values().filter(|n| n.online && u64::from(n.id) >= from_id) {
                if out.len() >= limit {
                    return out;
                }
                out.push((FIRST_ID_OFFSET + u64::from(n.id) + 1, Node::NodeDir(n.id), format!("node{}", n.id)));
            }
        }
        Node::NodeDir(nid) => {
            for (first, end, info) in model.blocks.runs_in(from_id, u64::MAX) {
                if info.nid != nid {
                    continue;
                }
                for id in first.max(from_id)..end {
                    if out.len() >= limit {
                        return out;
                    }
                    out.push((FIRST_ID_OFFSET + id + 1, Node::NodeMemoryLink(id), format!("memory{id}")));
                }
            }
        }
        _ => {}
    }
    out
}

/// Where a link points, as sysfs makes it (relative).
pub fn link_target(model: &Model, node: Node) -> Option<String> {
    match node {
        Node::BlockNodeLink(b) => Some(sysroot::block_node_target(model.blocks.get(&b)?.nid)),
        Node::NodeMemoryLink(b) => Some(sysroot::node_block_target(b)),
        Node::BlockSubsystemLink(_) => Some(sysroot::SUBSYSTEM_TARGET.to_string()),
        Node::BusDeviceLink(b) => Some(sysroot::bus_device_target(b)),
        _ => None,
    }
}

/// A file's text now (`None`: not a readable file of the model; `events` and `ctl` are
/// the live state's).
pub fn content(model: &Model, node: Node) -> Option<String> {
    match node {
        Node::MemoryFile(i) => crate::views::sysfs::root_file(model, ROOT_FILES[i].0),
        Node::BlockFile(b, i) => crate::views::sysfs::block_file(model, &model.blocks.get(&b)?, BLOCK_FILES[i].0),
        Node::NodeRootFile(i) => crate::views::sysroot::node_root_file(model, NODE_ROOT_FILES[i].0),
        Node::NodeFile(n, i) => crate::views::sysroot::node_file(model, n, NODE_FILES[i].0),
        Node::ProcFile(v) => Some(v.render(model)),
        Node::BlockUevent(_) => Some(String::new()),
        Node::StateJson => serde_json::to_string_pretty(&crate::report::state(model)).ok().map(|s| s + "\n"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_inode_names_itself_back() {
        let nodes = [
            Node::Root,
            Node::Memory,
            Node::MemoryFile(1),
            Node::Probe,
            Node::BlockDir(524_287),
            Node::BlockFile(7, 5),
            Node::BlockNodeLink(3),
            Node::BlockUevent(1 << 40),
            Node::BlockSubsystemLink(5),
            Node::Bus,
            Node::BusMemory,
            Node::BusDevices,
            Node::BusDeviceLink(524_288),
            Node::NodeRootFile(4),
            Node::NodeDir(1023),
            Node::NodeFile(2, 1),
            Node::NodeMemoryLink(9),
            Node::ProcFile(View::Meminfo),
            Node::Ctl,
            Node::Events,
            Node::StateJson,
        ];
        for n in nodes {
            assert_eq!(Node::from_ino(n.ino()), Some(n), "{n:?}");
        }
        // FUSE's root inode is 1.
        assert_eq!(Node::Root.ino(), 1);
        assert_eq!(Node::from_ino(0), None);
        assert_eq!(Node::from_ino(0x1_01), None, "the root has no id");
        assert_eq!(Node::from_ino(16 + 9), None, "no tenth memory file");
    }
}
