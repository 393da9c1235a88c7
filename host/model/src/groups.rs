//! Memory groups (mm/memory_hotplug.c memory_group_register_static/_dynamic) and the
//! auto-movable online policy that counts them (auto_movable_zone_for_pfn,
//! auto_movable_can_online_movable).
//!
//! A static group is one device added in one piece (an ACPI DIMM, a dax/kmem device):
//! its blocks go all Movable or all kernel. A dynamic group is a device that grows and
//! shrinks in units (virtio-mem); its own kernel memory allows more Movable memory in it.

use super::block::BlockState;
use super::zone::ZoneType;
use super::Model;

/// Static: sized by the whole device; dynamic: onlined and offlined in units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Static { max_pages: u64 },
    Dynamic { unit_pages: u64 },
}

/// One `struct memory_group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryGroup {
    pub id: u64,
    pub nid: u32,
    pub kind: GroupKind,
    /// Present pages of the group in kernel zones / in ZONE_MOVABLE.
    pub present_kernel_pages: u64,
    pub present_movable_pages: u64,
    /// The device it stands for (a dax device, a virtio-mem device), for reports.
    pub device: String,
}

impl MemoryGroup {
    pub fn is_dynamic(&self) -> bool {
        matches!(self.kind, GroupKind::Dynamic { .. })
    }
}

impl Model {
    /// Register a group; returns its id.
    pub fn register_group(&mut self, nid: u32, kind: GroupKind, device: &str) -> u64 {
        let c = self.counters.get_mut();
        c.next_group_id += 1;
        let id = c.next_group_id;
        self.groups
            .insert(id, MemoryGroup { id, nid, kind, present_kernel_pages: 0, present_movable_pages: 0, device: device.to_string() });
        id
    }

    /// Count `pages` onlined (positive) or offlined (negative) into `zone` for group `id`.
    pub(super) fn account_group(&mut self, id: u64, zone: ZoneType, pages: i64) {
        if id == 0 {
            return;
        }
        self.groups.update(&id, |g| {
            let slot = if zone == ZoneType::Movable { &mut g.present_movable_pages } else { &mut g.present_kernel_pages };
            *slot = (*slot as i64 + pages).max(0) as u64;
        });
    }

    /// auto_movable_zone_for_pfn: Movable if all the pages still to online in the
    /// group (a static group's rest, a dynamic group's unit, else the range) fit the
    /// ratio system-wide and (numa-aware) on the node; else the kernel zone.
    pub(super) fn auto_movable_zone(&self, nid: u32, group_id: u64, start: u64, nr: u64) -> ZoneType {
        let kernel = self.default_kernel_zone(nid, start, nr);
        if self.policy.auto_movable_ratio == 0 {
            return kernel;
        }
        let group = self.groups.get(&group_id);
        let g = self.geometry;
        let (max_pages, online_pages) = match group.map(|gr| gr.kind) {
            Some(GroupKind::Static { max_pages }) => {
                // If anything is kernel, everything goes kernel.
                if group.is_some_and(|gr| gr.present_kernel_pages > 0) {
                    return kernel;
                }
                (max_pages, group.map_or(0, |gr| gr.present_movable_pages))
            }
            Some(GroupKind::Dynamic { unit_pages }) if unit_pages != nr => {
                // Look at the online sections of the unit holding `start`.
                let unit_start = start / unit_pages * unit_pages;
                let mut online = 0;
                for b in g.pfn_to_block(unit_start)..g.pfn_to_block(unit_start + unit_pages) {
                    if let Some(blk) = self.blocks.get(&b).filter(|blk| blk.state == BlockState::Online) {
                        if blk.zone != Some(ZoneType::Movable) {
                            return kernel;
                        }
                        online += g.pages_per_block();
                    }
                }
                (unit_pages, online)
            }
            _ => (nr, 0),
        };
        let to_online = max_pages.saturating_sub(online_pages);
        if !self.can_online_movable(None, group, to_online) {
            return kernel;
        }
        if self.policy.auto_movable_numa_aware && !self.can_online_movable(Some(nid), group, to_online) {
            return kernel;
        }
        ZoneType::Movable
    }

    /// auto_movable_can_online_movable over the whole machine (`None`) or one node.
    fn can_online_movable(&self, nid: Option<u32>, group: Option<&MemoryGroup>, nr_pages: u64) -> bool {
        self.movable_room(nid, group).is_some_and(|(movable, limit)| movable + nr_pages <= limit)
    }

    /// How many blocks of `nr` pages outside any group may go Movable one after another
    /// under auto-movable from now: each adds `nr` Movable pages, machine-wide and on
    /// node `nid`, against limits that onlining does not move (early kernel pages).
    pub(super) fn auto_movable_run(&self, nid: u32, nr: u64) -> u64 {
        let room =
            |scope: Option<u32>| self.movable_room(scope, None).map_or(0, |(movable, limit)| limit.saturating_sub(movable) / nr.max(1));
        let machine = room(None);
        if self.policy.auto_movable_numa_aware {
            machine.min(room(Some(nid)))
        } else {
            machine
        }
    }

    /// The Movable pages auto-movable counts and the most it allows
    /// (ratio x early kernel pages / 100), over the machine or one node, for `group`;
    /// `None` when other groups' needs leave no early kernel pages.
    fn movable_room(&self, nid: Option<u32>, group: Option<&MemoryGroup>) -> Option<(u64, u64)> {
        let ratio = self.policy.auto_movable_ratio as u64;
        let (mut kernel_early, mut movable) = (0u64, 0u64);
        for n in self.nodes.values().filter(|n| nid.is_none_or(|id| id == n.id)) {
            for z in ZoneType::ALL {
                let zone = n.zone(z);
                if zone.present == 0 {
                    continue;
                }
                if z == ZoneType::Movable {
                    movable += zone.present;
                } else {
                    kernel_early += zone.present_early;
                }
            }
        }
        // Kernel memory inside a dynamic group allows more Movable memory in that group
        // only: take every other dynamic group's effect out.
        let (mut req_kernel_early, mut group_movable) = (0u64, 0u64);
        for other in
            self.groups.values().filter(|o| o.is_dynamic() && nid.is_none_or(|id| id == o.nid) && group.is_none_or(|gr| gr.id != o.id))
        {
            let pages = (other.present_movable_pages * 100 / ratio) as i64 - other.present_kernel_pages as i64;
            if pages > 0 {
                req_kernel_early += pages as u64;
            }
            group_movable += other.present_movable_pages;
        }
        if kernel_early <= req_kernel_early {
            return None;
        }
        kernel_early -= req_kernel_early;
        movable = movable.saturating_sub(group_movable);
        if let Some(gr) = group.filter(|gr| gr.is_dynamic()) {
            kernel_early += gr.present_kernel_pages;
        }
        Some((movable, ratio * kernel_early / 100))
    }
}
