//! memmap-on-node: the memmap of memory on a far node (a CXL expander) from the nearest
//! node with CPUs that has room for it.
//!
//! Why: a CXL memory expander is a NUMA node without CPUs, in a slower memory tier. Its
//! memory is hot-added through dax/kmem and onlined, usually into ZONE_MOVABLE, and from
//! then on every page-cache lookup, every allocation and free, every LRU and migration
//! walk reads and writes the `struct page` of the pages involved. With the memmap on the
//! expander (memmap on memory) each of those touches crosses the CXL link; with the memmap
//! on a socket's DRAM they stay on memory next to the CPUs doing them.
//!
//! Why room first: the memmap is 1/64 of the memory it describes (a 64-byte `struct page`
//! per 4 KiB page), so a 256 GiB expander needs 4 GiB of it. The nearest socket may be a
//! small one, and one add would take all of its free memory. So the near nodes with room
//! for the whole memmap (plus `headroom`) come first, nearest first; the near nodes
//! without room follow as fallback, nearest first, so that an add no single node can hold
//! is spread over the sockets instead of refused. The host takes each section's memmap
//! from the first listed node with room (`Restrictions::memmap_nodes`, contract 1.1), so a
//! fallback node pays only what the nodes before it could not.
//!
//! A node is *far* when it has no CPUs, or when `far_tier` is given and the node's tier is
//! at least `far_tier`; the others are *near*. Memory on a near node gets the kernel's
//! default: its memmap from its own node. When a far node has no near node at a known
//! distance, its memory gets that default too.
//!
//! The kernel has no such policy: `vmemmap_populate()` asks `alloc_pages_node()` for the
//! range's own node, and for a memoryless node the page allocator falls back along that
//! node's zonelist, nearest first, whether or not the nearest node can spare the memory
//! (system-ram's `memmap_policy = "nearest-cpu-node"` is that order). This plugin is a
//! placement the model lets you try before proposing it.
//!
//! `headroom` is a size (`"64MiB"`, or bytes), read with `hotplug_core::options::Size`:
//! the parser the host checks `OptionType::SIZE` options with.

use hotplug_core::options::Size;
use hotplug_core::{
    export_plugin, Geometry, Host, OptionSpec, OptionType, PluginError, Request, RequestKinds, RestrictionFlags, Restrictions, Strategy,
};
use serde::Deserialize;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// The `options` table of a `[[strategy]]` that uses this plugin. Unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Nodes of this tier or slower are far even with CPUs.
    far_tier: Option<u32>,
    /// MiB a near node keeps beyond the memmap before it counts as having room.
    headroom: Option<Size>,
}

/// The same options as the host sees them (keep in step with [`Options`]).
const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new("far_tier", OptionType::INTEGER, "(none: only CPU-less nodes are far)", "nodes of this memory tier or slower are far"),
    OptionSpec::new("headroom", OptionType::SIZE, "0", "memory a near node keeps beyond the memmap before it counts as having room"),
];

/// One node as the ordering sees it: its `NodeInfo` facts and its distance from the node
/// of the range being added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeFacts {
    pub id: u32,
    pub has_cpus: bool,
    pub tier: u32,
    /// Pages the node can still give to memmap (`NodeInfo::free_pages`: net of its
    /// min_free share, as the host counts it).
    pub free_pages: u64,
    /// SLIT distance from the range's node; `None` when the host knows none.
    pub distance: Option<u32>,
}

/// Whether memory on a node with these facts is far: no CPUs, or a tier of `far_tier` or
/// slower.
pub fn is_far(has_cpus: bool, tier: u32, far_tier: Option<u32>) -> bool {
    !has_cpus || far_tier.is_some_and(|far| tier >= far)
}

/// The near nodes that may pay for a far range's memmap, in the order they are listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemmapOrder {
    /// Near nodes with room for the whole memmap plus the headroom, nearest first.
    pub with_room: Vec<u32>,
    /// The other near nodes, nearest first: they pay what the nodes before them cannot.
    pub fallback: Vec<u32>,
}

impl MemmapOrder {
    /// Every listed node, in order: what goes in `memmap_nodes`.
    pub fn nodes(&self) -> Vec<u32> {
        self.with_room.iter().chain(&self.fallback).copied().collect()
    }

    /// No near node at all.
    pub fn is_empty(&self) -> bool {
        self.with_room.is_empty() && self.fallback.is_empty()
    }
}

