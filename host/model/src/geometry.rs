//! The machine's geometry: page, section, subsection, memory-block, PMD and pageblock
//! sizes, checked once at load so the rest of the model can rely on them.

use super::range::PfnRange;
use hotplug_core::{Arch, Geometry};

/// Geometry plus the derived quantities the model uses everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineGeometry {
    pub g: Geometry,
}

/// A geometry preset: the defaults of one architecture.
pub fn preset(arch: Arch) -> Geometry {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    match arch {
        Arch::PPC64_RADIX => Geometry {
            page_size: 64 * KIB,
            struct_page_size: 64,
            section_size: 16 * MIB,
            subsection_size: 2 * MIB,
            memory_block_size: 256 * MIB,
            pmd_size: 2 * MIB,
            pageblock_pages: 32,
            max_phys_bits: 51,
            arch,
        },
        Arch::ARM64 => Geometry {
            page_size: 4 * KIB,
            struct_page_size: 64,
            section_size: 128 * MIB,
            subsection_size: 2 * MIB,
            memory_block_size: 128 * MIB,
            pmd_size: 2 * MIB,
            pageblock_pages: 512,
            max_phys_bits: 48,
            arch,
        },
        _ => Geometry {
            page_size: 4 * KIB,
            struct_page_size: 64,
            section_size: 128 * MIB,
            subsection_size: 2 * MIB,
            memory_block_size: 128 * MIB,
            pmd_size: 2 * MIB,
            pageblock_pages: 512,
            max_phys_bits: 46,
            arch: Arch::X86_64,
        },
    }
}

/// Parse an `arch` name.
pub fn arch_from_name(name: &str) -> Option<Arch> {
    Arch::from_name(name)
}

/// The x86_64 boot probe for the memory-block size (arch/x86/mm/init_64.c
/// probe_memory_block_size): below 64 GiB of boot RAM end, the section size; on bare
/// metal 2 GiB; under a hypervisor the largest power of two from 2 GiB down to the
/// section size that divides the end of boot RAM.
pub fn probe_block_size(boot_end: u64, section_size: u64, hypervisor: bool) -> u64 {
    const MAX_BLOCK: u64 = 2 << 30;
    if boot_end < 64 << 30 {
        return section_size;
    }
    if !hypervisor {
        return MAX_BLOCK.max(section_size);
    }
    let mut bz = MAX_BLOCK;
    while bz > section_size {
        if boot_end % bz == 0 {
            break;
        }
        bz >>= 1;
    }
    bz.max(section_size)
}

impl MachineGeometry {
    /// Check the rules every later computation relies on.
    pub fn new(g: Geometry) -> Result<Self, String> {
        let pow2 = |name: &str, v: u64| {
            if v == 0 || !v.is_power_of_two() {
                Err(format!("{name} must be a power of two, got {v}"))
            } else {
                Ok(())
            }
        };
        pow2("page_size", g.page_size)?;
        pow2("section_size", g.section_size)?;
        pow2("subsection_size", g.subsection_size)?;
        pow2("memory_block_size", g.memory_block_size)?;
        pow2("pmd_size", g.pmd_size)?;
        pow2("pageblock_pages", g.pageblock_pages)?;
        if g.page_size < 4096 {
            return Err(format!("page_size must be at least 4 KiB, got {}", g.page_size));
        }
        if g.struct_page_size == 0 || g.struct_page_size > g.page_size {
            return Err(format!("struct_page_size must be between 1 and the page size, got {}", g.struct_page_size));
        }
        if g.subsection_size < g.page_size || g.subsection_size > g.section_size {
            return Err("subsection_size must lie between page_size and section_size".into());
        }
        if g.section_size / g.subsection_size > 64 {
            return Err(format!(
                "a section may hold at most 64 subsections (the kernel's subsection map), got {}",
                g.section_size / g.subsection_size
            ));
        }
        // The buddy allocator's largest order fits in a section and a pageblock in that
        // (pageblock_order <= MAX_PAGE_ORDER <= SECTION_SIZE_BITS - PAGE_SHIFT, a build
        // check of the kernel's): a section holds at least one pageblock.
        let pageblock = g.pageblock_pages.saturating_mul(g.page_size);
        if g.section_size < pageblock {
            return Err(format!(
                "section_size {:#x} is smaller than a pageblock ({} pages of {:#x}): the kernel needs a section to hold its largest buddy order",
                g.section_size, g.pageblock_pages, g.page_size
            ));
        }
        if g.memory_block_size < g.section_size {
            return Err("memory_block_size must be a multiple of section_size".into());
        }
        if g.pmd_size < g.page_size {
            return Err("pmd_size must be at least the page size".into());
        }
        if !(20..=64).contains(&g.max_phys_bits) || (g.max_phys_bits < 64 && (1u64 << g.max_phys_bits) < g.memory_block_size) {
            return Err(format!("max_phys_bits must be between 20 and 64 and cover one memory block, got {}", g.max_phys_bits));
        }
        Ok(MachineGeometry { g })
    }

    pub fn page_size(&self) -> u64 {
        self.g.page_size
    }

    pub fn pages_per_section(&self) -> u64 {
        self.g.section_size / self.g.page_size
    }

    pub fn pages_per_subsection(&self) -> u64 {
        self.g.subsection_size / self.g.page_size
    }

    pub fn subsections_per_section(&self) -> u64 {
        self.g.section_size / self.g.subsection_size
    }

