//! Booting the model from a captured real machine: what a capture says (parsed from its
//! files by `views::capture`, beside the views that print the same formats) and how it
//! becomes the boot state. Boot RAM comes from iomem's System RAM lines, the zones'
//! counters from zoneinfo, the block size and each block's state and zone from sysfs.

use std::collections::BTreeMap;

use hotplug_core::Geometry;

use super::block::BlockState;
use super::boot::{MachineSpec, NodeSpec};
use super::policy::{AutoOnline, OnlinePolicy};
use super::range::PhysRange;
use super::zone::ZoneType;
use super::Model;

/// Per (node, zone): (start_pfn, spanned, present, managed), as zoneinfo prints them.
pub type ZoneCounters = BTreeMap<(u32, ZoneType), (u64, u64, u64, u64)>;

/// What a capture says, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// Every /proc/iomem line: (depth, start, end inclusive, name).
    pub iomem: Vec<(usize, u64, u64, String)>,
    /// (node, zone) -> (start_pfn, spanned, present, managed).
    pub zones: ZoneCounters,
    pub block_size: u64,
    pub auto_online_blocks: Option<AutoOnline>,
    /// memoryN -> (state, valid_zones).
    pub blocks: BTreeMap<u64, (BlockState, String)>,
    /// The memory_hotplug module parameters, where captured.
    pub params: Params,
    /// /proc/meminfo's MemTotal in kB, where captured.
    pub meminfo_total_kb: Option<u64>,
}

/// A capture whose zone counters were read while they were still growing: zoneinfo's
/// managed pages fall short of meminfo's MemTotal, which the kernel derives from the same
/// counters (totalram_pages). Deferred struct-page initialisation
/// (CONFIG_DEFERRED_STRUCT_PAGE_INIT) hands pages to the buddy allocator in the background
/// after boot, so a capture taken early sees only part of the memory managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsettledCounters {
    /// The zones' managed pages, summed, in kB.
    pub managed_kb: u64,
    /// meminfo's MemTotal, in kB.
    pub memtotal_kb: u64,
}

impl UnsettledCounters {
    /// Counters that disagree by more than 1 % (a settled machine shows them equal; a
    /// hot-add between the two reads moves them by a block or so).
    pub fn check(zones: &ZoneCounters, memtotal_kb: u64, page_size: u64) -> Option<UnsettledCounters> {
        let managed_kb = zones.values().map(|&(_, _, _, managed)| managed).sum::<u64>().saturating_mul(page_size / 1024);
        (managed_kb.abs_diff(memtotal_kb) > memtotal_kb / 100).then_some(UnsettledCounters { managed_kb, memtotal_kb })
    }
}

impl std::fmt::Display for UnsettledCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "zoneinfo's managed pages sum to {} kB but meminfo's MemTotal is {} kB: the counters were read while deferred \
             struct-page initialisation was still running",
            self.managed_kb, self.memtotal_kb
        )
    }
}

/// /sys/module/memory_hotplug/parameters, where captured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pub online_policy: Option<OnlinePolicy>,
    pub auto_movable_ratio: Option<u32>,
    pub auto_movable_numa_aware: Option<bool>,
}

impl Capture {
    /// Whether the capture's counters disagree (see [`UnsettledCounters`]).
    pub fn unsettled(&self, page_size: u64) -> Option<UnsettledCounters> {
        UnsettledCounters::check(&self.zones, self.meminfo_total_kb?, page_size)
    }

    /// The counters as they would read once deferred struct-page init is done: the pages
    /// meminfo's MemTotal has beyond zoneinfo's managed ones given to the zones that
    /// still lack them (present minus managed), the most lacking first, each at most up
    /// to its present pages: deferred init frees the rest of each node's highest zone.
    /// Returns the pages given.
    pub fn settle_to_meminfo(&mut self, page_size: u64) -> u64 {
        let Some(gap) = self.unsettled(page_size) else { return 0 };
        let mut left = gap.memtotal_kb.saturating_sub(gap.managed_kb) / (page_size / 1024).max(1);
        let given = left;
        let mut lacking: Vec<((u32, ZoneType), u64)> =
            self.zones.iter().map(|(&k, &(_, _, present, managed))| (k, present.saturating_sub(managed))).filter(|&(_, l)| l > 0).collect();
        lacking.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (key, room) in lacking {
            let take = room.min(left);
            if let Some(z) = self.zones.get_mut(&key) {
                z.3 += take;
            }
            left -= take;
        }
        given - left
    }

