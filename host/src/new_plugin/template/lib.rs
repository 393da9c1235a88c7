//! my-strategy: a memory-hotplug strategy for hotplug-lab.
//!
//! The host calls three methods around each hot-add, as the kernel's hot-add path would:
//! `set_up` before any page exists (decide where the memmap goes), `construct` once the
//! sections and their memmap exist (set up the new pages), `tear_down` before a remove.
//! As generated it is the kernel's default (memmap from node memory), with two options to
//! start from: `memmap_nid` and `memmap_on_memory`. docs/writing-a-plugin.md explains each
//! piece; `cargo test` runs the conformance suite on it.

use hotplug_core::{
    export_plugin, Driver, Geometry, Host, Ops, OptionSpec, OptionType, PluginError, ROption, Request, RequestKinds, RestrictionFlags,
    Restrictions, Strategy, StridedRange,
};
use serde::Deserialize;

/// The `options` table of a `[[strategy]]` that uses this plugin. Unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    memmap_nid: Option<u32>,
    memmap_on_memory: Option<bool>,
}

/// The same options as the host sees them: it checks a scenario against this list before
/// the run, and `host plugins --verbose` prints it. Keep the two in step (the suite's
/// `options` check fails when they disagree).
const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new("memmap_nid", OptionType::INTEGER, "(the range's node)", "take the memmap from this node"),
    OptionSpec::new("memmap_on_memory", OptionType::BOOL, "false", "put each memory block's memmap in the block's first pages"),
];

/// One instance per `[[strategy]]`. The host may call it from several threads at once:
/// keep what a call learns in its return value, not in the instance.
#[derive(Debug)]
pub struct MyStrategy {
    memmap_nid: Option<u32>,
    memmap_on_memory: bool,
}

/// The pages of one memory block's memmap when the block can hold it itself, as
/// `mhp_supports_memmap_on_memory()` decides without `force`: the `struct page`s of a block
/// fill whole pages and whole pageblocks, whole PMDs of vmemmap, and less than the block.
fn memmap_pages_per_block(g: &Geometry) -> Result<u64, String> {
    let block_pages = g.memory_block_size / g.page_size;
    let bytes = g.memmap_bytes(block_pages);
    let pages = bytes / g.page_size;
    if bytes % g.page_size != 0 || pages % g.pageblock_pages != 0 || bytes % g.pmd_size != 0 {
        return Err(format!("a block's memmap ({bytes} bytes) is not whole pageblocks and PMDs"));
    }
    if pages >= block_pages {
        return Err(format!("a block's memmap ({pages} pages) would fill the block"));
    }
    Ok(pages)
}

impl Strategy for MyStrategy {
    // System RAM only: the host (through export_plugin!) refuses device requests for us.
    const KINDS: RequestKinds = RequestKinds::SYSTEM_RAM;
    const OPTIONS: Option<&'static [OptionSpec]> = Some(OPTIONS);

    fn new(options: &str, _host: &Host) -> Result<Self, PluginError> {
        // `options` is the TOML text of the [[strategy]] table's `options`; a bad key or
        // value becomes an error that names it, and the run does not start.
        let o: Options = hotplug_core::options::parse("my-strategy", options)?;
        Ok(MyStrategy { memmap_nid: o.memmap_nid, memmap_on_memory: o.memmap_on_memory.unwrap_or(false) })
    }

    /// Before `__add_pages()`: where does the memmap of `request` go? Nothing exists yet,
    /// so nothing to undo if we refuse: an `Err` fails the step and the model is unchanged.
    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError> {
        // Memory-block devices, so the range can be onlined: what add_memory() always asks.
        let mut restrictions = Restrictions::new(RestrictionFlags::MEMORY_BLOCK_DEVICES);
        let block = request.geometry.pages_per_block();
        let whole_blocks = request.nr_pages > 0 && request.start_pfn % block == 0 && request.nr_pages % block == 0;
        if self.memmap_on_memory && whole_blocks && request.driver != Driver::VIRTIO_MEM {
            match memmap_pages_per_block(&request.geometry) {
                Ok(pages) => {
                    // The kernel's vmem_altmap: the memmap comes from the range's own first
                    // `free` pages. With MEMMAP_ON_MEMORY the host repeats it per block,
                    // as Linux 6.8+ does; `end_pfn` bounds what the altmap may hand out.
                    restrictions.flags = restrictions.flags.union(RestrictionFlags::MEMMAP_ON_MEMORY);
                    restrictions.altmap = ROption::RSome(hotplug_core::Altmap {
                        base_pfn: request.start_pfn,
                        end_pfn: request.start_pfn + request.nr_pages - 1,
                        reserve: 0,
                        free: pages,
                        align: 0,
                        alloc: 0,
                    });
                    restrictions.note = format!("memmap on memory: {pages} pages of each block").into();
                    return Ok(restrictions);
                }
                // Not an error: the kernel falls back to node memory, and says so.
                Err(why) => restrictions.note = format!("memmap on memory not used: {why}").into(),
            }
        }
        if let Some(nid) = self.memmap_nid {
            restrictions.memmap_nid = ROption::RSome(nid);
        }
        log::debug!("set_up pfn {:#x}+{:#x} on node {}", request.start_pfn, request.nr_pages, request.nid);
        Ok(restrictions)
    }

    /// After `__add_pages()`: the sections and their memmap exist. The kernel marks the
    /// pages that hold an altmap's memmap (so they never reach the buddy allocator); a
    /// ZONE_DEVICE strategy would initialise its pages here instead (`init_device_pages`).
    fn construct(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut Ops<'_>) -> Result<(), PluginError> {
        let Some(altmap) = restrictions.altmap.into_option() else { return Ok(()) };
        let block = request.geometry.pages_per_block();
        // The first `free` pages of every block, in one call however many blocks there are.
        ops.mark_vmemmap_strided(StridedRange::new(request.start_pfn + altmap.reserve, altmap.free, block, request.nr_pages / block))
    }

    /// Before the sections go: undo what `construct` did beyond marking (e.g. release what
    /// `ops.reserve_pages` reserved). Marks go with the memmap; this strategy has nothing
    /// else to undo.
    fn tear_down(&self, _request: &Request<'_>, _restrictions: &Restrictions, _ops: &mut Ops<'_>) -> Result<(), PluginError> {
        Ok(())
    }
}

export_plugin!(MyStrategy);
