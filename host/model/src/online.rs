//! Onlining and offlining memory blocks (drivers/base/memory.c memory_block_online /
//! memory_block_offline, mm/memory_hotplug.c online_pages / offline_pages), a run of
//! alike blocks at a time: the kernel onlines block by block, and the model gives the
//! same result for a run at once wherever block-by-block onlining provably picks one
//! zone for all of it (else it goes block by block too). Cost follows the runs and zone
//! boundaries a range crosses, never its blocks.

use std::ops::Range;

use hotplug_core::errno;

use super::block::{BlockInfo, BlockRuns, BlockState};
use super::error::StepError;
use super::groups::GroupKind;
use super::policy::{OnlinePolicy, OnlineType};
use super::units::format_size;
use super::zone::ZoneType;
use super::{Model, PageState};

/// What an online or offline step did.
#[derive(Debug, Clone)]
pub struct BlocksOutcome {
    /// The blocks, with the zone each was onlined to (`None` for an offline).
    pub blocks: BlockRuns<Option<ZoneType>>,
    pub present_delta: i64,
    pub managed_delta: i64,
}

impl Model {
    /// The ids of the blocks covering `[start, start + size)` bytes, which must all exist.
    pub fn blocks_in(&self, start: u64, size: u64) -> Result<Range<u64>, StepError> {
        let g = self.geometry;
        let bs = g.g.memory_block_size;
        if size == 0 || start % bs != 0 || size % bs != 0 {
            return Err(StepError::kernel(
                errno::EINVAL,
                format!("range {start:#x}+{size:#x} is not a whole number of memory blocks ({})", format_size(bs)),
            ));
        }
        let first = start / bs;
        let end = first.saturating_add(size / bs);
        // The first id no run covers.
        let mut next = first;
        for (s, e, _) in self.blocks.runs_in(first, end) {
            if s > next {
                break;
            }
            next = e;
        }
        if next < end {
            return Err(StepError::kernel(errno::ENOENT, format!("memory block memory{next} does not exist")));
        }
        Ok(first..end)
    }

    /// Online every block of the range (one transaction: all or none).
    pub fn online_range(&mut self, start: u64, size: u64, t: OnlineType) -> Result<BlocksOutcome, StepError> {
        self.each_run_in(start, size, |m, id, end| m.online_blocks(id, end, t).map(|(zone, k)| (Some(zone), k)))
            .map_err(|e| e.or_check("memory_block_online"))
    }

    /// Offline every block of the range (one transaction).
    pub fn offline_range(&mut self, start: u64, size: u64, unmovable: bool) -> Result<BlocksOutcome, StepError> {
        self.each_run_in(start, size, |m, id, end| m.offline_blocks(id, end, unmovable).map(|k| (None, k)))
            .map_err(|e| e.or_check("offline_pages"))
    }

    /// Apply `op` from the range's first block on, `op` doing as many blocks as it can at
    /// once, in one transaction, measuring the change in present and managed pages.
    fn each_run_in(
        &mut self,
        start: u64,
        size: u64,
        mut op: impl FnMut(&mut Model, u64, u64) -> Result<(Option<ZoneType>, u64), StepError>,
    ) -> Result<BlocksOutcome, StepError> {
        self.transaction(|m| {
            let before = m.totals();
            let ids = m.blocks_in(start, size)?;
            let mut blocks = BlockRuns::default();
            let mut id = ids.start;
            while id < ids.end {
                let (zone, k) = op(m, id, ids.end)?;
                blocks.push(id, id + k, zone);
                id += k;
            }
            let after = m.totals();
            Ok(BlocksOutcome { blocks, present_delta: after.0 as i64 - before.0 as i64, managed_delta: after.1 as i64 - before.1 as i64 })
        })
    }

    /// (present, managed) over the machine.
    pub fn totals(&self) -> (u64, u64) {
        self.nodes.values().fold((0, 0), |(p, m), n| (p + n.present_pages(), m + n.managed_pages()))
    }

    /// Pages of blocks `[first, end)` a strategy holds back or a virtio-mem device has
    /// not plugged (present, never managed).
    fn reserved_pages_in(&self, first: u64, end: u64) -> u64 {
        let g = self.geometry;
        self.pages.count(g.block_to_pfn(first), g.block_to_pfn(end), |v| matches!(v, PageState::Reserved { .. } | PageState::FakeOffline))
    }

    /// Pages of blocks `[first, end)` (of one run), and how many of them the buddy
    /// allocator manages once online: all but their memmap and a strategy's reservations.
    fn run_pages(&self, first: u64, end: u64, info: &BlockInfo) -> (u64, u64) {
        let pages = (end - first) * self.geometry.pages_per_block();
        let held = (end - first) * info.vmemmap_pages + self.reserved_pages_in(first, end);
        (pages, pages - held.min(pages))
    }

