//! The machinery behind [`crate::export_plugin!`]: the adapter from [`Strategy`] to the
//! ABI trait, the panic guard, the log shim, and the library header.
//!
//! Public only so the macro can reach it from a plugin crate; not part of the contract.

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Once, OnceLock};

use abi_stable::library::{CheckTypeLayout, LibHeader, RootModuleResult};
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString};

use crate::abi::{HostServicesBox, MemmapOps_TO, PluginBox, PluginMod, PluginModRef, RestrictionPlugin, RestrictionPlugin_TO};
use crate::strategy::{to_rresult, Host, Ops, Strategy};
use crate::types::{errno, ContractVersion, OptionSpec, PluginError, PluginInfo, Request, RequestKinds, Restrictions};

/// The plugin crate's name and version, filled in by the macro from Cargo's environment.
pub trait PluginMeta: 'static {
    const NAME: &'static str;
    const VERSION: &'static str;
}

/// Wraps a [`Strategy`] so that it implements the ABI trait.
pub struct Adapter<S, M> {
    /// Dropped by hand, under the guard: a destructor that panics must not unwind
    /// through the host's extern "C" drop call (that aborts the process).
    strategy: ManuallyDrop<S>,
    _meta: PhantomData<fn() -> M>,
}

impl<S, M> Drop for Adapter<S, M> {
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here; the field is never used again.
        let dropped = catch_unwind(AssertUnwindSafe(|| unsafe { ManuallyDrop::drop(&mut self.strategy) }));
        if let Err(payload) = dropped {
            log::error!("the strategy's destructor panicked: {} (ignored)", payload_message(&*payload));
            forget_payload(payload);
        }
    }
}

/// Drop a panic payload under a guard of its own: a payload whose destructor panics
/// again is leaked instead (a few bytes, against an aborted host).
fn forget_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

thread_local! {
    /// Where the panic hook leaves the location of the last panic on this thread.
    static LAST_PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Run `f`, turning a panic into a `PluginError` that names the call.
fn guarded<T>(call: &str, f: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => to_rresult(result),
        Err(payload) => RResult::RErr(panic_error(call, payload)),
    }
}

fn panic_error(call: &str, payload: Box<dyn Any + Send>) -> PluginError {
    let message = payload_message(&*payload);
    forget_payload(payload);
    let location = LAST_PANIC_LOCATION.with(|l| l.borrow_mut().take());
    match location {
        Some(loc) => PluginError::msg(format!("plugin panicked in {call}: {message} (at {loc})")),
        None => PluginError::msg(format!("plugin panicked in {call}: {message}")),
    }
}

/// `Strategy::KINDS` is a promise to the author: a request of another kind is refused
/// with EOPNOTSUPP before any of the strategy's code runs. Public so a host that links a
/// strategy statically keeps the same promise.
pub fn unclaimed_kind(plugin: &str, kinds: RequestKinds, call: &str, request: &Request<'_>) -> Option<PluginError> {
    (!kinds.contains(request.kind)).then(|| {
        PluginError::errno(
            errno::EOPNOTSUPP,
            format!(
                "{plugin} handles {} requests, not {} (its Strategy::KINDS); {call} refused before the strategy ran",
                kinds.names(),
                request.kind.name()
            ),
        )
    })
}

impl<S: Strategy, M: PluginMeta> RestrictionPlugin for Adapter<S, M> {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: RString::from(M::NAME),
            version: RString::from(M::VERSION),
            contract: ContractVersion::CURRENT,
            kinds: S::KINDS,
            flags: 0,
        }
    }

    fn set_up(&self, request: &Request<'_>) -> RResult<Restrictions, PluginError> {
        if let Some(e) = unclaimed_kind(M::NAME, S::KINDS, "set_up", request) {
            return RResult::RErr(e);
        }
        guarded("set_up", || self.strategy.set_up(request))
    }

    fn construct(
        &self,
        request: &Request<'_>,
        restrictions: &Restrictions,
        mut ops: MemmapOps_TO<'_, abi_stable::sabi_types::RMut<'_, ()>>,
    ) -> RResult<(), PluginError> {
        if let Some(e) = unclaimed_kind(M::NAME, S::KINDS, "construct", request) {
            return RResult::RErr(e);
        }
        let mut ops = Ops::new(&mut ops);
        guarded("construct", || self.strategy.construct(request, restrictions, &mut ops))
    }

    fn tear_down(
        &self,
        request: &Request<'_>,
        restrictions: &Restrictions,
        mut ops: MemmapOps_TO<'_, abi_stable::sabi_types::RMut<'_, ()>>,
    ) -> RResult<(), PluginError> {
        if let Some(e) = unclaimed_kind(M::NAME, S::KINDS, "tear_down", request) {
            return RResult::RErr(e);
        }
        let mut ops = Ops::new(&mut ops);
        guarded("tear_down", || self.strategy.tear_down(request, restrictions, &mut ops))
    }
}

/// The host services the log shim forwards to (the first instance's; one host per process).
static HOST_FOR_LOG: OnceLock<HostServicesBox> = OnceLock::new();

