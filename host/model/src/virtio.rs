//! virtio-mem devices in sub-block mode (drivers/virtio/virtio_mem.c, "SBM"): the device
//! plugs and unplugs sub-blocks (the larger of its block size, 2 MiB by default, and a
//! pageblock); Linux adds and removes whole memory blocks, each its own driver-managed
//! add ("System RAM (virtio_mem)", merged with its neighbours) nested in the device's
//! region ("virtio0") in /proc/iomem, all in one dynamic memory group. A block may be
//! partly plugged: it is present whole, but its unplugged sub-blocks are fake-offline
//! pages the buddy allocator never sees. virtio-mem never asks for memmap on memory.
//!
//! A request may partly succeed, as the driver's does: each block's add or removal is its
//! own transaction, and the device keeps what it plugged or could not unplug.

use hotplug_core::{errno, Driver};

use super::block::BlockRuns;
use super::error::StepError;
use super::groups::GroupKind;
use super::hotplug::{AddParams, GroupRequest};
use super::ops::{StrategyHandle, StrategyLookup};
use super::range::PhysRange;
use super::units::format_size;
use super::zone::ZoneType;
use super::{BlockState, Model, PageState};

/// The device block size a virtio-mem device reports unless the config gives one
/// (QEMU's default on x86_64).
pub const DEFAULT_DEVICE_BLOCK_SIZE: u64 = 2 << 20;

/// One virtio-mem device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtioMem {
    pub name: String,
    pub nid: u32,
    /// The device's region `[start, start + region_size)` (bytes), its iomem resource.
    pub start: u64,
    pub region_size: u64,
    /// Whether the region was left to the model (`region_size` not configured): it then
    /// grows with the requests instead of ending them with ENOSPC.
    pub region_grows: bool,
    /// The plug granularity: max(device block size, pageblock) (bytes).
    pub sb_size: u64,
    /// Bytes plugged.
    pub plugged: u64,
    pub group_id: u64,
    /// The device region's resource id.
    pub resource_id: u64,
}

impl VirtioMem {
    /// The ids of the memory blocks the device's region can hold (its blocks' sub-block
    /// maps are in `Model::virtio_blocks`, journaled one block at a time).
    pub fn block_ids(&self, block_size: u64) -> std::ops::Range<u64> {
        self.start / block_size..(self.start + self.region_size).div_ceil(block_size)
    }
}

/// What one grow keeps while it adds block after block: the next block id to try and
/// the device's added-but-offline bytes (virtio_mem_could_add_memory's `offline_size`),
/// counted once when the grow starts and then kept up to date, as the kernel's memory
/// notifier keeps it, instead of being recounted for every block.
struct GrowCursor {
    next_id: u64,
    offline: u64,
}

/// Which sub-blocks of one memory block are plugged (bit i: sub-block i).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubBlocks {
    bits: Vec<u64>,
    count: u64,
}

impl SubBlocks {
    /// `count` sub-blocks, none plugged.
    fn new(count: u64) -> Self {
        SubBlocks { bits: vec![0; count.div_ceil(64) as usize], count }
    }

    pub fn is_plugged(&self, i: u64) -> bool {
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: u64, plugged: bool) {
        let word = &mut self.bits[(i / 64) as usize];
        if plugged {
            *word |= 1 << (i % 64);
        } else {
            *word &= !(1 << (i % 64));
        }
    }

    /// Plugged sub-blocks.
    pub fn plugged(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    pub fn is_full(&self) -> bool {
        self.plugged() == self.count
    }

    pub fn is_empty(&self) -> bool {
        self.plugged() == 0
    }
}

/// The driver's view of an added block (enum virtio_mem_sbm_mb_state), in the order
/// unplug requests visit them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum MbState {
    OfflinePartial,
    Offline,
    MovablePartial,
    KernelPartial,
    Movable,
    Kernel,
}

/// What a grow or shrink did.
#[derive(Debug, Clone)]
pub struct ResizeOutcome {
    pub device: String,
    /// Blocks added by a grow or removed by a shrink, in the order the driver met them.
    pub blocks: BlockRuns,
    /// Blocks a shrink offlined before it removed them (offline_and_remove_memory): they
    /// were online, so user space heard `offline` before `remove`.
    pub offlined: BlockRuns,
    /// Blocks onlined by a grow, with their zones.
    pub onlined: BlockRuns<ZoneType>,
    /// The plugged size the request asked for, before and after it (bytes).
    pub requested: u64,
    pub plugged_before: u64,
    pub plugged: u64,
    pub memmap_node_pages: u64,
    /// Why auto-onlining stopped early (the grow itself stands).
    pub online_error: Option<StepError>,
    /// Why the request stopped short of `requested` (a partial resize).
    pub stopped: Option<StepError>,
}

