//! The child side: load the plugin, run one check in this process, and print its result
//! as one JSON line. A plugin that aborts the process takes only this child down.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::checks::{self, Subject};
use super::{Status, LOAD_CHECK};
use crate::loader::{self, Loader};

/// What the parent passes to a child.
#[derive(Debug, Clone, Default)]
pub struct ChildOptions {
    pub dirs: Vec<PathBuf>,
    pub options: String,
    pub allow_unsafe_plugin_path: bool,
}

/// The one line a child prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildOutput {
    /// `None` when the plugin could not be loaded (then `detail` is the cause).
    pub status: Option<Status>,
    pub detail: String,
}

/// Load `plugin` and run check `check` on it (or only load it, for [`LOAD_CHECK`]).
pub fn run_child(check: &str, plugin: &str, options: &ChildOptions) -> ChildOutput {
    // The same words for every check: the parent names the check, and failures with one
    // cause read alike (link_shared_causes).
    crate::loader::watch::set_context("a conformance check");
    let unloadable = |detail: String| ChildOutput { status: None, detail };
    let path = match loader::resolve(plugin, &options.dirs) {
        Ok(p) => p,
        Err(e) => return unloadable(e.to_string()),
    };
    let mut loader = Loader::new(options.allow_unsafe_plugin_path);
    let lib = match loader.load(&path) {
        Ok(lib) => lib,
        Err(e) => return unloadable(e.to_string()),
    };
    let subject = Subject::new(lib, options.options.clone());
    let first = match subject.instance() {
        Ok(i) => i,
        Err(e) => return unloadable(format!("{}: the constructor refused the options: {e}", path.display())),
    };
    if check == LOAD_CHECK {
        let info = &first.info;
        return ChildOutput {
            status: Some(Status::Pass),
            detail: format!(
                "{} {} (contract {}, handles {}) from {}",
                info.name,
                info.version,
                info.contract,
                info.kinds.names(),
                path.display()
            ),
        };
    }
    drop(first);
    // A panic here is the host's own (plugin panics are errors or abort the process):
    // report it as this check's failure rather than losing the line.
    match catch_unwind(AssertUnwindSafe(|| checks::run(check, &subject))) {
        Ok(Some((status, detail))) => ChildOutput { status: Some(status), detail },
        Ok(None) => ChildOutput { status: Some(Status::Fail), detail: format!("no check named {check:?}") },
        Err(payload) => {
            let msg = payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()));
            ChildOutput { status: Some(Status::Fail), detail: format!("the host panicked: {}", msg.unwrap_or_default()) }
        }
    }
}
