//! The stable-ABI objects of contract 1.1.0: the plugin trait, the host's services and
//! memmap callbacks, and the root module a plugin library exports.
//!
//! New in 1.1: `MemmapOps::mark_vmemmap_strided` / `clear_pages_strided`,
//! `HostServices::distance`, and the root module's `options_schema`. The 1.0 layouts are
//! frozen in [`crate::compat::v1_0::abi`].
//!
//! Plugin authors never touch these directly: they implement [`crate::Strategy`] and
//! call [`crate::export_plugin!`]. The host uses them through its loader.

use abi_stable::library::RootModule;
use abi_stable::sabi_types::{RMut, VersionStrings};
use abi_stable::std_types::{RArc, RBox, ROption, RResult, RSlice, RStr};
use abi_stable::{declare_root_module_statics, package_version_strings, sabi_trait, StableAbi};

use crate::types::{Altmap, DevicePageInit, Geometry, OptionSpec, PfnRange, PluginError, PluginInfo, Request, Restrictions, StridedRange};

/// A strategy instance as the host sees it. `Send + Sync`: the host may call one instance
/// from several threads, each on its own model.
#[sabi_trait]
pub trait RestrictionPlugin: Send + Sync {
    /// Name, versions and the request kinds handled.
    fn info(&self) -> PluginInfo;

    /// Before pages are added: decide memmap placement and what the host must create.
    fn set_up(&self, request: &Request<'_>) -> RResult<Restrictions, PluginError>;

    /// After the sections exist: mark memmap pages or initialise device pages.
    /// `restrictions.altmap` is the altmap as allocation left it (`align`, `alloc` set).
    fn construct(
        &self,
        request: &Request<'_>,
        restrictions: &Restrictions,
        ops: MemmapOps_TO<'_, RMut<'_, ()>>,
    ) -> RResult<(), PluginError>;

    /// On remove/unmap, before the sections go: undo what `construct` did.
    fn tear_down(
        &self,
        _request: &Request<'_>,
        _restrictions: &Restrictions,
        _ops: MemmapOps_TO<'_, RMut<'_, ()>>,
    ) -> RResult<(), PluginError> {
        RResult::ROk(())
    }
}

/// The owned, type-erased plugin instance a constructor returns.
pub type PluginBox = RestrictionPlugin_TO<'static, RBox<()>>;

/// Host-side callbacks a plugin uses during `construct`/`tear_down`.
///
/// Range operations only: a terabyte is 268 million pages, so nothing here is per page.
/// Every call is checked by the host; an out-of-range call fails the step.
#[sabi_trait]
pub trait MemmapOps {
    /// Mark `range` as pages that hold memmap (never handed to the buddy allocator).
    fn mark_vmemmap(&mut self, range: PfnRange) -> RResult<(), PluginError>;

    /// Initialise `range` as device pages (memmap_init_zone_device).
    fn init_device_pages(&mut self, range: PfnRange, init: DevicePageInit) -> RResult<(), PluginError>;

    /// Clear marks and device initialisation from `range`.
    fn clear_pages(&mut self, range: PfnRange) -> RResult<(), PluginError>;

    /// Hold `range` back from the buddy allocator when it is onlined; returns a handle
    /// that `release_pages` must be given before the range is removed.
    fn reserve_pages(&mut self, range: PfnRange) -> RResult<u64, PluginError>;

    /// Release a reservation made by `reserve_pages`.
    fn release_pages(&mut self, handle: u64) -> RResult<(), PluginError>;

    /// The altmap of the current block, as allocation left it (None without one).
    fn altmap(&self) -> ROption<Altmap>;

    /// `mark_vmemmap` on each run of `runs`, in one call (e.g. the memmap at the start of
    /// every memory block of an add). Checked as the single calls would be. New in 1.1.
    fn mark_vmemmap_strided(&mut self, runs: StridedRange) -> RResult<(), PluginError>;

    /// `clear_pages` on each run of `runs`, in one call. New in 1.1.
    fn clear_pages_strided(&mut self, runs: StridedRange) -> RResult<(), PluginError>;
}

/// Services the host gives every plugin instance for its lifetime.
#[sabi_trait]
pub trait HostServices: Clone + Send + Sync + 'static {
    /// Print a log record through the host's logger (levels as `log::Level`: 1 = error .. 5 = trace).
    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>);

    /// The most verbose level the host prints (0 = off .. 5 = trace).
    fn max_level(&self) -> u8;

    /// The machine's geometry.
    fn geometry(&self) -> Geometry;

    /// The NUMA distance from node `from` to node `to`, as `/sys/devices/system/node/nodeN/distance`
    /// shows it (10 local, 20 remote unless the machine says otherwise); `RNone` when either
    /// node does not exist. New in 1.1.
    fn distance(&self, from: u32, to: u32) -> ROption<u32>;
}

/// The owned host-services object handed to a plugin's constructor.
pub type HostServicesBox = HostServices_TO<RArc<()>>;

/// The root module every plugin library exports (a prefix type, so it can grow).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Build an instance from the strategy's `options` table (TOML text).
    pub new: extern "C" fn(RStr<'_>, HostServicesBox) -> RResult<PluginBox, PluginError>,
    /// The options the plugin takes, without building an instance; `RNone` when it does
    /// not declare them (its options then go to `new` unchecked, as in 1.0). New in 1.1.
    #[sabi(last_prefix_field)]
    pub options_schema: extern "C" fn() -> ROption<RSlice<'static, OptionSpec>>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "hotplug_plugin";
    const NAME: &'static str = "hotplug_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