impl ResizeOutcome {
    fn new(device: &str, plugged_before: u64, requested: u64) -> Self {
        ResizeOutcome {
            device: device.to_string(),
            blocks: BlockRuns::default(),
            offlined: BlockRuns::default(),
            onlined: BlockRuns::default(),
            requested,
            plugged_before,
            plugged: plugged_before,
            memmap_node_pages: 0,
            online_error: None,
            stopped: None,
        }
    }

    /// Whether the device reached the requested size.
    pub fn complete(&self) -> bool {
        self.plugged == self.requested
    }
}

/// What a new device is made of (a grow's `start`, `region_size`, `block_size`, `unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NewDevice {
    pub start: Option<u64>,
    pub region_size: Option<u64>,
    pub block_size: Option<u64>,
    pub unit: Option<u64>,
}

/// Sub-blocks a shrink may not take: `unmovable` (every online page) or inside one of
/// `ranges` (alloc_contig_range fails with EBUSY there).
#[derive(Debug, Clone, Copy)]
pub struct Unmovable<'a> {
    pub all: bool,
    pub ranges: &'a [PhysRange],
}

impl Model {
    /// The device's view of block `id`.
    fn mb_state(&self, id: u64, sbs: &SubBlocks) -> MbState {
        let b = self.blocks.get(&id);
        let full = sbs.is_full();
        match b.map(|b| (b.state, b.zone)) {
            Some((BlockState::Online, Some(ZoneType::Movable))) if full => MbState::Movable,
            Some((BlockState::Online, Some(ZoneType::Movable))) => MbState::MovablePartial,
            Some((BlockState::Online, _)) if full => MbState::Kernel,
            Some((BlockState::Online, _)) => MbState::KernelPartial,
            _ if full => MbState::Offline,
            _ => MbState::OfflinePartial,
        }
    }

    /// The device, created as `new` says on its first grow: the region's iomem resource
    /// and the dynamic group (unit: a memory block unless configured).
    fn virtio_device(&mut self, name: &str, nid: u32, new: NewDevice, size: u64) -> Result<VirtioMem, StepError> {
        if let Some(d) = self.virtio.get(&name.to_string()) {
            return Ok(d.clone());
        }
        let g = self.geometry;
        let bs = g.g.memory_block_size;
        let einval = |m: String| StepError::kernel(errno::EINVAL, m);
        let start = new.start.ok_or_else(|| einval(format!("virtio-mem device {name} is new: give its `start`")))?;
        let device_block = new.block_size.unwrap_or(DEFAULT_DEVICE_BLOCK_SIZE);
        let pageblock = g.g.pageblock_pages * g.page_size();
        if !device_block.is_power_of_two() || device_block < g.page_size() {
            return Err(einval(format!("virtio-mem block size {device_block:#x} is not a power of two of at least a page")));
        }
        let sb_size = device_block.max(pageblock);
        if sb_size >= bs {
            return Err(einval(format!(
                "virtio-mem {name}: sub-blocks of {} leave fewer than two per {} memory block (big-block mode is not modelled)",
                format_size(sb_size),
                format_size(bs)
            )));
        }
        if start % device_block != 0 {
            return Err(einval(format!("virtio-mem region {start:#x} is not aligned to its {} block size", format_size(device_block))));
        }
        // memory_group_register_dynamic: a unit of whole memory blocks, a power of two.
        let unit = new.unit.unwrap_or(bs);
        if unit == 0 || !unit.is_power_of_two() || unit < bs {
            return Err(einval(format!(
                "virtio-mem {name}: a dynamic memory group's unit of {unit:#x} bytes is not a power of two of at least one {} memory block",
                format_size(bs)
            )));
        }
        let region_size = match new.region_size {
            Some(r) => r,
            None => (start % bs).checked_add(size).and_then(|n| n.div_ceil(bs).checked_mul(bs)).unwrap_or(u64::MAX),
        };
        let end = start.checked_add(region_size).filter(|&e| region_size > 0 && e - 1 <= g.physmem_end());
        let Some(end) = end else {
            return Err(einval(format!("virtio-mem region {start:#x}+{region_size:#x} is empty or outside the pluggable range")));
        };
        let resource_id = self.resources.request(start, end - 1, name, false).map_err(|c| {
            StepError::kernel(
                errno::EBUSY,
                format!(
                    "virtio-mem region {start:#x}-{:#x} conflicts with \"{}\" {:#x}-{:#x} in /proc/iomem",
                    end - 1,
                    c.name,
                    c.start,
                    c.end
                ),
            )
        })?;
        let unit_pages = unit / g.page_size();
        let group_id = self.register_group(nid, GroupKind::Dynamic { unit_pages }, name);
        let dev = VirtioMem {
            name: name.to_string(),
            nid,
            start,
            region_size,
            region_grows: new.region_size.is_none(),
            sb_size,
            plugged: 0,
            group_id,
            resource_id,
        };
        self.virtio.insert(name.to_string(), dev.clone());
        Ok(dev)
    }

