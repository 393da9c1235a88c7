//! The model behind a mount, and what a write to one of its files does: the kernel's
//! store functions (state_store, online_store, auto_online_blocks_store, probe_store)
//! with their parsing and their errno, and our `hotplug-lab/ctl`, which takes one config
//! step. Every change runs through `Model::apply` as a step does, so it is a transaction:
//! a write that fails leaves the model as it was.

use std::path::PathBuf;

use super::events::{Action, Event, EventLog};
use super::tree::Node;
use crate::config::ConfigError;
use crate::loader::isolated::IsolationOptions;
use crate::loader::Loader;
use crate::model::error::ErrorCode;
use crate::model::policy::{AutoOnline, OnlineType};
use crate::model::step::{Outcome, Param, Step};
use crate::model::{BlockState, Model};
use crate::runner::Strategies;
use hotplug_core::errno;
use hotplug_core::size::count_of;

/// The largest write a sysfs attribute takes (a page, as sysfs buffers it).
pub const MAX_ATTR_WRITE: usize = 4096;
/// The largest step `ctl` takes.
pub const MAX_CTL_WRITE: usize = 64 * 1024;

/// The plugins behind a mount: the strategies loaded, and what loads one a `ctl` step
/// needs that the config's steps did not (a config's implicit device-pgmap, say): the
/// loader, the directories and the isolation the mount was started with.
pub struct Plugins {
    pub strategies: Strategies,
    pub loader: Loader,
    pub plugin_dirs: Vec<PathBuf>,
    /// How isolated plugins run, and whether every one is (`--isolate`).
    pub isolation: (IsolationOptions, bool),
}

/// What a mount serves: the model, the strategies its writes call, and the events.
pub struct Live {
    pub model: Model,
    plugins: Plugins,
    /// The config, so a `ctl` step resolves with its strategies and names.
    config_path: PathBuf,
    /// The config without its steps: a `ctl` step is resolved as its only step, so a
    /// write costs the size of the machine and strategies, not of the config's steps,
    /// and an error in it is located in what was written.
    ctl_base: String,
    /// The strategy `probe` adds with (the config's first System RAM strategy).
    probe_strategy: String,
    pub events: EventLog,
    /// What the last `ctl` write did, for a read of `ctl`.
    pub last_ctl: String,
    /// `--check-invariants`: after every change, the model's invariants, and that a
    /// failed one changed nothing (a copy of the model per write).
    pub check_invariants: bool,
}

impl Live {
    /// `plugins` were loaded for the config at `config_path`, whose text is `config_text`.
    pub fn new(model: Model, plugins: Plugins, config_path: PathBuf, config_text: &str, probe_strategy: String) -> Live {
        Live {
            model,
            plugins,
            config_path,
            ctl_base: without_steps(config_text),
            probe_strategy,
            events: EventLog::default(),
            last_ctl: String::new(),
            check_invariants: false,
        }
    }

    /// A write of `data` to `node`: Ok, or the errno the writer gets. The events the
    /// change caused are returned in order.
    pub fn write(&mut self, node: Node, data: &[u8]) -> Result<Vec<Event>, i32> {
        let limit = if node == Node::Ctl { MAX_CTL_WRITE } else { MAX_ATTR_WRITE };
        if data.len() > limit {
            return Err(errno::EINVAL);
        }
        let text = std::str::from_utf8(data).map_err(|_| errno::EINVAL)?;
        match node {
            Node::BlockFile(b, i) => match crate::views::sysfs::BLOCK_FILES[i].0 {
                "state" => self.state_store(b, text),
                "online" => self.online_store(b, text),
                _ => Err(libc::EACCES),
            },
            Node::MemoryFile(i) if crate::views::sysfs::ROOT_FILES[i].0 == "auto_online_blocks" => {
                let setting = AutoOnline::from_name(sysfs_value(text)).ok_or(errno::EINVAL)?;
                self.apply(&Step::Set { params: vec![Param::AutoOnlineBlocks(setting)] })
            }
            Node::Probe => self.probe_store(text),
            Node::BlockUevent(b) => {
                // uevent_store: kobject_synth_uevent, or EINVAL.
                let (action, env) = super::events::synthetic(data, b, self.events.next_seqnum())?;
                Ok(vec![self.events.push_with(action, b, env)])
            }
            Node::Ctl => self.ctl(text),
            _ => Err(libc::EACCES),
        }
    }

