//! The hotplug operations: add (add_memory_resource), online/offline (memory_block_online,
//! memory_block_offline), and remove (try_remove_memory), with the kernel's checks in the
//! kernel's order. Each public operation is one transaction.

use hotplug_core::{errno, Altmap, Driver, RequestKind, RestrictionFlags, Restrictions};

use super::altmap;
use super::block::{BlockState, MemoryBlock};
use super::error::StepError;
use super::groups::GroupKind;
use super::ops::{OpsCall, RequestData, StrategyHandle, StrategyLookup};
use super::policy::OnlineType;
use super::range::PfnRange;
use super::units::format_size;
use super::zone::ZoneType;
use super::{AddRecord, Model, PageState};

/// A System RAM hot-add, in bytes.
#[derive(Debug, Clone)]
pub struct AddParams {
    pub start: u64,
    pub size: u64,
    pub nid: u32,
    pub driver: Driver,
    /// The memory group the blocks join.
    pub group: GroupRequest,
    /// The device's name, where the driver shows it (dax/kmem's parent resource).
    pub device: Option<String>,
}

impl AddParams {
    /// A plain add: no driver-specific resource, no memory group.
    pub fn plain(start: u64, size: u64, nid: u32) -> Self {
        AddParams { start, size, nid, driver: Driver::NONE, group: GroupRequest::None, device: None }
    }

    /// What `driver` does for a device of `[start, start + size)`: ACPI DIMMs and dax/kmem
    /// devices are one static group each.
    pub fn for_driver(start: u64, size: u64, nid: u32, driver: Driver, device: Option<String>) -> Self {
        let group = if matches!(driver, Driver::ACPI_DIMM | Driver::DAX_KMEM) { GroupRequest::NewStatic } else { GroupRequest::None };
        AddParams { start, size, nid, driver, group, device }
    }
}

/// Which memory group an add's blocks join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupRequest {
    None,
    /// A new static group sized by the add (the whole device).
    NewStatic,
    /// An existing group (a virtio-mem device's dynamic group).
    Existing(u64),
}

/// What a successful hot-add did.
#[derive(Debug, Clone)]
pub struct AddOutcome {
    pub add_id: u64,
    pub blocks: Vec<u64>,
    /// Pages of memmap taken from node memory, and from which node (the first that paid).
    pub memmap_node_pages: u64,
    pub memmap_nid: u32,
    /// Pages of memmap per node, when more than one node paid (`Restrictions::memmap_nodes`).
    pub memmap_by_node: Vec<(u32, u64)>,
    /// Pages of memmap placed inside the range through altmaps.
    pub memmap_altmap_pages: u64,
    /// The strategy's note (why it placed the memmap where it did).
    pub note: String,
    /// Blocks auto-onlined, with their zones.
    pub onlined: Vec<(u64, ZoneType)>,
    /// Why auto-onlining stopped early (the kernel does not report this to the adder).
    pub online_error: Option<StepError>,
}

/// What an online or offline step did.
#[derive(Debug, Clone)]
pub struct BlocksOutcome {
    pub blocks: Vec<(u64, Option<ZoneType>)>,
    pub present_delta: i64,
    pub managed_delta: i64,
}

/// What a remove step did.
#[derive(Debug, Clone)]
pub struct RemoveOutcome {
    pub blocks: Vec<u64>,
    pub memmap_freed_node_pages: u64,
    pub memmap_freed_altmap_pages: u64,
}

/// The altmap of the chunk starting at `start` (chunks sorted by start; cost log n, so a
/// petabyte add of 2 GiB blocks stays linear).
fn altmap_of_chunk(chunks: &[(u64, Option<Altmap>)], start: u64) -> Option<Altmap> {
    chunks.binary_search_by_key(&start, |(s, _)| *s).ok().and_then(|i| chunks[i].1)
}

/// Where arch_add_memory put an add's memmap.
#[derive(Debug, Default)]
struct Placed {
    /// Each chunk's start and its altmap as allocation left it (chunks sorted by start).
    altmaps: Vec<(u64, Option<Altmap>)>,
    node_pages: u64,
    altmap_pages: u64,
    /// Node pages per paying node, in the order they first paid.
    by_node: Vec<(u32, u64)>,
    /// The node that paid first, or would have (the first payer) when none had to.
    memmap_nid: u32,
}

