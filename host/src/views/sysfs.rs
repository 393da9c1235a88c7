//! /sys/devices/system/memory as files (drivers/base/memory.c), so that
//! `diff -r DIR /sys/devices/system/memory` compares the model with a real machine.
//! Only the kernel's own attributes are written; what only the model knows (vmemmap pages
//! per block, groups) stays in the report.

use std::path::Path;

use super::sysroot::Entry;
use crate::model::{BlockState, MemoryBlock, Model};

/// The files of the memory directory itself, with their modes (sysfs's: 0644 for the
/// writable ones).
pub const ROOT_FILES: [(&str, u32); 2] = [("block_size_bytes", 0o444), ("auto_online_blocks", 0o644)];

/// The files of each memoryN directory, with their modes.
pub const BLOCK_FILES: [(&str, u32); 6] =
    [("state", 0o644), ("online", 0o644), ("phys_index", 0o444), ("valid_zones", 0o444), ("phys_device", 0o444), ("removable", 0o444)];

/// The text of a file of the memory directory itself.
pub fn root_file(model: &Model, name: &str) -> Option<String> {
    match name {
        "block_size_bytes" => Some(format!("{:x}\n", model.geometry.g.memory_block_size)),
        "auto_online_blocks" => Some(format!("{}\n", model.policy.auto_online_blocks.as_str())),
        _ => None,
    }
}

/// The text of file `name` of block `b`'s directory.
pub fn block_file(model: &Model, b: &MemoryBlock, name: &str) -> Option<String> {
    let online = b.state == BlockState::Online;
    Some(match name {
        "state" => format!("{}\n", b.state.as_str()),
        "online" => format!("{}\n", u8::from(online)),
        "phys_index" => format!("{:08x}\n", b.id * model.geometry.sections_per_block()),
        "valid_zones" => format!("{}\n", model.valid_zones(b.id).unwrap_or_default()),
        // x86 has no physical device numbers; every block is removable since 6.x.
        "phys_device" => "0\n".to_string(),
        "removable" => "1\n".to_string(),
        _ => return None,
    })
}

/// Every file of the tree, relative to the memory directory, with its text and mode.
pub fn files(model: &Model) -> Vec<(String, String, u32)> {
    let mut out: Vec<(String, String, u32)> =
        ROOT_FILES.iter().filter_map(|&(name, mode)| Some((name.to_string(), root_file(model, name)?, mode))).collect();
    for b in model.blocks.values() {
        for (name, mode) in BLOCK_FILES {
            if let Some(text) = block_file(model, &b, name) {
                out.push((format!("memory{}/{name}", b.id), text, mode));
            }
        }
    }
    out
}

/// Write the tree under `dir` (created if missing; an existing directory must be empty).
/// Returns the number of files written.
pub fn write(model: &Model, dir: &Path) -> Result<usize, String> {
    let entries: Vec<Entry> = files(model).into_iter().map(|(rel, text, mode)| Entry::File(rel, text, mode)).collect();
    super::sysroot::write_entries(dir, "--sysfs-out", &entries)
}
