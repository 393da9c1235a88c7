//! The plain Rust side of the contract: what a plugin author implements.
//!
//! [`Strategy`] uses ordinary `Result`s and `&mut Ops`; [`crate::export_plugin!`] turns an
//! implementation into the stable-ABI [`crate::abi::RestrictionPlugin`] with a panic guard
//! around every call. New default methods can be added here without touching the ABI.

use abi_stable::std_types::{RResult, RStr};

use abi_stable::sabi_types::RMut;

use crate::abi::{HostServicesBox, MemmapOps, MemmapOps_TO};
use crate::types::{Altmap, DevicePageInit, Geometry, PfnRange, PluginError, Request, RequestKinds, Restrictions};

/// A memory-hotplug strategy: decides where the memmap of a new range goes (`set_up`) and
/// sets up the new pages once they exist (`construct`).
pub trait Strategy: Send + Sync + Sized + 'static {
    /// The request kinds `set_up` handles; the host never sends others.
    const KINDS: RequestKinds;

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

/// The host's services as a plugin sees them.
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
}

/// Turn a plain result into the ABI one.
pub(crate) fn to_rresult<T>(r: Result<T, PluginError>) -> RResult<T, PluginError> {
    r.into()
}