/// The nodes that may pay for an add's memmap, in order: `memmap_nodes`, else
/// `memmap_nid`, else the range's own node.
fn memmap_payers(r: &Restrictions, nid: u32) -> Vec<u32> {
    if r.memmap_nodes.is_empty() {
        vec![r.memmap_nid.into_option().unwrap_or(nid)]
    } else {
        r.memmap_nodes.to_vec()
    }
}

/// The resource name each driver uses.
pub fn resource_name(driver: Driver) -> &'static str {
    match driver {
        Driver::VIRTIO_MEM => "System RAM (virtio_mem)",
        Driver::DAX_KMEM => "System RAM (kmem)",
        _ => "System RAM",
    }
}

impl Model {
    /// Hot-add System RAM through `strategy`, then auto-online as configured.
    pub fn add_memory(&mut self, p: &AddParams, strategy: &dyn StrategyHandle) -> Result<AddOutcome, StepError> {
        let mut outcome = self.transaction(|m| m.add_memory_resource(p, strategy))?;
        (outcome.onlined, outcome.online_error) = self.auto_online(&outcome.blocks);
        Ok(outcome)
    }

    /// Online new `blocks` as auto_online_blocks says, each block its own transaction
    /// (online_memory_block per block): the first failure stops onlining and is returned,
    /// not raised, because the kernel does not fail the add for it. Used after every add,
    /// a virtio-mem grow's included.
    pub(super) fn auto_online(&mut self, blocks: &[u64]) -> (Vec<(u64, ZoneType)>, Option<StepError>) {
        let mut onlined = Vec::new();
        let Some(t) = self.policy.auto_online_blocks.online_type() else { return (onlined, None) };
        for &id in blocks {
            match self.transaction(|m| m.online_block(id, t)) {
                Ok(zone) => onlined.push((id, zone)),
                Err(e) => return (onlined, Some(e)),
            }
        }
        (onlined, None)
    }

    /// add_memory_resource, in the kernel's order: register the resource (E2BIG, EEXIST),
    /// check the range (EINVAL) and the node, join the memory group, ask the strategy,
    /// arch_add_memory (sections and their memmap), create the memory blocks, construct.
    pub(super) fn add_memory_resource(&mut self, p: &AddParams, strategy: &dyn StrategyHandle) -> Result<AddOutcome, StepError> {
        let resource_id = self.register_memory_resource(p)?;
        self.check_hotplug_memory_range(p)?;
        if self.nodes.get(&p.nid).is_none() {
            return Err(StepError::kernel(errno::EINVAL, format!("node {} does not exist", p.nid)));
        }
        let page = self.geometry.page_size();
        let pfns = PfnRange::new(p.start / page, p.size / page).expect("register_memory_resource checked the end");
        let (start_pfn, nr_pages) = (pfns.start(), pfns.count());
        let group_id = self.memory_group_of(p, nr_pages);

        // The strategy decides the memmap placement.
        let request = RequestData::system_ram(self, pfns, p.nid, p.driver, group_id);
        let restrictions = self.call_set_up(strategy, &request)?;
        self.validate_restrictions(RequestKind::SYSTEM_RAM, &restrictions, start_pfn, nr_pages, strategy.plugin_name())?;
        let placed = self.arch_add_memory(pfns, p.nid, &restrictions, strategy.plugin_name())?;

        let add_id = {
            let c = self.counters.get_mut();
            c.next_add_id += 1;
            c.next_add_id
        };
        let blocks = if restrictions.flags.contains(RestrictionFlags::MEMORY_BLOCK_DEVICES) {
            self.create_memory_block_devices(start_pfn, nr_pages, p.nid, group_id, &placed.altmaps, strategy.instance_name(), add_id)
        } else {
            Vec::new()
        };
        self.nodes.update(&p.nid, |n| n.online = true);
        let counters = self.counters.get_mut();
        counters.max_pfn = counters.max_pfn.max(start_pfn + nr_pages);

        // construct(): the strategy marks what it owns, through checked callbacks.
        let first_altmap = placed.altmaps.iter().find_map(|(_, a)| *a);
        let mut given = restrictions.clone();
        given.altmap = first_altmap.into();
        self.call_with_ops(strategy, OpsCall::Construct, &request, &given, first_altmap)?;
        self.validate_vmemmap_marks(start_pfn, nr_pages, &placed.altmaps, strategy.plugin_name())?;

        let record = AddRecord {
            id: add_id,
            pfns,
            nid: p.nid,
            driver: p.driver,
            group_id,
            strategy: strategy.instance_name().to_string(),
            restrictions: given,
            resource_id,
        };
        self.adds.insert(add_id, record);
        Ok(AddOutcome {
            add_id,
            blocks,
            memmap_node_pages: placed.node_pages,
            memmap_nid: placed.memmap_nid,
            memmap_by_node: if placed.by_node.len() > 1 { placed.by_node } else { Vec::new() },
            memmap_altmap_pages: placed.altmap_pages,
            note: restrictions.note.to_string(),
            onlined: Vec::new(),
            online_error: None,
        })
    }