/// The near nodes of `nodes` (has CPUs, not far by tier, at a known distance), ordered by
/// distance and then id; those whose `free_pages >= need_pages + headroom_pages` first,
/// then the rest. A node listed twice counts once (the host refuses a repeated node).
pub fn memmap_order(nodes: &[NodeFacts], far_tier: Option<u32>, need_pages: u64, headroom_pages: u64) -> MemmapOrder {
    let mut near: Vec<(u32, u32, u64)> =
        nodes.iter().filter(|n| !is_far(n.has_cpus, n.tier, far_tier)).filter_map(|n| Some((n.distance?, n.id, n.free_pages))).collect();
    near.sort_unstable();
    let mut seen = Vec::with_capacity(near.len());
    near.retain(|&(_, id, _)| {
        let first = !seen.contains(&id);
        seen.push(id);
        first
    });
    let room = need_pages.saturating_add(headroom_pages);
    let (with_room, fallback): (Vec<_>, Vec<_>) = near.into_iter().partition(|&(_, _, free)| free >= room);
    MemmapOrder {
        with_room: with_room.into_iter().map(|(_, id, _)| id).collect(),
        fallback: fallback.into_iter().map(|(_, id, _)| id).collect(),
    }
}

/// Pages of memmap for `nr_pages` pages: their `struct page`s, rounded up to whole pages
/// (`None` for a geometry without a page size).
pub fn memmap_need_pages(g: &Geometry, nr_pages: u64) -> Option<u64> {
    (g.page_size != 0).then(|| g.memmap_bytes(nr_pages).div_ceil(g.page_size))
}

/// `bytes` in the largest binary unit that divides it, exact: "4 GiB", "66 MiB", "12 B".
fn size(bytes: u64) -> String {
    [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")]
        .into_iter()
        .find(|&(unit, _)| bytes >= unit && bytes % unit == 0)
        .map_or_else(|| format!("{bytes} B"), |(unit, name)| format!("{} {name}", bytes / unit))
}

/// "0", "0, 1".
fn ids(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// The one-line note: which nodes, and why in that order.
fn note(nid: u32, order: &MemmapOrder, memmap_bytes: u64, headroom_bytes: u64) -> String {
    let room = if headroom_bytes == 0 {
        format!("room for {}", size(memmap_bytes))
    } else {
        format!("room for {} + {} headroom", size(memmap_bytes), size(headroom_bytes))
    };
    // "0 has", "0, 1 have"; "1 is", "1, 3 are".
    let verb = |nodes: &[u32], one: &str, many: &str| format!("{} {}", ids(nodes), if nodes.len() == 1 { one } else { many });
    let why = match (order.with_room.as_slice(), order.fallback.as_slice()) {
        ([], _) => format!("none has {room}, nearest first"),
        (roomy, []) => format!("{} {room}", verb(roomy, "has", "have")),
        (roomy, rest) => format!("{} {room}, {} the fallback", verb(roomy, "has", "have"), verb(rest, "is", "are")),
    };
    format!("memmap for far node {nid} from nodes {:?}: {}", order.nodes(), why)
}

/// `set_up`'s decision for `request`, with `distance(node)` the distance from the range's
/// node: a function of its arguments only, so it can be tested on a hand-built request.
fn place(request: &Request<'_>, far_tier: Option<u32>, headroom_bytes: u64, distance: impl Fn(u32) -> Option<u32>) -> Restrictions {
    // Memory-block devices, so the range can be onlined: what add_memory() always asks.
    let mut restrictions = Restrictions::new(RestrictionFlags::MEMORY_BLOCK_DEVICES);
    // A near node (or one the request does not describe): the kernel default, memmap
    // from the range's own node.
    let Some(own) = request.node(request.nid) else { return restrictions };
    if !is_far(own.has_cpus, own.tier, far_tier) {
        return restrictions;
    }
    let g = &request.geometry;
    let Some(need_pages) = memmap_need_pages(g, request.nr_pages) else { return restrictions };
    let headroom_pages = headroom_bytes.div_ceil(g.page_size);
    let facts: Vec<NodeFacts> = request
        .nodes
        .iter()
        .map(|n| NodeFacts { id: n.id, has_cpus: n.has_cpus, tier: n.tier, free_pages: n.free_pages, distance: distance(n.id) })
        .collect();
    let order = memmap_order(&facts, far_tier, need_pages, headroom_pages);
    if order.is_empty() {
        restrictions.note = format!("far node {} has no near node with CPUs: memmap from node {} itself", request.nid, request.nid).into();
        return restrictions;
    }
    restrictions.note = note(request.nid, &order, g.memmap_bytes(request.nr_pages), headroom_bytes).into();
    restrictions.with_memmap_nodes(order.nodes())
}

/// One instance per `[[strategy]]`: its options and the host (for distances). Nothing a
/// call learns is kept: the host calls one instance from several threads.
pub struct MemmapOnNode {
    far_tier: Option<u32>,
    headroom_bytes: u64,
    host: Host,
}

impl std::fmt::Debug for MemmapOnNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemmapOnNode").field("far_tier", &self.far_tier).field("headroom_bytes", &self.headroom_bytes).finish()
    }
}

