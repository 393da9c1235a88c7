//! Whether a memory block can carry its own memmap, in the kernel's order
//! (mm/memory_hotplug.c mhp_supports_memmap_on_memory and
//! memory_block_memmap_on_memory_pages; arch_supports_memmap_on_memory per arch).

use hotplug_core::{Arch, Geometry};
use serde::Deserialize;

/// `memory_hotplug.memmap_on_memory`: `y` or `force`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Only when the memmap fills whole pageblocks by itself.
    Strict,
    /// Round the memmap up to whole pageblocks, wasting the excess (Linux 6.6+).
    Force,
}

/// The vmemmap pages one block gives to its own memmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Pages the struct pages take (the memmap itself).
    pub memmap_pages: u64,
    /// Pages set aside at the block's start: the memmap, rounded up in force mode.
    pub vmemmap_pages: u64,
    /// Pages a memory block holds.
    pub block_pages: u64,
}

impl Plan {
    /// Pages set aside but not needed for struct pages (force mode's rounding).
    pub fn waste_pages(&self) -> u64 {
        self.vmemmap_pages - self.memmap_pages
    }

    /// One line for the report.
    pub fn describe(&self, page_size: u64) -> String {
        let pct = self.vmemmap_pages as f64 * 100.0 / self.block_pages as f64;
        let mut s = format!(
            "memmap on memory: {} of each block's {} pages ({pct:.4} %) hold its memmap",
            hotplug_core::size::format_pages(self.vmemmap_pages, page_size),
            hotplug_core::size::thousands(self.block_pages),
        );
        if self.waste_pages() > 0 {
            s += &format!(", of which {} are force mode's pageblock rounding (wasted)", hotplug_core::size::thousands(self.waste_pages()));
        }
        s
    }
}

/// Why a block cannot carry its memmap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The memmap of a block is not a whole number of pages.
    NotWholePages { bytes: u64, page_size: u64 },
    /// The memmap pages do not fill whole pageblocks (strict mode).
    NotPageblockAligned { pages: u64, pageblock: u64 },
    /// The memmap would take the whole block.
    WholeBlock { pages: u64 },
    /// The architecture's own rule.
    Arch { rule: &'static str, bytes: u64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotWholePages { bytes, page_size } => {
                write!(f, "a block's memmap is {bytes} bytes, not a whole number of {page_size}-byte pages")
            }
            Refusal::NotPageblockAligned { pages, pageblock } => {
                write!(
                    f,
                    "a block's memmap is {pages} pages, not a multiple of the {pageblock}-page pageblock (mode force would round it up)"
                )
            }
            Refusal::WholeBlock { pages } => write!(f, "a block's memmap ({pages} pages) would take the whole block"),
            Refusal::Arch { rule, bytes } => write!(f, "a block's memmap is {bytes} bytes: {rule}"),
        }
    }
}

/// Decide for one memory block of geometry `g`, as the kernel does at boot.
pub fn plan(g: &Geometry, mode: Mode) -> Result<Plan, Refusal> {
    let block_pages = g.memory_block_size / g.page_size;
    // memory_block_memmap_size(): struct pages of a block, in bytes.
    let bytes = block_pages * g.struct_page_size;
    let memmap_pages = bytes.div_ceil(g.page_size);
    let vmemmap_pages = match mode {
        Mode::Force => memmap_pages.next_multiple_of(g.pageblock_pages),
        Mode::Strict => memmap_pages,
    };
    if bytes % g.page_size != 0 {
        return Err(Refusal::NotWholePages { bytes, page_size: g.page_size });
    }
    if vmemmap_pages % g.pageblock_pages != 0 {
        return Err(Refusal::NotPageblockAligned { pages: vmemmap_pages, pageblock: g.pageblock_pages });
    }
    if vmemmap_pages == block_pages {
        return Err(Refusal::WholeBlock { pages: vmemmap_pages });
    }
    arch_supports(g, bytes)?;
    Ok(Plan { memmap_pages, vmemmap_pages, block_pages })
}

