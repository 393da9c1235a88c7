//! The baseline strategy: what `add_memory()` does without MHP_MEMMAP_ON_MEMORY.
//!
//! Memory-block devices are created so the range can be onlined, and the memmap comes
//! from node memory (the range's own node, or `memmap_nid`). This is the strategy that
//! runs out on a small VM hot-adding a lot: every 128 MiB section needs 2 MiB of
//! already-online memory for its `struct page`s.

use hotplug_core::{
    export_plugin, Host, PluginError, ROption, Request, RequestKind, RequestKinds, RestrictionFlags, Restrictions, Strategy,
};
use serde::Deserialize;

/// The `options` table of a `[[strategy]]` using this plugin.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Take the memmap from this node instead of the range's own node.
    memmap_nid: Option<u32>,
}

/// The baseline System RAM strategy.
#[derive(Debug)]
pub struct SystemRam {
    memmap_nid: Option<u32>,
}

impl Strategy for SystemRam {
    const KINDS: RequestKinds = RequestKinds::SYSTEM_RAM;

    fn new(options: &str, _host: &Host) -> Result<Self, PluginError> {
        let options: Options = hotplug_core::options::parse("system-ram", options)?;
        Ok(SystemRam { memmap_nid: options.memmap_nid })
    }

    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError> {
        if request.kind != RequestKind::SYSTEM_RAM {
            return Err(PluginError::errno(
                hotplug_core::errno::EOPNOTSUPP,
                format!("system-ram handles only system-ram requests, not {}", request.kind.name()),
            ));
        }
        let mut restrictions = Restrictions::new(RestrictionFlags::MEMORY_BLOCK_DEVICES);
        if let Some(nid) = self.memmap_nid {
            restrictions.memmap_nid = ROption::RSome(nid);
        }
        log::debug!("set_up pfn {:#x}+{:#x}: memmap from node memory", request.start_pfn, request.nr_pages);
        Ok(restrictions)
    }
}

export_plugin!(SystemRam);
