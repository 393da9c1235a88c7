//! The host side of the plugin boundary: the strategy handle the model calls, the
//! request it builds, and the MemmapOps callbacks that write into the open transaction.

use abi_stable::std_types::{ROption, RResult, RSlice};
use hotplug_core::abi::MemmapOps;
use hotplug_core::{
    Altmap, DevicePageInit, Driver, Geometry, NodeInfo, PfnRange, PgmapType, PluginError, Request, RequestKind, RequestKinds, Restrictions,
    StridedRange,
};

use super::range;
use super::{Model, PageState};

/// A strategy instance as the model sees it: a loaded plugin, or a statically linked one.
pub trait StrategyHandle {
    /// The `[[strategy]]` name.
    fn instance_name(&self) -> &str;
    /// The plugin's name (for messages).
    fn plugin_name(&self) -> &str;
    fn kinds(&self) -> RequestKinds;
    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError>;
    fn construct(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut ModelOps<'_>) -> Result<(), PluginError>;
    fn tear_down(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut ModelOps<'_>) -> Result<(), PluginError>;
}

/// Finds the strategy instance that added some memory, for remove.
pub trait StrategyLookup {
    fn strategy(&self, instance: &str) -> Option<&dyn StrategyHandle>;
}

/// Everything a [`Request`] borrows, owned.
#[derive(Debug, Clone)]
pub struct RequestData {
    pub kind: RequestKind,
    pub start_pfn: u64,
    pub nr_pages: u64,
    pub nid: u32,
    pub driver: Driver,
    pub group_id: u64,
    pub pgmap_type: PgmapType,
    pub vmemmap_shift: u32,
    pub pgmap_id: u64,
    pub range_index: u32,
    pub range_count: u32,
    pub geometry: Geometry,
    pub nodes: Vec<NodeData>,
}

/// Everything a [`NodeInfo`] borrows, owned.
#[derive(Debug, Clone)]
pub struct NodeData {
    pub id: u32,
    pub free_pages: u64,
    pub present_pages: u64,
    pub boot_ranges: Vec<PfnRange>,
    pub facts: super::numa::NodeFacts,
}

impl RequestData {
    /// A System RAM request for `pfns` on `nid`.
    pub fn system_ram(model: &Model, pfns: range::PfnRange, nid: u32, driver: Driver, group_id: u64) -> Self {
        RequestData {
            kind: RequestKind::SYSTEM_RAM,
            start_pfn: pfns.start(),
            nr_pages: pfns.count(),
            nid,
            driver,
            group_id,
            pgmap_type: PgmapType::NONE,
            vmemmap_shift: 0,
            pgmap_id: 0,
            range_index: 0,
            range_count: 1,
            geometry: model.geometry.g,
            nodes: model
                .nodes
                .values()
                .map(|n| NodeData {
                    id: n.id,
                    free_pages: model.allocatable(n.id),
                    present_pages: n.present_pages(),
                    boot_ranges: n.boot_ranges.iter().map(|r| r.to_contract()).collect(),
                    facts: n.facts,
                })
                .collect(),
        }
    }

    /// A ZONE_DEVICE request (memremap_pages) for `pfns`.
    pub fn device(model: &Model, pfns: range::PfnRange, nid: u32, pgmap_type: PgmapType, vmemmap_shift: u32, pgmap_id: u64) -> Self {
        RequestData {
            kind: RequestKind::DEVICE,
            driver: Driver::NONE,
            pgmap_type,
            vmemmap_shift,
            pgmap_id,
            ..RequestData::system_ram(model, pfns, nid, Driver::NONE, 0)
        }
    }

    /// Call `f` with the borrowed request.
    pub fn with<R>(&self, f: impl FnOnce(&Request<'_>) -> R) -> R {
        let nodes: Vec<NodeInfo<'_>> = self
            .nodes
            .iter()
            .map(|n| NodeInfo {
                id: n.id,
                boot_ranges: RSlice::from_slice(&n.boot_ranges),
                free_pages: n.free_pages,
                present_pages: n.present_pages,
                has_cpus: n.facts.has_cpus,
                tier: n.facts.tier,
            })
            .collect();
        let request = Request {
            kind: self.kind,
            start_pfn: self.start_pfn,
            nr_pages: self.nr_pages,
            nid: self.nid,
            driver: self.driver,
            group_id: self.group_id,
            pgmap_type: self.pgmap_type,
            vmemmap_shift: self.vmemmap_shift,
            pgmap_id: self.pgmap_id,
            range_index: self.range_index,
            range_count: self.range_count,
            geometry: self.geometry,
            nodes: RSlice::from_slice(&nodes),
        };
        f(&request)
    }
}

/// The MemmapOps a strategy gets during `construct`/`tear_down`: every call is checked
/// against the request's range and written into the model's open transaction.
pub struct ModelOps<'m> {
    pub model: &'m mut Model,
    /// The pfns the strategy may touch.
    pub range: PfnRange,
    pub altmap: Option<Altmap>,
    /// What the request adds: device-page initialisation is for ZONE_DEVICE only.
    pub kind: RequestKind,
    /// The first rule the strategy broke, if any (fails the step even if the plugin
    /// ignores the error it was given).
    pub violation: Option<String>,
}

impl<'m> ModelOps<'m> {
    pub fn new(model: &'m mut Model, range: PfnRange, altmap: Option<Altmap>, kind: RequestKind) -> Self {
        ModelOps { model, range, altmap, kind, violation: None }
    }

    /// Record a broken rule and hand the plugin its error.
    fn refuse<T>(&mut self, msg: String) -> RResult<T, PluginError> {
        self.violation.get_or_insert(msg.clone());
        RResult::RErr(PluginError::msg(msg))
    }

    /// `range` as the model's pfns, when it is non-empty and inside the request's range.
    fn check(&mut self, call: &str, range: PfnRange) -> Result<range::PfnRange, PluginError> {
        let inside = range.count > 0 && self.range.contains_range(&range);
        if let (true, Some(pfns)) = (inside, range::PfnRange::new(range.start, range.count)) {
            Ok(pfns)
        } else {
            let end = self.range.start.saturating_add(self.range.count);
            let msg = format!(
                "{call} on pfns {:#x}+{:#x}, outside the request's range {:#x}-{:#x}",
                range.start, range.count, self.range.start, end
            );
            self.violation.get_or_insert(msg.clone());
            Err(PluginError::msg(msg))
        }
    }

    /// The runs of `runs`, checked as the single calls would be, in O(1): every run
    /// non-empty and inside the request's range (runs move one way, so the first and the
    /// last decide). No runs at all is no calls at all.
    fn check_strided(&mut self, call: &str, runs: StridedRange) -> Result<(), PluginError> {
        if runs.count == 0 {
            return Ok(());
        }
        let inside = runs.span().is_some_and(|span| runs.len > 0 && self.range.contains_range(&span));
        if !inside {
            let end = self.range.start.saturating_add(self.range.count);
            let msg = format!(
                "{call} on {} runs of {:#x} pages every {:#x} from pfn {:#x}: not all inside the request's range {:#x}-{end:#x}",
                runs.count, runs.len, runs.stride, runs.start, self.range.start
            );
            self.violation.get_or_insert(msg.clone());
            return Err(PluginError::msg(msg));
        }
        Ok(())
    }

    /// Give every run of a checked `runs` the state `value`.
    fn set_strided(&mut self, runs: StridedRange, value: Option<PageState>) {
        // Checked: every run lies inside the range, so none of this overflows.
        if runs.count > 0 {
            self.model.pages.set_strided(runs.start, runs.len, runs.stride, runs.count, value);
        }
    }
}

impl MemmapOps for ModelOps<'_> {
    fn mark_vmemmap(&mut self, range: PfnRange) -> RResult<(), PluginError> {
        self.check("mark_vmemmap", range).map(|r| self.model.pages.set(r.start(), r.end(), Some(PageState::Vmemmap))).into()
    }

    fn init_device_pages(&mut self, range: PfnRange, init: DevicePageInit) -> RResult<(), PluginError> {
        if self.kind != RequestKind::DEVICE {
            // memmap_init_zone_device runs for ZONE_DEVICE pgmaps only: System RAM pages
            // are initialised by onlining, into a real zone.
            return self.refuse(format!(
                "init_device_pages on pfns {:#x}+{:#x} of a System RAM add (device pages are for ZONE_DEVICE only)",
                range.start, range.count
            ));
        }
        self.check("init_device_pages", range)
            .map(|r| {
                let state = PageState::Device {
                    nid: init.nid,
                    pgmap_id: init.pgmap_id,
                    compound_order: init.compound_order,
                    refcount: init.refcount,
                };
                self.model.pages.set(r.start(), r.end(), Some(state))
            })
            .into()
    }

    fn clear_pages(&mut self, range: PfnRange) -> RResult<(), PluginError> {
        self.check("clear_pages", range).map(|r| self.model.pages.set(r.start(), r.end(), None)).into()
    }

    fn reserve_pages(&mut self, range: PfnRange) -> RResult<u64, PluginError> {
        self.check("reserve_pages", range)
            .map(|r| {
                let counters = self.model.counters.get_mut();
                counters.next_handle += 1;
                let handle = counters.next_handle;
                self.model.reservations.insert(handle, r);
                self.model.pages.set(r.start(), r.end(), Some(PageState::Reserved { handle }));
                handle
            })
            .into()
    }

    fn release_pages(&mut self, handle: u64) -> RResult<(), PluginError> {
        match self.model.reservations.get(&handle).copied() {
            // Only a reservation inside this request's range: another add's is not this
            // call's to release (its online would count the pages as managed).
            Some(r) if self.range.contains_range(&r.to_contract()) => {
                self.model.reservations.remove(&handle);
                self.model.pages.set(r.start(), r.end(), None);
                RResult::ROk(())
            }
            Some(r) => {
                let end = self.range.start.saturating_add(self.range.count);
                self.refuse(format!(
                    "release_pages of handle {handle}, a reservation of pfns {:#x}-{:#x} outside the request's range {:#x}-{end:#x}",
                    r.start(),
                    r.end(),
                    self.range.start
                ))
            }
            None => self.refuse(format!("release_pages of unknown handle {handle}")),
        }
    }

    fn altmap(&self) -> ROption<Altmap> {
        self.altmap.into()
    }

    fn mark_vmemmap_strided(&mut self, runs: StridedRange) -> RResult<(), PluginError> {
        self.check_strided("mark_vmemmap_strided", runs).map(|()| self.set_strided(runs, Some(PageState::Vmemmap))).into()
    }

    fn clear_pages_strided(&mut self, runs: StridedRange) -> RResult<(), PluginError> {
        self.check_strided("clear_pages_strided", runs).map(|()| self.set_strided(runs, None)).into()
    }
}

/// The strategy calls that borrow the host's memmap callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpsCall {
    Construct,
    TearDown,
}