    /// state_store: an online type or `offline`; a block already in that state is EINVAL
    /// (device_online/device_offline return 1, which the store turns into EINVAL).
    fn state_store(&mut self, block: u64, text: &str) -> Result<Vec<Event>, i32> {
        let value = sysfs_value(text);
        let state = self.model.blocks.get(&block).ok_or(errno::ENODEV)?.state;
        let (start, size) = self.block_range(block);
        if value == "offline" {
            if state == BlockState::Offline {
                return Err(errno::EINVAL);
            }
            return self.apply(&Step::Offline { start, size, unmovable: false });
        }
        let online_type = OnlineType::from_name(value).ok_or(errno::EINVAL)?;
        if state == BlockState::Online {
            return Err(errno::EINVAL);
        }
        self.apply(&Step::Online { start, size, online_type })
    }

    /// online_store: kstrtobool; device_online/device_offline of a block already in that
    /// state do nothing and the write succeeds. Onlining this way uses MMOP_ONLINE
    /// (memory_subsys_online's default).
    fn online_store(&mut self, block: u64, text: &str) -> Result<Vec<Event>, i32> {
        let on = kstrtobool(text).ok_or(errno::EINVAL)?;
        let state = self.model.blocks.get(&block).ok_or(errno::ENODEV)?.state;
        let (start, size) = self.block_range(block);
        match (on, state) {
            (true, BlockState::Online) | (false, BlockState::Offline) => Ok(Vec::new()),
            (true, BlockState::Offline) => self.apply(&Step::Online { start, size, online_type: OnlineType::Online }),
            (false, BlockState::Online) => self.apply(&Step::Offline { start, size, unmovable: false }),
        }
    }

    /// probe_store: kstrtoull(buf, 0); an address not aligned to a memory block is EINVAL;
    /// then __add_memory of one block on the node memory_add_physaddr_to_nid picks (the
    /// node whose memory spans the address, else the first node, as x86's numa_meminfo
    /// lookup falls back to its first entry).
    fn probe_store(&mut self, text: &str) -> Result<Vec<Event>, i32> {
        let addr = kstrtoull(text).ok_or(errno::EINVAL)?;
        let block = self.model.geometry.g.memory_block_size;
        if addr % block != 0 {
            return Err(errno::EINVAL);
        }
        let page = self.model.geometry.page_size();
        let pfn = addr / page;
        let nid = self
            .model
            .nodes
            .values()
            .find(|n| n.span().is_some_and(|s| s.start() <= pfn && pfn < s.end()))
            .or_else(|| self.model.nodes.values().next())
            .map_or(0, |n| n.id);
        let step = Step::Add {
            start: addr,
            size: block,
            node: nid,
            driver: hotplug_core::Driver::NONE,
            device: None,
            strategy: self.probe_strategy.clone(),
        };
        self.apply(&step)
    }

    /// `ctl`: one `[[step]]` table's keys, as a config writes them, run on the model.
    /// Its result (or why it was refused) is what a read of `ctl` then returns.
    fn ctl(&mut self, text: &str) -> Result<Vec<Event>, i32> {
        let result = self.ctl_step(text);
        self.last_ctl = match &result {
            Ok((step, events)) => format!("ok: {step}: {}\n", count_of(events.len() as u64, "event")),
            Err((code, why)) => format!("{}: {why}\n", code.name()),
        };
        match result {
            Ok((_, events)) => Ok(events),
            Err((code, why)) => {
                log::warn!("ctl: {why}");
                Err(errno_of_code(code))
            }
        }
    }

