//! /proc/iomem (kernel/resource.c r_show): `start-end : name`, lower-case hex padded to
//! at least 8 digits, end inclusive, two spaces of indent per nesting level.

use std::fmt::Write as _;

use crate::model::Model;

pub(super) fn render(model: &Model) -> String {
    let mut out = String::new();
    for (depth, r) in model.resources.walk() {
        let _ = writeln!(out, "{:indent$}{:08x}-{:08x} : {}", "", r.start, r.end, r.name, indent = depth * 2);
    }
    out
}
