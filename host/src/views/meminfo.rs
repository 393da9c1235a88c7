//! /proc/meminfo (fs/proc/meminfo.c): `MemTotal` is the sum of managed pages; `MemFree`
//! is the model's free account (boot free + onlined since boot - memmap taken), which a
//! real kernel also moves with allocations the model cannot predict.

use std::fmt::Write as _;

use crate::model::Model;

/// One `Name:   value kB` line: the label padded to 16 columns, the value to 8.
pub(super) fn line(out: &mut String, label: &str, kb: u64) {
    let _ = writeln!(out, "{:<16}{kb:>8} kB", format!("{label}:"));
}

pub(super) fn render(model: &Model) -> String {
    let page_kb = model.geometry.page_size() / 1024;
    let free: u64 = model.nodes.values().map(|n| n.free_pages()).sum();
    let mut out = String::new();
    line(&mut out, "MemTotal", model.total_managed() * page_kb);
    line(&mut out, "MemFree", free * page_kb);
    out
}
