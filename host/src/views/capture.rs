//! Reading a captured machine (`[machine] from`): a directory laid out as a root file
//! system with `proc/iomem`, `proc/zoneinfo` and `sys/devices/system/memory`, what `host
//! snapshot` writes, parsed into the model's [`Capture`]. The parsers live here, beside
//! the views that print the same formats.

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::block::BlockState;
use crate::model::capture::{Capture, Params, ZoneCounters};
use crate::model::policy::{AutoOnline, OnlinePolicy};
use crate::model::zone::ZoneType;

/// A file of the capture, with the path in the error.
fn read_file(root: &Path, rel: &str) -> Result<String, String> {
    let path = root.join(rel);
    std::fs::read_to_string(&path).map_err(|e| format!("capture {}: cannot read {rel}: {}", root.display(), crate::config::io_reason(&e)))
}

fn parse_iomem(text: &str) -> Result<Vec<(usize, u64, u64, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = || format!("proc/iomem line {}: {line:?} is not `start-end : name`", i + 1);
        let indent = line.len() - line.trim_start().len();
        let (range, name) = line.trim_start().split_once(" : ").ok_or_else(bad)?;
        let (s, e) = range.split_once('-').ok_or_else(bad)?;
        let start = u64::from_str_radix(s, 16).map_err(|_| bad())?;
        let end = u64::from_str_radix(e, 16).map_err(|_| bad())?;
        if end < start || indent % 2 != 0 {
            return Err(bad());
        }
        out.push((indent / 2, start, end, name.to_string()));
    }
    if out.is_empty() {
        return Err("proc/iomem is empty (captured without CAP_SYS_ADMIN? the addresses read as zeros)".into());
    }
    if out.iter().all(|&(_, s, e, _)| s == 0 && e == 0) {
        return Err("proc/iomem shows only zero addresses: capture it as root".into());
    }
    Ok(out)
}

fn parse_zoneinfo(text: &str) -> Result<ZoneCounters, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(u32, ZoneType)> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Node ") {
            let bad = || format!("proc/zoneinfo line {}: {line:?} is not `Node N, zone NAME`", i + 1);
            let (nid, zone) = rest.split_once(", zone").ok_or_else(bad)?;
            let nid: u32 = nid.trim().parse().map_err(|_| bad())?;
            let zone =
                ZoneType::from_name(zone.trim()).ok_or_else(|| format!("proc/zoneinfo line {}: unknown zone {:?}", i + 1, zone.trim()))?;
            out.insert((nid, zone), (0, 0, 0, 0));
            current = Some((nid, zone));
            continue;
        }
        let Some(key) = current else { continue };
        let mut words = t.split_whitespace();
        let (Some(name), Some(value), None) = (words.next(), words.next(), words.next()) else { continue };
        let slot = out.get_mut(&key).expect("zone inserted");
        let value = || value.parse::<u64>().map_err(|_| format!("proc/zoneinfo line {}: {line:?}: not a number", i + 1));
        match name {
            "spanned" => slot.1 = value()?,
            "present" => slot.2 = value()?,
            "managed" => slot.3 = value()?,
            "start_pfn:" => slot.0 = value()?,
            _ => {}
        }
    }
    if out.is_empty() {
        return Err("proc/zoneinfo names no zone".into());
    }
    Ok(out)
}

/// Read a capture rooted at `root`.
/// meminfo's `MemTotal:   N kB`.
pub fn memtotal_kb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// The zone counters of `zoneinfo` text (for `host snapshot`'s settle check).
pub fn zone_counters(zoneinfo: &str) -> Result<crate::model::capture::ZoneCounters, String> {
    parse_zoneinfo(zoneinfo)
}

pub fn read(root: &Path) -> Result<Capture, String> {
    if !root.is_dir() {
        return Err(format!("capture {}: not a directory", root.display()));
    }
    let iomem = parse_iomem(&read_file(root, "proc/iomem")?).map_err(|e| format!("capture {}: {e}", root.display()))?;
    let zones = parse_zoneinfo(&read_file(root, "proc/zoneinfo")?).map_err(|e| format!("capture {}: {e}", root.display()))?;
    let mem = "sys/devices/system/memory";
    let bs_text = read_file(root, &format!("{mem}/block_size_bytes"))?;
    let block_size = u64::from_str_radix(bs_text.trim(), 16)
        .map_err(|_| format!("capture {}: {mem}/block_size_bytes holds {:?}, not a hex size", root.display(), bs_text.trim()))?;
    let auto_online_blocks = match read_file(root, &format!("{mem}/auto_online_blocks")) {
        Ok(t) => Some(
            AutoOnline::from_name(t.trim())
                .ok_or_else(|| format!("capture {}: auto_online_blocks {:?} is unknown", root.display(), t.trim()))?,
        ),
        Err(_) => None,
    };
    let mut blocks = BTreeMap::new();
    let dir = std::fs::read_dir(root.join(mem))
        .map_err(|e| format!("capture {}: cannot list {mem}: {}", root.display(), crate::config::io_reason(&e)))?;
    for entry in dir.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_prefix("memory").and_then(|n| n.parse::<u64>().ok()) else { continue };
        let state = match read_file(root, &format!("{mem}/{name}/state"))?.trim() {
            "online" => BlockState::Online,
            "offline" => BlockState::Offline,
            other => return Err(format!("capture {}: {mem}/{name}/state is {other:?}", root.display())),
        };
        let valid_zones = read_file(root, &format!("{mem}/{name}/valid_zones")).unwrap_or_default().trim().to_string();
        blocks.insert(id, (state, valid_zones));
    }
    if blocks.is_empty() {
        return Err(format!("capture {}: {mem} holds no memoryN directories", root.display()));
    }
    let param = |name: &str| read_file(root, &format!("sys/module/memory_hotplug/parameters/{name}")).ok().map(|t| t.trim().to_string());
    let params = Params {
        online_policy: param("online_policy").and_then(|p| OnlinePolicy::from_name(&p)),
        auto_movable_ratio: param("auto_movable_ratio").and_then(|p| p.parse().ok()),
        auto_movable_numa_aware: param("auto_movable_numa_aware").map(|p| p == "Y"),
    };
    let meminfo_total_kb = read_file(root, "proc/meminfo").ok().as_deref().and_then(memtotal_kb);
    Ok(Capture { iomem, zones, block_size, auto_online_blocks, blocks, params, meminfo_total_kb })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iomem_lines_parse_with_depth() {
        let v = parse_iomem("00001000-0009fbff : System RAM\n  000de000-000defff : AMZNC10C:00\n").unwrap();
        assert_eq!(v, vec![(0, 0x1000, 0x9fbff, "System RAM".into()), (1, 0xde000, 0xdefff, "AMZNC10C:00".into())]);
        assert!(parse_iomem("garbage\n").unwrap_err().contains("line 1"));
        assert!(parse_iomem("00000000-00000000 : System RAM\n").unwrap_err().contains("root"));
    }

    #[test]
    fn zoneinfo_counters_parse() {
        let z = parse_zoneinfo("Node 0, zone      DMA\n  pages free 3\n        spanned  4095\n        present  3998\n        managed  3840\n  start_pfn:           1\nNode 0, zone  Movable\n        spanned  0\n").unwrap();
        assert_eq!(z[&(0, ZoneType::Dma)], (1, 4095, 3998, 3840));
        assert_eq!(z[&(0, ZoneType::Movable)], (0, 0, 0, 0));
    }
}