/// arch_supports_memmap_on_memory: x86_64 and arm64 want whole PMDs of (unrounded)
/// vmemmap; ppc64 radix with 64 KiB pages accepts any page-aligned size.
fn arch_supports(g: &Geometry, bytes: u64) -> Result<(), Refusal> {
    let radix_64k = g.arch == Arch::PPC64_RADIX && g.page_size == 64 << 10;
    if radix_64k || bytes % g.pmd_size == 0 {
        Ok(())
    } else {
        Err(Refusal::Arch { rule: "x86_64 and arm64 need a whole number of PMDs of vmemmap", bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;

    fn x86() -> Geometry {
        Geometry {
            page_size: 4 * KIB,
            struct_page_size: 64,
            section_size: 128 * MIB,
            subsection_size: 2 * MIB,
            memory_block_size: 128 * MIB,
            pmd_size: 2 * MIB,
            pageblock_pages: 512,
            max_phys_bits: 46,
            arch: Arch::X86_64,
        }
    }

    #[test]
    fn x86_64_128_mib_block_and_force_changes_nothing() {
        // 32,768 pages x 64 B = 2 MiB = 512 pages: whole pages, 512 % 512 = 0, less than
        // the block, 2 MiB is one PMD. 32,768 - 512 = 32,256 usable.
        let p = plan(&x86(), Mode::Strict).unwrap();
        assert_eq!((p.memmap_pages, p.vmemmap_pages, p.block_pages - p.vmemmap_pages), (512, 512, 32_256));
        assert_eq!(plan(&x86(), Mode::Force).unwrap(), p);
    }

    #[test]
    fn x86_64_2_gib_block() {
        // 524,288 pages x 64 B = 32 MiB = 8,192 pages: 16 PMDs, pageblock-aligned.
        let g = Geometry { memory_block_size: 2 << 30, ..x86() };
        assert_eq!(plan(&g, Mode::Strict).unwrap().vmemmap_pages, 8_192);
    }

    #[test]
    fn debug_kernel_struct_page_refused_in_both_modes() {
        // 80-byte struct page: 32,768 x 80 = 2,621,440 B = 640 pages. Strict: 640 is not a
        // multiple of 512. Force: rounded to 1,024, but 2,621,440 B is not a whole number
        // of 2 MiB PMDs (1.25): the x86_64 rule refuses.
        let g = Geometry { struct_page_size: 80, ..x86() };
        assert_eq!(plan(&g, Mode::Strict), Err(Refusal::NotPageblockAligned { pages: 640, pageblock: 512 }));
        assert!(matches!(plan(&g, Mode::Force), Err(Refusal::Arch { bytes: 2_621_440, .. })));
    }

    #[test]
    fn ppc64_radix_64k_strict_refuses_force_wastes() {
        // 256 MiB / 64 KiB = 4,096 pages x 64 B = 256 KiB = 4 pages. Strict: 4 is not a
        // multiple of the 32-page (2 MiB) pageblock. Force: 32 pages, 28 of them waste;
        // radix with 64 KiB pages accepts any page-aligned memmap.
        let g = Geometry {
            page_size: 64 * KIB,
            section_size: 16 * MIB,
            memory_block_size: 256 * MIB,
            pageblock_pages: 32,
            max_phys_bits: 51,
            arch: Arch::PPC64_RADIX,
            ..x86()
        };
        assert_eq!(plan(&g, Mode::Strict), Err(Refusal::NotPageblockAligned { pages: 4, pageblock: 32 }));
        let p = plan(&g, Mode::Force).unwrap();
        assert_eq!((p.memmap_pages, p.vmemmap_pages, p.waste_pages()), (4, 32, 28));
    }

    #[test]
    fn a_memmap_as_large_as_the_block_is_refused() {
        // 8 KiB pages with a 8 KiB struct page: every page's struct page is a page.
        let g = Geometry { page_size: 8 * KIB, struct_page_size: 8 * KIB, pageblock_pages: 1, pmd_size: 8 * KIB, ..x86() };
        assert_eq!(plan(&g, Mode::Strict), Err(Refusal::WholeBlock { pages: 16_384 }));
    }

    #[test]
    fn memmap_not_whole_pages_is_refused_first() {
        // A 1 MiB block (256 pages of 4 KiB) with a 63-byte struct page: 256 x 63 =
        // 16,128 bytes, not a multiple of 4,096. Checked before anything else.
        let g = Geometry { memory_block_size: MIB, struct_page_size: 63, ..x86() };
        assert_eq!(plan(&g, Mode::Force), Err(Refusal::NotWholePages { bytes: 16_128, page_size: 4096 }));
    }
}
