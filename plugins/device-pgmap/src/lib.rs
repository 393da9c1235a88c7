//! Device memory mapped by memremap_pages (ZONE_DEVICE), the way a driver sets up its
//! `dev_pagemap`: `set_up` returns restrictions without memory-block devices (device memory
//! is never onlined as System RAM), with an altmap when the device holds its own memmap
//! (an nvdimm namespace created with `--map=dev`); `construct` does what
//! memmap_init_zone_device does: every device page gets ZONE_DEVICE, its node and its
//! pgmap, in compound pages when asked.

mod namespace;

use hotplug_core::options::Size;
use hotplug_core::{
    errno, export_plugin, Altmap, DevicePageInit, Host, Ops, OptionSpec, OptionType, PfnRange, PgmapType, PluginError, Request,
    RequestKinds, RestrictionFlags, Restrictions, Strategy,
};
pub use namespace::{layout, Layout, LayoutError, Map};
use serde::Deserialize;

/// The `options` table of a `[[strategy]]` using this plugin.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// The pgmap type: private, coherent, fsdax, generic (device-dax), p2pdma.
    #[serde(rename = "type")]
    pgmap_type: Option<String>,
    /// Where the memmap lives: "mem" (RAM) or "dev" (in the namespace, through an altmap).
    map: Option<Map>,
    /// The namespace alignment (bytes, or a size such as "2MiB"); raised to 2 MiB.
    align: Option<Size>,
    /// Compound pages: 0 (base pages), 9 (2 MiB with 4 KiB pages), 18 (1 GiB).
    vmemmap_shift: Option<u32>,
}

/// The options, for the host and `host plugins --verbose`.
const OPTIONS: &[OptionSpec] = &[
    OptionSpec::choice(
        "type",
        "private|coherent|fsdax|generic|p2pdma",
        "\"generic\"",
        "the pgmap type when the step names none (generic: device-dax)",
    ),
    OptionSpec::choice("map", "mem|dev", "\"mem\"", "where an nvdimm namespace's memmap lives: RAM, or the namespace (altmap)"),
    OptionSpec::new("align", OptionType::SIZE, "\"2MiB\"", "the namespace alignment, raised to 2 MiB"),
    OptionSpec::new("vmemmap_shift", OptionType::INTEGER, "0", "compound-page order when the step names none (9: 2 MiB, 18: 1 GiB)"),
];

/// The device-pgmap strategy.
#[derive(Debug)]
pub struct DevicePgmap {
    pgmap_type: PgmapType,
    map: Map,
    align: u64,
    vmemmap_shift: u32,
}

impl DevicePgmap {
    /// The type and compound order for `request`: the driver's (the step's) when it names
    /// them, else this instance's options.
    fn pgmap_of(&self, request: &Request<'_>) -> (PgmapType, u32) {
        let t = if request.pgmap_type == PgmapType::NONE { self.pgmap_type } else { request.pgmap_type };
        let shift = if request.vmemmap_shift == 0 { self.vmemmap_shift } else { request.vmemmap_shift };
        (t, shift)
    }
}

impl Strategy for DevicePgmap {
    const KINDS: RequestKinds = RequestKinds::DEVICE;
    const OPTIONS: Option<&'static [OptionSpec]> = Some(OPTIONS);

