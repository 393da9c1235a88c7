//! hotplug-host: the plugin loader, the config, the scenario runner, the reports and
//! views behind the `host` binary, around the model crate (`hotplug-model`, re-exported
//! as [`model`]). See ARCHITECTURE.md for the map.

pub mod child;
pub mod config;
pub mod conformance;
pub mod files;
pub mod loader;
pub mod mount;
pub mod new_plugin;
pub mod output;
pub mod plan;
pub use hotplug_model as model;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod shipped;
pub mod snapshot;
pub mod svg;
pub mod sweep;
pub mod timings;
pub mod views;