    /// The machine to boot: `geometry` with the captured block size, one node per node
    /// in zoneinfo, each with the System RAM ranges its zones span (page-aligned inward).
    pub fn machine_spec(&self, mut geometry: Geometry, base: &MachineSpec) -> Result<MachineSpec, String> {
        geometry.memory_block_size = self.block_size;
        let page = geometry.page_size;
        let mut nodes: BTreeMap<u32, NodeSpec> = BTreeMap::new();
        for &(nid, _) in self.zones.keys() {
            nodes.entry(nid).or_insert(NodeSpec::new(nid, Vec::new()));
        }
        for &(depth, start, end, ref name) in &self.iomem {
            if depth != 0 || name != "System RAM" {
                continue;
            }
            let (s, e) = (start.div_ceil(page) * page, (end + 1) / page * page);
            if s >= e {
                continue;
            }
            let pfn = s / page;
            let nid = self
                .zones
                .iter()
                .find(|(_, &(zs, spanned, _, _))| spanned > 0 && pfn >= zs && pfn < zs + spanned)
                .map(|(&(nid, _), _)| nid)
                .or_else(|| nodes.keys().next().copied())
                .ok_or("proc/zoneinfo names no node")?;
            nodes.get_mut(&nid).expect("node listed").boot.extend(PhysRange::new(s, e - s));
        }
        Ok(MachineSpec { geometry, nodes: nodes.into_values().filter(|n| !n.boot.is_empty()).collect(), ..base.clone() })
    }

    /// Bring a model booted from [`Self::machine_spec`] to the captured state: zone
    /// counters from zoneinfo, block states and zones from sysfs, the whole iomem tree.
    pub fn apply(&self, model: &mut Model) -> Result<(), String> {
        for (&(nid, zone), &(start, spanned, present, managed)) in &self.zones {
            model.nodes.update(&nid, |n| {
                let z = n.zone_mut(zone);
                // zoneinfo prints start_pfn only for populated zones.
                z.start_pfn = if spanned == 0 {
                    0
                } else if present == 0 {
                    z.start_pfn
                } else {
                    start
                };
                z.spanned = spanned;
                z.present = present;
                z.present_early = present;
                z.managed = managed;
                z.free = managed;
            });
        }
        for n in model.nodes.values().cloned().collect::<Vec<_>>() {
            model.nodes.update(&n.id, |n| n.boot_free = n.managed_pages());
        }
        let ids: Vec<u64> = model.blocks.values().map(|b| b.id).collect();
        for id in &ids {
            if !self.blocks.contains_key(id) {
                return Err(format!("System RAM covers memory{id}, but the capture has no such block"));
            }
        }
        for (&id, (state, valid_zones)) in &self.blocks {
            if model.blocks.get(&id).is_none() {
                return Err(format!("the capture has memory{id}, but no System RAM line covers it"));
            }
            let zone = match (state, valid_zones.as_str()) {
                (BlockState::Offline, _) | (_, "none") => None,
                (_, z) => Some(ZoneType::from_name(z).ok_or_else(|| format!("memory{id}/valid_zones {z:?} names no zone"))?),
            };
            model.blocks.update(&id, |b| {
                b.state = *state;
                b.zone = zone;
            });
        }
        // The captured /proc/iomem replaces the one boot built from System RAM alone.
        model.resources = Default::default();
        let mut parents: Vec<u64> = vec![super::resource::ResourceTree::ROOT];
        for &(depth, start, end, ref name) in &self.iomem {
            parents.truncate(depth + 1);
            let parent = *parents.last().ok_or("proc/iomem nests a line under nothing")?;
            let id = model.resources.insert_raw(parent, start, end, name, name.starts_with("System RAM"));
            parents.push(id);
        }
        Ok(())
    }
}
