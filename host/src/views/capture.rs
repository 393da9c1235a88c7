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

/// A file of the capture, with the path in the error: a regular file inside the capture
/// directory (a symlink out of it is refused, so an error never quotes another file),
/// at most its limit (`files::capture_limit`), UTF-8.
fn read_file(root: &Path, rel: &str) -> Result<String, String> {
    let bad = |why: String| format!("capture {}: cannot read {rel}: {why}", root.display());
    let path = crate::files::inside(root, &root.join(rel)).map_err(bad)?;
    let bytes = crate::files::read_bounded(&path, crate::files::capture_limit(rel)).map_err(|e| bad(format!("it {e}")))?;
    String::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8 text (at byte {})", e.utf8_error().valid_up_to())))
}

/// Quote at most this many bytes of an offending line.
const EXCERPT: usize = 48;

/// The most pages a zone may span: every pfn of a 64-bit physical address space of 4 KiB
/// pages (2^52); a counter above it is no machine's.
const MAX_ZONE_PAGES: u64 = 1 << 52;

fn parse_iomem(text: &str) -> Result<Vec<(usize, u64, u64, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = || format!("proc/iomem line {}: {} is not `start-end : name`", i + 1, crate::files::excerpt(line, EXCERPT));
        let indent = line.len() - line.trim_start().len();
        let (range, name) = line.trim_start().split_once(" : ").ok_or_else(bad)?;
        let (s, e) = range.split_once('-').ok_or_else(bad)?;
        let start = u64::from_str_radix(s, 16).map_err(|_| bad())?;
        let end = u64::from_str_radix(e, 16).map_err(|_| bad())?;
        if end < start || indent % 2 != 0 {
            return Err(bad());
        }
        if end == u64::MAX {
            // The kernel's iomem root ends at 2^MAX_PHYSMEM_BITS - 1; a range ending at the
            // last address would make its exclusive end wrap.
            return Err(format!("proc/iomem line {}: a range ending at ffffffffffffffff is past any physical address space", i + 1));
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
            let bad = || format!("proc/zoneinfo line {}: {} is not `Node N, zone NAME`", i + 1, crate::files::excerpt(line, EXCERPT));
            let (nid, zone) = rest.split_once(", zone").ok_or_else(bad)?;
            let nid: u32 = nid.trim().parse().map_err(|_| bad())?;
            let zone = ZoneType::from_name(zone.trim())
                .ok_or_else(|| format!("proc/zoneinfo line {}: unknown zone {}", i + 1, crate::files::excerpt(zone.trim(), EXCERPT)))?;
            out.insert((nid, zone), (0, 0, 0, 0));
            current = Some((nid, zone));
            continue;
        }
        let Some(key) = current else { continue };
        let mut words = t.split_whitespace();
        let (Some(name), Some(value), None) = (words.next(), words.next(), words.next()) else { continue };
        let slot = out.get_mut(&key).expect("zone inserted");
        let value = || match value.parse::<u64>() {
            Ok(v) if v <= MAX_ZONE_PAGES => Ok(v),
            Ok(v) => Err(format!("proc/zoneinfo line {}: {name} {v} is more pages than a 64-bit address space holds", i + 1)),
            Err(_) => Err(format!("proc/zoneinfo line {}: {}: not a number", i + 1, crate::files::excerpt(line, EXCERPT))),
        };
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
    for (&(nid, zone), &(start, spanned, present, managed)) in &out {
        // The kernel's own order: managed <= present <= spanned, and the span inside 2^52.
        let line = lines_of_zone(text, nid, zone);
        if managed > present || present > spanned {
            return Err(format!(
                "proc/zoneinfo line {line}: node {nid} zone {}: managed {managed} <= present {present} <= spanned {spanned} does not hold",
                zone.name()
            ));
        }
        if start.checked_add(spanned).is_none_or(|end| end > MAX_ZONE_PAGES) {
            return Err(format!(
                "proc/zoneinfo line {line}: node {nid} zone {}: start_pfn {start} + spanned {spanned} is past 2^52 pages",
                zone.name()
            ));
        }
    }
    Ok(out)
}