    /// Plug `size` more bytes of device `name` (created as `new` says on its first grow),
    /// as virtio_mem_sbm_plug_request does: fill partly plugged blocks (kernel zone,
    /// Movable, offline; lowest first), then add blocks, lowest unused first, each with
    /// its lowest sub-blocks plugged, each onlined as auto_online_blocks says before the
    /// next is added. The driver stops adding while 1 GiB (at least two blocks) is added
    /// but offline (ENOSPC); the first failure stops the request and what was plugged
    /// stays. Nothing plugged: the error, and the model as it was.
    pub fn virtio_grow(
        &mut self,
        name: &str,
        new: NewDevice,
        size: u64,
        nid: u32,
        strategy: &dyn StrategyHandle,
    ) -> Result<ResizeOutcome, StepError> {
        let existed = self.virtio.get(&name.to_string()).is_some();
        let dev = self.transaction(|m| m.virtio_device(name, nid, new, size))?;
        let sbs_wanted = size / dev.sb_size;
        if sbs_wanted == 0 {
            let e = StepError::kernel(
                errno::EINVAL,
                format!("virtio-mem {name} plugs {} sub-blocks: {size:#x} bytes is less than one", format_size(dev.sb_size)),
            );
            return Err(self.undo_new_device(name, existed, e));
        }
        // The device can never hold more than the pluggable range above its start.
        let target = dev.plugged.checked_add(sbs_wanted * dev.sb_size);
        if target.and_then(|t| dev.start.checked_add(t)).is_none_or(|end| end - 1 > self.geometry.physmem_end()) {
            let e = StepError::kernel(
                errno::EINVAL,
                format!(
                    "virtio-mem {name}: {} plugged and {size:#x} bytes more from {:#x} pass the end of the pluggable range {:#x}",
                    format_size(dev.plugged),
                    dev.start,
                    self.geometry.physmem_end()
                ),
            );
            return Err(self.undo_new_device(name, existed, e));
        }
        let mut out = ResizeOutcome::new(name, dev.plugged, target.unwrap_or(u64::MAX));
        let mut left = sbs_wanted;
        // Partly plugged blocks first, by state, lowest block first.
        for state in [MbState::KernelPartial, MbState::MovablePartial, MbState::OfflinePartial] {
            let ids: Vec<u64> = self.device_blocks(name).filter(|(&id, s)| self.mb_state(id, s) == state).map(|(&id, _)| id).collect();
            for id in ids {
                if left == 0 {
                    break;
                }
                left -= self.transaction(|m| Ok(m.plug_sub_blocks(name, id, left))).unwrap_or(0);
            }
        }
        // Then whole blocks: unused ones inside the device's range of blocks first.
        let bs = self.geometry.g.memory_block_size;
        let offline_blocks = self.device_blocks(name).filter(|(&id, _)| self.added_offline(id)).count() as u64;
        let mut cursor = GrowCursor { next_id: self.device(name).start.div_ceil(bs), offline: offline_blocks * bs };
        while left > 0 {
            match self.plug_new_block(name, left, strategy, &mut out, &mut cursor) {
                Ok(plugged) => left -= plugged,
                Err(e) => {
                    out.stopped = Some(e);
                    break;
                }
            }
        }
        out.plugged = self.virtio.get(&name.to_string()).map_or(0, |d| d.plugged);
        match &out.stopped {
            Some(e) if out.plugged == out.plugged_before => Err(self.undo_new_device(name, existed, e.clone())),
            _ => Ok(out),
        }
    }