    /// The step written to `ctl` run: its name and events, or its error code (a plugin's
    /// failure is EPLUGIN here, EIO to close(2)) and why.
    fn ctl_step(&mut self, text: &str) -> Result<(String, Vec<Event>), (ErrorCode, String)> {
        // The config's machine, strategies and defaults with the written step as its one
        // step; an error in the step names `hotplug-lab/ctl` and the line written.
        let head = format!("{}\n[[step]]\n", self.ctl_base);
        let header_line = head.matches('\n').count();
        let invalid = |e: ConfigError| (ErrorCode::Errno(errno::EINVAL), ctl_located(e, header_line).to_string());
        let loaded = crate::config::parse(&self.config_path, format!("{head}{text}\n")).map_err(invalid)?;
        let mut scenario = crate::scenario::resolve(&loaded, None).map_err(invalid)?;
        let spec = match scenario.steps.len() {
            1 => scenario.steps.remove(0),
            n => return Err((ErrorCode::Errno(errno::EINVAL), format!("hotplug-lab/ctl: one step per write, not {n}"))),
        };
        self.load_missing(scenario)?;
        let op = spec.op().as_str();
        match self.apply_outcome(&spec.step) {
            Ok(events) => Ok((op.to_string(), events)),
            Err(e) => Err((e.code, e.reason)),
        }
    }

    /// Load the strategies `scenario` defines that are not loaded yet (an implicit
    /// default of a kind the config's steps never used); a plugin that cannot be loaded
    /// fails the write, as a step naming it would fail a run.
    fn load_missing(&mut self, mut scenario: crate::scenario::Scenario) -> Result<(), (ErrorCode, String)> {
        let p = &mut self.plugins;
        scenario.strategies.retain(|s| p.strategies.get(&s.name).is_none());
        if scenario.strategies.is_empty() {
            return Ok(());
        }
        scenario.plugin_dirs = p.plugin_dirs.clone();
        let more = Strategies::load_isolating(&scenario, &mut p.loader, Some((&p.isolation.0, p.isolation.1)))
            .map_err(|e| (ErrorCode::Errno(errno::EINVAL), e.to_string()))?;
        p.strategies.instances.extend(more.instances);
        Ok(())
    }

    fn block_range(&self, block: u64) -> (u64, u64) {
        let size = self.model.geometry.g.memory_block_size;
        (block * size, size)
    }

    fn apply(&mut self, step: &Step) -> Result<Vec<Event>, i32> {
        self.apply_outcome(step).map_err(|e| {
            log::info!("{}: {e}", step_name(step));
            errno_of(&e)
        })
    }

    /// Run `step` on the model; the uevents it caused, in the kernel's order.
    fn apply_outcome(&mut self, step: &Step) -> Result<Vec<Event>, crate::model::StepError> {
        let resolved = self.model.resolve_step(step).into_owned();
        // A plugin that hangs or exits in this step is named with what caused it.
        crate::loader::watch::set_context(&format!("a write to the mount ({})", step_name(&resolved)));
        let before = self.check_invariants.then(|| self.model.clone());
        let outcome = self.model.apply(&resolved, &self.plugins.strategies);
        if let Some(before) = before {
            // A model bug, not the writer's: the change is undone and the write fails.
            if let Some(why) = crate::runner::broken_invariant(&self.model, &before, &outcome) {
                log::error!("invariant broken by a write to the mount ({}): {why}; the change is undone", step_name(&resolved));
                self.model = before;
                return Err(crate::model::StepError::kernel(libc::EIO, format!("invariant broken: {why}")));
            }
        }
        let mut events = Vec::new();
        let mut emit = |action, id| events.push(self.events.push(action, id));
        match outcome {
            Outcome::Failed(e) => return Err(e),
            // add_memory_resource: every block's device is created, then each is onlined.
            Outcome::Added(a) => {
                a.blocks.ids().for_each(|id| emit(Action::Add, id));
                a.onlined.ids().for_each(|id| emit(Action::Online, id));
            }
            Outcome::Blocks(b) => {
                let action = if matches!(resolved, Step::Offline { .. }) { Action::Offline } else { Action::Online };
                b.blocks.ids().for_each(|id| emit(action, id));
            }
            Outcome::Removed(r) => r.blocks.ids().for_each(|id| emit(Action::Remove, id)),
            Outcome::Resized(out) | Outcome::Partial(out) => {
                if matches!(resolved, Step::Shrink { .. }) {
                    // offline_and_remove_memory, one block at a time: an online block is
                    // offlined (device_offline) before its device goes.
                    let offlined: std::collections::HashSet<u64> = out.offlined.ids().collect();
                    for id in out.blocks.ids() {
                        if offlined.contains(&id) {
                            emit(Action::Offline, id);
                        }
                        emit(Action::Remove, id);
                    }
                } else {
                    // virtio-mem adds one block at a time (add_memory_driver_managed) and
                    // each is auto-onlined before the next is added.
                    let onlined: std::collections::HashSet<u64> = out.onlined.ids().collect();
                    for id in out.blocks.ids() {
                        emit(Action::Add, id);
                        if onlined.contains(&id) {
                            emit(Action::Online, id);
                        }
                    }
                }
            }
            Outcome::Mapped(_) | Outcome::Unmapped(_) | Outcome::Set(_) => {}
        }
        Ok(events)
    }
}

