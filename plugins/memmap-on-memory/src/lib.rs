//! Memmap on memory (MHP_MEMMAP_ON_MEMORY): each hot-added memory block carries its own
//! `struct page` array in its first pages, so hot-adding needs no free memory elsewhere.
//! This is what lets a small VM hot-add far more than its boot memory could describe.
//!
//! `set_up` decides eligibility exactly as the kernel does (mm/memory_hotplug.c
//! mhp_supports_memmap_on_memory, in its order) and, when eligible, returns an altmap
//! whose `base_pfn` is the start of the range and whose `free` is the block's memmap
//! pages; when not, it falls back to ordinary placement and says why in the note.
//! `construct` marks the pages that hold the memmap, block by block.

mod eligibility;

pub use eligibility::{plan, Mode, Plan, Refusal};
use hotplug_core::{
    errno, export_plugin, Altmap, Host, Ops, OptionSpec, OptionType, PluginError, Request, RequestKinds, RestrictionFlags, Restrictions,
    Strategy, StridedRange,
};
use serde::Deserialize;

/// The `options` table of a `[[strategy]]` using this plugin.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// `memory_hotplug.memmap_on_memory=y` ("strict", default) or `=force`.
    mode: Option<Mode>,
    /// One altmap per memory block, as Linux 6.8+ does (default); `false`: the rule up to
    /// 6.7, where only an add of exactly one block may use memmap on memory.
    per_block: Option<bool>,
}

/// The options, for the host and `host plugins --verbose`.
const OPTIONS: &[OptionSpec] = &[
    OptionSpec::choice("mode", "strict|force", "\"strict\"", "memory_hotplug.memmap_on_memory=y (strict) or =force"),
    OptionSpec::new("per_block", OptionType::BOOL, "true", "one altmap per memory block (Linux 6.8+); false: the 6.7 one-block rule"),
];

/// The memmap-on-memory strategy.
#[derive(Debug)]
pub struct MemmapOnMemory {
    mode: Mode,
    per_block: bool,
}

impl MemmapOnMemory {
    /// The ordinary placement, with the reason memmap on memory was not used.
    fn fall_back(why: String) -> Restrictions {
        log::debug!("memmap on memory not used: {why}");
        let mut r = Restrictions::new(RestrictionFlags::MEMORY_BLOCK_DEVICES);
        r.note = format!("memmap on memory not used: {why}; memmap from node memory").into();
        r
    }
}

impl Strategy for MemmapOnMemory {
    const KINDS: RequestKinds = RequestKinds::SYSTEM_RAM;
    const OPTIONS: Option<&'static [OptionSpec]> = Some(OPTIONS);

    fn new(options: &str, _host: &Host) -> Result<Self, PluginError> {
        let o: Options = hotplug_core::options::parse("memmap-on-memory", options)?;
        Ok(MemmapOnMemory { mode: o.mode.unwrap_or(Mode::Strict), per_block: o.per_block.unwrap_or(true) })
    }

    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError> {
        let g = request.geometry;
        let block = g.memory_block_size / g.page_size;
        if request.nr_pages == 0 || request.start_pfn % block != 0 || request.nr_pages % block != 0 {
            return Err(PluginError::errno(
                errno::EINVAL,
                format!("pfns {:#x}+{:#x} are not whole memory blocks of {block} pages", request.start_pfn, request.nr_pages),
            ));
        }
        if request.driver == hotplug_core::Driver::VIRTIO_MEM {
            return Ok(Self::fall_back("virtio-mem never asks for memmap on memory".to_string()));
        }
        let p = match plan(&g, self.mode) {
            Ok(p) => p,
            Err(refusal) => return Ok(Self::fall_back(refusal.to_string())),
        };
        let blocks = request.nr_pages / block;
        if !self.per_block && blocks != 1 {
            return Ok(Self::fall_back(format!(
                "before Linux 6.8 only an add of exactly one memory block may carry its memmap; this add is {blocks} blocks"
            )));
        }
        let altmap = Altmap {
            base_pfn: request.start_pfn,
            end_pfn: request.start_pfn + request.nr_pages - 1,
            reserve: 0,
            free: p.vmemmap_pages,
            align: 0,
            alloc: 0,
        };
        // 6.8+: MEMMAP_ON_MEMORY, the host repeats the altmap per block. Before: one
        // altmap for the one-block add.
        let flags = if self.per_block {
            RestrictionFlags(RestrictionFlags::MEMORY_BLOCK_DEVICES.0 | RestrictionFlags::MEMMAP_ON_MEMORY.0)
        } else {
            RestrictionFlags::MEMORY_BLOCK_DEVICES
        };
        let mut r = Restrictions::new(flags);
        r.altmap = Some(altmap).into();
        r.note = p.describe(g.page_size).into();
        Ok(r)
    }

    fn construct(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut Ops<'_>) -> Result<(), PluginError> {
        let Some(a) = restrictions.altmap.into_option() else { return Ok(()) };
        let g = request.geometry;
        let block = g.memory_block_size / g.page_size;
        // Every block starts with its vmemmap pages (all of `free`, waste included: the
        // kernel treats them alike, present but never handed to the buddy): one strided
        // call for all of them. Before 6.8 the add is a single block, so `count` is 1.
        let blocks = request.nr_pages / block;
        ops.mark_vmemmap_strided(StridedRange::new(request.start_pfn + a.reserve, a.free, block, blocks))
    }
}

export_plugin!(MemmapOnMemory);