    /// register_memory_resource: inside the pluggable range and non-empty
    /// (mhp_range_allowed, E2BIG), then the iomem region (EEXIST on conflict).
    fn register_memory_resource(&mut self, p: &AddParams) -> Result<u64, StepError> {
        let g = self.geometry;
        let end = p.start.checked_add(p.size);
        let inside = matches!(end, Some(e) if p.size > 0 && e - 1 <= g.physmem_end());
        if !inside {
            return Err(StepError::kernel(
                errno::E2BIG,
                format!("range {:#x}+{:#x} is empty or outside the pluggable range [0, {:#x}]", p.start, p.size, g.physmem_end()),
            ));
        }
        self.request_add_resource(p)
    }

    /// check_hotplug_memory_range: whole memory blocks (EINVAL).
    fn check_hotplug_memory_range(&self, p: &AddParams) -> Result<(), StepError> {
        let bs = self.geometry.g.memory_block_size;
        if p.start % bs != 0 || p.size % bs != 0 {
            return Err(StepError::kernel(
                errno::EINVAL,
                format!("range {:#x}+{:#x} is not aligned to the memory block size {}", p.start, p.size, format_size(bs)),
            ));
        }
        Ok(())
    }

    /// The memory group the add's blocks join (0: none); a static group is registered now.
    fn memory_group_of(&mut self, p: &AddParams, nr_pages: u64) -> u64 {
        match p.group {
            GroupRequest::None => 0,
            GroupRequest::Existing(id) => id,
            GroupRequest::NewStatic => {
                let device = p.device.clone().unwrap_or_else(|| p.driver.name().to_string());
                self.register_group(p.nid, GroupKind::Static { max_pages: nr_pages }, &device)
            }
        }
    }

    /// arch_add_memory: the sections and their memmap, per block with per-block altmaps
    /// (MEMMAP_ON_MEMORY), else the whole range at once.
    fn arch_add_memory(&mut self, pfns: PfnRange, nid: u32, r: &Restrictions, plugin: &str) -> Result<Placed, StepError> {
        let g = self.geometry;
        let payers = memmap_payers(r, nid);
        let chunks: Vec<PfnRange> = if r.flags.contains(RestrictionFlags::MEMMAP_ON_MEMORY) {
            (g.pfn_to_block(pfns.start())..g.pfn_to_block(pfns.end())).map(|b| g.block_pfns(b)).collect()
        } else {
            vec![pfns]
        };
        let mut placed = Placed::default();
        for chunk in chunks {
            let mut altmap =
                r.altmap.into_option().map(|a| Altmap { base_pfn: chunk.start(), end_pfn: chunk.end() - 1, align: 0, alloc: 0, ..a });
            if let Some(a) = &altmap {
                altmap::check_for_add(a, chunk.start(), chunk.count())
                    .map_err(|e| StepError::validator(plugin, format!("invalid altmap: {e}")))?;
            }
            let memmap = self.add_sections(chunk, nid, &payers, &mut placed.by_node, altmap.as_mut())?;
            placed.node_pages += memmap.node_pages;
            placed.altmap_pages += memmap.altmap_pages;
            placed.altmaps.push((chunk.start(), altmap));
        }
        placed.memmap_nid = placed.by_node.first().map_or(payers[0], |&(nid, _)| nid);
        Ok(placed)
    }

