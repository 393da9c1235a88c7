//! virtio-mem devices (drivers/virtio/virtio_mem.c, big-block-free "SBM" mode): a device
//! region plugged a memory block at a time from its start and unplugged from its end,
//! each block its own driver-managed add ("System RAM (virtio_mem)", merged with its
//! neighbours in /proc/iomem), all in one dynamic memory group. virtio-mem never asks for
//! memmap on memory.

use hotplug_core::{errno, Driver};

use super::block::BlockRuns;
use super::error::StepError;
use super::groups::GroupKind;
use super::hotplug::{AddParams, GroupRequest};
use super::ops::{StrategyHandle, StrategyLookup};
use super::units::format_size;
use super::zone::ZoneType;
use super::{BlockState, Model};

/// One virtio-mem device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtioMem {
    pub name: String,
    pub nid: u32,
    /// The start of the device's region (bytes).
    pub start: u64,
    /// Bytes plugged, from `start` up.
    pub plugged: u64,
    pub group_id: u64,
}

/// What a grow or shrink did.
#[derive(Debug, Clone)]
pub struct ResizeOutcome {
    pub device: String,
    pub blocks: BlockRuns,
    /// Blocks onlined by a grow, with their zones.
    pub onlined: BlockRuns<ZoneType>,
    pub plugged: u64,
    pub memmap_node_pages: u64,
    /// Why auto-onlining stopped early (the grow itself stands).
    pub online_error: Option<StepError>,
}

impl Model {
    /// Plug `size` more bytes of device `name` (created at `start` on its first grow).
    /// One transaction: all the blocks or none; blocks are onlined as auto_online_blocks says.
    pub fn virtio_grow(
        &mut self,
        name: &str,
        start: Option<u64>,
        size: u64,
        nid: u32,
        unit: Option<u64>,
        strategy: &dyn StrategyHandle,
    ) -> Result<ResizeOutcome, StepError> {
        self.transaction(|m| {
            let g = m.geometry;
            let bs = g.g.memory_block_size;
            if size == 0 || size % bs != 0 {
                return Err(StepError::kernel(
                    errno::EINVAL,
                    format!("virtio-mem plugs whole {} memory blocks, not {size:#x} bytes", format_size(bs)),
                ));
            }
            let dev = match m.virtio.get(&name.to_string()).cloned() {
                Some(d) => d,
                None => {
                    let start = start
                        .ok_or_else(|| StepError::kernel(errno::EINVAL, format!("virtio-mem device {name} is new: give its `start`")))?;
                    if start % bs != 0 {
                        return Err(StepError::kernel(errno::EINVAL, format!("virtio-mem region {start:#x} is not block-aligned")));
                    }
                    let unit_pages = unit.unwrap_or(bs) / g.page_size();
                    let group_id = m.register_group(nid, GroupKind::Dynamic { unit_pages }, name);
                    VirtioMem { name: name.to_string(), nid, start, plugged: 0, group_id }
                }
            };
            let mut out = ResizeOutcome {
                device: name.to_string(),
                blocks: BlockRuns::default(),
                onlined: BlockRuns::default(),
                plugged: 0,
                memmap_node_pages: 0,
                online_error: None,
            };
            let first = dev.start + dev.plugged;
            for addr in (first..first + size).step_by(bs as usize) {
                let params = AddParams {
                    group: GroupRequest::Existing(dev.group_id),
                    ..AddParams::for_driver(addr, bs, dev.nid, Driver::VIRTIO_MEM, Some(name.to_string()))
                };
                let added = m.add_memory_resource(&params, strategy)?;
                out.memmap_node_pages += added.memmap_node_pages;
                out.blocks.extend(added.blocks);
            }
            let plugged = dev.plugged + size;
            m.virtio.insert(name.to_string(), VirtioMem { plugged, ..dev });
            out.plugged = plugged;
            Ok(out)
        })
        .map(|mut out| {
            // Auto-online as for any add; the first failure stops onlining, not the grow.
            (out.onlined, out.online_error) = self.auto_online(&out.blocks);
            out
        })
    }

    /// Unplug `size` bytes from the end of device `name`: each block offlined (EBUSY with
    /// `unmovable`) and removed. One transaction.
    pub fn virtio_shrink(
        &mut self,
        name: &str,
        size: u64,
        unmovable: bool,
        lookup: &dyn StrategyLookup,
    ) -> Result<ResizeOutcome, StepError> {
        self.transaction(|m| {
            let g = m.geometry;
            let bs = g.g.memory_block_size;
            let dev = m
                .virtio
                .get(&name.to_string())
                .cloned()
                .ok_or_else(|| StepError::kernel(errno::ENODEV, format!("no virtio-mem device {name}")))?;
            if size == 0 || size % bs != 0 || size > dev.plugged {
                return Err(StepError::kernel(
                    errno::EINVAL,
                    format!(
                        "virtio-mem {name} has {} plugged: cannot unplug {size:#x} bytes (whole blocks only)",
                        format_size(dev.plugged)
                    ),
                ));
            }
            let mut out = ResizeOutcome {
                device: name.to_string(),
                blocks: BlockRuns::default(),
                onlined: BlockRuns::default(),
                plugged: 0,
                memmap_node_pages: 0,
                online_error: None,
            };
            let end = dev.start + dev.plugged;
            for k in 1..=size / bs {
                let addr = end - k * bs;
                let id = g.pfn_to_block(addr / g.page_size());
                if m.blocks.get(&id).is_some_and(|b| b.state == BlockState::Online) {
                    m.offline_block(id, unmovable)?;
                }
                let removed = m.remove_memory_locked(addr, bs, lookup)?;
                out.memmap_node_pages += removed.memmap_freed_node_pages;
                out.blocks.push(id, id + 1, ());
            }
            let plugged = dev.plugged - size;
            if plugged == 0 {
                m.virtio.remove(&name.to_string());
            } else {
                m.virtio.insert(name.to_string(), VirtioMem { plugged, ..dev });
            }
            out.plugged = plugged;
            Ok(out)
        })
    }
}
