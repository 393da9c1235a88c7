//! hotplug-host: the model, the plugin loader, the config and the scenario runner behind
//! the `host` binary. See ARCHITECTURE.md for the map.

pub mod config;
pub mod conformance;
pub mod loader;
pub mod model;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod snapshot;
pub mod views;