    /// create_memory_block_devices: one offline block per memory block of the range.
    #[allow(clippy::too_many_arguments)]
    fn create_memory_block_devices(
        &mut self,
        start_pfn: u64,
        nr_pages: u64,
        nid: u32,
        group_id: u64,
        altmaps: &[(u64, Option<Altmap>)],
        strategy: &str,
        add_id: u64,
    ) -> Vec<u64> {
        let g = self.geometry;
        let mut blocks = Vec::new();
        for b in g.pfn_to_block(start_pfn)..g.pfn_to_block(start_pfn + nr_pages) {
            let altmap = altmap_of_chunk(altmaps, g.block_to_pfn(b));
            let block = MemoryBlock {
                id: b,
                nid,
                state: BlockState::Offline,
                zone: None,
                early: false,
                group_id,
                altmap,
                vmemmap_pages: altmap.map_or(0, |a| a.free),
                strategy: Some(strategy.to_string()),
                add_id,
            };
            self.blocks.insert(b, block);
            blocks.push(b);
        }
        blocks
    }

    /// The iomem region of an add, as its driver places it: "System RAM" at the top;
    /// dax/kmem's "System RAM (kmem)" under a region named after the dax device;
    /// virtio-mem's "System RAM (virtio_mem)" merged with an adjacent one
    /// (MHP_MERGE_RESOURCE). A conflict is EEXIST.
    fn request_add_resource(&mut self, p: &AddParams) -> Result<u64, StepError> {
        let end = p.start + p.size - 1;
        let name = resource_name(p.driver);
        let conflict = |c: super::resource::Conflict| {
            StepError::kernel(
                errno::EEXIST,
                format!("{:#x}-{end:#x} conflicts with \"{}\" {:#x}-{:#x} in /proc/iomem", p.start, c.name, c.start, c.end),
            )
        };
        match p.driver {
            Driver::DAX_KMEM => {
                let device = p.device.clone().unwrap_or_else(|| "dax0.0".to_string());
                let parent = self.resources.request(p.start, end, &device, false).map_err(conflict)?;
                self.resources.request_under(parent, p.start, end, name, true).map_err(conflict)
            }
            Driver::VIRTIO_MEM => {
                let id = self.resources.request(p.start, end, name, true).map_err(conflict)?;
                Ok(self.resources.merge_with_neighbours(id))
            }
            _ => self.resources.request(p.start, end, name, true).map_err(conflict),
        }
    }

    /// Give back an add's iomem region: the dax parent with its child; the add's part of a
    /// merged virtio-mem region (release_mem_region_adjustable); else the region.
    fn release_add_resource(&mut self, add: &AddRecord) {
        let page = self.geometry.page_size();
        let (start, end) = (add.pfns.start() * page, add.pfns.end() * page - 1);
        match add.driver {
            Driver::DAX_KMEM => {
                let parent = self.resources.parent_of(add.resource_id);
                self.resources.release(parent.unwrap_or(add.resource_id));
            }
            Driver::VIRTIO_MEM => {
                let holder =
                    self.resources.overlapping(start, end).into_iter().find(|r| r.name == resource_name(Driver::VIRTIO_MEM)).map(|r| r.id);
                if let Some(id) = holder {
                    self.resources.release_adjustable(id, start, end);
                }
            }
            _ => self.resources.release(add.resource_id),
        }
    }

