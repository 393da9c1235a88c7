//! The layout of an nvdimm namespace used as fsdax or device-dax
//! (drivers/nvdimm/pfn_devs.c nd_pfn_init, __nvdimm_setup_pfn): an 8 KiB info block,
//! then, with `--map=dev`, the memmap, padded so the data starts on the alignment.

use serde::Deserialize;

const INFO_BLOCK: u64 = 8 << 10;
const SUBSECTION: u64 = 2 << 20;
/// nd_pfn_init sizes the memmap with a fixed 64-byte struct page.
const STRUCT_PAGE: u64 = 64;

/// Where the namespace's memmap lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Map {
    /// In RAM (`--map=mem`).
    Mem,
    /// In the namespace, through an altmap (`--map=dev`).
    Dev,
}

/// Where the data of a namespace starts, and the altmap that holds its memmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bytes from the namespace start to the first data page.
    pub data_offset: u64,
    /// Bytes cut from the end to keep it aligned.
    pub end_trunc: u64,
    /// Data pages (npfns).
    pub usable_pages: u64,
    /// `(reserve, free)` pages of the altmap, for `--map=dev`.
    pub altmap_pages: Option<(u64, u64)>,
}

/// Why a namespace cannot be laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// The start is not 2 MiB-aligned (EINVAL).
    Misaligned { start: u64 },
    /// The size is not a multiple of the alignment: the kernel would cut `end_trunc`
    /// bytes off the pgmap, which the model does not do (EINVAL).
    Truncated { end_trunc: u64 },
    /// The data offset swallows the namespace (ENXIO).
    NoRoom { offset: u64, size: u64 },
}

impl LayoutError {
    pub fn errno(&self) -> i32 {
        match self {
            LayoutError::NoRoom { .. } => hotplug_core::errno::ENXIO,
            _ => hotplug_core::errno::EINVAL,
        }
    }
}

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayoutError::Misaligned { start } => write!(f, "namespace start {start:#x} is not 2 MiB-aligned"),
            LayoutError::Truncated { end_trunc } => {
                write!(f, "namespace size is not a multiple of its alignment ({end_trunc} bytes would be truncated; not modelled)")
            }
            LayoutError::NoRoom { offset, size } => {
                write!(f, "data offset {offset:#x} leaves no room in a {size:#x}-byte namespace")
            }
        }
    }
}

/// Lay out a namespace of `size` bytes at `start` with alignment `align`.
pub fn layout(start: u64, size: u64, align: u64, map: Map, page: u64) -> Result<Layout, LayoutError> {
    let align = align.max(SUBSECTION);
    if start % SUBSECTION != 0 {
        return Err(LayoutError::Misaligned { start });
    }
    let end = start + size;
    let end_trunc = end - end / align * align;
    let offset = match map {
        Map::Mem => (start + INFO_BLOCK).next_multiple_of(align) - start,
        Map::Dev => {
            let npfns0 = (size - INFO_BLOCK.min(size)) / page;
            (start + INFO_BLOCK + STRUCT_PAGE * npfns0).next_multiple_of(align) - start
        }
    };
    if offset >= size.saturating_sub(end_trunc) {
        return Err(LayoutError::NoRoom { offset, size });
    }
    if end_trunc != 0 {
        return Err(LayoutError::Truncated { end_trunc });
    }
    // The altmap starts at the start rounded down to 2 MiB (here the start itself), so
    // its reserve is the info block.
    let altmap_pages = (map == Map::Dev).then(|| (INFO_BLOCK / page, (offset - INFO_BLOCK) / page));
    Ok(Layout { data_offset: offset, end_trunc, usable_pages: (size - offset - end_trunc) / page, altmap_pages })
}

use hotplug_core::size::{format_pages, format_size, thousands};

