//! The messages between the host and an isolated plugin's process (`--isolate`): one JSON
//! object per line, each side's types mirrored as plain serde structs (the contract's
//! own types are stable-ABI types with no serde).

use hotplug_core::{
    Altmap, Arch, ContractVersion, DevicePageInit, Driver, Geometry, PfnRange, PgmapType, PluginError, PluginInfo, Request, RequestKind,
    RequestKinds, RestrictionFlags, Restrictions, StridedRange,
};
use serde::{Deserialize, Serialize};

use crate::model::numa::{Distances, NodeFacts};
use crate::model::ops::{NodeData, RequestData};

/// The most bytes one message line may hold (a 50 MB note is cut by the child first).
pub const MAX_LINE: u64 = 16 << 20;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct WGeometry {
    pub page_size: u64,
    pub struct_page_size: u64,
    pub section_size: u64,
    pub subsection_size: u64,
    pub memory_block_size: u64,
    pub pmd_size: u64,
    pub pageblock_pages: u64,
    pub max_phys_bits: u32,
    pub arch: u32,
}

impl From<Geometry> for WGeometry {
    fn from(g: Geometry) -> Self {
        WGeometry {
            page_size: g.page_size,
            struct_page_size: g.struct_page_size,
            section_size: g.section_size,
            subsection_size: g.subsection_size,
            memory_block_size: g.memory_block_size,
            pmd_size: g.pmd_size,
            pageblock_pages: g.pageblock_pages,
            max_phys_bits: g.max_phys_bits,
            arch: g.arch.0,
        }
    }
}

impl From<WGeometry> for Geometry {
    fn from(g: WGeometry) -> Self {
        Geometry {
            page_size: g.page_size,
            struct_page_size: g.struct_page_size,
            section_size: g.section_size,
            subsection_size: g.subsection_size,
            memory_block_size: g.memory_block_size,
            pmd_size: g.pmd_size,
            pageblock_pages: g.pageblock_pages,
            max_phys_bits: g.max_phys_bits,
            arch: Arch(g.arch),
        }
    }
}

/// What an instance may ask the host for its whole life (`MachineFacts`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WFacts {
    pub geometry: WGeometry,
    pub nodes: Vec<u32>,
    /// `(from, to, distance)` as the config gave them.
    pub distances: Vec<(u32, u32, u32)>,
}

impl From<&super::MachineFacts> for WFacts {
    fn from(f: &super::MachineFacts) -> Self {
        WFacts {
            geometry: f.geometry.into(),
            nodes: f.distances.nodes().collect(),
            distances: f.distances.given().map(|((a, b), d)| (a, b, d)).collect(),
        }
    }
}