impl OpsCall {
    fn name(self) -> &'static str {
        match self {
            OpsCall::Construct => "construct",
            OpsCall::TearDown => "tear_down",
        }
    }
}

impl Model {
    /// A strategy's `set_up`: its error becomes the step's, naming the plugin.
    pub(super) fn call_set_up(&self, strategy: &dyn StrategyHandle, request: &RequestData) -> Result<Restrictions, super::StepError> {
        request.with(|r| strategy.set_up(r)).map_err(|e| super::StepError::plugin(strategy.plugin_name(), "set_up", &e))
    }

    /// A strategy's `construct` or `tear_down` over the request's range, with the
    /// MemmapOps of the open transaction: a rule the strategy broke fails the step (even
    /// if the plugin ignored the error it was given), then the plugin's own error.
    pub(super) fn call_with_ops(
        &mut self,
        strategy: &dyn StrategyHandle,
        call: OpsCall,
        request: &RequestData,
        restrictions: &Restrictions,
        altmap: Option<Altmap>,
    ) -> Result<(), super::StepError> {
        let range = PfnRange::new(request.start_pfn, request.nr_pages);
        let mut ops = ModelOps::new(self, range, altmap, request.kind);
        let result = request.with(|r| match call {
            OpsCall::Construct => strategy.construct(r, restrictions, &mut ops),
            OpsCall::TearDown => strategy.tear_down(r, restrictions, &mut ops),
        });
        if let Some(v) = ops.violation.take() {
            return Err(super::StepError::validator(strategy.plugin_name(), v));
        }
        result.map_err(|e| super::StepError::plugin(strategy.plugin_name(), call.name(), &e))
    }
}