    /// What the validator demands of a `set_up` result for a request of `kind` over
    /// `[start_pfn, start_pfn + nr_pages)`: only flags the contract defines, an existing
    /// `memmap_nid`, and an altmap the kernel's `__add_pages` would accept (starting at the
    /// range's first pfn, `reserve + free` inside the range, or inside one memory block
    /// with MEMMAP_ON_MEMORY). Public so the conformance suite applies the same rules.
    pub fn validate_restrictions(
        &self,
        kind: RequestKind,
        r: &Restrictions,
        start_pfn: u64,
        nr_pages: u64,
        plugin: &str,
    ) -> Result<(), StepError> {
        let unknown = r.flags.0 & !hotplug_core::RestrictionFlags::ALL.0;
        if unknown != 0 {
            return Err(StepError::validator(
                plugin,
                format!(
                    "flags {:#x} has bits contract {} does not define ({unknown:#x})",
                    r.flags.0,
                    hotplug_core::ContractVersion::CURRENT
                ),
            ));
        }
        if kind == RequestKind::DEVICE && r.flags.contains(RestrictionFlags::MEMMAP_ON_MEMORY) {
            return Err(StepError::validator(plugin, "MEMMAP_ON_MEMORY is only for System RAM (device memory has no memory blocks)"));
        }
        if kind == RequestKind::SYSTEM_RAM && r.flags.contains(RestrictionFlags::NO_DIRECT_MAP) {
            return Err(StepError::validator(plugin, "NO_DIRECT_MAP is only for device memory, not System RAM"));
        }
        if let Some(nid) = r.memmap_nid.into_option() {
            if self.nodes.get(&nid).is_none() {
                return Err(StepError::validator(plugin, format!("memmap_nid {nid} names a node that does not exist")));
            }
        }
        if !r.memmap_nodes.is_empty() {
            if kind == RequestKind::DEVICE {
                return Err(StepError::validator(plugin, "memmap_nodes for device memory (its memmap comes from the pgmap's node)"));
            }
            if r.memmap_nid.is_some() {
                return Err(StepError::validator(plugin, "both memmap_nid and memmap_nodes: give one"));
            }
            for (i, nid) in r.memmap_nodes.iter().enumerate() {
                if self.nodes.get(nid).is_none() {
                    return Err(StepError::validator(plugin, format!("memmap_nodes names node {nid}, which does not exist")));
                }
                if r.memmap_nodes[..i].contains(nid) {
                    return Err(StepError::validator(plugin, format!("memmap_nodes names node {nid} twice")));
                }
            }
        }
        let per_block = r.flags.contains(RestrictionFlags::MEMMAP_ON_MEMORY);
        match (r.altmap.into_option(), per_block) {
            (None, true) => Err(StepError::validator(plugin, "MEMMAP_ON_MEMORY without an altmap")),
            (Some(a), true) => {
                let ppb = self.geometry.pages_per_block();
                if a.base_pfn != start_pfn {
                    return Err(StepError::validator(
                        plugin,
                        format!("invalid altmap: base_pfn {:#x} is not the range's first pfn {start_pfn:#x}", a.base_pfn),
                    ));
                }
                match a.reserve.checked_add(a.free) {
                    Some(n) if n < ppb && n < nr_pages => Ok(()),
                    _ => Err(StepError::validator(
                        plugin,
                        format!("invalid altmap: reserve {} + free {} must be less than a memory block ({ppb} pages)", a.reserve, a.free),
                    )),
                }
            }
            (Some(a), false) => {
                altmap::check_for_add(&a, start_pfn, nr_pages).map_err(|e| StepError::validator(plugin, format!("invalid altmap: {e}")))
            }
            (None, false) => Ok(()),
        }
    }

    /// Every page marked as vmemmap must lie in an altmap's memmap area.
    fn validate_vmemmap_marks(&self, start: u64, nr: u64, altmaps: &[(u64, Option<Altmap>)], plugin: &str) -> Result<(), StepError> {
        for (s, e, v) in self.pages.overlapping(start, start + nr) {
            if v != PageState::Vmemmap {
                continue;
            }
            // The chunk holding `s` (chunks are sorted by start): its altmap must cover the run.
            let chunk = altmaps.partition_point(|(c, _)| *c <= s).checked_sub(1).and_then(|i| altmaps[i].1);
            let inside = chunk.is_some_and(|a| s >= a.base_pfn + a.reserve && e <= a.base_pfn + altmap::offset(&a));
            if !inside {
                return Err(StepError::validator(
                    plugin,
                    format!("construct marked pfns {s:#x}-{:#x} as vmemmap outside the altmap's memmap area", e - 1),
                ));
            }
        }
        Ok(())
    }

    /// The blocks covering `[start, start + size)` bytes, which must all exist.
    pub fn blocks_in(&self, start: u64, size: u64) -> Result<Vec<u64>, StepError> {
        let g = self.geometry;
        let bs = g.g.memory_block_size;
        if size == 0 || start % bs != 0 || size % bs != 0 {
            return Err(StepError::kernel(
                errno::EINVAL,
                format!("range {start:#x}+{size:#x} is not a whole number of memory blocks ({})", format_size(bs)),
            ));
        }
        let first = start / bs;
        let count = size / bs;
        let ids: Vec<u64> = (first..first.saturating_add(count)).collect();
        if let Some(missing) = ids.iter().find(|id| self.blocks.get(id).is_none()) {
            return Err(StepError::kernel(errno::ENOENT, format!("memory block memory{missing} does not exist")));
        }
        Ok(ids)
    }

    /// Online every block of the range (one transaction: all or none).
    pub fn online_range(&mut self, start: u64, size: u64, t: OnlineType) -> Result<BlocksOutcome, StepError> {
        self.each_block_in(start, size, |m, id| m.online_block(id, t).map(Some))
    }

