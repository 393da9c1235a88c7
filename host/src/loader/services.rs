//! The HostServices object every plugin instance receives: logging, geometry, and the
//! NUMA distance table.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, ROption, RStr};
use hotplug_core::abi::{HostServices, HostServicesBox, HostServices_TO};
use hotplug_core::Geometry;

use crate::model::boot::MachineSpec;
use crate::model::numa::Distances;

/// What an instance may ask the host about the machine for its whole life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineFacts {
    pub geometry: Geometry,
    pub distances: Distances,
}

impl From<Geometry> for MachineFacts {
    /// The geometry alone: `distance` answers `None` for every node.
    fn from(geometry: Geometry) -> Self {
        MachineFacts { geometry, distances: Distances::default() }
    }
}

impl From<&MachineSpec> for MachineFacts {
    fn from(spec: &MachineSpec) -> Self {
        MachineFacts { geometry: spec.geometry, distances: spec.distances() }
    }
}

/// Forwards plugin log records to the host's `log` (so `RUST_LOG` governs both).
#[derive(Debug, Clone)]
pub struct HostServicesImpl {
    geometry: Geometry,
    distances: Distances,
}

impl HostServicesImpl {
    /// The boxed, type-erased object a constructor takes.
    pub fn boxed(facts: impl Into<MachineFacts>) -> HostServicesBox {
        let facts = facts.into();
        HostServices_TO::from_ptr(RArc::new(HostServicesImpl { geometry: facts.geometry, distances: facts.distances }), TD_Opaque)
    }
}

fn level_from_number(level: u8) -> log::Level {
    match level {
        0 | 1 => log::Level::Error,
        2 => log::Level::Warn,
        3 => log::Level::Info,
        4 => log::Level::Debug,
        _ => log::Level::Trace,
    }
}

impl HostServices for HostServicesImpl {
    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>) {
        let clean = |s: &str| crate::model::text::plugin_text(s, crate::model::text::MAX_PLUGIN_TEXT);
        let target = format!("plugin::{}", clean(target.as_str()));
        log::log!(target: &target, level_from_number(level), "{}", clean(message.as_str()));
    }

    fn max_level(&self) -> u8 {
        log::max_level() as usize as u8
    }

    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn distance(&self, from: u32, to: u32) -> ROption<u32> {
        self.distances.get(from, to).into()
    }
}
