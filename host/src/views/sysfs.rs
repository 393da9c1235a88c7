//! /sys/devices/system/memory as files (drivers/base/memory.c), so that
//! `diff -r DIR /sys/devices/system/memory` compares the model with a real machine.
//! Only the kernel's own attributes are written; what only the model knows (vmemmap pages
//! per block, groups) stays in the report.

use std::path::Path;

use super::sysroot::Entry;
use crate::model::{BlockState, Model};

/// Every file of the tree, relative to the memory directory, with its text.
pub fn files(model: &Model) -> Vec<(String, String)> {
    let g = model.geometry;
    let mut out = vec![
        ("block_size_bytes".to_string(), format!("{:x}\n", g.g.memory_block_size)),
        ("auto_online_blocks".to_string(), format!("{}\n", model.policy.auto_online_blocks.as_str())),
    ];
    for b in model.blocks.values() {
        let dir = format!("memory{}", b.id);
        let online = b.state == BlockState::Online;
        out.push((format!("{dir}/state"), format!("{}\n", b.state.as_str())));
        out.push((format!("{dir}/online"), format!("{}\n", u8::from(online))));
        out.push((format!("{dir}/phys_index"), format!("{:08x}\n", b.id * g.sections_per_block())));
        out.push((format!("{dir}/valid_zones"), format!("{}\n", model.valid_zones(b.id).unwrap_or_default())));
        // x86 has no physical device numbers; every block is removable since 6.x.
        out.push((format!("{dir}/phys_device"), "0\n".to_string()));
        out.push((format!("{dir}/removable"), "1\n".to_string()));
    }
    out
}

/// Write the tree under `dir` (created if missing; an existing directory must be empty).
/// Returns the number of files written.
pub fn write(model: &Model, dir: &Path) -> Result<usize, String> {
    let entries: Vec<Entry> = files(model).into_iter().map(|(rel, text)| Entry::File(rel, text)).collect();
    super::sysroot::write_entries(dir, "--sysfs-out", &entries)
}
