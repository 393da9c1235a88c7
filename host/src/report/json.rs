//! The JSON report's shapes for what the model returns: the model knows no serde, so the
//! report decides, here and only here, how each outcome, error and name is spelled
//! (docs/report-json.md). Each `serialize_*` function is a serde `serialize_with` for a
//! model value.

use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

use crate::model::block::BlockRuns;
use crate::model::block::BlockState;
use crate::model::device::{MemremapOutcome, MemunmapOutcome};
use crate::model::error::{FailureSource, StepError};
use crate::model::groups::{GroupKind, MemoryGroup};
use crate::model::hotplug::{AddOutcome, RemoveOutcome};
use crate::model::online::BlocksOutcome;
use crate::model::policy::OnlineType;
use crate::model::step::{Op, Outcome};
use crate::model::zone::ZoneType;

/// A zone by the name the kernel prints ("DMA32", "Movable").
#[derive(Debug, Clone, Copy)]
struct Zone(ZoneType);

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

/// `zone` fields.
pub fn serialize_zone<S: Serializer>(z: &ZoneType, s: S) -> Result<S::Ok, S::Error> {
    Zone(*z).serialize(s)
}

/// Optional `zone` fields.
pub fn serialize_opt_zone<S: Serializer>(z: &Option<ZoneType>, s: S) -> Result<S::Ok, S::Error> {
    z.map(Zone).serialize(s)
}

/// A block's state as sysfs spells it.
pub fn serialize_block_state<S: Serializer>(b: &BlockState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(b.as_str())
}

/// A step's op as the config spells it.
pub fn serialize_op<S: Serializer>(op: &Op, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(op.as_str())
}

/// An online step's type as sysfs spells it.
pub fn serialize_online_type<S: Serializer>(t: &Option<OnlineType>, s: S) -> Result<S::Ok, S::Error> {
    t.map(OnlineType::as_str).serialize(s)
}

/// A failure as programs read it: the code and its errno number, who produced it, the
/// kernel check that failed, and for a memmap allocation that ran short its numbers as
/// fields (schema 2); `reason` is the same in words.
#[derive(Serialize)]
struct Error<'a> {
    code: String,
    /// The errno as a positive number (12 for ENOMEM); null for EPLUGIN.
    errno: Option<i32>,
    origin: &'static str,
    /// The kernel function whose check failed, when one is known.
    check: Option<&'static str>,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    memmap: Option<Shortage>,
}

/// A memmap allocation that did not fit (MemmapShortage).
#[derive(Serialize)]
struct Shortage {
    /// The section's number, its first pfn, and its place (1-based) among the range's.
    section: u64,
    pfn: u64,
    section_index: u64,
    sections: u64,
    pages_needed: u64,
    pages_available: u64,
    /// Memmap pages the range's earlier sections took.
    pages_done: u64,
    /// "zones" (the page allocator) or "altmap".
    source: &'static str,
    /// The node that had to pay, when one alone was tried; every node tried, in order.
    node: Option<u32>,
    nodes_tried: Vec<u32>,
}

impl<'a> From<&'a StepError> for Error<'a> {
    fn from(e: &'a StepError) -> Self {
        use crate::model::error::{ErrorCode, MemmapSource};
        let origin = match e.origin {
            FailureSource::Kernel => "kernel",
            FailureSource::Plugin => "plugin",
            FailureSource::Validator => "validator",
        };
        let errno = match e.code {
            ErrorCode::Errno(n) => Some(n),
            ErrorCode::Plugin => None,
        };
        let memmap = e.shortage.as_deref().map(|s| Shortage {
            section: s.section,
            pfn: s.pfn,
            section_index: s.index,
            sections: s.sections,
            pages_needed: s.pages_needed,
            pages_available: s.pages_available,
            pages_done: s.pages_done,
            source: match s.source {
                MemmapSource::Zones { .. } => "zones",
                MemmapSource::Altmap { .. } => "altmap",
            },
            node: s.nid(),
            nodes_tried: match &s.source {
                MemmapSource::Zones { nodes, .. } => nodes.clone(),
                MemmapSource::Altmap { .. } => Vec::new(),
            },
        });
        Error { code: e.code.name(), errno, origin, check: e.check, reason: &e.reason, memmap }
    }
}

