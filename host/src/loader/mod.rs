//! Finding and loading strategy plugins.
//!
//! A plain `libloading` probe reads the contract-version symbol first, so the common
//! failures (missing file, not a plugin, built for another contract) each get one short
//! line; only then does abi_stable check layouts, and its long dump goes to debug logs.

pub mod isolated;
pub mod options;
pub mod server;
mod services;
mod static_strategy;
pub mod watch;
pub mod wire;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::RStr;
use hotplug_core::abi::{MemmapOps_TO, PluginBox, PluginModRef};
use hotplug_core::compat::{upgrade, v1_0};
use hotplug_core::{
    ContractVersion, OptionSpec, PluginError, PluginInfo, Request, RequestKind, RequestKinds, Restrictions, CONTRACT_VERSION_SYMBOL,
};

use crate::model::ops::{ModelOps, StrategyHandle};
pub use services::{HostServicesImpl, MachineFacts};
pub use static_strategy::StaticStrategy;

/// Why a plugin could not be loaded: one line, naming the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("plugin \"{name}\" not found: no {file} in {searched} (build the plugins with cargo build --workspace)")]
    NotFound { name: String, file: String, searched: String },
    #[error("{path}: cannot open: {reason}")]
    CannotOpen { path: String, reason: String },
    #[error("{path}: not a hotplug-lab plugin: {reason}")]
    NotAPlugin { path: String, reason: String },
    #[error("{path}: built for contract {plugin}, this host speaks contract {host} ({hint})")]
    Incompatible { path: String, plugin: String, host: String, hint: String },
    #[error("{path}: layout check failed (contract {plugin}): {reason} (RUST_LOG=debug shows abi_stable's report)")]
    Layout { path: String, plugin: String, reason: String },
    #[error("{path}: plugin {plugin} does not handle {kind} requests (it handles: {handles})")]
    UnhandledKind { path: String, plugin: String, kind: String, handles: String },
    #[error("{path}: refusing to load: {reason} (pass --allow-unsafe-plugin-path to load it anyway)")]
    UnsafePath { path: String, reason: String },
    /// Loading it in its own process (`--isolate`) failed; `reason` is that process's line.
    #[error("{reason} (in its isolated process)")]
    Isolated { path: String, reason: String },
}

/// The file name a plugin name maps to: `memmap-on-memory` -> `libmemmap_on_memory.so`.
pub fn library_file_name(name: &str) -> String {
    format!("{}{}{}", std::env::consts::DLL_PREFIX, name.replace('-', "_"), std::env::consts::DLL_SUFFIX)
}

/// Whether a library file is one of this repository's test fixtures (the conformance
/// suite's broken plugins, `broken-*`, and the contract-version fixtures,
/// `plugin-contract-*`), which the build puts beside the real plugins: `host plugins`
/// leaves them out (and never loads them) unless asked for `--all`.
pub fn is_test_fixture(file: &Path) -> bool {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let stem = name.strip_prefix(std::env::consts::DLL_PREFIX).unwrap_or(name);
    stem.starts_with("broken_") || stem.starts_with("plugin_contract_")
}

/// Whether `spec` names a file rather than a plugin to search for.
pub fn is_path(spec: &str) -> bool {
    spec.contains('/') || spec.ends_with(std::env::consts::DLL_SUFFIX)
}

/// The directory holding the running `host` binary (plugins are searched there last).
pub fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf))
}

/// Directories searched for plugins before a config's own `plugin_dirs`: `given` (the
/// CLI's `--plugin-dir`, in order), then `HOTPLUG_PLUGIN_PATH` (a `:`-separated list, as
/// PATH is): how an installed `host`, which has no plugins beside it, finds them.
pub fn plugin_path(given: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = given.to_vec();
    if let Some(env) = std::env::var_os("HOTPLUG_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&env).filter(|d| !d.as_os_str().is_empty()));
    }
    dirs
}