impl Strategy for MemmapOnNode {
    // System RAM only: export_plugin! refuses device requests before set_up sees them
    // (device memory's memmap always comes from the pgmap's node).
    const KINDS: RequestKinds = RequestKinds::SYSTEM_RAM;
    const OPTIONS: Option<&'static [OptionSpec]> = Some(OPTIONS);

    fn new(options: &str, host: &Host) -> Result<Self, PluginError> {
        let o: Options = hotplug_core::options::parse("memmap-on-node", options)?;
        Ok(MemmapOnNode { far_tier: o.far_tier, headroom_bytes: o.headroom.map_or(0, |Size(bytes)| bytes), host: host.clone() })
    }

    /// Before `__add_pages()`: which nodes pay for the memmap of `request`.
    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError> {
        let restrictions = place(request, self.far_tier, self.headroom_bytes, |node| self.host.distance(request.nid, node));
        log::debug!(
            "set_up pfn {:#x}+{:#x} on node {}: memmap_nodes {:?}",
            request.start_pfn,
            request.nr_pages,
            request.nid,
            restrictions.memmap_nodes.as_slice()
        );
        Ok(restrictions)
    }

    // construct and tear_down are the trait's defaults: there is no altmap, so no page of
    // the range holds memmap and nothing is marked or reserved; the memmap in node memory
    // is allocated and freed by the host with the sections.
}

export_plugin!(MemmapOnNode);

#[cfg(test)]
mod tests {
    use super::*;
    use hotplug_core::abi_stable::std_types::RSlice;
    use hotplug_core::{Arch, Driver, NodeInfo, PgmapType, RequestKind};

    const PAGE: u64 = 4096;

    /// x86_64: 4 KiB pages, 64-byte struct page, 128 MiB sections and blocks.
    fn x86_64() -> Geometry {
        Geometry {
            page_size: PAGE,
            struct_page_size: 64,
            section_size: 128 * MIB,
            subsection_size: 2 * MIB,
            memory_block_size: 128 * MIB,
            pmd_size: 2 * MIB,
            pageblock_pages: 512,
            max_phys_bits: 46,
            arch: Arch::X86_64,
        }
    }