/// An optional failure (`null`, or its code, origin and reason).
pub fn serialize_opt_error<S: Serializer>(e: &Option<StepError>, s: S) -> Result<S::Ok, S::Error> {
    e.as_ref().map(Error::from).serialize(s)
}

#[derive(Serialize)]
struct Added<'a> {
    add_id: u64,
    blocks: Vec<u64>,
    memmap_node_pages: u64,
    memmap_nid: u32,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    memmap_by_node: &'a [(u32, u64)],
    memmap_altmap_pages: u64,
    note: &'a str,
    onlined: Vec<(u64, Zone)>,
    online_error: Option<Error<'a>>,
}

#[derive(Serialize)]
struct Blocks {
    blocks: Vec<(u64, Option<Zone>)>,
    present_delta: i64,
    managed_delta: i64,
}

#[derive(Serialize)]
struct Resized<'a> {
    device: &'a str,
    blocks: Vec<u64>,
    onlined: Vec<(u64, Zone)>,
    /// Bytes: the size asked for, and plugged before and after.
    requested: u64,
    plugged_before: u64,
    plugged: u64,
    memmap_node_pages: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    online_error: Option<Error<'a>>,
    /// Why a partial resize stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped: Option<Error<'a>>,
}

#[derive(Serialize)]
struct Removed {
    blocks: Vec<u64>,
    memmap_freed_node_pages: u64,
    memmap_freed_altmap_pages: u64,
}

#[derive(Serialize)]
struct Mapped<'a> {
    pgmap_id: u64,
    /// `[start, size]` per range.
    ranges: Vec<(u64, u64)>,
    compound_order: u32,
    memmap_node_pages: u64,
    memmap_nid: u32,
    /// `[node, pages]` for every node that paid, in the order they did, when several did.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    memmap_by_node: &'a [(u32, u64)],
    memmap_device_pages: u64,
    memmap_saved_pages: u64,
    device_pages: u64,
    pages_initialised: u64,
    note: &'a str,
}

#[derive(Serialize)]
struct Unmapped {
    pgmap_id: u64,
    memmap_freed_node_pages: u64,
    memmap_freed_device_pages: u64,
}

/// One parameter a `set` step wrote, with the values as the kernel's file shows them.
#[derive(Serialize)]
struct ParamChange {
    name: &'static str,
    old: String,
    new: String,
}

/// An outcome, tagged by `result` as docs/report-json.md lists them.
#[derive(Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
enum Shape<'a> {
    Added(Added<'a>),
    Blocks(Blocks),
    Removed(Removed),
    Mapped(Mapped<'a>),
    Resized(Resized<'a>),
    Partial(Resized<'a>),
    Unmapped(Unmapped),
    Set { params: Vec<ParamChange> },
    Failed(Error<'a>),
}

/// Each onlined block with its zone: runs expanded here, where they are printed.
fn onlined(list: &BlockRuns<ZoneType>) -> Vec<(u64, Zone)> {
    list.iter().map(|(b, &z)| (b, Zone(z))).collect()
}

fn shape(o: &Outcome) -> Shape<'_> {
    match o {
        Outcome::Added(a) => Shape::Added(added(a)),
        Outcome::Blocks(b) => Shape::Blocks(blocks(b)),
        Outcome::Removed(r) => Shape::Removed(removed(r)),
        Outcome::Mapped(m) => Shape::Mapped(mapped(m)),
        Outcome::Resized(r) => Shape::Resized(resized(r)),
        Outcome::Partial(r) => Shape::Partial(resized(r)),
        Outcome::Unmapped(u) => Shape::Unmapped(unmapped(u)),
        Outcome::Set(o) => Shape::Set {
            params: o.changed.iter().map(|(old, new)| ParamChange { name: new.name(), old: old.value(), new: new.value() }).collect(),
        },
        Outcome::Failed(e) => Shape::Failed(e.into()),
    }
}

fn resized(r: &crate::model::virtio::ResizeOutcome) -> Resized<'_> {
    Resized {
        device: &r.device,
        blocks: r.blocks.ids().collect(),
        onlined: onlined(&r.onlined),
        requested: r.requested,
        plugged_before: r.plugged_before,
        plugged: r.plugged,
        memmap_node_pages: r.memmap_node_pages,
        online_error: r.online_error.as_ref().map(Error::from),
        stopped: r.stopped.as_ref().map(Error::from),
    }
}

fn added(a: &AddOutcome) -> Added<'_> {
    Added {
        add_id: a.add_id,
        blocks: a.blocks.ids().collect(),
        memmap_node_pages: a.memmap_node_pages,
        memmap_nid: a.memmap_nid,
        memmap_by_node: &a.memmap_by_node,
        memmap_altmap_pages: a.memmap_altmap_pages,
        note: &a.note,
        onlined: onlined(&a.onlined),
        online_error: a.online_error.as_ref().map(Error::from),
    }
}

fn removed(r: &RemoveOutcome) -> Removed {
    Removed {
        blocks: r.blocks.ids().collect(),
        memmap_freed_node_pages: r.memmap_freed_node_pages,
        memmap_freed_altmap_pages: r.memmap_freed_altmap_pages,
    }
}

fn mapped(m: &MemremapOutcome) -> Mapped<'_> {
    Mapped {
        pgmap_id: m.pgmap_id,
        ranges: m.ranges.iter().map(|r| (r.start(), r.size())).collect(),
        compound_order: m.compound_order,
        memmap_node_pages: m.memmap_node_pages,
        memmap_nid: m.memmap_nid,
        memmap_by_node: if m.memmap_by_node.len() > 1 { &m.memmap_by_node } else { &[] },
        memmap_device_pages: m.memmap_device_pages,
        memmap_saved_pages: m.memmap_saved_pages,
        device_pages: m.device_pages,
        pages_initialised: m.pages_initialised,
        note: &m.note,
    }
}