    /// The run of blocks holding `id`, from `id` to at most `end`, with its info.
    fn run_from(&self, id: u64, end: u64) -> Result<(u64, BlockInfo), StepError> {
        match self.blocks.runs_in(id, end).next() {
            Some((s, e, info)) if s == id => Ok((e, info.clone())),
            _ => Err(StepError::kernel(errno::ENOENT, format!("memory{id} does not exist"))),
        }
    }

    /// memory_block_online for one block (inside the caller's transaction).
    pub fn online_block(&mut self, id: u64, t: OnlineType) -> Result<ZoneType, StepError> {
        self.online_blocks(id, id + 1, t).map(|(zone, _)| zone)
    }

    /// memory_block_online from block `first` on (inside the caller's transaction): the
    /// first block, and with it every following block up to `end` that onlining one by
    /// one would put in the same zone. Returns the zone and how many blocks went.
    pub(super) fn online_blocks(&mut self, first: u64, end: u64, t: OnlineType) -> Result<(ZoneType, u64), StepError> {
        let g = self.geometry;
        let (run_end, info) = self.run_from(first, end)?;
        if info.state == BlockState::Online {
            return Err(StepError::kernel(errno::EINVAL, format!("memory{first} is already online")));
        }
        let zone = self.zone_for_range(info.nid, info.group_id, g.block_to_pfn(first), g.pages_per_block(), t);
        let k = self.alike_online_count(&info, first, run_end, t, zone);
        self.online_block_run(first, first + k, &info, zone);
        log::debug!(
            "  memory_block_online -> online_pages: memory{first}-{} ({t:?}) -> zone_for_pfn_range {}, move_pfn_range_to_zone",
            first + k - 1,
            zone.name()
        );
        Ok((zone, k))
    }

    /// How many blocks from `first` (all of `info`'s run up to `end`) go to `zone`, as
    /// `first` does, when onlined one after another. One unless it is provable: the zone
    /// already spans from at or before `first` (so onlining only grows it to the right,
    /// past blocks already decided), no zone boundary of the node lies between, and the
    /// policy's own counters cannot change the answer part way (auto-movable: blocks in
    /// a static group all go alike; without a group, Movable until the ratio is used up).
    fn alike_online_count(&self, info: &BlockInfo, first: u64, end: u64, t: OnlineType, zone: ZoneType) -> u64 {
        let g = self.geometry;
        let first_pfn = g.block_to_pfn(first);
        let Some(node) = self.nodes.get(&info.nid) else { return 1 };
        let z = node.zone(zone);
        if t == OnlineType::OnlineMovable {
            return end - first;
        }
        if z.is_empty() || z.start_pfn > first_pfn {
            return 1;
        }
        let extent = self.zone_status_extent(info.nid, first, end);
        let k = extent - first;
        if t != OnlineType::Online || self.policy.online_policy != OnlinePolicy::AutoMovable {
            return k;
        }
        match self.groups.get(&info.group_id).map(|gr| gr.kind) {
            Some(GroupKind::Static { .. }) => k,
            Some(GroupKind::Dynamic { .. }) => 1,
            None if zone == ZoneType::Movable => k.min(self.auto_movable_run(info.nid, g.pages_per_block()).max(1)),
            None => k,
        }
    }

    /// The end of the blocks from `first` (before `end`) that all intersect the same
    /// zones of node `nid`: zone_for_pfn_range answers alike for them.
    pub(super) fn zone_status_extent(&self, nid: u32, first: u64, end: u64) -> u64 {
        let g = self.geometry;
        let Some(node) = self.nodes.get(&nid) else { return first + 1 };
        let mut extent = end;
        for z in ZoneType::ALL.iter().map(|&z| node.zone(z)).filter(|z| !z.is_empty()) {
            // Blocks [block(zs), block(ze - 1) + 1) intersect the zone.
            for boundary in [g.pfn_to_block(z.start_pfn), g.pfn_to_block(z.end_pfn() - 1) + 1] {
                if boundary > first {
                    extent = extent.min(boundary);
                }
            }
        }
        extent.max(first + 1)
    }

    /// Online blocks `[first, end)` of one run into `zone`.
    fn online_block_run(&mut self, first: u64, end: u64, info: &BlockInfo, zone: ZoneType) {
        let g = self.geometry;
        let (start, stop) = (g.block_to_pfn(first), g.block_to_pfn(end));
        let (nr, managed) = self.run_pages(first, end, info);
        self.nodes.update(&info.nid, |n| {
            let z = n.zone_mut(zone);
            z.grow_span(start, stop);
            z.present += nr;
            z.managed += managed;
            z.free += managed;
            n.onlined_since_boot += managed as i64;
            n.online = true;
        });
        let blocks = end - first;
        self.watermarks_after_run(info.nid, zone, blocks, managed / blocks.max(1), true);
        self.sections.update_range(g.pfn_to_section(start), g.pfn_to_section(stop), |s| s.online = true);
        self.blocks.update_range(first, end, |b| {
            b.state = BlockState::Online;
            b.zone = Some(zone);
        });
        self.account_group(info.group_id, zone, nr as i64);
    }

