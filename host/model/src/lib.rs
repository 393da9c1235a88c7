//! hotplug-model: the kernel-faithful model of sparse memory: sections, memory blocks,
//! zones, nodes, the resource tree, memmap placement, and the hotplug operations on them.
//!
//! Its own crate so the compiler holds the line: it sees the contract's types and nothing
//! of the host, does no I/O and knows no serde, TOML or CLI. Everything runs through one
//! typed [`step::Step`] and [`Model::apply`]; reports, views and configs live in
//! `hotplug-host`.
//!
//! Every mutable piece of state sits in a journaled container, so a step is a
//! transaction: [`Model::begin`], then [`Model::commit`] or [`Model::rollback`].

pub mod account;
pub mod address_map;
pub mod altmap;
pub mod block;
pub mod boot;
pub mod capture;
pub mod device;
pub mod device_memmap;
pub mod error;
pub mod geometry;
pub mod groups;
pub mod hotplug;
pub mod invariants;
pub mod journal;
pub mod memmap_alloc;
pub mod node;
pub mod numa;
pub mod online;
pub mod ops;
pub mod pages;
pub mod policy;
pub mod range;
pub mod resource;
pub mod sections;
mod sparse;
pub mod step;
pub mod text;
pub mod units;
pub mod virtio;
pub mod watermarks;
pub mod zone;
pub mod zone_policy;
pub mod zonelist;

use hotplug_core::Restrictions;

pub use block::{BlockState, MemoryBlock};
pub use error::{FailureSource, StepError};
pub use geometry::MachineGeometry;
use journal::{JCell, JMap};
pub use node::Node;
use policy::{AutoOnline, OnlinePolicy};
pub use range::{PfnRange, PhysRange};
use resource::ResourceTree;
use sections::SectionTable;
pub use zone::{Zone, ZoneType};

/// The kernel-wide knobs the model follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub auto_online_blocks: AutoOnline,
    pub online_policy: OnlinePolicy,
    pub auto_movable_ratio: u32,
    pub auto_movable_numa_aware: bool,
    pub movable_node: bool,
    /// A value written to vm.min_free_kbytes (`user_min_free_kbytes`): kept until the
    /// kernel's own rule gives more. `None`: the rule alone.
    pub user_min_free_kbytes: Option<u64>,
    /// transparent_hugepage/enabled at boot.
    pub thp: watermarks::Thp,
    /// Whether khugepaged runs (THP enabled and boot RAM of at least 512 MiB), so every
    /// watermark recompute may raise min_free_kbytes. Set by boot.
    pub khugepaged: bool,
}

/// What a page is, where it is special; pages without a run are ordinary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageState {
    /// Holds memmap (marked by a strategy's `construct`).
    Vmemmap,
    /// A ZONE_DEVICE page.
    Device { nid: u32, pgmap_id: u64, compound_order: u32, refcount: u32 },
    /// Held back from the buddy allocator by a strategy.
    Reserved { handle: u64 },
    /// PageOffline: an unplugged sub-block of a virtio-mem device's block, present but
    /// never handed to the buddy allocator (virtio_mem_set_fake_offline).
    FakeOffline,
}

/// One hot-add as the model remembers it, so remove can undo it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddRecord {
    pub id: u64,
    pub pfns: PfnRange,
    pub nid: u32,
    pub driver: hotplug_core::Driver,
    pub group_id: u64,
    pub strategy: String,
    pub restrictions: Restrictions,
    pub resource_id: u64,
}

/// Scalars that change with steps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counters {
    pub next_add_id: u64,
    pub next_handle: u64,
    /// max_pfn: one past the highest System RAM pfn ever added.
    pub max_pfn: u64,
    pub next_pgmap_id: u64,
    pub next_group_id: u64,
    /// min_free_kbytes as the last watermark recompute left it.
    pub min_free_kbytes: u64,
}

/// The whole machine.
#[derive(Debug, Clone)]
pub struct Model {
    pub geometry: MachineGeometry,
    pub policy: Policy,
    pub sections: SectionTable,
    pub nodes: JMap<u32, Node>,
    pub blocks: block::BlockTable,
    pub resources: ResourceTree,
    pub pages: pages::PageMap,
    /// Hot-adds by first pfn (they never overlap), so a range finds its adds by address.
    pub adds: JMap<u64, AddRecord>,
    /// Reservations made through MemmapOps, by handle.
    pub reservations: JMap<u64, PfnRange>,
    /// ZONE_DEVICE page maps (memremap), by id.
    pub pgmaps: JMap<u64, device::Pgmap>,
    /// Memory groups (static devices, virtio-mem), by id.
    pub groups: JMap<u64, groups::MemoryGroup>,
    /// virtio-mem devices, by name.
    pub virtio: JMap<String, virtio::VirtioMem>,
    /// The plugged sub-blocks of every memory block a virtio-mem device added, by block
    /// id (a device's are the ids of its region): one journal entry per block written.
    pub virtio_blocks: JMap<u64, virtio::SubBlocks>,
    pub counters: JCell<Counters>,
    /// The zones that paid for each section whose memmap came from more than one zone
    /// (`MemmapHome::Split`), by section number.
    pub memmap_splits: JMap<u64, Vec<memmap_alloc::MemmapPart>>,
    /// The NUMA distance table (fixed at boot).
    pub distances: numa::Distances,
    /// Every node's zonelist, rebuilt when the nodes with memory change (not state).
    zonelists: zonelist::ZonelistCache,
    in_txn: bool,
}

