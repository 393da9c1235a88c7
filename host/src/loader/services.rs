//! The HostServices object every plugin instance receives: logging and geometry.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RStr};
use hotplug_core::abi::{HostServices, HostServicesBox, HostServices_TO};
use hotplug_core::Geometry;

/// Forwards plugin log records to the host's `log` (so `RUST_LOG` governs both).
#[derive(Debug, Clone)]
pub struct HostServicesImpl {
    geometry: Geometry,
}

impl HostServicesImpl {
    /// The boxed, type-erased object a constructor takes.
    pub fn boxed(geometry: Geometry) -> HostServicesBox {
        HostServices_TO::from_ptr(RArc::new(HostServicesImpl { geometry }), TD_Opaque)
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
        let target = format!("plugin::{}", target.as_str());
        log::log!(target: &target, level_from_number(level), "{}", message.as_str());
    }

    fn max_level(&self) -> u8 {
        log::max_level() as usize as u8
    }

    fn geometry(&self) -> Geometry {
        self.geometry
    }
}