    /// Offline every block of the range (one transaction).
    pub fn offline_range(&mut self, start: u64, size: u64, unmovable: bool) -> Result<BlocksOutcome, StepError> {
        self.each_block_in(start, size, |m, id| m.offline_block(id, unmovable).map(|()| None))
    }

    /// Apply `op` to every block of the range in one transaction, measuring the change
    /// in present and managed pages.
    fn each_block_in(
        &mut self,
        start: u64,
        size: u64,
        mut op: impl FnMut(&mut Model, u64) -> Result<Option<ZoneType>, StepError>,
    ) -> Result<BlocksOutcome, StepError> {
        self.transaction(|m| {
            let before = m.totals();
            let mut blocks = Vec::new();
            for id in m.blocks_in(start, size)? {
                blocks.push((id, op(m, id)?));
            }
            let after = m.totals();
            Ok(BlocksOutcome { blocks, present_delta: after.0 as i64 - before.0 as i64, managed_delta: after.1 as i64 - before.1 as i64 })
        })
    }

    /// (present, managed) over the machine.
    pub fn totals(&self) -> (u64, u64) {
        self.nodes.values().fold((0, 0), |(p, m), n| (p + n.present_pages(), m + n.managed_pages()))
    }

    /// Pages of `[start, start + nr)` a strategy holds back (present, never managed).
    fn reserved_pages_in(&self, start: u64, nr: u64) -> u64 {
        self.pages.count(start, start + nr, |v| matches!(v, PageState::Reserved { .. }))
    }

    /// memory_block_online for one block (inside the caller's transaction).
    pub fn online_block(&mut self, id: u64, t: OnlineType) -> Result<ZoneType, StepError> {
        let g = self.geometry;
        let block = self.blocks.get(&id).cloned().ok_or_else(|| StepError::kernel(errno::ENOENT, format!("memory{id} does not exist")))?;
        if block.state == BlockState::Online {
            return Err(StepError::kernel(errno::EINVAL, format!("memory{id} is already online")));
        }
        let start = g.block_to_pfn(id);
        let nr = g.pages_per_block();
        let zone = self.zone_for_range(block.nid, block.group_id, start, nr, t);
        let held = block.vmemmap_pages + self.reserved_pages_in(start, nr);
        let managed = nr - held.min(nr);
        self.nodes.update(&block.nid, |n| {
            let z = n.zone_mut(zone);
            z.grow_span(start, start + nr);
            z.present += nr;
            z.managed += managed;
            n.onlined_since_boot += managed as i64;
            n.online = true;
        });
        for nr_sec in g.pfn_to_section(start)..g.pfn_to_section(start + nr) {
            self.sections.update(nr_sec, |s| s.online = true);
        }
        self.blocks.update(&id, |b| {
            b.state = BlockState::Online;
            b.zone = Some(zone);
        });
        self.account_group(block.group_id, zone, nr as i64);
        Ok(zone)
    }

    /// memory_block_offline for one block (inside the caller's transaction).
    pub fn offline_block(&mut self, id: u64, unmovable: bool) -> Result<(), StepError> {
        let g = self.geometry;
        let block = self.blocks.get(&id).cloned().ok_or_else(|| StepError::kernel(errno::ENOENT, format!("memory{id} does not exist")))?;
        if block.state == BlockState::Offline {
            return Err(StepError::kernel(errno::EINVAL, format!("memory{id} is already offline")));
        }
        let Some(zone) = block.zone else {
            return Err(StepError::kernel(
                errno::EINVAL,
                format!("memory{id} spans several zones (valid_zones \"none\"): offline_pages refuses it"),
            ));
        };
        let start = g.block_to_pfn(id);
        let nr = g.pages_per_block();
        if block.early {
            let ram = self.nodes.get(&block.nid).map_or(0, |n| n.boot_pages_in(&g.block_pfns(id)));
            if ram != nr {
                return Err(StepError::kernel(
                    errno::EINVAL,
                    format!("memory{id} has memory holes ({ram} of its {nr} pages are RAM): offline_pages refuses it"),
                ));
            }
        }
        if unmovable {
            return Err(StepError::kernel(
                errno::EBUSY,
                format!("memory{id} holds unmovable pages (the step says so): isolation fails, offline_pages returns EBUSY"),
            ));
        }
        let held = block.vmemmap_pages + self.reserved_pages_in(start, nr);
        let managed = nr - held.min(nr);
        self.nodes.update(&block.nid, |n| {
            let z = n.zone_mut(zone);
            z.present -= nr.min(z.present);
            z.managed -= managed.min(z.managed);
            n.onlined_since_boot -= managed as i64;
        });
        for nr_sec in g.pfn_to_section(start)..g.pfn_to_section(start + nr) {
            self.sections.update(nr_sec, |s| s.online = false);
        }
        self.blocks.update(&id, |b| {
            b.state = BlockState::Offline;
            b.zone = None;
        });
        self.account_group(block.group_id, zone, -(nr as i64));
        self.shrink_zone_span(block.nid, zone, start, start + nr);
        Ok(())
    }

