//! The plain Rust side of the contract: what a plugin author implements.
//!
//! [`Strategy`] uses ordinary `Result`s and `&mut Ops`; [`crate::export_plugin!`] turns an
//! implementation into the stable-ABI [`crate::abi::RestrictionPlugin`] with a panic guard
//! around every call. New default methods can be added here without touching the ABI.

use abi_stable::std_types::{RResult, RStr};

use abi_stable::sabi_types::RMut;

use crate::abi::{HostServicesBox, MemmapOps, MemmapOps_TO};
use crate::types::{
    Altmap, DevicePageInit, Geometry, OptionSpec, PfnRange, PluginError, Request, RequestKinds, Restrictions, StridedRange,
};

/// A memory-hotplug strategy: decides where the memmap of a new range goes (`set_up`) and
/// sets up the new pages once they exist (`construct`).
pub trait Strategy: Send + Sync + Sized + 'static {
    /// The request kinds `set_up` handles. `export_plugin!` refuses any other kind with
    /// EOPNOTSUPP before your code runs, so `set_up` never sees one.
    const KINDS: RequestKinds;

    /// The keys of the `options` table this strategy takes. With `Some`, the host refuses
    /// an undeclared key or a value of the wrong type before the run, naming the key and
    /// its line and listing these; `host plugins --verbose` shows them. `None` (the
    /// default): options reach `new` unchecked. `Some(&[])`: the strategy takes none.
    const OPTIONS: Option<&'static [OptionSpec]> = None;

    /// Build an instance from the `[[strategy]]` table's `options`, as TOML text
    /// (empty when the table has none). Return an error naming the bad key.
    fn new(options: &str, host: &Host) -> Result<Self, PluginError>;

    /// Before pages are added.
    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError>;

    /// After the sections exist and memmap is allocated.
    fn construct(&self, _request: &Request<'_>, _restrictions: &Restrictions, _ops: &mut Ops<'_>) -> Result<(), PluginError> {
        Ok(())
    }

    /// On remove/unmap: undo what `construct` did.
    fn tear_down(&self, _request: &Request<'_>, _restrictions: &Restrictions, _ops: &mut Ops<'_>) -> Result<(), PluginError> {
        Ok(())
    }
}

/// The host's services as a plugin sees them (cheap to clone: keep one in your strategy).
#[derive(Clone)]
pub struct Host {
    services: HostServicesBox,
}

impl Host {
    /// Wrap the host's services (the export macro does this; a host linking a strategy
    /// statically does it too).
    pub fn new(services: HostServicesBox) -> Self {
        Host { services }
    }

    /// The machine's geometry.
    pub fn geometry(&self) -> Geometry {
        self.services.geometry()
    }

    /// The NUMA distance from node `from` to node `to` (10 local, 20 remote by default);
    /// `None` when either node does not exist.
    pub fn distance(&self, from: u32, to: u32) -> Option<u32> {
        self.services.distance(from, to).into_option()
    }

    pub(crate) fn log(&self, level: u8, target: &str, message: &str) {
        self.services.log(level, RStr::from(target), RStr::from(message));
    }
}

/// The host's memmap callbacks, borrowed for one `construct`/`tear_down` call.
pub struct Ops<'a> {
    inner: &'a mut (dyn MemmapOps + 'a),
}

impl<'a> Ops<'a> {
    /// Wrap a borrowed MemmapOps object (the export macro does this for plugins).
    pub fn new<'p>(inner: &'a mut MemmapOps_TO<'_, RMut<'p, ()>>) -> Self
    where
        'p: 'a,
    {
        Ops { inner }
    }

    /// Mark `range` as pages holding memmap.
    pub fn mark_vmemmap(&mut self, range: PfnRange) -> Result<(), PluginError> {
        self.inner.mark_vmemmap(range).into_result()
    }

    /// Initialise `range` as device pages.
    pub fn init_device_pages(&mut self, range: PfnRange, init: DevicePageInit) -> Result<(), PluginError> {
        self.inner.init_device_pages(range, init).into_result()
    }

    /// Clear marks and device initialisation from `range`.
    pub fn clear_pages(&mut self, range: PfnRange) -> Result<(), PluginError> {
        self.inner.clear_pages(range).into_result()
    }

    /// Hold `range` back from the buddy allocator; release it in `tear_down`.
    pub fn reserve_pages(&mut self, range: PfnRange) -> Result<u64, PluginError> {
        self.inner.reserve_pages(range).into_result()
    }

    /// Release a reservation.
    pub fn release_pages(&mut self, handle: u64) -> Result<(), PluginError> {
        self.inner.release_pages(handle).into_result()
    }

    /// The current altmap as allocation left it.
    pub fn altmap(&self) -> Option<Altmap> {
        self.inner.altmap().into_option()
    }

    /// Mark every run of `runs` as pages holding memmap, in one call: e.g. the first
    /// `free` pages of each of a million memory blocks.
    pub fn mark_vmemmap_strided(&mut self, runs: StridedRange) -> Result<(), PluginError> {
        self.inner.mark_vmemmap_strided(runs).into_result()
    }

    /// Clear marks and device initialisation from every run of `runs`, in one call.
    pub fn clear_pages_strided(&mut self, runs: StridedRange) -> Result<(), PluginError> {
        self.inner.clear_pages_strided(runs).into_result()
    }
}

/// Turn a plain result into the ABI one.
pub(crate) fn to_rresult<T>(r: Result<T, PluginError>) -> RResult<T, PluginError> {
    r.into()
}