    /// The subsection map bits of section `nr` that pfns `[start, end)` touch
    /// (the kernel's subsection_mask_set).
    pub fn subsection_mask(&self, nr: u64, start: u64, end: u64) -> u64 {
        let (s_start, pp_sub) = (self.section_to_pfn(nr), self.pages_per_subsection());
        let (a, b) = (start.max(s_start), end.min(s_start + self.pages_per_section()));
        if a >= b {
            return 0;
        }
        let (lo, hi) = ((a - s_start) / pp_sub, (b - s_start).div_ceil(pp_sub));
        let below_hi = if hi >= 64 { u64::MAX } else { (1u64 << hi) - 1 };
        below_hi & (u64::MAX << lo)
    }

    pub fn pages_per_block(&self) -> u64 {
        self.g.memory_block_size / self.g.page_size
    }

    pub fn sections_per_block(&self) -> u64 {
        self.g.memory_block_size / self.g.section_size
    }

    /// Section number of a pfn.
    pub fn pfn_to_section(&self, pfn: u64) -> u64 {
        pfn / self.pages_per_section()
    }

    pub fn section_to_pfn(&self, nr: u64) -> u64 {
        nr * self.pages_per_section()
    }

    /// Memory-block id of a pfn.
    pub fn pfn_to_block(&self, pfn: u64) -> u64 {
        pfn / self.pages_per_block()
    }

    pub fn block_to_pfn(&self, id: u64) -> u64 {
        id * self.pages_per_block()
    }

    /// The pfns of memory block `id` (blocks of a valid geometry never pass 2^64 pfns).
    pub fn block_pfns(&self, id: u64) -> PfnRange {
        PfnRange::new(self.block_to_pfn(id), self.pages_per_block()).expect("block ids come from pfns")
    }

    /// The pfns of section `nr`.
    pub fn section_pfns(&self, nr: u64) -> PfnRange {
        PfnRange::new(self.section_to_pfn(nr), self.pages_per_section()).expect("section numbers come from pfns")
    }

    /// One past the last pfn of the pluggable range `[0, 2^max_phys_bits)`.
    pub fn max_pfn_exclusive(&self) -> u64 {
        if self.g.max_phys_bits >= 64 {
            u64::MAX / self.g.page_size
        } else {
            (1u64 << self.g.max_phys_bits) / self.g.page_size
        }
    }

    /// Last byte address of the pluggable range (PHYSMEM_END).
    pub fn physmem_end(&self) -> u64 {
        if self.g.max_phys_bits >= 64 {
            u64::MAX
        } else {
            (1u64 << self.g.max_phys_bits) - 1
        }
    }

    /// Pages of memmap for `pages` pages, rounded up to whole pages.
    pub fn memmap_pages(&self, pages: u64) -> u64 {
        self.g.memmap_bytes(pages).div_ceil(self.g.page_size)
    }

    /// Pages of vmemmap one whole section takes when mapped PMD by PMD (x86_64
    /// vmemmap_populate_hugepages): the memmap rounded up to PMDs.
    pub fn section_memmap_pages_pmd(&self) -> u64 {
        let bytes = self.g.memmap_bytes(self.pages_per_section());
        bytes.div_ceil(self.g.pmd_size) * (self.g.pmd_size / self.g.page_size)
    }

    pub fn pmd_pages(&self) -> u64 {
        self.g.pmd_size / self.g.page_size
    }

    /// End pfn (exclusive) of ZONE_DMA (16 MiB) and ZONE_DMA32 (4 GiB) on x86_64.
    pub fn dma_end_pfn(&self) -> u64 {
        (16 << 20) / self.g.page_size
    }

    pub fn dma32_end_pfn(&self) -> u64 {
        (4u64 << 30) / self.g.page_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_matches_kernel_facts_examples() {
        let s = 128 << 20;
        // RAM end 1 GiB -> below 64 GiB -> 128 MiB (KERNEL-FACTS 1, measured).
        assert_eq!(probe_block_size(1 << 30, s, true), 128 << 20);
        // VM end 98 GiB: 98 GiB = 2 GiB * 49 -> 2 GiB divides it.
        assert_eq!(probe_block_size(98 << 30, s, true), 2 << 30);
        // VM end 64 GiB + 384 MiB: 384 MiB = 3 * 128 MiB, so only 128 MiB divides.
        assert_eq!(probe_block_size((64 << 30) + (384 << 20), s, true), 128 << 20);
        // Bare metal end 65 GiB -> 2 GiB regardless of divisibility.
        assert_eq!(probe_block_size(65 << 30, s, false), 2 << 30);
    }

    #[test]
    fn x86_section_memmap_is_one_pmd() {
        let g = MachineGeometry::new(preset(Arch::X86_64)).unwrap();
        // 32,768 pages * 64 B = 2 MiB = 512 pages = exactly one PMD.
        assert_eq!(g.pages_per_section(), 32_768);
        assert_eq!(g.section_memmap_pages_pmd(), 512);
        assert_eq!(g.subsections_per_section(), 64);
    }

    #[test]
    fn rejects_bad_geometry() {
        let mut g = preset(Arch::X86_64);
        g.memory_block_size = 64 << 20;
        assert!(MachineGeometry::new(g).unwrap_err().contains("multiple of section_size"));
        let mut g = preset(Arch::X86_64);
        g.page_size = 3000;
        assert!(MachineGeometry::new(g).unwrap_err().contains("power of two"));
    }

    #[test]
    fn subsection_masks() {
        let g = MachineGeometry::new(preset(Arch::X86_64)).unwrap();
        // Section 8 is pfns [0x40000, 0x48000); a subsection is 512 pages.
        assert_eq!(g.subsection_mask(8, 0, u64::MAX), u64::MAX);
        assert_eq!(g.subsection_mask(8, 0x40200, 0x40400), 1 << 1);
        // A partial subsection counts: [0x40001, 0x40201) touches subsections 0 and 1.
        assert_eq!(g.subsection_mask(8, 0x40001, 0x40201), 0b11);
        assert_eq!(g.subsection_mask(8, 0x48000, 0x50000), 0);
    }
}