    /// shrink_zone_span: when `[start, end)` touches the zone's start or end, move that
    /// edge to the nearest remaining online memory of the zone; a middle hole changes
    /// nothing. The model finds that memory by memory block, not page by page.
    fn shrink_zone_span(&mut self, nid: u32, zone: ZoneType, start: u64, end: u64) {
        let g = self.geometry;
        let Some(z) = self.nodes.get(&nid).map(|n| *n.zone(zone)) else { return };
        if z.is_empty() {
            return;
        }
        let in_zone = |b: &MemoryBlock| b.nid == nid && b.state == BlockState::Online && b.zone == Some(zone);
        let (zs, ze) = (z.start_pfn, z.end_pfn());
        let mut new = (zs, ze);
        if start <= zs {
            let first = self
                .blocks
                .range(g.pfn_to_block(end)..)
                .map(|(_, b)| b)
                .find(|b| in_zone(b) && g.block_to_pfn(b.id) < ze)
                .map(|b| g.block_to_pfn(b.id).max(zs));
            new = match first {
                Some(f) => (f, ze),
                None => (0, 0),
            };
        } else if end >= ze {
            let last = self
                .blocks
                .range(..g.pfn_to_block(start))
                .rev()
                .map(|(_, b)| b)
                .find(|b| in_zone(b) && g.block_to_pfn(b.id) + g.pages_per_block() > zs)
                .map(|b| (g.block_to_pfn(b.id) + g.pages_per_block()).min(ze));
            new = match last {
                Some(l) => (zs, l),
                None => (0, 0),
            };
        }
        self.nodes.update(&nid, |n| {
            let z = n.zone_mut(zone);
            z.start_pfn = new.0;
            z.spanned = new.1 - new.0;
        });
    }

    /// try_remove_memory for `[start, start + size)`: only offline memory, only whole
    /// hot-adds; the strategy's `tear_down` runs before the sections go.
    pub fn remove_memory(&mut self, start: u64, size: u64, lookup: &dyn StrategyLookup) -> Result<RemoveOutcome, StepError> {
        // virtio-mem memory is the driver's to unplug (a `shrink` step); removing it under
        // the device would leave the device counting blocks that are gone.
        let page = self.geometry.page_size();
        let pfns = self.pfns_of(start, size);
        if let Some(a) = self.adds.values().find(|a| a.driver == Driver::VIRTIO_MEM && a.pfns.overlaps(&pfns)) {
            return Err(StepError::kernel(
                errno::EBUSY,
                format!(
                    "{:#x}+{:#x} is virtio-mem memory: the device unplugs it (a shrink step), not a remove",
                    a.pfns.start() * page,
                    a.pfns.count() * page
                ),
            ));
        }
        self.transaction(|m| m.remove_memory_locked(start, size, lookup))
    }

