//! Why a step failed: the errno a kernel would return, and the reason in words.

use hotplug_core::errno;

/// Who produced the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureSource {
    /// A kernel rule of the model.
    Kernel,
    /// The plugin returned an error (or panicked).
    Plugin,
    /// The host's validator refused what the plugin returned.
    Validator,
}

/// What a failed step returns: an errno, or `EPLUGIN` for a plugin failure that names
/// none. Typed, so `expect` compares codes, not strings; shown (and put in JSON) by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Errno(i32),
    /// A plugin error (or panic) without an errno.
    Plugin,
}

/// The name of [`ErrorCode::Plugin`].
pub const EPLUGIN: &str = "EPLUGIN";

impl ErrorCode {
    /// "ENOMEM"; "E<n>" for a number without a name; "EPLUGIN".
    pub fn name(&self) -> String {
        match self {
            ErrorCode::Errno(e) => errno_name(*e),
            ErrorCode::Plugin => EPLUGIN.to_string(),
        }
    }

    /// The code a config's `expect` names: an errno name or "EPLUGIN".
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        if name == EPLUGIN {
            return Some(ErrorCode::Plugin);
        }
        errno::from_name(name).map(ErrorCode::Errno)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// A failed step: the code it returns, who produced it, and the reason in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct StepError {
    pub code: ErrorCode,
    pub origin: FailureSource,
    pub reason: String,
}

impl StepError {
    /// A kernel-rule failure with errno `e`.
    pub fn kernel(e: i32, reason: impl Into<String>) -> Self {
        StepError { code: ErrorCode::Errno(e), origin: FailureSource::Kernel, reason: reason.into() }
    }

    /// The validator refused the plugin's output (the kernel would return EINVAL).
    pub fn validator(plugin: &str, rule: impl Into<String>) -> Self {
        StepError {
            code: ErrorCode::Errno(errno::EINVAL),
            origin: FailureSource::Validator,
            reason: format!("plugin {plugin}: {}", rule.into()),
        }
    }

    /// The plugin returned an error.
    pub fn plugin(plugin: &str, call: &str, err: &hotplug_core::PluginError) -> Self {
        let code = if err.errno == 0 { ErrorCode::Plugin } else { ErrorCode::Errno(err.errno) };
        StepError { code, origin: FailureSource::Plugin, reason: format!("plugin {plugin} {call}: {}", err.message) }
    }
}

/// "ENOMEM" for 12; "E<n>" for numbers without a name.
pub fn errno_name(e: i32) -> String {
    errno::name(e).map_or_else(|| format!("E{e}"), str::to_string)
}