/// Resolve a plugin name or path to a file: a path is taken as is; a name is searched
/// in `dirs` in order, then next to the `host` binary. The current directory is never
/// searched implicitly.
pub fn resolve(spec: &str, dirs: &[PathBuf]) -> Result<PathBuf, LoadError> {
    if is_path(spec) {
        return Ok(PathBuf::from(spec));
    }
    let file = library_file_name(spec);
    let mut searched = Vec::new();
    let mut all: Vec<PathBuf> = dirs.to_vec();
    if let Some(d) = exe_dir() {
        if !all.contains(&d) {
            all.push(d);
        }
    }
    for dir in &all {
        let candidate = dir.join(&file);
        if candidate.is_file() {
            return Ok(candidate);
        }
        searched.push(dir.display().to_string());
    }
    Err(LoadError::NotFound {
        name: spec.to_string(),
        file,
        searched: if searched.is_empty() { "nowhere".into() } else { searched.join(", ") },
    })
}

/// Read a library's contract version with plain `libloading`, without abi_stable.
pub fn probe(path: &Path) -> Result<ContractVersion, LoadError> {
    let shown = path.display().to_string();
    if !path.exists() {
        return Err(LoadError::CannotOpen { path: shown, reason: "no such file".into() });
    }
    // SAFETY: loading a library runs its initialisers; a plugin is trusted code by design
    // (the conformance suite isolates untrusted ones in child processes).
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| LoadError::CannotOpen { path: shown.clone(), reason: short_dl_error(&e.to_string()) })?;
    // SAFETY: the symbol, when present, is the `ContractVersion` static the export macro emits;
    // the magic field guards against an unrelated symbol of the same name.
    let version = unsafe {
        let sym: libloading::Symbol<'_, *const ContractVersion> =
            lib.get(CONTRACT_VERSION_SYMBOL.as_bytes()).map_err(|_| LoadError::NotAPlugin {
                path: shown.clone(),
                reason: format!("no {CONTRACT_VERSION_SYMBOL} symbol (was it built with hotplug_core::export_plugin!?)"),
            })?;
        let at: *const ContractVersion = *sym;
        // A symbol of that name at address 0 (an absolute symbol, `ld --defsym`), or one
        // not aligned for the type, is not our static: reading it would crash the probe.
        if at.is_null() || !at.is_aligned() {
            return Err(LoadError::NotAPlugin {
                path: shown.clone(),
                reason: format!("{CONTRACT_VERSION_SYMBOL} is at address {at:p}, not a contract-version static"),
            });
        }
        std::ptr::read(at)
    };
    if version.magic != hotplug_core::CONTRACT_MAGIC {
        return Err(LoadError::NotAPlugin { path: shown, reason: format!("{CONTRACT_VERSION_SYMBOL} has the wrong magic") });
    }
    let host = ContractVersion::CURRENT;
    if !host.accepts(&version) {
        let hint = if version.major == host.major {
            format!(
                "it loads plugins for {}.0 to {}.{}; rebuild the plugin against hotplug-core {}.{} or use a newer host",
                host.major, host.major, host.minor, host.major, host.minor
            )
        } else {
            format!("another major version; only {}.x plugins load here", host.major)
        };
        return Err(LoadError::Incompatible { path: shown, plugin: version.to_string(), host: host.to_string(), hint });
    }
    Ok(version)
}

fn short_dl_error(text: &str) -> String {
    text.rsplit(": ").next().unwrap_or(text).trim().to_string()
}

/// The part of abi_stable's layout report a user needs (it can run to 1,600 lines).
fn short_library_error(e: &LibraryError) -> String {
    let full = e.to_string();
    log::debug!("abi_stable report:\n{full}");
    match e {
        LibraryError::GetSymbolError { .. } => "no root module (abi_stable's library header symbol is missing)".into(),
        LibraryError::OpenError { .. } => short_dl_error(full.lines().next().unwrap_or(&full)),
        _ => {
            let tail = full.rsplit("Error:").next().unwrap_or(&full);
            tail.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect()
        }
    }
}