impl Layout {
    /// One line for the report.
    pub fn describe(&self, t: hotplug_core::PgmapType, size: u64, page: u64) -> String {
        let pct = self.data_offset as f64 * 100.0 / size as f64;
        let place = match self.altmap_pages {
            Some((reserve, free)) => {
                format!("memmap in the namespace (altmap reserve {}, free {} pages)", thousands(reserve), thousands(free))
            }
            None => "memmap in RAM".to_string(),
        };
        format!(
            "{} namespace: data offset {} ({pct:.3} %), {place}, {} usable",
            t.name(),
            format_size(self.data_offset),
            format_pages(self.usable_pages, page)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn sixteen_gib_map_dev_matches_the_kernel() {
        // KERNEL-FACTS 7: npfns0 = (16 GiB - 8 KiB) / 4 KiB = 4,194,302; offset = round up
        // (8 KiB + 64 x 4,194,302) to 2 MiB = round up (268,443,776) = 258 MiB; reserve 2,
        // free (258 MiB - 8 KiB) / 4 KiB = 66,046; usable (16 GiB - 258 MiB) / 4 KiB
        // = 4,194,304 - 66,048 = 4,128,256.
        let l = layout(4 * GIB, 16 * GIB, 2 * MIB, Map::Dev, 4096).unwrap();
        assert_eq!(l.data_offset, 258 * MIB);
        assert_eq!(l.altmap_pages, Some((2, 66_046)));
        assert_eq!(l.usable_pages, 4_128_256);
    }

    #[test]
    fn one_and_four_gib_map_dev() {
        // 1 GiB: npfns0 = 262,142; 8 KiB + 64 x 262,142 = 16,785,280 B -> 18 MiB (16 MiB
        // + 8 KiB + ... rounds up to the next 2 MiB): free (18 MiB - 8 KiB) / 4 KiB = 4,606.
        let l = layout(4 * GIB, GIB, 2 * MIB, Map::Dev, 4096).unwrap();
        assert_eq!((l.data_offset, l.altmap_pages), (18 * MIB, Some((2, 4_606))));
        // 4 GiB: npfns0 = 1,048,574; 8 KiB + 67,108,736 B = 67,116,928 -> 66 MiB:
        // free (66 MiB - 8 KiB) / 4 KiB = 16,894.
        let l = layout(4 * GIB, 4 * GIB, 2 * MIB, Map::Dev, 4096).unwrap();
        assert_eq!((l.data_offset, l.altmap_pages), (66 * MIB, Some((2, 16_894))));
    }

    #[test]
    fn map_mem_offset_is_one_alignment() {
        // round up (start + 8 KiB) to 2 MiB - start = 2 MiB; no altmap.
        let l = layout(4 * GIB, 16 * GIB, 2 * MIB, Map::Mem, 4096).unwrap();
        assert_eq!((l.data_offset, l.altmap_pages, l.usable_pages), (2 * MIB, None, 4_193_792));
    }

    #[test]
    fn alignment_that_swallows_the_namespace_is_enxio() {
        // align 1 GiB on a 1 GiB namespace: offset = 1 GiB >= size - 0.
        let e = layout(4 * GIB, GIB, GIB, Map::Mem, 4096).unwrap_err();
        assert_eq!(e, LayoutError::NoRoom { offset: GIB, size: GIB });
        assert_eq!(e.errno(), hotplug_core::errno::ENXIO);
    }

    #[test]
    fn a_namespace_smaller_than_its_truncation_is_enxio_not_a_panic() {
        // 2 MiB at 32 GiB + 2 MiB with align 1 GiB: end_trunc = 4 MiB > size. Found by
        // the conformance suite's set-up-grid (it was an overflow).
        let e = layout(32 * GIB + 2 * MIB, 2 * MIB, GIB, Map::Dev, 4096).unwrap_err();
        assert_eq!(e.errno(), hotplug_core::errno::ENXIO);
    }

    #[test]
    fn misaligned_start_is_einval() {
        assert_eq!(layout(4 * GIB + 4096, GIB, 2 * MIB, Map::Dev, 4096), Err(LayoutError::Misaligned { start: 4 * GIB + 4096 }));
    }
}