/// A config error in the text `ctl` appended after line `header_line` (its `[[step]]`):
/// located in the written text, as `hotplug-lab/ctl:LINE:COL` (an error about the step as
/// a whole, at its header, is at line 1). Others are the config's own.
fn ctl_located(e: ConfigError, header_line: usize) -> ConfigError {
    match e.line_col {
        Some((line, col)) if line >= header_line => ConfigError {
            path: PathBuf::from("hotplug-lab/ctl"),
            line_col: Some(if line == header_line { (1, 1) } else { (line - header_line, col) }),
            message: e.message,
        },
        _ => e,
    }
}

/// `text` (a config that parsed) without its `step` array.
fn without_steps(text: &str) -> String {
    match text.parse::<toml_edit::DocumentMut>() {
        Ok(mut doc) => {
            doc.remove("step");
            doc.to_string()
        }
        Err(_) => text.to_string(),
    }
}

fn step_name(step: &Step) -> &'static str {
    step.op().as_str()
}

/// The errno a writer gets for a failed step (a plugin's failure is EIO: it has none).
fn errno_of(e: &crate::model::StepError) -> i32 {
    errno_of_code(e.code)
}

fn errno_of_code(code: ErrorCode) -> i32 {
    match code {
        ErrorCode::Errno(n) => n,
        ErrorCode::Plugin => libc::EIO,
    }
}

/// A sysfs value as sysfs_streq compares it: one trailing newline ignored.
fn sysfs_value(text: &str) -> &str {
    text.strip_suffix('\n').unwrap_or(text)
}

/// kstrtobool: the first character decides (`y`, `Y`, `1` true; `n`, `N`, `0` false),
/// or `on`/`off` by the second.
fn kstrtobool(text: &str) -> Option<bool> {
    let b = text.as_bytes();
    match b.first()? {
        b'y' | b'Y' | b'1' => Some(true),
        b'n' | b'N' | b'0' => Some(false),
        b'o' | b'O' => match b.get(1)? {
            b'n' | b'N' => Some(true),
            b'f' | b'F' => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// kstrtoull with base 0: `0x` hex, a leading `0` octal, else decimal; one trailing
/// newline allowed; nothing else (no sign, no spaces, no overflow).
fn kstrtoull(text: &str) -> Option<u64> {
    let t = sysfs_value(text);
    let (digits, radix) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (h, 16)
    } else if t.len() > 1 && t.starts_with('0') {
        (&t[1..], 8)
    } else {
        (t, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_parsers() {
        assert_eq!(kstrtobool("1\n"), Some(true));
        assert_eq!(kstrtobool("yes"), Some(true), "only the first character counts");
        assert_eq!(kstrtobool("off"), Some(false));
        assert_eq!(kstrtobool("o"), None);
        assert_eq!(kstrtobool(""), None);
        assert_eq!(kstrtobool("2"), None);
        assert_eq!(kstrtoull("0x100000000\n"), Some(1 << 32));
        assert_eq!(kstrtoull("4294967296"), Some(1 << 32));
        assert_eq!(kstrtoull("010"), Some(8));
        assert_eq!(kstrtoull("0"), Some(0));
        for bad in ["", "\n", "0x", "-1", " 1", "1 ", "1\n\n", "0x1g", "18446744073709551616"] {
            assert_eq!(kstrtoull(bad), None, "{bad:?}");
        }
        assert_eq!(sysfs_value("online\n"), "online");
        assert_eq!(sysfs_value("online\n\n"), "online\n");
    }
}