    fn new(options: &str, _host: &Host) -> Result<Self, PluginError> {
        let o: Options = hotplug_core::options::parse("device-pgmap", options)?;
        let t = match &o.pgmap_type {
            None => PgmapType::GENERIC,
            Some(name) => PgmapType::from_name(name).ok_or_else(|| {
                PluginError::msg(format!(
                    "device-pgmap option \"type\": unknown type {name:?}: use {}",
                    hotplug_core::or_list(PgmapType::ALL.map(PgmapType::name))
                ))
            })?,
        };
        let shift = o.vmemmap_shift.unwrap_or(0);
        if shift > 30 {
            return Err(PluginError::msg(format!("device-pgmap option \"vmemmap_shift\": {shift} is not a compound order (0, 9 or 18)")));
        }
        let align = o.align.map_or(2 << 20, |Size(bytes)| bytes);
        Ok(DevicePgmap { pgmap_type: t, map: o.map.unwrap_or(Map::Mem), align, vmemmap_shift: shift })
    }

    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError> {
        let (t, shift) = self.pgmap_of(request);
        let g = request.geometry;
        // The host refuses orders past 2^64 bytes; a plugin checks what it is given anyway.
        let compound = 1u64.checked_shl(shift).and_then(|n| n.checked_mul(g.page_size)).ok_or_else(|| {
            PluginError::errno(errno::EINVAL, format!("vmemmap_shift {shift}: a compound page of 2^{shift} pages passes 2^64 bytes"))
        })?;
        let (start, size) = (request.start_pfn * g.page_size, request.nr_pages * g.page_size);
        if shift > 0 && (start % compound != 0 || size % compound != 0) {
            return Err(PluginError::errno(
                errno::EINVAL,
                format!("{start:#x}+{size:#x} is not whole compound pages of {} KiB (vmemmap_shift {shift})", compound >> 10),
            ));
        }
        let mut r = Restrictions::new(RestrictionFlags(0));
        if t == PgmapType::PRIVATE {
            // add_pages without a linear map: the CPU cannot touch device-private memory.
            r.flags = RestrictionFlags::NO_DIRECT_MAP;
        }
        let namespace = matches!(t, PgmapType::FS_DAX | PgmapType::GENERIC);
        if self.map == Map::Dev && !namespace {
            return Err(PluginError::errno(
                errno::EINVAL,
                format!("map = \"dev\" needs an nvdimm namespace (fsdax or generic), not {} memory", t.name()),
            ));
        }
        if !namespace || request.range_index > 0 {
            r.note = format!("{} memory, memmap in RAM", t.name()).into();
            return Ok(r);
        }
        let l = layout(start, size, self.align, self.map, g.page_size).map_err(|e| PluginError::errno(e.errno(), e.to_string()))?;
        if let Some((reserve, free)) = l.altmap_pages {
            r.altmap = Some(Altmap {
                base_pfn: request.start_pfn,
                end_pfn: request.start_pfn + request.nr_pages - 1,
                reserve,
                free,
                align: 0,
                alloc: 0,
            })
            .into();
        }
        r.note = l.describe(t, size, g.page_size).into();
        Ok(r)
    }

    fn construct(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut Ops<'_>) -> Result<(), PluginError> {
        let (t, shift) = self.pgmap_of(request);
        let mut first = request.start_pfn;
        if let Some(a) = restrictions.altmap.into_option() {
            // The pages holding the memmap (the altmap's free area) are not device pages.
            ops.mark_vmemmap(PfnRange::new(a.base_pfn + a.reserve, a.free))?;
            first = a.base_pfn + a.reserve + a.free;
        }
        // memmap_init_zone_device: device-private and -coherent pages start with a zero
        // refcount (they are free until the driver hands them out), the others with one.
        let refcount = if matches!(t, PgmapType::PRIVATE | PgmapType::COHERENT) { 0 } else { 1 };
        let init = DevicePageInit { nid: request.nid, pgmap_id: request.pgmap_id, compound_order: shift, refcount };
        ops.init_device_pages(PfnRange::new(first, request.start_pfn + request.nr_pages - first), init)
    }
}

export_plugin!(DevicePgmap);

#[cfg(test)]
mod tests {
    use super::*;

    /// The `type` option's choices are the contract's pgmap type names, in its order.
    #[test]
    fn type_choices_are_the_contracts_pgmap_types() {
        assert_eq!(OPTIONS[0].choice_list().collect::<Vec<_>>(), PgmapType::ALL.map(PgmapType::name));
    }
}
