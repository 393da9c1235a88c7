//! The hotplug operations: add (add_memory_resource), online/offline (memory_block_online,
//! memory_block_offline), and remove (try_remove_memory), with the kernel's checks in the
//! kernel's order. Each public operation is one transaction.

use hotplug_core::{errno, Altmap, Driver, RequestKind, RestrictionFlags, Restrictions};

use super::altmap;
use super::block::{relative_altmap, BlockInfo, BlockRuns, BlockState};
use super::error::StepError;
use super::groups::GroupKind;
use super::memmap_alloc::Payers;
use super::ops::{OpsCall, RequestData, StrategyHandle, StrategyLookup};
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
    pub blocks: BlockRuns,
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
    pub onlined: BlockRuns<ZoneType>,
    /// Why auto-onlining stopped early (the kernel does not report this to the adder).
    pub online_error: Option<StepError>,
}

/// What a remove step did.
#[derive(Debug, Clone)]
pub struct RemoveOutcome {
    pub blocks: BlockRuns,
    pub memmap_freed_node_pages: u64,
    pub memmap_freed_altmap_pages: u64,
}

/// The altmaps of an add, as allocation left them.
#[derive(Debug, Default, Clone)]
enum AltmapLayout {
    /// Memmap from node memory.
    #[default]
    None,
    /// One altmap for the whole add (Linux 6.7 and earlier), carried by its first block.
    Whole(Altmap),
    /// MEMMAP_ON_MEMORY: every block its own altmap, all alike; this is the first block's
    /// (the others are it moved by whole blocks).
    PerBlock(Altmap),
    /// Per-block altmaps that differ (sections sharing vmemmap PMDs): each chunk's start
    /// and altmap, sorted by start.
    Each(Vec<(u64, Option<Altmap>)>),
}

impl AltmapLayout {
    /// The altmap of the block starting at `block_pfn` of an add starting at `first_pfn`.
    fn of_block(&self, first_pfn: u64, block_pfn: u64) -> Option<Altmap> {
        match self {
            AltmapLayout::None => None,
            AltmapLayout::Whole(a) => (block_pfn == first_pfn).then_some(*a),
            AltmapLayout::PerBlock(a) => {
                let shift = block_pfn - first_pfn;
                Some(Altmap { base_pfn: a.base_pfn + shift, end_pfn: a.end_pfn + shift, ..*a })
            }
            AltmapLayout::Each(chunks) => chunks.binary_search_by_key(&block_pfn, |(s, _)| *s).ok().and_then(|i| chunks[i].1),
        }
    }

    /// The first block's altmap (what construct is given).
    fn first(&self) -> Option<Altmap> {
        match self {
            AltmapLayout::None => None,
            AltmapLayout::Whole(a) | AltmapLayout::PerBlock(a) => Some(*a),
            AltmapLayout::Each(chunks) => chunks.iter().find_map(|(_, a)| *a),
        }
    }
}

/// Where arch_add_memory put an add's memmap.
#[derive(Debug, Default)]
struct Placed {
    altmaps: AltmapLayout,
    node_pages: u64,
    altmap_pages: u64,
    /// Node pages per paying node, in the order they first paid.
    by_node: Vec<(u32, u64)>,
    /// The node that paid first, or would have (the first payer) when none had to.
    memmap_nid: u32,
}

/// The restrictions' altmap for `chunk` as allocation starts it (base at the chunk's
/// first pfn, nothing aligned or allocated), checked as `__add_pages` checks it.
fn chunk_altmap(r: &Restrictions, chunk: PfnRange, plugin: &str) -> Result<Option<Altmap>, StepError> {
    let Some(a) = r.altmap.into_option() else { return Ok(None) };
    let a = Altmap { base_pfn: chunk.start(), end_pfn: chunk.end() - 1, align: 0, alloc: 0, ..a };
    altmap::check_for_add(&a, chunk.start(), chunk.count()).map_err(|e| StepError::validator(plugin, format!("invalid altmap: {e}")))?;
    Ok(Some(a))
}

