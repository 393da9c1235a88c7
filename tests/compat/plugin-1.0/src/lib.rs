//! A plugin as a contract 1.0 author wrote it, built against the released hotplug-core
//! 1.0.0 sources: system-ram placement, or with `memmap_on_memory = true` a per-block
//! altmap whose memmap `construct` marks block by block (1.0 had no strided call).

use hotplug_core::{
    export_plugin, Altmap, Host, Ops, PfnRange, PluginError, Request, RequestKinds, RestrictionFlags, Restrictions, Strategy,
};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    memmap_on_memory: bool,
}

pub struct Verbatim {
    memmap_on_memory: bool,
}

impl Strategy for Verbatim {
    const KINDS: RequestKinds = RequestKinds::SYSTEM_RAM;

    fn new(options: &str, _host: &Host) -> Result<Self, PluginError> {
        let o: Options = hotplug_core::options::parse("plugin-1-0-verbatim", options)?;
        Ok(Verbatim { memmap_on_memory: o.memmap_on_memory })
    }

    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError> {
        let mut r = Restrictions::new(RestrictionFlags::MEMORY_BLOCK_DEVICES);
        if self.memmap_on_memory {
            let g = request.geometry;
            let block = g.memory_block_size / g.page_size;
            r.flags = RestrictionFlags(RestrictionFlags::MEMORY_BLOCK_DEVICES.0 | RestrictionFlags::MEMMAP_ON_MEMORY.0);
            r.altmap = Some(Altmap {
                base_pfn: request.start_pfn,
                end_pfn: request.start_pfn + request.nr_pages - 1,
                reserve: 0,
                free: (block * g.struct_page_size).div_ceil(g.page_size),
                align: 0,
                alloc: 0,
            })
            .into();
        }
        Ok(r)
    }

    fn construct(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut Ops<'_>) -> Result<(), PluginError> {
        let Some(a) = restrictions.altmap.into_option() else { return Ok(()) };
        let block = request.geometry.memory_block_size / request.geometry.page_size;
        let mut start = request.start_pfn;
        while start < request.start_pfn + request.nr_pages {
            ops.mark_vmemmap(PfnRange::new(start + a.reserve, a.free))?;
            start += block;
        }
        Ok(())
    }
}

export_plugin!(Verbatim);
