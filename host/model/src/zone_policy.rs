//! Which zone a memory block goes to when it is onlined, and what `valid_zones` shows
//! (mm/memory_hotplug.c zone_for_pfn_range; drivers/base/memory.c valid_zones_show).

use super::block::BlockState;
use super::policy::{OnlinePolicy, OnlineType};
use super::zone::ZoneType;
use super::Model;

impl Model {
    /// default_kernel_zone_for_pfn: the first of DMA, DMA32 whose span intersects the
    /// range, else Normal.
    pub fn default_kernel_zone(&self, nid: u32, start: u64, nr: u64) -> ZoneType {
        let Some(node) = self.nodes.get(&nid) else { return ZoneType::Normal };
        [ZoneType::Dma, ZoneType::Dma32].into_iter().find(|&z| node.zone(z).intersects(start, nr)).unwrap_or(ZoneType::Normal)
    }

    /// zone_for_pfn_range: online_kernel -> the kernel zone; online_movable -> Movable;
    /// plain online -> the auto-movable rule under that policy (`group_id` is the block's
    /// memory group, 0 for none), else whichever of kernel zone and Movable already spans
    /// the range if exactly one does, else Movable with `movable_node`, else the kernel
    /// zone.
    pub fn zone_for_range(&self, nid: u32, group_id: u64, start: u64, nr: u64, t: OnlineType) -> ZoneType {
        let kernel = self.default_kernel_zone(nid, start, nr);
        match t {
            OnlineType::OnlineKernel => kernel,
            OnlineType::OnlineMovable => ZoneType::Movable,
            OnlineType::Online if self.policy.online_policy == OnlinePolicy::AutoMovable => {
                self.auto_movable_zone(nid, group_id, start, nr)
            }
            OnlineType::Online => {
                let Some(node) = self.nodes.get(&nid) else { return kernel };
                let in_kernel = node.zone(kernel).intersects(start, nr);
                let in_movable = node.zone(ZoneType::Movable).intersects(start, nr);
                match (in_kernel, in_movable) {
                    (true, false) => kernel,
                    (false, true) => ZoneType::Movable,
                    _ if self.policy.movable_node => ZoneType::Movable,
                    _ => kernel,
                }
            }
        }
    }

    /// The text of memoryN/valid_zones (without the newline): an online block shows its
    /// zone ("none" for a boot block spanning zones); an offline block shows the zone a
    /// plain online would pick, then the online_kernel and online_movable zones that
    /// differ from it. `None` when the block does not exist.
    pub fn valid_zones(&self, block_id: u64) -> Option<String> {
        let b = self.blocks.get(&block_id)?;
        if b.state == BlockState::Online {
            return Some(b.zone.map_or("none", ZoneType::name).to_string());
        }
        let g = self.geometry;
        let (start, nr) = (g.block_to_pfn(block_id), g.pages_per_block());
        let default = self.zone_for_range(b.nid, b.group_id, start, nr, OnlineType::Online);
        let mut text = default.name().to_string();
        for t in [OnlineType::OnlineKernel, OnlineType::OnlineMovable] {
            let z = self.zone_for_range(b.nid, b.group_id, start, nr, t);
            if z != default {
                text.push(' ');
                text.push_str(z.name());
            }
        }
        Some(text)
    }

    /// memoryN/valid_zones of block `first`, and the end of the blocks from `first`
    /// (before `end`, all of one run) that show the same: an online run shows its zone
    /// throughout; an offline one the same zones while no zone boundary intervenes
    /// (block by block in a dynamic group with units other than a block, whose answer
    /// depends on each unit). What reports use to print a million blocks as one row.
    pub fn valid_zones_run(&self, first: u64, end: u64) -> Option<(String, u64)> {
        let text = self.valid_zones(first)?;
        let (_, run_end, info) = self.blocks.runs_in(first, end).next()?;
        if info.state == BlockState::Online {
            return Some((text, run_end));
        }
        let per_unit = matches!(
            self.groups.get(&info.group_id).map(|g| g.kind),
            Some(super::groups::GroupKind::Dynamic { unit_pages }) if unit_pages != self.geometry.pages_per_block()
        );
        let extent = if per_unit { first + 1 } else { self.zone_status_extent(info.nid, first, run_end) };
        Some((text, extent))
    }
}