/// Forwards this library's `log` records to the host (a cdylib has its own `log` statics).
struct HostLogShim;

fn level_number(level: log::Level) -> u8 {
    level as usize as u8
}

impl log::Log for HostLogShim {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        HOST_FOR_LOG.get().is_some_and(|h| level_number(metadata.level()) <= h.max_level())
    }

    fn log(&self, record: &log::Record<'_>) {
        if let Some(host) = HOST_FOR_LOG.get() {
            if level_number(record.level()) <= host.max_level() {
                let message = record.args().to_string();
                host.log(level_number(record.level()), RStr::from(record.target()), RStr::from(message.as_str()));
            }
        }
    }

    fn flush(&self) {}
}

fn level_filter(max: u8) -> log::LevelFilter {
    match max {
        0 => log::LevelFilter::Off,
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

/// Install the log shim and a panic hook that records the location quietly (the panic is
/// reported once, as the call's error, instead of a "thread panicked" line on stderr).
fn install_library_hooks(host: &HostServicesBox) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = HOST_FOR_LOG.set(host.clone());
        if log::set_logger(&HostLogShim).is_ok() {
            log::set_max_level(level_filter(host.max_level()));
        }
        std::panic::set_hook(Box::new(|info| {
            let location = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
            if let Some(loc) = &location {
                log::debug!(target: "hotplug_core::panic", "plugin panic at {loc}");
            }
            LAST_PANIC_LOCATION.with(|l| *l.borrow_mut() = location);
        }));
    });
}

/// The constructor the root module exports for `S`.
pub extern "C" fn new_plugin<S: Strategy, M: PluginMeta>(options: RStr<'_>, host: HostServicesBox) -> RResult<PluginBox, PluginError> {
    install_library_hooks(&host);
    let host = Host::new(host);
    guarded("new", || {
        let strategy = S::new(options.as_str(), &host)?;
        log::debug!(target: M::NAME, "instance created");
        Ok(RestrictionPlugin_TO::from_value(Adapter::<S, M> { strategy: ManuallyDrop::new(strategy), _meta: PhantomData }, TD_Opaque))
    })
}

/// The options `S` declares, for the root module.
pub extern "C" fn options_schema<S: Strategy>() -> ROption<RSlice<'static, OptionSpec>> {
    S::OPTIONS.map(RSlice::from_slice).into()
}

/// Build (and leak, once per load) the root module for `S`.
pub fn root_module<S: Strategy, M: PluginMeta>() -> PluginModRef {
    PluginMod { new: new_plugin::<S, M>, options_schema: options_schema::<S> }.leak_into_prefix()
}

extern "C" fn root_loader<S: Strategy, M: PluginMeta>() -> RootModuleResult {
    abi_stable::library::__call_root_module_loader(root_module::<S, M>)
}

/// The library header abi_stable looks for, for `S`.
///
/// # Safety
/// Must only be used as the initialiser of the one exported root-module static.
pub const unsafe fn lib_header<S: Strategy, M: PluginMeta>() -> LibHeader {
    // SAFETY: the constructor builds exactly `PluginModRef`, the module type named here.
    unsafe { LibHeader::from_constructor::<PluginModRef>(root_loader::<S, M>, CheckTypeLayout::Yes) }
}

pub use abi_stable::library::LibHeader as __LibHeader;

/// Log through the host from plugin code that cannot use `log` (the shim covers `log`).
pub fn host_log(host: &Host, level: log::Level, target: &str, message: &str) {
    host.log(level_number(level), target, message);
}

/// Export a [`Strategy`] as a hotplug-lab plugin library.
///
/// Emits, under the calling crate's `export` feature (so the crate can also be linked
/// statically without duplicate symbols): the abi_stable root module, with a panic guard
/// around every call and the log shim; and the plain `HOTPLUG_CONTRACT_VERSION` symbol
/// the host reads before abi_stable checks layouts. The plugin's name and version come
/// from its `Cargo.toml`.
///
/// ```ignore
/// hotplug_core::export_plugin!(MyStrategy);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($strategy:ty) => {
        $crate::export_plugin!(@contract $crate::ContractVersion::CURRENT, $strategy);
    };
    (@contract $version:expr, $strategy:ty) => {
        #[cfg(feature = "export")]
        const _: () = {
            struct __HotplugMeta;
            impl $crate::export::PluginMeta for __HotplugMeta {
                const NAME: &'static str = env!("CARGO_PKG_NAME");
                const VERSION: &'static str = env!("CARGO_PKG_VERSION");
            }

            #[no_mangle]
            pub static HOTPLUG_CONTRACT_VERSION: $crate::ContractVersion = $version;

            // The name abi_stable 0.11 looks up (`ROOT_MODULE_LOADER_NAME`; a test in
            // hotplug-core checks that they agree).
            #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
            pub static __HOTPLUG_LIB_HEADER: $crate::export::__LibHeader =
                unsafe { $crate::export::lib_header::<$strategy, __HotplugMeta>() };
        };
    };
}