impl From<WFacts> for super::MachineFacts {
    fn from(f: WFacts) -> Self {
        let given = f.distances.into_iter().map(|(a, b, d)| ((a, b), d)).collect();
        super::MachineFacts { geometry: f.geometry.into(), distances: Distances::new(f.nodes, given) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WNode {
    pub id: u32,
    pub boot: Vec<(u64, u64)>,
    pub free_pages: u64,
    pub present_pages: u64,
    pub has_cpus: bool,
    pub tier: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WRequest {
    pub kind: u32,
    pub start_pfn: u64,
    pub nr_pages: u64,
    pub nid: u32,
    pub driver: u32,
    pub group_id: u64,
    pub pgmap_type: u32,
    pub vmemmap_shift: u32,
    pub pgmap_id: u64,
    pub range_index: u32,
    pub range_count: u32,
    pub geometry: WGeometry,
    pub nodes: Vec<WNode>,
}

impl From<&Request<'_>> for WRequest {
    fn from(r: &Request<'_>) -> Self {
        WRequest {
            kind: r.kind.0,
            start_pfn: r.start_pfn,
            nr_pages: r.nr_pages,
            nid: r.nid,
            driver: r.driver.0,
            group_id: r.group_id,
            pgmap_type: r.pgmap_type.0,
            vmemmap_shift: r.vmemmap_shift,
            pgmap_id: r.pgmap_id,
            range_index: r.range_index,
            range_count: r.range_count,
            geometry: r.geometry.into(),
            nodes: r
                .nodes
                .iter()
                .map(|n| WNode {
                    id: n.id,
                    boot: n.boot_ranges.iter().map(|b| (b.start, b.count)).collect(),
                    free_pages: n.free_pages,
                    present_pages: n.present_pages,
                    has_cpus: n.has_cpus,
                    tier: n.tier,
                })
                .collect(),
        }
    }
}

impl From<WRequest> for RequestData {
    fn from(r: WRequest) -> Self {
        RequestData {
            kind: RequestKind(r.kind),
            start_pfn: r.start_pfn,
            nr_pages: r.nr_pages,
            nid: r.nid,
            driver: Driver(r.driver),
            group_id: r.group_id,
            pgmap_type: PgmapType(r.pgmap_type),
            vmemmap_shift: r.vmemmap_shift,
            pgmap_id: r.pgmap_id,
            range_index: r.range_index,
            range_count: r.range_count,
            geometry: r.geometry.into(),
            nodes: r
                .nodes
                .into_iter()
                .map(|n| NodeData {
                    id: n.id,
                    free_pages: n.free_pages,
                    present_pages: n.present_pages,
                    boot_ranges: n.boot.into_iter().map(|(s, c)| PfnRange::new(s, c)).collect(),
                    facts: NodeFacts { has_cpus: n.has_cpus, tier: n.tier },
                })
                .collect(),
        }
    }
}

/// An altmap as the wire carries it.
pub fn altmap_to_wire(a: &Altmap) -> [u64; 6] {
    [a.base_pfn, a.end_pfn, a.reserve, a.free, a.align, a.alloc]
}

/// An altmap from the wire.
pub fn altmap_from_wire(a: [u64; 6]) -> Altmap {
    Altmap { base_pfn: a[0], end_pfn: a[1], reserve: a[2], free: a[3], align: a[4], alloc: a[5] }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WRestrictions {
    pub flags: u64,
    pub altmap: Option<[u64; 6]>,
    pub memmap_nid: Option<u32>,
    pub note: String,
    pub memmap_nodes: Vec<u32>,
}

impl From<&Restrictions> for WRestrictions {
    fn from(r: &Restrictions) -> Self {
        WRestrictions {
            flags: r.flags.0,
            altmap: r.altmap.as_ref().into_option().map(altmap_to_wire),
            memmap_nid: r.memmap_nid.into_option(),
            // Cut in the child: the host would keep only this much anyway.
            note: crate::model::text::plugin_text(r.note.as_str(), crate::model::text::MAX_PLUGIN_TEXT),
            memmap_nodes: r.memmap_nodes.to_vec(),
        }
    }
}

impl From<WRestrictions> for Restrictions {
    fn from(r: WRestrictions) -> Self {
        let mut out = Restrictions::new(RestrictionFlags(r.flags));
        out.altmap = r.altmap.map(altmap_from_wire).into();
        out.memmap_nid = r.memmap_nid.into();
        out.note = r.note.into();
        out.memmap_nodes = r.memmap_nodes.into();
        out
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WError {
    pub errno: i32,
    pub message: String,
}

impl From<&PluginError> for WError {
    fn from(e: &PluginError) -> Self {
        WError { errno: e.errno, message: crate::model::text::plugin_text(e.message.as_str(), crate::model::text::MAX_PLUGIN_TEXT) }
    }
}

impl From<WError> for PluginError {
    fn from(e: WError) -> Self {
        PluginError { errno: e.errno, message: e.message.into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WInfo {
    pub name: String,
    pub version: String,
    pub contract: (u64, u32, u32, u32),
    pub kinds: u64,
    pub flags: u64,
}

impl From<&PluginInfo> for WInfo {
    fn from(i: &PluginInfo) -> Self {
        let c = i.contract;
        WInfo {
            name: i.name.to_string(),
            version: i.version.to_string(),
            contract: (c.magic, c.major, c.minor, c.patch),
            kinds: i.kinds.0,
            flags: i.flags,
        }
    }
}

impl From<WInfo> for PluginInfo {
    fn from(i: WInfo) -> Self {
        let (magic, major, minor, patch) = i.contract;
        PluginInfo {
            name: i.name.into(),
            version: i.version.into(),
            contract: ContractVersion { magic, major, minor, patch },
            kinds: RequestKinds(i.kinds),
            flags: i.flags,
        }
    }
}

/// One declared option (`OptionSpec`), as text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WOption {
    pub name: String,
    pub ty: u32,
    pub choices: String,
    pub default: String,
    pub help: String,
}

/// The strategy calls that borrow MemmapOps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WCall {
    Construct,
    TearDown,
}

/// From the host to the plugin's process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToChild {
    /// Load the plugin at `path` (checked by the host; checked again) and build an instance.
    Hello {
        path: String,
        options: String,
        allow_unsafe: bool,
        facts: WFacts,
    },
    /// Build the instance (after the host checked the options against the schema).
    New,
    SetUp {
        request: WRequest,
    },
    WithOps {
        call: WCall,
        request: WRequest,
        restrictions: WRestrictions,
        altmap: Option<[u64; 6]>,
    },
    /// The answer to the child's last [`FromChild::Op`]: a handle for reserve_pages, else 0.
    OpReply {
        result: Result<u64, WError>,
    },
}

/// A MemmapOps call the plugin made, forwarded to the host's model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WOp {
    MarkVmemmap { start: u64, count: u64 },
    InitDevicePages { start: u64, count: u64, nid: u32, pgmap_id: u64, compound_order: u32, refcount: u32 },
    ClearPages { start: u64, count: u64 },
    ReservePages { start: u64, count: u64 },
    ReleasePages { handle: u64 },
    MarkVmemmapStrided { runs: [u64; 4] },
    ClearPagesStrided { runs: [u64; 4] },
}

impl WOp {
    /// Apply the call to `ops` (the host's checked MemmapOps), as the plugin's own call would.
    pub fn apply(&self, ops: &mut impl hotplug_core::abi::MemmapOps) -> Result<u64, PluginError> {
        let strided = |r: [u64; 4]| StridedRange { start: r[0], len: r[1], stride: r[2], count: r[3] };
        match *self {
            WOp::MarkVmemmap { start, count } => ops.mark_vmemmap(PfnRange::new(start, count)).into_result().map(|()| 0),
            WOp::InitDevicePages { start, count, nid, pgmap_id, compound_order, refcount } => ops
                .init_device_pages(PfnRange::new(start, count), DevicePageInit { nid, pgmap_id, compound_order, refcount })
                .into_result()
                .map(|()| 0),
            WOp::ClearPages { start, count } => ops.clear_pages(PfnRange::new(start, count)).into_result().map(|()| 0),
            WOp::ReservePages { start, count } => ops.reserve_pages(PfnRange::new(start, count)).into_result(),
            WOp::ReleasePages { handle } => ops.release_pages(handle).into_result().map(|()| 0),
            WOp::MarkVmemmapStrided { runs } => ops.mark_vmemmap_strided(strided(runs)).into_result().map(|()| 0),
            WOp::ClearPagesStrided { runs } => ops.clear_pages_strided(strided(runs)).into_result().map(|()| 0),
        }
    }
}

/// From the plugin's process to the host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FromChild {
    /// The library loaded: what options it declares.
    Loaded {
        schema: Option<Vec<WOption>>,
    },
    /// The instance is built.
    Ready {
        info: WInfo,
    },
    /// Loading or the constructor failed: `load` says which.
    Refused {
        load: bool,
        error: WError,
    },
    SetUpDone {
        result: Result<WRestrictions, WError>,
    },
    Op(WOp),
    Done {
        result: Result<(), WError>,
    },
}