/// A library's root module, in the contract layout it was built with.
#[derive(Clone, Copy)]
enum Module {
    Current(PluginModRef),
    /// A contract 1.0 library, adapted by `hotplug_core::compat::upgrade`.
    V1_0(v1_0::abi::PluginModRef),
}

/// A loaded plugin library.
#[derive(Clone)]
pub struct LoadedLibrary {
    pub path: PathBuf,
    /// What the library's contract-version symbol says.
    pub contract: ContractVersion,
    module: Module,
}

impl std::fmt::Debug for LoadedLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedLibrary").field("path", &self.path).field("contract", &self.contract).finish()
    }
}

impl LoadedLibrary {
    /// Build an instance with `options` (TOML text) on a machine of `facts` (a geometry,
    /// or a `&MachineSpec` for the distance table too).
    pub fn instantiate(&self, options: &str, facts: impl Into<MachineFacts>) -> Result<PluginBox, PluginError> {
        let host = HostServicesImpl::boxed(facts);
        let shown = self.path.file_name().map_or_else(|| self.path.display().to_string(), |n| n.to_string_lossy().into_owned());
        watch::call(&shown, "new", || match self.module {
            Module::Current(m) => (m.new())(RStr::from(options), host).into_result(),
            Module::V1_0(m) => upgrade::instantiate_v1_0(m, RStr::from(options), host).into_result(),
        })
        .map_err(|mut e| {
            e.message =
                hotplug_core::RString::from(crate::model::text::plugin_text(e.message.as_str(), crate::model::text::MAX_PLUGIN_TEXT));
            e
        })
    }

    /// The options the plugin declares, or `None` when it declares none (then its options
    /// reach its constructor unchecked; a contract 1.0 plugin never declares them).
    pub fn options_schema(&self) -> Option<&'static [OptionSpec]> {
        match self.module {
            Module::Current(m) => (m.options_schema())().into_option().map(|s| s.as_slice()),
            Module::V1_0(_) => None,
        }
    }

    /// The contract layout the library was loaded through: `"1.1"`, or `"1.0"` (adapted).
    pub fn layout(&self) -> &'static str {
        match self.module {
            Module::Current(_) => "1.1",
            Module::V1_0(_) => "1.0",
        }
    }
}

/// Loads each library once per path (abi_stable's own per-type cache would return the
/// first plugin for every path; see ABI-NOTES pitfall 3).
#[derive(Default, Clone)]
pub struct Loader {
    loaded: HashMap<PathBuf, LoadedLibrary>,
    /// Load files that are world-writable or owned by another user.
    pub allow_unsafe_path: bool,
}

impl Loader {
    pub fn new(allow_unsafe_path: bool) -> Self {
        Loader { loaded: HashMap::new(), allow_unsafe_path }
    }

    /// What `load` checks before any of the file's code can run, without loading it (an
    /// isolated plugin is loaded by its own process): the resolved path of a regular file
    /// that is safe to load.
    pub fn check(&self, path: &Path) -> Result<PathBuf, LoadError> {
        let key = resolved(path)?;
        self.check_resolved(path, &key)?;
        Ok(key)
    }

    /// [`Loader::check`] of `key`, `path` already resolved (errors name `path`).
    fn check_resolved(&self, path: &Path, key: &Path) -> Result<(), LoadError> {
        // A FIFO named lib*.so would block dlopen for ever; a device would feed it garbage.
        crate::files::check_regular(key).map_err(|e| LoadError::CannotOpen { path: path.display().to_string(), reason: e.to_string() })?;
        if !self.allow_unsafe_path {
            check_path_safety(key)?;
        }
        Ok(())
    }

