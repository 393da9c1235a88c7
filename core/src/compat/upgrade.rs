//! A contract 1.0 plugin dressed as a current one.
//!
//! The host loads a 1.0 library through the frozen [`v1_0::abi::PluginModRef`] and calls
//! [`instantiate_v1_0`]: the plugin gets a 1.0 `HostServices` (which forwards to the
//! current one), and the host gets a current [`PluginBox`] whose calls convert each
//! request down to 1.0 and each answer up. What 1.0 lacks takes its documented default
//! (docs/abi.md, section 5):
//!
//! | added in 1.1 | what a 1.0 plugin gets |
//! |---|---|
//! | `options_schema` | none: its options reach its constructor unchecked |
//! | kinds enforced before author code | done here: an unclaimed kind is EOPNOTSUPP |
//! | `NodeInfo::has_cpus`, `tier`; `HostServices::distance` | not visible to it |
//! | `Restrictions::memmap_nodes` | empty: `memmap_nid`, else the range's node |
//! | strided `MemmapOps` calls | never made: it marks range by range, to the same effect |

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::sabi_types::RMut;
use abi_stable::std_types::{RArc, ROption, RResult, RSlice, RStr, RVec};

use super::v1_0::{abi as old, types as o};
use crate::abi::{HostServicesBox, MemmapOps_TO, PluginBox, RestrictionPlugin, RestrictionPlugin_TO};
use crate::types as t;

/// Build an instance of a 1.0 plugin from its root module, as a current [`PluginBox`].
pub fn instantiate_v1_0(module: old::PluginModRef, options: RStr<'_>, host: HostServicesBox) -> RResult<PluginBox, t::PluginError> {
    let services = old::HostServices_TO::from_ptr(RArc::new(ServicesForV1_0 { host }), TD_Opaque);
    match (module.new())(options, services) {
        RResult::ROk(inner) => {
            let info: t::PluginInfo = inner.info().into();
            RResult::ROk(RestrictionPlugin_TO::from_value(PluginV1_0 { inner, info }, TD_Opaque))
        }
        RResult::RErr(e) => RResult::RErr(e.into()),
    }
}

/// The current host services, seen through the 1.0 trait.
#[derive(Clone)]
struct ServicesForV1_0 {
    host: HostServicesBox,
}

impl old::HostServices for ServicesForV1_0 {
    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>) {
        self.host.log(level, target, message);
    }

    fn max_level(&self) -> u8 {
        self.host.max_level()
    }

    fn geometry(&self) -> o::Geometry {
        self.host.geometry().into()
    }
}

/// A 1.0 plugin instance behind the current trait.
struct PluginV1_0 {
    inner: old::PluginBox,
    info: t::PluginInfo,
}

impl PluginV1_0 {
    /// 1.0's `export_plugin!` did not enforce `KINDS`; the host does it for such plugins.
    fn refuse_unclaimed(&self, call: &str, request: &t::Request<'_>) -> Option<t::PluginError> {
        crate::export::unclaimed_kind(&self.info.name, self.info.kinds, call, request)
    }
}

impl RestrictionPlugin for PluginV1_0 {
    fn info(&self) -> t::PluginInfo {
        self.info.clone()
    }

    fn set_up(&self, request: &t::Request<'_>) -> RResult<t::Restrictions, t::PluginError> {
        if let Some(e) = self.refuse_unclaimed("set_up", request) {
            return RResult::RErr(e);
        }
        with_v1_0_request(request, |r| self.inner.set_up(r)).map(Into::into).map_err(Into::into)
    }

    fn construct(
        &self,
        request: &t::Request<'_>,
        restrictions: &t::Restrictions,
        ops: MemmapOps_TO<'_, RMut<'_, ()>>,
    ) -> RResult<(), t::PluginError> {
        self.with_ops(Phase::Construct, request, restrictions, ops)
    }

    fn tear_down(
        &self,
        request: &t::Request<'_>,
        restrictions: &t::Restrictions,
        ops: MemmapOps_TO<'_, RMut<'_, ()>>,
    ) -> RResult<(), t::PluginError> {
        self.with_ops(Phase::TearDown, request, restrictions, ops)
    }
}

/// The two calls that borrow the host's memmap callbacks.
#[derive(Clone, Copy)]
enum Phase {
    Construct,
    TearDown,
}

impl PluginV1_0 {
    /// `construct` or `tear_down` with the request, the restrictions and the callbacks as
    /// 1.0 knows them.
    fn with_ops(
        &self,
        phase: Phase,
        request: &t::Request<'_>,
        restrictions: &t::Restrictions,
        ops: MemmapOps_TO<'_, RMut<'_, ()>>,
    ) -> RResult<(), t::PluginError> {
        let call = match phase {
            Phase::Construct => "construct",
            Phase::TearDown => "tear_down",
        };
        if let Some(e) = self.refuse_unclaimed(call, request) {
            return RResult::RErr(e);
        }
        let given = restrictions_down(restrictions);
        let mut down = OpsForV1_0 { inner: ops };
        with_v1_0_request(request, |r| {
            let ops = old::MemmapOps_TO::from_ptr(&mut down, TD_Opaque);
            match phase {
                Phase::Construct => self.inner.construct(r, &given, ops),
                Phase::TearDown => self.inner.tear_down(r, &given, ops),
            }
        })
        .map_err(Into::into)
    }
}

/// The current memmap callbacks, seen through the 1.0 trait.
struct OpsForV1_0<'lt, 'p> {
    inner: MemmapOps_TO<'lt, RMut<'p, ()>>,
}

impl old::MemmapOps for OpsForV1_0<'_, '_> {
    fn mark_vmemmap(&mut self, range: o::PfnRange) -> RResult<(), o::PluginError> {
        self.inner.mark_vmemmap(range.into()).map_err(Into::into)
    }