    /// memory_block_offline for one block (inside the caller's transaction).
    pub fn offline_block(&mut self, id: u64, unmovable: bool) -> Result<(), StepError> {
        self.offline_blocks(id, id + 1, unmovable).map(|_| ())
    }

    /// memory_block_offline from block `first` on: the first block and the rest of its
    /// run up to `end` (alike blocks pass the same checks). Boot blocks go one by one
    /// (each has its own holes). Returns how many blocks went.
    pub(super) fn offline_blocks(&mut self, first: u64, end: u64, unmovable: bool) -> Result<u64, StepError> {
        let g = self.geometry;
        let (run_end, info) = self.run_from(first, end)?;
        if info.state == BlockState::Offline {
            return Err(StepError::kernel(errno::EINVAL, format!("memory{first} is already offline")));
        }
        let Some(zone) = info.zone else {
            return Err(StepError::kernel(
                errno::EINVAL,
                format!("memory{first} spans several zones (valid_zones \"none\"): offline_pages refuses it"),
            ));
        };
        let nr = g.pages_per_block();
        let end = if info.early {
            let ram = self.nodes.get(&info.nid).map_or(0, |n| n.boot_pages_in(&g.block_pfns(first)));
            if ram != nr {
                return Err(StepError::kernel(
                    errno::EINVAL,
                    format!("memory{first} has memory holes ({ram} of its {nr} pages are RAM): offline_pages refuses it"),
                ));
            }
            first + 1
        } else {
            run_end
        };
        if unmovable {
            return Err(StepError::kernel(
                errno::EBUSY,
                format!("memory{first} holds unmovable pages (the step says so): isolation fails, offline_pages returns EBUSY"),
            ));
        }
        let (start, stop) = (g.block_to_pfn(first), g.block_to_pfn(end));
        let (pages, managed) = self.run_pages(first, end, &info);
        self.nodes.update(&info.nid, |n| {
            let z = n.zone_mut(zone);
            z.present -= pages.min(z.present);
            z.managed -= managed.min(z.managed);
            z.free -= managed.min(z.free);
            n.onlined_since_boot -= managed as i64;
        });
        let blocks = end - first;
        self.watermarks_after_run(info.nid, zone, blocks, managed / blocks.max(1), false);
        self.sections.update_range(g.pfn_to_section(start), g.pfn_to_section(stop), |s| s.online = false);
        self.blocks.update_range(first, end, |b| {
            b.state = BlockState::Offline;
            b.zone = None;
        });
        self.account_group(info.group_id, zone, -(pages as i64));
        self.shrink_zone_span(info.nid, zone, start, stop);
        log::debug!("  memory_block_offline -> offline_pages: memory{first}-{} out of {}, zone span shrunk", end - 1, zone.name());
        Ok(end - first)
    }

    /// shrink_zone_span: when `[start, end)` touches the zone's start or end, move that
    /// edge to the nearest remaining online memory of the zone; a middle hole changes
    /// nothing. The model finds that memory by runs of blocks, not page by page.
    fn shrink_zone_span(&mut self, nid: u32, zone: ZoneType, start: u64, end: u64) {
        let g = self.geometry;
        let Some(z) = self.nodes.get(&nid).map(|n| *n.zone(zone)) else { return };
        if z.is_empty() {
            return;
        }
        let in_zone = |b: &BlockInfo| b.nid == nid && b.state == BlockState::Online && b.zone == Some(zone);
        let (zs, ze) = (z.start_pfn, z.end_pfn());
        let zone_blocks = (g.pfn_to_block(zs), g.pfn_to_block(ze - 1) + 1);
        let mut new = (zs, ze);
        if start <= zs {
            let first = self
                .blocks
                .runs_in(g.pfn_to_block(end), zone_blocks.1)
                .find(|(_, _, b)| in_zone(b))
                .map(|(s, _, _)| g.block_to_pfn(s).max(zs));
            new = first.map_or((0, 0), |f| (f, ze));
        } else if end >= ze {
            let last = self
                .blocks
                .runs_in(zone_blocks.0, g.pfn_to_block(start))
                .rev()
                .find(|(_, _, b)| in_zone(b))
                .map(|(_, e, _)| g.block_to_pfn(e).min(ze));
            new = last.map_or((0, 0), |l| (zs, l));
        }
        self.nodes.update(&nid, |n| {
            let z = n.zone_mut(zone);
            z.start_pfn = new.0;
            z.spanned = new.1 - new.0;
        });
    }
}