impl PartialEq for Model {
    /// Snapshot equality: the same machine state (open journals and id numbering aside).
    fn eq(&self, other: &Self) -> bool {
        self.differences(other).is_empty()
    }
}

impl Model {
    /// The parts of the state that differ from `other`, by name (id counters aside).
    /// `max_pfn` is one the kernel itself leaves raised after a remove.
    pub fn differences(&self, other: &Self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut check = |name, same: bool| {
            if !same {
                out.push(name);
            }
        };
        check("geometry", self.geometry == other.geometry);
        check("policy", self.policy == other.policy);
        check("sections", self.sections == other.sections);
        // The Device zone's span is what memunmap leaves behind (the kernel does not
        // shrink it): named apart from the rest of the node state.
        let without_device_span = |m: &Model| {
            m.nodes
                .values()
                .map(|n| {
                    let mut n = n.clone();
                    *n.zone_mut(ZoneType::Device) = Zone { start_pfn: 0, spanned: 0, ..*n.zone(ZoneType::Device) };
                    n
                })
                .collect::<Vec<_>>()
        };
        check("nodes", without_device_span(self) == without_device_span(other));
        check(
            "device_zone_spans",
            self.nodes.values().map(|n| *n.zone(ZoneType::Device)).eq(other.nodes.values().map(|n| *n.zone(ZoneType::Device))),
        );
        check("memory_blocks", self.blocks.same_contents(&other.blocks));
        check("resources", self.resources.same_contents(&other.resources));
        check("page_marks", self.pages.same_states(&other.pages));
        check("hot_adds", self.adds.same_contents(&other.adds));
        check("reservations", self.reservations.same_contents(&other.reservations));
        check("pgmaps", self.pgmaps.same_contents(&other.pgmaps));
        check("memory_groups", self.groups.same_contents(&other.groups));
        check("virtio_mem_devices", self.virtio.same_contents(&other.virtio));
        check("virtio_mem_blocks", self.virtio_blocks.same_contents(&other.virtio_blocks));
        check("memmap_splits", self.memmap_splits.same_contents(&other.memmap_splits));
        check("min_free_kbytes", self.counters.get().min_free_kbytes == other.counters.get().min_free_kbytes);
        check("max_pfn", self.counters.get().max_pfn == other.counters.get().max_pfn);
        out
    }

    /// Start a transaction: every write from here on can be undone.
    pub fn begin(&mut self) {
        debug_assert!(!self.in_txn, "nested transaction");
        self.in_txn = true;
        self.sections.begin();
        self.nodes.begin();
        self.blocks.begin();
        self.resources.begin();
        self.pages.begin();
        self.adds.begin();
        self.reservations.begin();
        self.pgmaps.begin();
        self.groups.begin();
        self.virtio.begin();
        self.virtio_blocks.begin();
        self.memmap_splits.begin();
        self.counters.begin();
    }

    /// Keep the transaction's changes.
    pub fn commit(&mut self) {
        self.in_txn = false;
        self.sections.commit();
        self.nodes.commit();
        self.blocks.commit();
        self.resources.commit();
        self.pages.commit();
        self.adds.commit();
        self.reservations.commit();
        self.pgmaps.commit();
        self.groups.commit();
        self.virtio.commit();
        self.virtio_blocks.commit();
        self.memmap_splits.commit();
        self.counters.commit();
    }

    /// Drop the transaction's changes: the model is exactly as it was at `begin`.
    pub fn rollback(&mut self) {
        self.in_txn = false;
        self.sections.rollback();
        self.nodes.rollback();
        self.blocks.rollback();
        self.resources.rollback();
        self.pages.rollback();
        self.adds.rollback();
        self.reservations.rollback();
        self.pgmaps.rollback();
        self.groups.rollback();
        self.virtio.rollback();
        self.virtio_blocks.rollback();
        self.memmap_splits.rollback();
        self.counters.rollback();
    }

    /// Run `f` as one transaction: commit on `Ok`, roll back on `Err`.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&mut Model) -> Result<T, StepError>) -> Result<T, StepError> {
        self.begin();
        let result = f(self);
        match result {
            Ok(_) => self.commit(),
            Err(_) => self.rollback(),
        }
        result
    }

    /// Sum of managed pages over all zones (MemTotal in pages).
    pub fn total_managed(&self) -> u64 {
        self.nodes.values().map(Node::managed_pages).sum()
    }

    /// min_free_kbytes in pages (what __setup_per_zone_wmarks shares over the zones).
    pub fn min_free_pages(&self) -> u64 {
        self.min_free_kbytes() / (self.geometry.page_size() / 1024).max(1)
    }

    /// Node `nid`'s share of min_free_kbytes: the sum of its zones' min watermarks.
    pub fn min_free_share(&self, nid: u32) -> u64 {
        self.nodes.get(&nid).map_or(0, |n| n.zones.iter().map(|z| z.watermark.min).sum())
    }
}