    fn init_device_pages(&mut self, range: o::PfnRange, init: o::DevicePageInit) -> RResult<(), o::PluginError> {
        self.inner.init_device_pages(range.into(), init.into()).map_err(Into::into)
    }

    fn clear_pages(&mut self, range: o::PfnRange) -> RResult<(), o::PluginError> {
        self.inner.clear_pages(range.into()).map_err(Into::into)
    }

    fn reserve_pages(&mut self, range: o::PfnRange) -> RResult<u64, o::PluginError> {
        self.inner.reserve_pages(range.into()).map_err(Into::into)
    }

    fn release_pages(&mut self, handle: u64) -> RResult<(), o::PluginError> {
        self.inner.release_pages(handle).map_err(Into::into)
    }

    fn altmap(&self) -> ROption<o::Altmap> {
        self.inner.altmap().map(Into::into)
    }
}

/// Call `f` with `request` as 1.0 spelled it (the node facts 1.1 added are left out).
fn with_v1_0_request<R>(request: &t::Request<'_>, f: impl FnOnce(&o::Request<'_>) -> R) -> R {
    let ranges: Vec<Vec<o::PfnRange>> = request.nodes.iter().map(|n| n.boot_ranges.iter().map(|&r| r.into()).collect()).collect();
    let nodes: Vec<o::NodeInfo<'_>> = request
        .nodes
        .iter()
        .zip(&ranges)
        .map(|(n, r)| o::NodeInfo {
            id: n.id,
            boot_ranges: RSlice::from_slice(r),
            free_pages: n.free_pages,
            present_pages: n.present_pages,
        })
        .collect();
    let old_request = o::Request {
        kind: o::RequestKind(request.kind.0),
        start_pfn: request.start_pfn,
        nr_pages: request.nr_pages,
        nid: request.nid,
        driver: o::Driver(request.driver.0),
        group_id: request.group_id,
        pgmap_type: o::PgmapType(request.pgmap_type.0),
        vmemmap_shift: request.vmemmap_shift,
        pgmap_id: request.pgmap_id,
        range_index: request.range_index,
        range_count: request.range_count,
        geometry: request.geometry.into(),
        nodes: RSlice::from_slice(&nodes),
    };
    f(&old_request)
}

/// Restrictions as a 1.0 plugin knows them (`memmap_nodes` is 1.1's and always empty for
/// restrictions a 1.0 plugin returned).
fn restrictions_down(r: &t::Restrictions) -> o::Restrictions {
    o::Restrictions {
        flags: o::RestrictionFlags(r.flags.0),
        altmap: r.altmap.map(Into::into),
        memmap_nid: r.memmap_nid,
        note: r.note.clone(),
    }
}

impl From<o::Restrictions> for t::Restrictions {
    fn from(r: o::Restrictions) -> Self {
        t::Restrictions {
            flags: t::RestrictionFlags(r.flags.0),
            altmap: r.altmap.map(Into::into),
            memmap_nid: r.memmap_nid,
            note: r.note,
            memmap_nodes: RVec::new(),
        }
    }
}

impl From<o::PluginInfo> for t::PluginInfo {
    fn from(i: o::PluginInfo) -> Self {
        t::PluginInfo { name: i.name, version: i.version, contract: i.contract.into(), kinds: t::RequestKinds(i.kinds.0), flags: i.flags }
    }
}

impl From<o::ContractVersion> for t::ContractVersion {
    fn from(v: o::ContractVersion) -> Self {
        t::ContractVersion { magic: v.magic, major: v.major, minor: v.minor, patch: v.patch }
    }
}

impl From<o::PluginError> for t::PluginError {
    fn from(e: o::PluginError) -> Self {
        t::PluginError { errno: e.errno, message: e.message }
    }
}

impl From<t::PluginError> for o::PluginError {
    fn from(e: t::PluginError) -> Self {
        o::PluginError { errno: e.errno, message: e.message }
    }
}

impl From<t::Geometry> for o::Geometry {
    fn from(g: t::Geometry) -> Self {
        o::Geometry {
            page_size: g.page_size,
            struct_page_size: g.struct_page_size,
            section_size: g.section_size,
            subsection_size: g.subsection_size,
            memory_block_size: g.memory_block_size,
            pmd_size: g.pmd_size,
            pageblock_pages: g.pageblock_pages,
            max_phys_bits: g.max_phys_bits,
            arch: o::Arch(g.arch.0),
        }
    }
}

impl From<t::PfnRange> for o::PfnRange {
    fn from(r: t::PfnRange) -> Self {
        o::PfnRange { start: r.start, count: r.count }
    }
}

impl From<o::PfnRange> for t::PfnRange {
    fn from(r: o::PfnRange) -> Self {
        t::PfnRange { start: r.start, count: r.count }
    }
}

impl From<o::DevicePageInit> for t::DevicePageInit {
    fn from(d: o::DevicePageInit) -> Self {
        t::DevicePageInit { nid: d.nid, pgmap_id: d.pgmap_id, compound_order: d.compound_order, refcount: d.refcount }
    }
}

impl From<o::Altmap> for t::Altmap {
    fn from(a: o::Altmap) -> Self {
        t::Altmap { base_pfn: a.base_pfn, end_pfn: a.end_pfn, reserve: a.reserve, free: a.free, align: a.align, alloc: a.alloc }
    }
}

impl From<t::Altmap> for o::Altmap {
    fn from(a: t::Altmap) -> Self {
        o::Altmap { base_pfn: a.base_pfn, end_pfn: a.end_pfn, reserve: a.reserve, free: a.free, align: a.align, alloc: a.alloc }
    }
}