    /// Load the library at `path` (probe, then abi_stable).
    ///
    /// The file loaded is exactly the one checked: `path` resolved to an absolute path
    /// without symlinks, so `dlopen` never searches (a bare `name.so` would otherwise be
    /// looked up in LD_LIBRARY_PATH and the system directories, not in `.`).
    pub fn load(&mut self, path: &Path) -> Result<LoadedLibrary, LoadError> {
        let shown = path.display().to_string();
        let key = resolved(path)?;
        if let Some(l) = self.loaded.get(&key) {
            return Ok(l.clone());
        }
        self.check_resolved(path, &key)?;
        let contract = probe(&key)?;
        let header = lib_header_from_path(&key).map_err(|e| match e {
            LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin { path: shown.clone(), reason: short_library_error(&e) },
            _ => LoadError::Layout { path: shown.clone(), plugin: contract.to_string(), reason: short_library_error(&e) },
        })?;
        // The newest layout first, then each older one (docs/abi.md section 5).
        let module = match header.init_root_module::<PluginModRef>() {
            Ok(m) => Module::Current(m),
            Err(newest) => {
                log::debug!("{shown}: not a contract 1.1 layout ({}); trying 1.0", short_library_error(&newest));
                match header.init_root_module::<v1_0::abi::PluginModRef>() {
                    Ok(m) => Module::V1_0(m),
                    Err(older) => {
                        // Report the layout the library says it was built for.
                        let e = if contract.minor == 0 { older } else { newest };
                        return Err(LoadError::Layout {
                            path: shown.clone(),
                            plugin: contract.to_string(),
                            reason: short_library_error(&e),
                        });
                    }
                }
            }
        };
        let lib = LoadedLibrary { path: key.clone(), contract, module };
        log::info!("loaded plugin {} (contract {contract}, through the {} layout)", key.display(), lib.layout());
        self.loaded.insert(key, lib.clone());
        Ok(lib)
    }
}

/// `path` absolute, without symlinks: what is checked and what is loaded.
fn resolved(path: &Path) -> Result<PathBuf, LoadError> {
    path.canonicalize().map_err(|e| LoadError::CannotOpen { path: path.display().to_string(), reason: crate::config::io_reason(&e) })
}

/// Refuse a plugin file others could have replaced: the file world-writable or owned by
/// another user (other than root), or any directory above it writable by everyone
/// without the sticky bit (anyone could rename another file into its place) or owned by
/// another user. `path` is resolved (absolute, no symlinks), so the chain checked is the
/// one `dlopen` follows.
#[cfg(unix)]
pub fn check_path_safety(path: &Path) -> Result<(), LoadError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else { return Ok(()) };
    let shown = path.display().to_string();
    let unsafe_path = |reason: String| LoadError::UnsafePath { path: shown.clone(), reason };
    if meta.mode() & 0o002 != 0 {
        return Err(unsafe_path("the file is world-writable, so any user could replace the code it runs".into()));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc_geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(unsafe_path(format!("the file is owned by uid {}, not by you (uid {me})", meta.uid())));
    }
    for dir in path.ancestors().skip(1).filter(|d| !d.as_os_str().is_empty()) {
        let Ok(d) = std::fs::metadata(dir) else { continue };
        if d.mode() & 0o002 != 0 && d.mode() & 0o1000 == 0 {
            return Err(unsafe_path(format!(
                "its directory {} is world-writable (without the sticky bit), so any user could put other code in its place",
                dir.display()
            )));
        }
        if d.uid() != me && d.uid() != 0 {
            return Err(unsafe_path(format!("its directory {} is owned by uid {}, not by you (uid {me}) or root", dir.display(), d.uid())));
        }
    }
    Ok(())
}

#[cfg(unix)]
extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[cfg(not(unix))]
pub fn check_path_safety(_path: &Path) -> Result<(), LoadError> {
    Ok(())
}

/// A `[[strategy]]` instance: a plugin instance with its name.
pub struct StrategyInstance {
    pub name: String,
    /// What the plugin says of itself, its name and version made printable
    /// (`model::text::plugin_text`): they appear in every message about it.
    pub info: PluginInfo,
    pub path: PathBuf,
    /// `None` only while being dropped (the drop is a plugin call too).
    obj: Option<PluginBox>,
}