    fn node(id: u32, has_cpus: bool, tier: u32, free_pages: u64) -> NodeInfo<'static> {
        NodeInfo { id, boot_ranges: RSlice::from_slice(&[]), free_pages, present_pages: free_pages, has_cpus, tier }
    }

    fn request<'a>(nid: u32, bytes: u64, nodes: &'a [NodeInfo<'a>]) -> Request<'a> {
        Request {
            kind: RequestKind::SYSTEM_RAM,
            start_pfn: (128 * GIB) / PAGE,
            nr_pages: bytes / PAGE,
            nid,
            driver: Driver::DAX_KMEM,
            group_id: 1,
            pgmap_type: PgmapType::NONE,
            vmemmap_shift: 0,
            pgmap_id: 0,
            range_index: 0,
            range_count: 1,
            geometry: x86_64(),
            nodes: RSlice::from_slice(nodes),
        }
    }

    fn facts(id: u32, has_cpus: bool, tier: u32, free_pages: u64, distance: Option<u32>) -> NodeFacts {
        NodeFacts { id, has_cpus, tier, free_pages, distance }
    }

    // configs/cxl-expander.toml's machine, as its add step's request describes it. Node 0:
    // 64 GiB of boot DRAM = 16,777,216 pages, minus its own memmap (16,777,216 x 64 B =
    // 1 GiB = 262,144 pages): 16,515,072 free. Node 1: 4 GiB = 1,048,576 pages minus 16,384
    // of memmap: 1,032,192. `free_pages` is what the node can still give, net of its
    // min_free share: min_free = isqrt(16 x 70,189,056 kB) = 33,511 kB = 8,377 pages,
    // spread by managed pages (16/17 and 1/17, rounded up): 7,885 and 493. Node 2: the CXL
    // expander, no CPUs, tier 22, nothing online; 32 from node 0, 20 from node 1.
    const NODE0_FREE: u64 = 16_515_072 - 7_885;
    const NODE1_FREE: u64 = 1_032_192 - 493;
    // 256 GiB = 67,108,864 pages; x 64 B = 4 GiB of struct pages = 1,048,576 pages.
    const NEED_256G: u64 = 1_048_576;

    fn cxl_nodes() -> [NodeInfo<'static>; 3] {
        [node(0, true, 4, NODE0_FREE), node(1, true, 4, NODE1_FREE), node(2, false, 22, 0)]
    }

    fn cxl_distance(to: u32) -> Option<u32> {
        // From node 2, as the config's `distance = { 0 = 32, 1 = 20 }` says.
        [(0, 32), (1, 20), (2, 10)].into_iter().find(|&(n, _)| n == to).map(|(_, d)| d)
    }

    #[test]
    fn memmap_need_is_struct_pages_rounded_up_to_pages() {
        let g = x86_64();
        assert_eq!(memmap_need_pages(&g, 256 * GIB / PAGE), Some(NEED_256G));
        // One 128 MiB section: 32,768 x 64 B = 2 MiB = 512 pages.
        assert_eq!(memmap_need_pages(&g, 32_768), Some(512));
        // One page: 64 B, still one whole page.
        assert_eq!(memmap_need_pages(&g, 1), Some(1));
        assert_eq!(memmap_need_pages(&Geometry { page_size: 0, ..g }, 1), None);
    }

    #[test]
    fn far_means_no_cpus_or_a_slow_enough_tier() {
        assert!(is_far(false, 4, None));
        assert!(!is_far(true, 22, None), "without far_tier only CPU-less nodes are far");
        assert!(is_far(true, 22, Some(10)));
        assert!(is_far(true, 10, Some(10)), "tier >= far_tier");
        assert!(!is_far(true, 4, Some(10)));
    }

    #[test]
    fn the_nearest_node_with_room_comes_first() {
        // Node 1 is nearer (20 < 32) but has 1,031,699 free pages, 16,877 short of the
        // 1,048,576 needed; node 0 (16,507,187) has room. Node 2 is the far node itself: not listed.
        let nodes = [facts(0, true, 4, NODE0_FREE, Some(32)), facts(1, true, 4, NODE1_FREE, Some(20)), facts(2, false, 22, 0, Some(10))];
        let order = memmap_order(&nodes, None, NEED_256G, 0);
        assert_eq!(order, MemmapOrder { with_room: vec![0], fallback: vec![1] });
        assert_eq!(order.nodes(), [0, 1]);
        // 64 GiB needs 262,144 pages: both have room, so distance alone decides: [1, 0].
        let order = memmap_order(&nodes, None, 262_144, 0);
        assert_eq!(order, MemmapOrder { with_room: vec![1, 0], fallback: vec![] });
    }

    #[test]
    fn exactly_enough_is_room_and_headroom_is_added_to_the_need() {
        // Node 1 has exactly the 1,048,576 pages of the need: room (>=). With 64 MiB of
        // headroom (16,384 pages) it needs 1,064,960: no room, node 0 comes first.
        let nodes = [facts(0, true, 4, NODE0_FREE, Some(32)), facts(1, true, 4, NEED_256G, Some(20))];
        assert_eq!(memmap_order(&nodes, None, NEED_256G, 0).nodes(), [1, 0]);
        assert_eq!(memmap_order(&nodes, None, NEED_256G, 16_384), MemmapOrder { with_room: vec![0], fallback: vec![1] });
        // Neither has room for a need past node 0's free pages: both fall back, nearest first.
        assert_eq!(memmap_order(&nodes, None, NODE0_FREE + 1, 0), MemmapOrder { with_room: vec![], fallback: vec![1, 0] });
        // A headroom of u64::MAX saturates instead of wrapping to "room".
        assert_eq!(memmap_order(&nodes, None, NEED_256G, u64::MAX).with_room, Vec::<u32>::new());
    }

    #[test]
    fn ties_go_by_id_unknown_distances_and_far_nodes_are_skipped() {
        // Nodes 3 and 1 both at 20: by id, 1 then 3. Node 0 at 25 after them. Node 4 has
        // CPUs but no distance: skipped. Node 5 has CPUs in tier 22: near without
        // far_tier (after 0, at 30), far with far_tier = 10. Node 6 is another CXL node.
        let nodes = [
            facts(3, true, 4, 10, Some(20)),
            facts(0, true, 4, 10, Some(25)),
            facts(1, true, 4, 10, Some(20)),
            facts(4, true, 4, 10, None),
            facts(5, true, 22, 10, Some(30)),
            facts(6, false, 22, 10, Some(15)),
        ];
        assert_eq!(memmap_order(&nodes, None, 1, 0).nodes(), [1, 3, 0, 5]);
        assert_eq!(memmap_order(&nodes, Some(10), 1, 0).nodes(), [1, 3, 0]);
        // Room first even when the roomy node is the farthest: only node 0 has 100 pages.
        let mut roomy = nodes;
        roomy[1].free_pages = 100;
        assert_eq!(memmap_order(&roomy, None, 50, 0), MemmapOrder { with_room: vec![0], fallback: vec![1, 3, 5] });
        // A node listed twice is listed once (the host refuses a repeated memmap node).
        let twice = [facts(1, true, 4, 10, Some(20)), facts(1, true, 4, 10, Some(20))];
        assert_eq!(memmap_order(&twice, None, 1, 0).nodes(), [1]);
        // Nothing near: nothing listed.
        assert!(memmap_order(&[facts(2, false, 22, 0, Some(10))], None, 1, 0).is_empty());
    }

    #[test]
    fn cxl_expander_memmap_from_node_0_then_node_1() {
        let nodes = cxl_nodes();
        let r = place(&request(2, 256 * GIB, &nodes), None, 0, cxl_distance);
        assert_eq!(r.flags, RestrictionFlags::MEMORY_BLOCK_DEVICES);
        assert!(r.altmap.is_none() && r.memmap_nid.is_none());
        assert_eq!(r.memmap_nodes.as_slice(), [0, 1]);
        assert_eq!(r.note.as_str(), "memmap for far node 2 from nodes [0, 1]: 0 has room for 4 GiB, 1 is the fallback");
        // 16 GiB needs 256 MiB = 65,536 pages: node 1 has room, and it is the nearest.
        let r = place(&request(2, 16 * GIB, &nodes), None, 0, cxl_distance);
        assert_eq!(r.memmap_nodes.as_slice(), [1, 0]);
        assert_eq!(r.note.as_str(), "memmap for far node 2 from nodes [1, 0]: 1, 0 have room for 256 MiB");
        // With 1 TiB of headroom (268,435,456 pages) neither has room.
        let r = place(&request(2, 16 * GIB, &nodes), None, TIB, cxl_distance);
        assert_eq!(r.memmap_nodes.as_slice(), [1, 0]);
        assert_eq!(r.note.as_str(), "memmap for far node 2 from nodes [1, 0]: none has room for 256 MiB + 1 TiB headroom, nearest first");
    }

    #[test]
    fn near_memory_and_lonely_far_memory_get_the_kernel_default() {
        let nodes = cxl_nodes();
        let plain = Restrictions::new(RestrictionFlags::MEMORY_BLOCK_DEVICES);
        // Memory on node 0 (CPUs, tier 4) is near: nothing but memory-block devices.
        assert_eq!(place(&request(0, 16 * GIB, &nodes), None, 0, cxl_distance), plain);
        assert_eq!(place(&request(0, 16 * GIB, &nodes), Some(10), 0, cxl_distance), plain);
        // far_tier = 4 makes every node far: no candidates, the default with a note.
        let r = place(&request(2, 16 * GIB, &nodes), Some(4), 0, cxl_distance);
        assert_eq!((r.flags, r.memmap_nodes.len()), (RestrictionFlags::MEMORY_BLOCK_DEVICES, 0));
        assert_eq!(r.note.as_str(), "far node 2 has no near node with CPUs: memmap from node 2 itself");
        // A node the request does not describe: the default (the host refuses it before us).
        assert_eq!(place(&request(7, 16 * GIB, &nodes), None, 0, cxl_distance), plain);
        // No distances known: no candidates.
        assert!(place(&request(2, 16 * GIB, &nodes), None, 0, |_| None).memmap_nodes.is_empty());
    }

    #[test]
    fn sizes_are_exact() {
        assert_eq!(size(4 * GIB), "4 GiB");
        assert_eq!(size(66 * MIB), "66 MiB");
        assert_eq!(size(4 * GIB + 4 * KIB), "4194308 KiB");
        assert_eq!(size(0), "0 B");
        assert_eq!(size(TIB), "1 TiB");
        assert_eq!(size(1536 * GIB), "1536 GiB");
    }
}
