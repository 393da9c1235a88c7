//! A strategy linked into the host statically (no `.so`): for in-process tests, benches
//! and fuzzing, where loading a library per case would cost more than the case.

use abi_stable::sabi_trait::TD_Opaque;
use hotplug_core::abi::MemmapOps_TO;
use hotplug_core::export::unclaimed_kind;
use hotplug_core::{Host, Ops, PluginError, Request, RequestKinds, Restrictions, Strategy};

use super::{HostServicesImpl, MachineFacts};
use crate::model::ops::{ModelOps, StrategyHandle};

/// A [`Strategy`] called directly, through the same MemmapOps checks as a plugin.
pub struct StaticStrategy<S: Strategy> {
    name: String,
    plugin: String,
    strategy: S,
}

impl<S: Strategy> StaticStrategy<S> {
    /// Build `S` with `options` (TOML text) as strategy instance `name`, on a machine of
    /// `facts` (a [`hotplug_core::Geometry`], or a `&MachineSpec` to give it the distance table too).
    pub fn new(name: &str, plugin: &str, options: &str, facts: impl Into<MachineFacts>) -> Result<Self, PluginError> {
        let host = Host::new(HostServicesImpl::boxed(facts));
        Ok(StaticStrategy { name: name.to_string(), plugin: plugin.to_string(), strategy: S::new(options, &host)? })
    }

    /// The strategy itself (tests read what it recorded).
    pub fn strategy(&self) -> &S {
        &self.strategy
    }

    /// The strategy itself, to adjust a test strategy after construction.
    pub fn strategy_mut(&mut self) -> &mut S {
        &mut self.strategy
    }
}

impl<S: Strategy> StrategyHandle for StaticStrategy<S> {
    fn instance_name(&self) -> &str {
        &self.name
    }

    fn plugin_name(&self) -> &str {
        &self.plugin
    }

    fn kinds(&self) -> RequestKinds {
        S::KINDS
    }

    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError> {
        unclaimed_kind(&self.plugin, S::KINDS, "set_up", request).map_or_else(|| self.strategy.set_up(request), Err)
    }

    fn construct(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut ModelOps<'_>) -> Result<(), PluginError> {
        if let Some(e) = unclaimed_kind(&self.plugin, S::KINDS, "construct", request) {
            return Err(e);
        }
        let mut erased = MemmapOps_TO::from_ptr(ops, TD_Opaque);
        self.strategy.construct(request, restrictions, &mut Ops::new(&mut erased))
    }

    fn tear_down(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut ModelOps<'_>) -> Result<(), PluginError> {
        if let Some(e) = unclaimed_kind(&self.plugin, S::KINDS, "tear_down", request) {
            return Err(e);
        }
        let mut erased = MemmapOps_TO::from_ptr(ops, TD_Opaque);
        self.strategy.tear_down(request, restrictions, &mut Ops::new(&mut erased))
    }
}