impl Drop for StrategyInstance {
    /// The plugin's destructor runs its code: watched like any call (export_plugin!'s
    /// guard keeps a panicking destructor from unwinding into us).
    fn drop(&mut self) {
        if let Some(obj) = self.obj.take() {
            watch::call(&self.info.name, "drop", || drop(obj));
        }
    }
}

impl StrategyInstance {
    /// Instantiate `lib` as strategy `name`, checking that it handles `needs`.
    pub fn new(
        name: &str,
        lib: &LoadedLibrary,
        options: &str,
        facts: impl Into<MachineFacts>,
        needs: &[RequestKind],
    ) -> Result<Self, InstanceError> {
        let obj = lib.instantiate(options, facts).map_err(InstanceError::Options)?;
        let mut info = watch::call(&lib.path.display().to_string(), "info", || obj.info());
        let clean = |s: &hotplug_core::RString| hotplug_core::RString::from(crate::model::text::plugin_text(s.as_str(), 200));
        info.name = clean(&info.name);
        info.version = clean(&info.version);
        for kind in needs {
            if !info.kinds.contains(*kind) {
                return Err(InstanceError::Load(LoadError::UnhandledKind {
                    path: lib.path.display().to_string(),
                    plugin: info.name.to_string(),
                    kind: kind.name().to_string(),
                    handles: info.kinds.names(),
                }));
            }
        }
        Ok(StrategyInstance { name: name.to_string(), info, path: lib.path.clone(), obj: Some(obj) })
    }
}

/// The erased MemmapOps a plugin call borrows: the model's, or an isolated process's proxy.
pub type ErasedOps<'a> = MemmapOps_TO<'a, abi_stable::sabi_types::RMut<'a, ()>>;

impl StrategyInstance {
    fn obj(&self) -> &PluginBox {
        self.obj.as_ref().expect("an instance has its object until dropped")
    }

    /// The plugin's set_up, watched.
    pub fn set_up_raw(&self, request: &Request<'_>) -> Result<Restrictions, PluginError> {
        watch::call(&self.info.name, "set_up", || self.obj().set_up(request).into_result())
    }

    /// The plugin's construct with any MemmapOps (the model's, or a proxy), watched.
    pub fn construct_raw(&self, request: &Request<'_>, restrictions: &Restrictions, ops: ErasedOps<'_>) -> Result<(), PluginError> {
        watch::call(&self.info.name, "construct", || self.obj().construct(request, restrictions, ops).into_result())
    }

    /// The plugin's tear_down with any MemmapOps, watched.
    pub fn tear_down_raw(&self, request: &Request<'_>, restrictions: &Restrictions, ops: ErasedOps<'_>) -> Result<(), PluginError> {
        watch::call(&self.info.name, "tear_down", || self.obj().tear_down(request, restrictions, ops).into_result())
    }
}

/// Why an instance could not be made.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("{}", .0.message)]
    Options(PluginError),
    #[error(transparent)]
    Load(LoadError),
}

impl StrategyHandle for StrategyInstance {
    fn instance_name(&self) -> &str {
        &self.name
    }

    fn plugin_name(&self) -> &str {
        &self.info.name
    }

    fn kinds(&self) -> RequestKinds {
        self.info.kinds
    }

    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError> {
        self.set_up_raw(request)
    }

    fn construct(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut ModelOps<'_>) -> Result<(), PluginError> {
        self.construct_raw(request, restrictions, MemmapOps_TO::from_ptr(ops, TD_Opaque))
    }

    fn tear_down(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut ModelOps<'_>) -> Result<(), PluginError> {
        self.tear_down_raw(request, restrictions, MemmapOps_TO::from_ptr(ops, TD_Opaque))
    }
}