    pub(super) fn remove_memory_locked(&mut self, start: u64, size: u64, lookup: &dyn StrategyLookup) -> Result<RemoveOutcome, StepError> {
        let g = self.geometry;
        let page = g.page_size();
        let ids = self.blocks_in(start, size)?;
        if let Some(b) = ids.iter().filter_map(|id| self.blocks.get(id)).find(|b| b.state == BlockState::Online) {
            return Err(StepError::kernel(errno::EBUSY, format!("memory{} is online: offline it before removing", b.id)));
        }
        let with_altmap = ids.iter().filter(|id| self.blocks.get(id).is_some_and(|b| b.altmap.is_some())).count();
        if with_altmap != 0 && with_altmap != ids.len() {
            return Err(StepError::kernel(errno::EINVAL, "the range mixes blocks with and without memmap on memory"));
        }
        let pfns = self.pfns_of(start, size);
        let adds: Vec<AddRecord> = self.adds.values().filter(|a| a.pfns.overlaps(&pfns)).cloned().collect();
        // Up to Linux 6.7 memmap on memory was one altmap for a one-block add (no
        // MEMMAP_ON_MEMORY flag: the altmap describes the whole add), and such memory could
        // only be removed one block at a time.
        let single_block_altmap =
            adds.iter().any(|a| a.restrictions.altmap.is_some() && !a.restrictions.flags.contains(RestrictionFlags::MEMMAP_ON_MEMORY));
        if single_block_altmap && size != g.g.memory_block_size {
            return Err(StepError::kernel(
                errno::EINVAL,
                format!(
                    "wrong granularity: memory with its memmap on it (one altmap per add, Linux 6.7 and earlier) is removed one {} block at a time",
                    format_size(g.g.memory_block_size)
                ),
            ));
        }
        if let Some(b) = ids.iter().filter_map(|id| self.blocks.get(id)).find(|b| b.early) {
            return Err(StepError::kernel(
                errno::EINVAL,
                format!("memory{} is boot memory; the model removes only hot-added memory", b.id),
            ));
        }
        if let Some(a) = adds.iter().find(|a| a.pfns.overlap_count(&pfns) != a.pfns.count()) {
            return Err(StepError::kernel(
                errno::EINVAL,
                format!(
                    "range splits the hot-add at {:#x}+{:#x}; the model removes whole hot-adds",
                    a.pfns.start() * page,
                    a.pfns.count() * page
                ),
            ));
        }
        let (mut freed_node, mut freed_alt) = (0, 0);
        let mut removed_blocks = Vec::new();
        for add in adds {
            let strategy = lookup.strategy(&add.strategy).ok_or_else(|| {
                StepError::kernel(errno::EINVAL, format!("strategy \"{}\" that added this memory is not loaded", add.strategy))
            })?;
            let request = RequestData::system_ram(self, add.pfns, add.nid, add.driver, add.group_id);
            let altmap = add.restrictions.altmap.into_option();
            self.call_with_ops(strategy, OpsCall::TearDown, &request, &add.restrictions, altmap)?;
            self.clear_leftover_marks(add.pfns);
            let (n, a) = self.remove_sections(add.pfns);
            freed_node += n;
            freed_alt += a;
            for b in g.pfn_to_block(add.pfns.start())..g.pfn_to_block(add.pfns.end()) {
                if self.blocks.remove(&b).is_some() {
                    removed_blocks.push(b);
                }
            }
            self.release_add_resource(&add);
            self.adds.remove(&add.id);
            if add.group_id != 0 && !self.blocks.values().any(|b| b.group_id == add.group_id) {
                self.groups.remove(&add.group_id);
            }
            self.try_offline_node(add.nid);
        }
        Ok(RemoveOutcome { blocks: removed_blocks, memmap_freed_node_pages: freed_node, memmap_freed_altmap_pages: freed_alt })
    }

    /// The pfns of `size` bytes from `start`, cut at 2^64 (a remove names bytes the model
    /// may never have added; whatever it names is checked against what exists).
    fn pfns_of(&self, start: u64, size: u64) -> PfnRange {
        let page = self.geometry.page_size();
        PfnRange::from_bounds(start / page, start.saturating_add(size) / page).unwrap_or_default()
    }

    /// Clear the page marks a strategy's tear_down left in `pfns`: they go with the memmap
    /// that held them. Reservations are the strategy's to release and stay in the table
    /// if it leaks them.
    pub(super) fn clear_leftover_marks(&mut self, pfns: PfnRange) {
        let leftover: Vec<(u64, u64)> = self
            .pages
            .overlapping(pfns.start(), pfns.end())
            .into_iter()
            .filter(|(_, _, v)| !matches!(v, PageState::Reserved { .. }))
            .map(|(s, e, _)| (s, e))
            .collect();
        for (s, e) in leftover {
            self.pages.set(s, e, None);
        }
    }

    /// try_offline_node: a node that spans nothing and has no block devices goes offline.
    fn try_offline_node(&mut self, nid: u32) {
        let spans = self.nodes.get(&nid).is_some_and(|n| n.span().is_some());
        let has_blocks = self.blocks.values().any(|b| b.nid == nid);
        let has_boot = self.nodes.get(&nid).is_some_and(|n| !n.boot_ranges.is_empty());
        if !spans && !has_blocks && !has_boot {
            self.nodes.update(&nid, |n| n.online = false);
        }
    }
}
