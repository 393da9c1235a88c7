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
    /// "ENOMEM"; "errno N" for a number without a name; "EPLUGIN".
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

/// A failed step: the code it returns, who produced it, the reason in words, and for a
/// memmap allocation that ran short its numbers as fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct StepError {
    pub code: ErrorCode,
    pub origin: FailureSource,
    pub reason: String,
    /// Set for ENOMEM from a memmap allocation; `reason` is its words.
    pub shortage: Option<Box<MemmapShortage>>,
    /// The kernel function whose check failed (`check_hotplug_memory_range`,
    /// `offline_pages`), for programs that branch on it; `None` where no single one is.
    pub check: Option<&'static str>,
}

impl StepError {
    /// A kernel-rule failure with errno `e`.
    pub fn kernel(e: i32, reason: impl Into<String>) -> Self {
        StepError { code: ErrorCode::Errno(e), origin: FailureSource::Kernel, reason: reason.into(), shortage: None, check: None }
    }

    /// The same error, naming `check` unless a deeper function already named its own.
    pub fn or_check(self, check: &'static str) -> Self {
        if self.check.is_some() || self.origin != FailureSource::Kernel {
            return self;
        }
        self.in_check(check)
    }

    /// The same error, naming the kernel function whose check it is.
    pub fn in_check(mut self, check: &'static str) -> Self {
        self.check = Some(check);
        self
    }

    /// ENOMEM for a section's memmap that did not fit, worded from its numbers.
    pub fn memmap_enomem(shortage: MemmapShortage) -> Self {
        let check = match shortage.source {
            MemmapSource::Zones { .. } => "sparse_add_section",
            MemmapSource::Altmap { .. } => "altmap_alloc_block_buf",
        };
        StepError { shortage: Some(Box::new(shortage.clone())), ..StepError::kernel(errno::ENOMEM, shortage.to_string()).in_check(check) }
    }

    /// The validator refused the plugin's output (the kernel would return EINVAL).
    pub fn validator(plugin: &str, rule: impl Into<String>) -> Self {
        StepError {
            code: ErrorCode::Errno(errno::EINVAL),
            origin: FailureSource::Validator,
            reason: format!("plugin {plugin}: {}", rule.into()),
            shortage: None,
            check: None,
        }
    }

    /// The plugin returned an error.
    pub fn plugin(plugin: &str, call: &str, err: &hotplug_core::PluginError) -> Self {
        let code = if err.errno == 0 { ErrorCode::Plugin } else { ErrorCode::Errno(err.errno) };
        let message = crate::text::plugin_text(err.message.as_str(), crate::text::MAX_PLUGIN_TEXT);
        StepError { code, origin: FailureSource::Plugin, reason: format!("plugin {plugin} {call}: {message}"), shortage: None, check: None }
    }
}

/// A section's memmap that did not fit where it had to go: which section, how many
/// pages it needed, how many its source had. What a program reads instead of parsing
/// the reason (sparse_add_section's ENOMEM, or the altmap's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemmapShortage {
    /// The section's number.
    pub section: u64,
    /// Its place among the range's sections (1-based), and how many the range has.
    pub index: u64,
    pub sections: u64,
    /// The section's first pfn.
    pub pfn: u64,
    pub pages_needed: u64,
    /// Pages the source could still give: above the min watermarks and reserves of the
    /// zones tried, or the altmap's free pages.
    pub pages_available: u64,
    /// Memmap pages the range's earlier sections took before this one.
    pub pages_done: u64,
    /// Bytes per page, to show sizes.
    pub page_size: u64,
    pub source: MemmapSource,
}

/// Where a section's memmap had to come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemmapSource {
    /// The page allocator: the nodes tried, in order (`listed`: the strategy's
    /// memmap_nodes, each on its own; else the range's node's fallback zonelist), and
    /// each of their zones as the failing allocation found it.
    Zones { nodes: Vec<u32>, listed: bool, rooms: Vec<super::memmap_alloc::ZoneRoom> },
    /// The range's altmap, which had `total` pages for memmap.
    Altmap { total: u64 },
}

impl MemmapShortage {
    /// The node that had to pay, when only one node was tried.
    pub fn nid(&self) -> Option<u32> {
        match &self.source {
            MemmapSource::Zones { nodes, .. } if nodes.len() == 1 => Some(nodes[0]),
            _ => None,
        }
    }
}

impl std::fmt::Display for MemmapShortage {
    /// The one wording of a memmap ENOMEM.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::units::{format_pages, format_size, thousands};
        let size = |pages: u64| format_size(pages.saturating_mul(self.page_size));
        let (section, total, pfn, need) = (thousands(self.index), thousands(self.sections), self.pfn, self.pages_needed);
        let needed = format_pages(need, self.page_size);
        let done = self.index - 1;
        let fit = size(self.pages_done);
        match &self.source {
            MemmapSource::Zones { nodes, listed, rooms } => {
                let rooms: Vec<String> = rooms
                    .iter()
                    .map(|r| {
                        format!(
                            "node {} {} free {} (min {}, low {}, reserve {})",
                            r.nid,
                            r.zone.name(),
                            thousands(r.free),
                            thousands(r.watermark.min),
                            thousands(r.watermark.low),
                            thousands(r.reserve)
                        )
                    })
                    .collect();
                let nodes: Vec<String> = nodes.iter().map(u32::to_string).collect();
                let whose = if *listed { "memmap_nodes" } else { "the zonelist" };
                write!(
                    f,
                    "memmap for section {section} of {total} (pfn {pfn:#x}) needs {needed}, and no zone of {whose} (nodes {}) \
                     has that above its watermark: {}; {} sections' memmap ({fit}) fit",
                    nodes.join(", "),
                    if rooms.is_empty() { "no node has memory".to_string() } else { rooms.join("; ") },
                    thousands(done),
                )
            }
            MemmapSource::Altmap { total: altmap_total } => write!(
                f,
                "altmap exhausted at section {:#x}: {} of {} pages free, a PMD of memmap needs {}",
                self.section,
                thousands(self.pages_available),
                thousands(*altmap_total),
                thousands(need),
            ),
        }
    }
}

/// "ENOMEM" for 12; "errno N" for numbers without a name.
pub fn errno_name(e: i32) -> String {
    // A number no errno has (a plugin's -7, i32::MIN) is shown as the number: a made-up
    // name such as "E-7" would read as a real one.
    errno::name(e).map_or_else(|| format!("errno {e}"), str::to_string)
}
