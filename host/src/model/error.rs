//! Why a step failed: the errno a kernel would return, and the reason in words.

use hotplug_core::errno;
use serde::Serialize;

/// Who produced the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureSource {
    /// A kernel rule of the model.
    Kernel,
    /// The plugin returned an error (or panicked).
    Plugin,
    /// The host's validator refused what the plugin returned.
    Validator,
}

/// A failed step: `code` is an errno name ("ENOMEM") or "EPLUGIN" for a plugin failure
/// that names no errno.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct StepError {
    pub code: String,
    pub origin: FailureSource,
    pub reason: String,
}

/// The code for plugin failures without an errno.
pub const EPLUGIN: &str = "EPLUGIN";

impl StepError {
    /// A kernel-rule failure with errno `e`.
    pub fn kernel(e: i32, reason: impl Into<String>) -> Self {
        StepError { code: errno_name(e), origin: FailureSource::Kernel, reason: reason.into() }
    }

    /// The validator refused the plugin's output (the kernel would return EINVAL).
    pub fn validator(plugin: &str, rule: impl Into<String>) -> Self {
        StepError { code: "EINVAL".into(), origin: FailureSource::Validator, reason: format!("plugin {plugin}: {}", rule.into()) }
    }

    /// The plugin returned an error.
    pub fn plugin(plugin: &str, call: &str, err: &hotplug_core::PluginError) -> Self {
        let code = if err.errno == 0 { EPLUGIN.to_string() } else { errno_name(err.errno) };
        StepError { code, origin: FailureSource::Plugin, reason: format!("plugin {plugin} {call}: {}", err.message) }
    }
}

/// "ENOMEM" for 12; "E<n>" for numbers without a name.
pub fn errno_name(e: i32) -> String {
    errno::name(e).map_or_else(|| format!("E{e}"), str::to_string)
}
