//! The kernel's `vmem_altmap` arithmetic (mm/sparse-vmemmap.c), exactly: next pfn, pages
//! left, naturally aligned allocation, the first ordinary pfn, and freeing.

use hotplug_core::Altmap;

/// The pfn the next allocation starts from (before alignment). Saturates: the fields may
/// come from a plugin.
pub fn next_pfn(a: &Altmap) -> u64 {
    a.base_pfn.saturating_add(a.reserve).saturating_add(a.alloc).saturating_add(a.align)
}

/// Pages still available (never negative).
pub fn nr_free(a: &Altmap) -> u64 {
    a.free.saturating_sub(a.alloc.saturating_add(a.align))
}

/// Allocate `nr_pfns` pages aligned to the lowest set bit of `nr_pfns` in absolute pfns.
/// Returns the first pfn, or `None` (altmap unchanged) when there is no room.
pub fn alloc(a: &mut Altmap, nr_pfns: u64) -> Option<u64> {
    if nr_pfns == 0 {
        return None;
    }
    let pfn = next_pfn(a);
    let natural = 1u64 << nr_pfns.trailing_zeros();
    let gap = pfn.checked_next_multiple_of(natural)? - pfn;
    if nr_pfns.checked_add(gap)? > nr_free(a) {
        return None;
    }
    a.alloc += nr_pfns;
    a.align += gap;
    Some(pfn + gap)
}

/// Give back `nr_pfns` pages (`align` never shrinks, as in the kernel).
pub fn free(a: &mut Altmap, nr_pfns: u64) {
    a.alloc = a.alloc.saturating_sub(nr_pfns);
}

/// vmem_altmap_offset: pages at the start of the range whose struct pages are not ordinary.
pub fn offset(a: &Altmap) -> u64 {
    a.reserve.saturating_add(a.free)
}

/// The checks `__add_pages` makes on an altmap (else EINVAL "invalid altmap").
pub fn check_for_add(a: &Altmap, start_pfn: u64, nr_pages: u64) -> Result<(), String> {
    if a.base_pfn != start_pfn {
        return Err(format!("altmap base_pfn {:#x} is not the range's first pfn {start_pfn:#x}", a.base_pfn));
    }
    match a.reserve.checked_add(a.free) {
        Some(used) if used < nr_pages => Ok(()),
        // Every page held for the memmap: nothing would ever be onlined or mapped, and
        // what holds only its own memmap can never be offlined and removed.
        Some(used) if used == nr_pages => Err(format!(
            "altmap reserve {} + free {} covers all {nr_pages} pages added, leaving none to use (such a range could never be removed)",
            a.reserve, a.free
        )),
        _ => Err(format!("altmap reserve {} + free {} exceeds the {nr_pages} pages added", a.reserve, a.free)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memmap_on_memory_block_example() {
        // KERNEL-FACTS 2: 128 MiB block at 0x100000, free 512; one 512-page allocation,
        // gap 0 (0x100000 is a multiple of 512): memmap 0x100000-0x1001ff, 32,256 usable.
        let mut a = Altmap { base_pfn: 0x100000, end_pfn: 0x108000, reserve: 0, free: 512, align: 0, alloc: 0 };
        assert_eq!(alloc(&mut a, 512), Some(0x100000));
        assert_eq!((a.alloc, a.align, nr_free(&a)), (512, 0, 0));
        assert_eq!(32_768 - offset(&a), 32_256);
        assert_eq!(alloc(&mut a, 1), None);
    }

    #[test]
    fn nvdimm_16g_example() {
        // KERNEL-FACTS 7: 16 GiB namespace at a 128 MiB-aligned start: reserve 2, free
        // 66,046; 128 PMD allocations of 512: the first needs a gap of 510 to reach a
        // multiple of 512 (base+2 -> base+512), then none; align 510, alloc 65,536, 0 left.
        let base = 0x4_0000_0000u64 / 4096;
        let mut a = Altmap { base_pfn: base, end_pfn: base + (16 << 18), reserve: 2, free: 66_046, align: 0, alloc: 0 };
        let first = alloc(&mut a, 512).unwrap();
        assert_eq!(first, base + 512);
        for _ in 1..128 {
            alloc(&mut a, 512).unwrap();
        }
        assert_eq!((a.align, a.alloc, nr_free(&a)), (510, 65_536, 0));
        free(&mut a, 512);
        assert_eq!((a.align, a.alloc), (510, 65_024));
    }

    #[test]
    fn add_checks() {
        let a = Altmap { base_pfn: 10, end_pfn: 0, reserve: 2, free: 8, align: 0, alloc: 0 };
        // 2 + 8 = 10 pages held: 11 pages leave one to use; 10 leave none; 9 are too few.
        assert!(check_for_add(&a, 10, 11).is_ok());
        assert!(check_for_add(&a, 10, 10).unwrap_err().contains("leaving none to use"));
        assert!(check_for_add(&a, 10, 9).is_err());
        assert!(check_for_add(&a, 11, 100).is_err());
        let huge = Altmap { reserve: u64::MAX, ..a };
        assert!(check_for_add(&huge, 10, 100).is_err());
    }

    #[test]
    fn altmap_counts_that_overflow_are_refused_not_panics() {
        let a = Altmap { base_pfn: 0x100000, end_pfn: 0, reserve: u64::MAX, free: 2, align: 0, alloc: 0 };
        assert!(check_for_add(&a, 0x100000, 32_768).unwrap_err().contains("exceeds"));
        let mut b = Altmap { base_pfn: u64::MAX - 1, end_pfn: u64::MAX, reserve: 0, free: u64::MAX, align: 0, alloc: 0 };
        // Allocation at the top of the pfn space fails cleanly.
        assert_eq!(alloc(&mut b, 512), None);
    }
}