/// Who pays for an add's memmap: the strategy's `memmap_nodes` or `memmap_nid` (those
/// nodes only, in order), else the kernel's way, the range's node's fallback zonelist
/// (`fresh`: the node comes online with this add).
pub fn memmap_payers(r: &Restrictions, nid: u32, fresh: bool) -> Payers {
    match (r.memmap_nodes.is_empty(), r.memmap_nid.into_option()) {
        (false, _) => Payers::Listed(r.memmap_nodes.to_vec()),
        (true, Some(m)) => Payers::Listed(vec![m]),
        (true, None) => Payers::Zonelist { nid, fresh },
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
    /// (online_memory_block per block; alike blocks together, which cannot fail part
    /// way): the first failure stops onlining and is returned, not raised, because the
    /// kernel does not fail the add for it. Used after every add, a virtio-mem grow's
    /// included.
    pub(super) fn auto_online(&mut self, blocks: &BlockRuns) -> (BlockRuns<ZoneType>, Option<StepError>) {
        let mut onlined = BlockRuns::default();
        let Some(t) = self.policy.auto_online_blocks.online_type() else { return (onlined, None) };
        for &(first, end, ()) in blocks.runs() {
            let mut id = first;
            while id < end {
                match self.transaction(|m| m.online_blocks(id, end, t)) {
                    Ok((zone, k)) => {
                        onlined.push(id, id + k, zone);
                        id += k;
                    }
                    Err(e) => return (onlined, Some(e)),
                }
            }
        }
        (onlined, None)
    }

    /// add_memory_resource, in the kernel's order: register the resource (E2BIG, EEXIST),
    /// check the range (EINVAL) and the node, join the memory group, ask the strategy,
    /// arch_add_memory (sections and their memmap), create the memory blocks, construct.
    pub(super) fn add_memory_resource(&mut self, p: &AddParams, strategy: &dyn StrategyHandle) -> Result<AddOutcome, StepError> {
        let resource_id = self.register_memory_resource(p).map_err(|e| e.or_check("register_memory_resource"))?;
        log::debug!("  register_memory_resource: \"System RAM\" {:#x}-{:#x} requested in iomem", p.start, p.start + (p.size - 1));
        self.check_hotplug_memory_range(p).map_err(|e| e.or_check("check_hotplug_memory_range"))?;
        if self.nodes.get(&p.nid).is_none() {
            return Err(StepError::kernel(errno::EINVAL, format!("node {} does not exist", p.nid)).in_check("add_memory_resource"));
        }
        let page = self.geometry.page_size();
        let pfns = PfnRange::new(p.start / page, p.size / page).expect("register_memory_resource checked the end");
        let (start_pfn, nr_pages) = (pfns.start(), pfns.count());
        let group_id = self.memory_group_of(p, nr_pages);

        // The strategy decides the memmap placement.
        let request = RequestData::system_ram(self, pfns, p.nid, p.driver, group_id);
        let restrictions = self.call_set_up(strategy, &request)?;
        self.validate_restrictions(RequestKind::SYSTEM_RAM, &restrictions, start_pfn, nr_pages, strategy.plugin_name())?;
        log::debug!(
            "  set_up ({}): flags {:#x}, altmap {}, memmap_nid {:?}",
            strategy.instance_name(),
            restrictions.flags.0,
            restrictions.altmap.into_option().map_or("none".to_string(), |a| format!("reserve {} free {}", a.reserve, a.free)),
            restrictions.memmap_nid.into_option()
        );
        let placed = self.arch_add_memory(pfns, p.nid, &restrictions, strategy.plugin_name()).map_err(|e| e.or_check("arch_add_memory"))?;
        log::debug!(
            "  arch_add_memory -> __add_pages -> sparse_add_section: {} sections on node {}; memmap {} pages from node memory {:?}, {} pages through altmaps",
            nr_pages / self.geometry.pages_per_section(),
            p.nid,
            placed.node_pages,
            placed.by_node,
            placed.altmap_pages
        );

        let add_id = {
            let c = self.counters.get_mut();
            c.next_add_id += 1;
            c.next_add_id
        };
        let blocks = if restrictions.flags.contains(RestrictionFlags::MEMORY_BLOCK_DEVICES) {
            self.create_memory_block_devices(pfns, p.nid, group_id, &placed.altmaps, strategy.instance_name(), add_id)
        } else {
            BlockRuns::default()
        };
        log::debug!(
            "  create_memory_block_devices: {} memory blocks from memory{}",
            blocks.len(),
            start_pfn / self.geometry.pages_per_block()
        );
        self.nodes.update(&p.nid, |n| n.online = true);
        let counters = self.counters.get_mut();
        counters.max_pfn = counters.max_pfn.max(start_pfn + nr_pages);

        // construct(): the strategy marks what it owns, through checked callbacks.
        let first_altmap = placed.altmaps.first();
        let mut given = restrictions.clone();
        given.altmap = first_altmap.into();
        self.call_with_ops(strategy, OpsCall::Construct, &request, &given, first_altmap)?;
        self.validate_vmemmap_marks(pfns, &placed.altmaps, strategy.plugin_name())?;
        log::debug!("  construct ({}): marks checked", strategy.instance_name());

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
        self.adds.insert(pfns.start(), record);
        Ok(AddOutcome {
            add_id,
            blocks,
            memmap_node_pages: placed.node_pages,
            memmap_nid: placed.memmap_nid,
            memmap_by_node: if placed.by_node.len() > 1 { placed.by_node } else { Vec::new() },
            memmap_altmap_pages: placed.altmap_pages,
            note: crate::text::plugin_text(restrictions.note.as_str(), crate::text::MAX_PLUGIN_TEXT),
            onlined: BlockRuns::default(),
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

    /// arch_add_memory: the sections and their memmap, from per-block altmaps
    /// (MEMMAP_ON_MEMORY), one altmap for the whole range, or node memory.
    fn arch_add_memory(&mut self, pfns: PfnRange, nid: u32, r: &Restrictions, plugin: &str) -> Result<Placed, StepError> {
        let payers = memmap_payers(r, nid, self.nodes.get(&nid).is_some_and(|n| !n.online));
        let per_block = r.flags.contains(RestrictionFlags::MEMMAP_ON_MEMORY) && r.altmap.is_some();
        if per_block && !self.sections_own_their_pmds() {
            return self.arch_add_memory_by_block(pfns, nid, r, plugin);
        }
        let mut placed = Placed::default();
        if per_block {
            // Every block allocates alike from its own altmap: the first block's
            // allocation stands for all (EEXIST anywhere in the range comes first).
            let g = self.geometry;
            let block0 = g.block_pfns(g.pfn_to_block(pfns.start()));
            let mut a = chunk_altmap(r, block0, plugin)?.expect("an altmap");
            let memmap = self.add_sections_per_block(pfns, nid, &mut a)?;
            placed.altmap_pages = memmap.altmap_pages;
            placed.altmaps = AltmapLayout::PerBlock(a);
        } else if let Some(mut a) = chunk_altmap(r, pfns, plugin)? {
            let memmap = self.add_sections(pfns, nid, &payers, &mut placed.by_node, Some(&mut a))?;
            (placed.node_pages, placed.altmap_pages) = (memmap.node_pages, memmap.altmap_pages);
            placed.altmaps = AltmapLayout::Whole(a);
        } else {
            let memmap = self.add_sections(pfns, nid, &payers, &mut placed.by_node, None)?;
            placed.node_pages = memmap.node_pages;
        }
        placed.memmap_nid =
            placed.by_node.first().map_or_else(|| self.payer_nodes(&payers).first().copied().unwrap_or(nid), |&(nid, _)| nid);
        Ok(placed)
    }

    /// Per-block altmaps where sections share vmemmap PMDs, so blocks allocate
    /// differently: block by block.
    fn arch_add_memory_by_block(&mut self, pfns: PfnRange, nid: u32, r: &Restrictions, plugin: &str) -> Result<Placed, StepError> {
        let g = self.geometry;
        let payers = memmap_payers(r, nid, self.nodes.get(&nid).is_some_and(|n| !n.online));
        let mut placed = Placed::default();
        let mut chunks = Vec::new();
        for chunk in (g.pfn_to_block(pfns.start())..g.pfn_to_block(pfns.end())).map(|b| g.block_pfns(b)) {
            let mut altmap = chunk_altmap(r, chunk, plugin)?;
            let memmap = self.add_sections(chunk, nid, &payers, &mut placed.by_node, altmap.as_mut())?;
            placed.node_pages += memmap.node_pages;
            placed.altmap_pages += memmap.altmap_pages;
            chunks.push((chunk.start(), altmap));
        }
        placed.altmaps = AltmapLayout::Each(chunks);
        placed.memmap_nid =
            placed.by_node.first().map_or_else(|| self.payer_nodes(&payers).first().copied().unwrap_or(nid), |&(nid, _)| nid);
        Ok(placed)
    }

    /// create_memory_block_devices: an offline block per memory block of the range, as
    /// one run (two when only the first block carries the add's one altmap).
    fn create_memory_block_devices(
        &mut self,
        pfns: PfnRange,
        nid: u32,
        group_id: u64,
        altmaps: &AltmapLayout,
        strategy: &str,
        add_id: u64,
    ) -> BlockRuns {
        let g = self.geometry;
        let (first, end) = (g.pfn_to_block(pfns.start()), g.pfn_to_block(pfns.end()));
        let info = |altmap: Option<Altmap>, block_pfn: u64| BlockInfo {
            nid,
            state: BlockState::Offline,
            zone: None,
            early: false,
            group_id,
            altmap: altmap.map(|a| relative_altmap(a, block_pfn)),
            vmemmap_pages: altmap.map_or(0, |a| a.free),
            strategy: Some(strategy.to_string()),
            add_id,
        };
        match altmaps {
            AltmapLayout::Each(_) => {
                for b in first..end {
                    let pfn = g.block_to_pfn(b);
                    self.blocks.set_range(b, b + 1, Some(info(altmaps.of_block(pfns.start(), pfn), pfn)));
                }
            }
            AltmapLayout::Whole(a) => {
                self.blocks.set_range(first, first + 1, Some(info(Some(*a), pfns.start())));
                self.blocks.set_range(first + 1, end, Some(info(None, 0)));
            }
            AltmapLayout::PerBlock(a) => self.blocks.set_range(first, end, Some(info(Some(*a), pfns.start()))),
            AltmapLayout::None => self.blocks.set_range(first, end, Some(info(None, 0))),
        }
        let mut blocks = BlockRuns::default();
        blocks.push(first, end, ());
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
        // add_memory_resource always creates memory blocks for System RAM: they are how
        // it is onlined, offlined and removed. Without them the range could never go.
        if kind == RequestKind::SYSTEM_RAM && !r.flags.contains(RestrictionFlags::MEMORY_BLOCK_DEVICES) {
            return Err(StepError::validator(
                plugin,
                "System RAM without MEMORY_BLOCK_DEVICES: the kernel always creates memory blocks for it (without them it could never be onlined or removed)",
            ));
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

    /// Every page marked as vmemmap must lie in an altmap's memmap area: `[base +
    /// reserve, base + reserve + free)` of the block (or add) that holds it. Cost: the
    /// runs of page state in the add.
    fn validate_vmemmap_marks(&self, pfns: PfnRange, altmaps: &AltmapLayout, plugin: &str) -> Result<(), StepError> {
        let g = self.geometry;
        let ppb = g.pages_per_block();
        for (s, e, v) in self.pages.runs_in(pfns.start(), pfns.end()) {
            let inside = match (v, altmaps) {
                (super::pages::PageRun::Plain(PageState::Vmemmap), _) => {
                    let block_pfn = match altmaps {
                        AltmapLayout::Whole(_) => pfns.start(),
                        _ => g.block_to_pfn(g.pfn_to_block(s)),
                    };
                    altmaps
                        .of_block(pfns.start(), block_pfn)
                        .is_some_and(|a| s >= a.base_pfn + a.reserve && e <= a.base_pfn + altmap::offset(&a))
                }
                (super::pages::PageRun::Strided { stride, len, phase }, AltmapLayout::PerBlock(a)) => {
                    // Marks `len` long every `stride` from `phase`: with a stride of one
                    // block, each lies at the same place in its block as the first.
                    let at = (phase % ppb) as u128;
                    let (reserve, end) =
                        ((a.base_pfn - pfns.start() + a.reserve) as u128, (a.base_pfn - pfns.start() + altmap::offset(a)) as u128);
                    *stride == ppb && at >= reserve && at + *len as u128 <= end
                }
                (super::pages::PageRun::Strided { .. }, _) => false,
                _ => continue,
            };
            if !inside {
                return Err(StepError::validator(
                    plugin,
                    format!("construct marked pfns {s:#x}-{:#x} as vmemmap outside the altmap's memmap area", e - 1),
                ));
            }
        }
        Ok(())
    }

    /// try_remove_memory for `[start, start + size)`: only offline memory, only whole
    /// hot-adds; the strategy's `tear_down` runs before the sections go.
    pub fn remove_memory(&mut self, start: u64, size: u64, lookup: &dyn StrategyLookup) -> Result<RemoveOutcome, StepError> {
        // virtio-mem memory is the driver's to unplug (a `shrink` step); removing it under
        // the device would leave the device counting blocks that are gone.
        let page = self.geometry.page_size();
        let pfns = self.pfns_of(start, size);
        if let Some(a) = self.adds_overlapping(pfns).into_iter().find(|a| a.driver == Driver::VIRTIO_MEM) {
            return Err(StepError::kernel(
                errno::EBUSY,
                format!(
                    "{:#x}+{:#x} is virtio-mem memory: the device unplugs it (a shrink step), not a remove",
                    a.pfns.start() * page,
                    a.pfns.count() * page
                ),
            ));
        }
        self.transaction(|m| m.remove_memory_locked(start, size, lookup)).map_err(|e| e.or_check("try_remove_memory"))
    }

    pub(super) fn remove_memory_locked(&mut self, start: u64, size: u64, lookup: &dyn StrategyLookup) -> Result<RemoveOutcome, StepError> {
        let g = self.geometry;
        let page = g.page_size();
        let ids = self.blocks_in(start, size)?;
        let runs = || self.blocks.runs_in(ids.start, ids.end);
        if let Some((id, _, _)) = runs().find(|(_, _, b)| b.state == BlockState::Online) {
            return Err(StepError::kernel(errno::EBUSY, format!("memory{id} is online: offline it before removing")));
        }
        let with_altmap: u64 = runs().filter(|(_, _, b)| b.altmap.is_some()).map(|(s, e, _)| e - s).sum();
        if with_altmap != 0 && with_altmap != ids.end - ids.start {
            return Err(StepError::kernel(errno::EINVAL, "the range mixes blocks with and without memmap on memory"));
        }
        let early = runs().find(|(_, _, b)| b.early).map(|(id, _, _)| id);
        let pfns = self.pfns_of(start, size);
        let adds = self.adds_overlapping(pfns);
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
        if let Some(id) = early {
            return Err(StepError::kernel(errno::EINVAL, format!("memory{id} is boot memory; the model removes only hot-added memory")));
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
        let mut removed_blocks = BlockRuns::default();
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
            let (first, end) = (g.pfn_to_block(add.pfns.start()), g.pfn_to_block(add.pfns.end()));
            for (s, e, _) in self.blocks.runs_in(first, end) {
                removed_blocks.push(s, e, ());
            }
            self.blocks.set_range(first, end, None);
            self.release_add_resource(&add);
            self.adds.remove(&add.pfns.start());
            // A virtio-mem device keeps its dynamic group while it exists.
            if add.group_id != 0 && add.driver != Driver::VIRTIO_MEM && !self.blocks.any(|b| b.group_id == add.group_id) {
                self.groups.remove(&add.group_id);
            }
            self.try_offline_node(add.nid);
        }
        log::debug!(
            "  try_remove_memory -> arch_remove_memory -> sparse_remove_section: {} blocks; memmap freed {freed_node} node pages, {freed_alt} altmap pages; release_mem_region_adjustable",
            removed_blocks.len()
        );
        Ok(RemoveOutcome { blocks: removed_blocks, memmap_freed_node_pages: freed_node, memmap_freed_altmap_pages: freed_alt })
    }

    /// The hot-adds that share a pfn with `pfns`, found by address (adds never overlap).
    fn adds_overlapping(&self, pfns: PfnRange) -> Vec<AddRecord> {
        let before = self.adds.range(..pfns.start()).next_back().map(|(_, a)| a).filter(|a| a.pfns.overlaps(&pfns));
        let inside = self.adds.range(pfns.start()..pfns.end().max(pfns.start())).map(|(_, a)| a);
        before.into_iter().chain(inside).cloned().collect()
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
            .runs_in(pfns.start(), pfns.end())
            .filter(|(_, _, r)| !matches!(r, super::pages::PageRun::Plain(PageState::Reserved { .. })))
            .map(|(s, e, _)| (s, e))
            .collect();
        for (s, e) in leftover {
            self.pages.set(s, e, None);
        }
    }

    /// try_offline_node: a node that spans nothing and has no block devices goes offline.
    fn try_offline_node(&mut self, nid: u32) {
        let spans = self.nodes.get(&nid).is_some_and(|n| n.span().is_some());
        let has_blocks = self.blocks.any(|b| b.nid == nid);
        let has_boot = self.nodes.get(&nid).is_some_and(|n| !n.boot_ranges.is_empty());
        if !spans && !has_blocks && !has_boot {
            self.nodes.update(&nid, |n| n.online = false);
        }
    }
}