    /// Whether device block `id` counts in virtio_mem_could_add_memory's offline size:
    /// it is not online (or has no memory-block device).
    fn added_offline(&self, id: u64) -> bool {
        self.blocks.get(&id).is_none_or(|b| b.state == BlockState::Offline)
    }

    /// The device `name` (it exists).
    fn device(&self, name: &str) -> &VirtioMem {
        self.virtio.get(&name.to_string()).expect("the device exists")
    }

    /// The blocks device `name` has added, lowest first, with their sub-blocks.
    fn device_blocks(&self, name: &str) -> impl DoubleEndedIterator<Item = (&u64, &SubBlocks)> + '_ {
        let ids = self.virtio.get(&name.to_string()).map_or(0..0, |d| d.block_ids(self.geometry.g.memory_block_size));
        self.virtio_blocks.range(ids)
    }

    /// A request that plugged nothing leaves no trace: a device it created goes again.
    fn undo_new_device(&mut self, name: &str, existed: bool, e: StepError) -> StepError {
        if !existed {
            self.drop_device(name);
        }
        e
    }

    /// Device `name` goes, with its region's iomem resource and its memory group.
    fn drop_device(&mut self, name: &str) {
        let _ = self.transaction(|m| {
            if let Some(dev) = m.virtio.remove(&name.to_string()) {
                m.resources.release(dev.resource_id);
                m.groups.remove(&dev.group_id);
            }
            Ok(())
        });
    }

    /// Plug up to `max` of block `id`'s unplugged sub-blocks, lowest first
    /// (virtio_mem_sbm_plug_any_sb): an online block's pages go to the buddy allocator
    /// at once (virtio_mem_fake_online), an offline block's when it is onlined. Returns
    /// how many were plugged.
    fn plug_sub_blocks(&mut self, name: &str, id: u64, max: u64) -> u64 {
        let g = self.geometry;
        let dev = self.device(name).clone();
        let mut sbs = self.virtio_blocks.get(&id).cloned().expect("a block of the device");
        let per_sb = dev.sb_size / g.page_size();
        let block_pfn = g.block_to_pfn(id);
        let mut plugged = 0;
        let unplugged: Vec<u64> = (0..sbs.count).filter(|&i| !sbs.is_plugged(i)).collect();
        for i in unplugged {
            if plugged == max {
                break;
            }
            sbs.set(i, true);
            let s = block_pfn + i * per_sb;
            self.pages.set(s, s + per_sb, None);
            plugged += 1;
        }
        self.fake_online(id, (plugged * per_sb) as i64);
        self.virtio_blocks.insert(id, sbs);
        self.virtio.update(&name.to_string(), |d| d.plugged += plugged * d.sb_size);
        plugged
    }

    /// Pages of online block `id` handed to (positive) or taken from (negative) the
    /// buddy allocator by the driver: managed and free move, present does not
    /// (adjust_managed_page_count, no watermark recompute). Nothing for an offline block.
    fn fake_online(&mut self, id: u64, pages: i64) {
        let Some(b) = self.blocks.get(&id) else { return };
        let (BlockState::Online, Some(zone)) = (b.state, b.zone) else { return };
        self.nodes.update(&b.nid, |n| {
            let z = n.zone_mut(zone);
            z.managed = z.managed.saturating_add_signed(pages);
            z.free = z.free.saturating_add_signed(pages).min(z.managed);
            n.onlined_since_boot += pages;
        });
    }

    /// virtio_mem_sbm_plug_and_add_mb: the next block the device can use, with up to
    /// `max` of its sub-blocks plugged (lowest first), added whole and auto-onlined.
    /// Returns the sub-blocks plugged.
    fn plug_new_block(
        &mut self,
        name: &str,
        max: u64,
        strategy: &dyn StrategyHandle,
        out: &mut ResizeOutcome,
        cursor: &mut GrowCursor,
    ) -> Result<u64, StepError> {
        let g = self.geometry;
        let bs = g.g.memory_block_size;
        let dev = self.device(name).clone();
        let end_mb = (dev.start + dev.region_size) / bs;
        // virtio_mem_could_add_memory: added but offline memory is capped.
        let offline = cursor.offline;
        let threshold = (2 * bs).max(1 << 30);
        if offline + bs > threshold {
            return Err(StepError::kernel(
                errno::ENOSPC,
                format!(
                    "virtio-mem {name} has {} added but offline: the driver adds no more until some is onlined (threshold {})",
                    format_size(offline),
                    format_size(threshold)
                ),
            ));
        }
        // The lowest unused block: the cursor only moves up within a grow (blocks are only
        // added), so each id is looked at once per grow.
        while self.virtio_blocks.get(&cursor.next_id).is_some() {
            cursor.next_id += 1;
        }
        let id = cursor.next_id;
        let sbs_per_mb = bs / dev.sb_size;
        let count = max.min(sbs_per_mb);
        let result = self.transaction(|m| {
            if id >= end_mb {
                m.grow_region(name, id)?;
            }
            let addr = id * bs;
            let params = AddParams {
                group: GroupRequest::Existing(dev.group_id),
                ..AddParams::for_driver(addr, bs, dev.nid, Driver::VIRTIO_MEM, Some(name.to_string()))
            };
            let added = m.add_memory_resource(&params, strategy)?;
            // The unplugged sub-blocks are fake-offline before the block goes online.
            let per_sb = dev.sb_size / g.page_size();
            let block_pfn = g.block_to_pfn(id);
            m.pages.set(block_pfn + count * per_sb, block_pfn + sbs_per_mb * per_sb, Some(PageState::FakeOffline));
            let mut sbs = SubBlocks::new(sbs_per_mb);
            (0..count).for_each(|i| sbs.set(i, true));
            m.virtio_blocks.insert(id, sbs);
            m.virtio.update(&name.to_string(), |d| d.plugged += count * d.sb_size);
            Ok(added)
        })?;
        out.memmap_node_pages += result.memmap_node_pages;
        let (onlined, error) = self.auto_online(&result.blocks);
        if self.added_offline(id) {
            cursor.offline += bs;
        }
        for &(s, e, z) in onlined.runs() {
            out.onlined.push(s, e, z);
        }
        out.online_error = out.online_error.take().or(error);
        out.blocks.extend(result.blocks);
        Ok(count)
    }

    /// A region the model sized grows to hold block `id`, when nothing lies in the way;
    /// a configured region ends the request (ENOSPC: next_mb_id past last_usable_mb_id).
    fn grow_region(&mut self, name: &str, id: u64) -> Result<(), StepError> {
        let bs = self.geometry.g.memory_block_size;
        let dev = self.device(name).clone();
        let enospc = |why: String| StepError::kernel(errno::ENOSPC, format!("virtio-mem {name}: {why}"));
        if !dev.region_grows {
            return Err(enospc(format!("its region ends at {:#x}: no memory block left to plug", dev.start + dev.region_size - 1)));
        }
        let end = (id + 1) * bs;
        self.resources.extend_end(dev.resource_id, end - 1).map_err(|c| {
            enospc(format!(
                "its region cannot grow past {:#x}: \"{}\" {:#x}-{:#x} follows",
                dev.start + dev.region_size - 1,
                c.name,
                c.start,
                c.end
            ))
        })?;
        self.virtio.update(&name.to_string(), |d| d.region_size = end - d.start);
        Ok(())
    }

    /// Unplug `size` bytes of device `name` as virtio_mem_sbm_unplug_request does: blocks
    /// by state (offline partly plugged, offline, Movable partly plugged, kernel partly
    /// plugged, Movable, kernel), highest block first; an offline block's sub-blocks go
    /// highest first; an online block goes whole when it is fully plugged and the request
    /// covers it, else sub-block by sub-block from its highest, skipping those that
    /// cannot be taken (`unmovable`); a block left with nothing plugged is offlined and
    /// removed. What could not be unplugged stays (EBUSY): a partial shrink.
    pub fn virtio_shrink(
        &mut self,
        name: &str,
        size: u64,
        unmovable: Unmovable<'_>,
        lookup: &dyn StrategyLookup,
    ) -> Result<ResizeOutcome, StepError> {
        let dev = self
            .virtio
            .get(&name.to_string())
            .cloned()
            .ok_or_else(|| StepError::kernel(errno::ENODEV, format!("no virtio-mem device {name}")))?;
        let wanted = size / dev.sb_size;
        if wanted == 0 || wanted * dev.sb_size > dev.plugged {
            return Err(StepError::kernel(
                errno::EINVAL,
                format!(
                    "virtio-mem {name} has {} plugged in {} sub-blocks: cannot unplug {size:#x} bytes",
                    format_size(dev.plugged),
                    format_size(dev.sb_size)
                ),
            ));
        }
        let mut out = ResizeOutcome::new(name, dev.plugged, dev.plugged - wanted * dev.sb_size);
        let mut left = wanted;
        let states =
            [MbState::OfflinePartial, MbState::Offline, MbState::MovablePartial, MbState::KernelPartial, MbState::Movable, MbState::Kernel];
        for state in states {
            let ids: Vec<u64> =
                self.device_blocks(name).rev().filter(|(&id, s)| self.mb_state(id, s) == state).map(|(&id, _)| id).collect();
            for id in ids {
                if left == 0 {
                    break;
                }
                match self.unplug_block(name, id, left, unmovable, lookup, &mut out) {
                    Ok(n) => left -= n,
                    Err(e) => {
                        out.stopped = Some(e);
                        break;
                    }
                }
            }
            if out.stopped.is_some() {
                break;
            }
        }
        out.plugged = self.device(name).plugged;
        if out.plugged == 0 && self.device_blocks(name).next().is_none() {
            // Nothing left plugged: the device goes with its region and group, as it came
            // with its first grow (the model's device lives from first plug to last unplug).
            self.drop_device(name);
        }
        if left > 0 && out.stopped.is_none() {
            out.stopped = Some(StepError::kernel(
                errno::EBUSY,
                format!(
                    "virtio-mem {name}: {} could not be unplugged (unmovable pages); {} stays plugged",
                    format_size(left * dev.sb_size),
                    format_size(out.plugged)
                ),
            ));
        }
        match &out.stopped {
            Some(e) if out.plugged == out.plugged_before => Err(e.clone()),
            _ => Ok(out),
        }
    }

    /// Unplug up to `max` sub-blocks of block `id`; returns how many went. A block left
    /// empty is offlined and removed (its own transaction with the unplug).
    fn unplug_block(
        &mut self,
        name: &str,
        id: u64,
        max: u64,
        unmovable: Unmovable<'_>,
        lookup: &dyn StrategyLookup,
        out: &mut ResizeOutcome,
    ) -> Result<u64, StepError> {
        let g = self.geometry;
        let dev = self.device(name).clone();
        let mut sbs = self.virtio_blocks.get(&id).cloned().expect("a block of the device");
        let per_sb = dev.sb_size / g.page_size();
        let block_pfn = g.block_to_pfn(id);
        let online = self.blocks.get(&id).is_some_and(|b| b.state == BlockState::Online);
        let busy = |i: u64| {
            let (s, e) = ((block_pfn + i * per_sb) * g.page_size(), (block_pfn + (i + 1) * per_sb) * g.page_size());
            online && (unmovable.all || unmovable.ranges.iter().any(|r| r.start() < e && s < r.end()))
        };
        // An online block fully plugged and fully requested goes whole, unless any of it
        // is busy (then sub-block by sub-block, which skips the busy ones).
        let whole = online && sbs.is_full() && max >= sbs.count && !(0..sbs.count).any(busy);
        let mut taken = Vec::new();
        for i in (0..sbs.count).rev().filter(|&i| sbs.is_plugged(i)) {
            if taken.len() as u64 == max {
                break;
            }
            // An offline block stops at nothing; an online one skips what it cannot take.
            if !whole && busy(i) {
                continue;
            }
            taken.push(i);
        }
        if taken.is_empty() {
            return Ok(0);
        }
        for &i in &taken {
            sbs.set(i, false);
        }
        let n = taken.len() as u64;
        let empty = sbs.is_empty();
        let removed = self.transaction(|m| {
            for &i in &taken {
                let s = block_pfn + i * per_sb;
                m.pages.set(s, s + per_sb, Some(PageState::FakeOffline));
            }
            m.fake_online(id, -((n * per_sb) as i64));
            m.virtio.update(&name.to_string(), |d| d.plugged -= n * d.sb_size);
            if empty {
                m.virtio_blocks.remove(&id);
            } else {
                m.virtio_blocks.insert(id, sbs.clone());
            }
            if !empty {
                return Ok(None);
            }
            if online {
                m.offline_block(id, false)?;
            }
            m.remove_memory_locked(id * g.g.memory_block_size, g.g.memory_block_size, lookup).map(Some)
        })?;
        if let Some(r) = removed {
            out.memmap_node_pages += r.memmap_freed_node_pages;
            if online {
                out.offlined.push(id, id + 1, ());
            }
            out.blocks.push(id, id + 1, ());
        }
        Ok(n)
    }
}
