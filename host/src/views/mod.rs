//! Kernel-format views of the model: the text a real machine shows in /proc, so a user
//! can diff the model against `cat /proc/zoneinfo` line by line.
//!
//! Only the lines the model knows are printed, each in the kernel's exact format and
//! order: a `grep` of those lines on a real machine compares directly.

pub mod capture;
mod iomem;
mod meminfo;
pub mod sysfs;
pub mod sysroot;
mod zoneinfo;

use crate::model::Model;

/// One kernel text file the model can render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// /proc/zoneinfo: every zone of every online node.
    Zoneinfo,
    /// /proc/iomem: the resource tree.
    Iomem,
    /// /proc/meminfo: MemTotal and MemFree.
    Meminfo,
}

impl View {
    /// Every view, in the order `--help` lists them.
    pub const ALL: [View; 3] = [View::Zoneinfo, View::Iomem, View::Meminfo];

    /// The name used on the command line and in `==> NAME <==` headers.
    pub fn name(self) -> &'static str {
        match self {
            View::Zoneinfo => "zoneinfo",
            View::Iomem => "iomem",
            View::Meminfo => "meminfo",
        }
    }

    /// The mode of every view's file under /proc: read-only for all (iomem is created
    /// with proc's default mode and hides its addresses from readers without
    /// CAP_SYS_ADMIN rather than refusing them; the model shows them to every reader).
    pub const PROC_MODE: u32 = 0o444;

    /// The view called `name`, if any.
    pub fn from_name(name: &str) -> Option<View> {
        View::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The file's text for the model's current state.
    pub fn render(self, model: &Model) -> String {
        match self {
            View::Zoneinfo => zoneinfo::render(model),
            View::Iomem => iomem::render(model),
            View::Meminfo => meminfo::render(model),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::boot::MachineSpec;
    use crate::model::geometry::preset;

    const GIB: u64 = 1 << 30;

    fn one_gib() -> Model {
        Model::boot(&MachineSpec::new(preset(hotplug_core::Arch::X86_64), &[(0, 0, GIB)])).unwrap()
    }

    #[test]
    fn zoneinfo_of_a_one_gib_machine() {
        // [0, 1 GiB) = pfns [0, 262,144). DMA is [0, 4,096): populated from pfn 0.
        // DMA32 is [4,096, 1 Mi): spanned = present = 258,048. The 8 sections' boot memmap
        // (8 x 512 = 4,096 pages) is taken from the highest populated zone: DMA32 managed
        // 258,048 - 4,096 = 253,952. Normal, Movable, Device are empty: no start_pfn.
        // Watermarks (init_per_zone_wmark_min, then khugepaged, THP on): min_free_kbytes
        // = 2 zones x 11 pageblocks x 512 = 11,264 pages; DMA min 11,264 x 4,096 /
        // 258,048 = 178, gap max(178 / 4, 4,096 x 10 / 10,000) = 44; DMA32 min 11,085,
        // gap max(2,771, 253) = 2,771; promo = high + gap. An empty Movable zone's min
        // is SWAP_CLUSTER_MAX (32). DMA's protection: 253,952 / 256 = 992 for every
        // zone above it.
        let expected = "\
Node 0, zone      DMA
  pages free     4096
        boost    0
        min      178
        low      222
        high     266
        promo    310
        spanned  4096
        present  4096
        managed  4096
        cma      0
        protection: (0, 992, 992, 992, 992)
  start_pfn:           0
Node 0, zone    DMA32
  pages free     253952
        boost    0
        min      11085
        low      13856
        high     16627
        promo    19398
        spanned  258048
        present  258048
        managed  253952
        cma      0
        protection: (0, 0, 0, 0, 0)
  start_pfn:           4096
Node 0, zone   Normal
  pages free     0
        boost    0
        min      0
        low      0
        high     0
        promo    0
        spanned  0
        present  0
        managed  0
        cma      0
        protection: (0, 0, 0, 0, 0)
Node 0, zone  Movable
  pages free     0
        boost    0
        min      32
        low      32
        high     32
        promo    32
        spanned  0
        present  0
        managed  0
        cma      0
        protection: (0, 0, 0, 0, 0)
Node 0, zone   Device
  pages free     0
        boost    0
        min      0
        low      0
        high     0
        promo    0
        spanned  0
        present  0
        managed  0
        cma      0
        protection: (0, 0, 0, 0, 0)
";
        assert_eq!(View::Zoneinfo.render(&one_gib()), expected);
    }

    #[test]
    fn zoneinfo_lines_have_the_kernel_layout() {
        // The captured 6.18 machine's lines, as the kernel formats them.
        let real = include_str!("../../../../shared/data/real-machines/x86_64-vm-6.18-24g/proc/zoneinfo");
        let ours = View::Zoneinfo.render(&one_gib());
        for prefix in ["Node 0, zone    DMA32", "        spanned  ", "        present  ", "        managed  ", "  start_pfn:           "] {
            assert!(real.lines().any(|l| l.starts_with(prefix)), "{prefix:?} not in the capture");
            assert!(ours.lines().any(|l| l.starts_with(prefix)), "{prefix:?} not in ours");
        }
    }

    #[test]
    fn iomem_and_meminfo_of_a_one_gib_machine() {
        assert_eq!(View::Iomem.render(&one_gib()), "00000000-3fffffff : System RAM\n");
        // MemTotal = managed = (4,096 + 253,952) x 4 kB = 1,032,192 kB; MemFree defaults
        // to the boot managed pages. Label padded to 16 columns, value to 8.
        assert_eq!(View::Meminfo.render(&one_gib()), "MemTotal:        1032192 kB\nMemFree:         1032192 kB\n");
    }

    #[test]
    fn iomem_widens_past_eight_digits_and_indents_children() {
        let mut m = one_gib();
        let parent = m.resources.request(0x1_0000_0000, 0x1_3fff_ffff, "dax0.0", false).unwrap();
        m.resources.request_under(parent, 0x1_0000_0000, 0x1_3fff_ffff, "System RAM (kmem)", true).unwrap();
        assert_eq!(
            View::Iomem.render(&m),
            "00000000-3fffffff : System RAM\n100000000-13fffffff : dax0.0\n  100000000-13fffffff : System RAM (kmem)\n"
        );
    }
}