fn unmapped(u: &MemunmapOutcome) -> Unmapped {
    Unmapped {
        pgmap_id: u.pgmap_id,
        memmap_freed_node_pages: u.memmap_freed_node_pages,
        memmap_freed_device_pages: u.memmap_freed_device_pages,
    }
}

fn blocks(b: &BlocksOutcome) -> Blocks {
    Blocks {
        blocks: b.blocks.iter().map(|(id, z)| (id, z.map(Zone))).collect(),
        present_delta: b.present_delta,
        managed_delta: b.managed_delta,
    }
}

/// A step's `outcome`.
pub fn serialize_outcome<S: Serializer>(o: &Outcome, s: S) -> Result<S::Ok, S::Error> {
    shape(o).serialize(s)
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Kind {
    Static { max_pages: u64 },
    Dynamic { unit_pages: u64 },
}

#[derive(Serialize)]
struct Group<'a> {
    id: u64,
    nid: u32,
    kind: Kind,
    present_kernel_pages: u64,
    present_movable_pages: u64,
    device: &'a str,
}

/// The state's memory groups.
pub fn serialize_groups<S: Serializer>(groups: &[MemoryGroup], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(groups.len()))?;
    for g in groups {
        let kind = match g.kind {
            GroupKind::Static { max_pages } => Kind::Static { max_pages },
            GroupKind::Dynamic { unit_pages } => Kind::Dynamic { unit_pages },
        };
        seq.serialize_element(&Group {
            id: g.id,
            nid: g.nid,
            kind,
            present_kernel_pages: g.present_kernel_pages,
            present_movable_pages: g.present_movable_pages,
            device: &g.device,
        })?;
    }
    seq.end()
}

#[derive(Serialize)]
struct NodeMemmapRow<'a> {
    node: u32,
    boot_memmap_pages: u64,
    added_pages: u64,
    online_by_zone: Vec<(Zone, u64)>,
    device_pages: u64,
    /// `[node whose RAM holds it, pages]`.
    memmap_in_ram: &'a [(u32, u64)],
    memmap_inside_pages: u64,
    memmap_in_device_pages: u64,
    set_aside_unused_pages: u64,
}

/// The state's per-node memmap account (the text report's summary table).
pub fn serialize_memmap_account<S: Serializer>(rows: &[crate::model::account::NodeMemmap], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(rows.len()))?;
    for n in rows {
        seq.serialize_element(&NodeMemmapRow {
            node: n.nid,
            boot_memmap_pages: n.boot_memmap,
            added_pages: n.added,
            online_by_zone: n.online_by_zone.iter().map(|&(z, p)| (Zone(z), p)).collect(),
            device_pages: n.device,
            memmap_in_ram: &n.memmap_in_ram,
            memmap_inside_pages: n.memmap_inside,
            memmap_in_device_pages: n.memmap_in_device,
            set_aside_unused_pages: n.set_aside_unused,
        })?;
    }
    seq.end()
}