/// The line (1-based) of zoneinfo's `Node nid, zone NAME` header, for messages.
fn lines_of_zone(text: &str, nid: u32, zone: ZoneType) -> usize {
    text.lines()
        .position(|l| {
            l.trim()
                .strip_prefix("Node ")
                .and_then(|r| r.split_once(", zone"))
                .is_some_and(|(n, z)| n.trim().parse::<u32>().ok() == Some(nid) && ZoneType::from_name(z.trim()) == Some(zone))
        })
        .map_or(0, |i| i + 1)
}

/// A memory_hotplug parameter's text, parsed by `parse`, or an error naming the file and
/// quoting a short excerpt: a capture with garbage there is refused, not half-read.
fn param<T>(root: &Path, name: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<Option<T>, String> {
    let rel = format!("sys/module/memory_hotplug/parameters/{name}");
    if !root.join(&rel).exists() {
        return Ok(None);
    }
    let text = read_file(root, &rel)?;
    let value = text.trim();
    parse(value).map(Some).ok_or_else(|| {
        format!("capture {}: {rel} line 1: {} is not a value of {name}", root.display(), crate::files::excerpt(value, EXCERPT))
    })
}

/// meminfo's `MemTotal:   N kB`.
pub fn memtotal_kb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// The zone counters of `zoneinfo` text (for `host snapshot`'s settle check).
pub fn zone_counters(zoneinfo: &str) -> Result<crate::model::capture::ZoneCounters, String> {
    parse_zoneinfo(zoneinfo)
}

/// Read a capture rooted at `root`.
pub fn read(root: &Path) -> Result<Capture, String> {
    if !root.is_dir() {
        return Err(format!("capture {}: not a directory", root.display()));
    }
    let iomem = parse_iomem(&read_file(root, "proc/iomem")?).map_err(|e| format!("capture {}: {e}", root.display()))?;
    let zones = parse_zoneinfo(&read_file(root, "proc/zoneinfo")?).map_err(|e| format!("capture {}: {e}", root.display()))?;
    let mem = "sys/devices/system/memory";
    let bs_text = read_file(root, &format!("{mem}/block_size_bytes"))?;
    let block_size = u64::from_str_radix(bs_text.trim(), 16).map_err(|_| {
        format!(
            "capture {}: {mem}/block_size_bytes holds {}, not a hex size",
            root.display(),
            crate::files::excerpt(bs_text.trim(), EXCERPT)
        )
    })?;
    let auto_online_blocks = match read_file(root, &format!("{mem}/auto_online_blocks")) {
        Ok(t) => Some(AutoOnline::from_name(t.trim()).ok_or_else(|| {
            format!("capture {}: auto_online_blocks {} is unknown", root.display(), crate::files::excerpt(t.trim(), EXCERPT))
        })?),
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
            other => return Err(format!("capture {}: {mem}/{name}/state is {}", root.display(), crate::files::excerpt(other, EXCERPT))),
        };
        let valid_zones = read_file(root, &format!("{mem}/{name}/valid_zones")).unwrap_or_default().trim().to_string();
        blocks.insert(id, (state, valid_zones));
    }
    if blocks.is_empty() {
        return Err(format!("capture {}: {mem} holds no memoryN directories", root.display()));
    }
    let params = Params {
        online_policy: param(root, "online_policy", OnlinePolicy::from_name)?,
        auto_movable_ratio: param(root, "auto_movable_ratio", |p| p.parse().ok())?,
        auto_movable_numa_aware: param(root, "auto_movable_numa_aware", |p| match p {
            "Y" => Some(true),
            "N" => Some(false),
            _ => None,
        })?,
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
