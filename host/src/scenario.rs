//! From a parsed config to a checked scenario: geometry resolved, names cross-checked,
//! every problem reported at its line and column.

use std::path::PathBuf;

use hotplug_core::{or_list, Arch, Driver, PgmapType, RequestKind};

use crate::config::{self, BlockSizeConfig, ConfigError, Loaded, OnlineType, Op};
use crate::model::boot::{MachineSpec, NodeSpec};
use crate::model::error::ErrorCode;
use crate::model::geometry::{arch_from_name, preset, probe_block_size, MachineGeometry};
use crate::model::numa::{NodeFacts, DRAM_TIER, LOCAL_DISTANCE};
use crate::model::range::PhysRange;

/// The strategy used when a config names none: the baseline plugin.
pub const DEFAULT_STRATEGY: &str = "system-ram";

/// The strategy a `memremap` step uses when the config defines none.
pub const DEFAULT_DEVICE_STRATEGY: &str = "device-pgmap";

use crate::model::device::MemremapParams;
use crate::model::step::Param;
pub use crate::model::step::Step;

/// A `[[strategy]]` ready to load.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategySpec {
    pub name: String,
    /// A plugin name (searched) or a path.
    pub plugin: String,
    /// The options table as TOML text.
    pub options: String,
    /// The same options entry by entry, located, for checking against the plugin's
    /// declared options.
    pub option_entries: Vec<OptionEntry>,
    /// 1-based line of the `[[strategy]]` table, for option errors.
    pub line: usize,
    /// The request kinds its steps need.
    pub needs: Vec<RequestKind>,
    /// `isolate = true`: its plugin runs in a child process (docs/reliability.md).
    pub isolate: bool,
}

/// One `options` entry of a `[[strategy]]`, with where its key and value are (1-based
/// line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct OptionEntry {
    pub key: String,
    pub value: toml::Value,
    pub key_at: (usize, usize),
    pub value_at: (usize, usize),
}

/// What a step expects: success or a specific error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Ok,
    Error(ErrorCode),
    /// `expect = "partial"`: a virtio-mem request that got part of the way.
    Partial,
    /// `expect = "any"`: every outcome matches (generated scenarios whose steps may fail).
    Any,
}

impl Expect {
    /// Whether `outcome` is what was expected.
    pub fn matches(&self, outcome: &crate::model::step::Outcome) -> bool {
        match self {
            Expect::Ok => outcome.error_code().is_none() && !matches!(outcome, crate::model::step::Outcome::Partial(_)),
            Expect::Error(code) => outcome.error_code() == Some(*code),
            Expect::Partial => matches!(outcome, crate::model::step::Outcome::Partial(_)),
            Expect::Any => true,
        }
    }
}

impl std::fmt::Display for Expect {
    /// "ok" or the code's name, as a config writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Ok => f.write_str("ok"),
            Expect::Error(code) => write!(f, "{code}"),
            Expect::Partial => f.write_str("partial"),
            Expect::Any => f.write_str("any"),
        }
    }
}

/// One checked step: what runs, and what the report says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    /// 1-based position in the file.
    pub index: usize,
    /// What the model runs.
    pub step: Step,
    /// `start`, `size` and `node` as the config gives them (0 when absent), for the report.
    pub start: u64,
    pub size: u64,
    pub node: u32,
    /// The expected outcome, unless `expect_by_strategy` names the run's strategy.
    pub expect: Expect,
    /// Expected outcomes by strategy name (`expect = { base = "ENOMEM", mom = "ok" }`).
    pub expect_by_strategy: Vec<(String, Expect)>,
    pub name: Option<String>,
    pub line: usize,
}

impl StepSpec {
    /// The step's op.
    pub fn op(&self) -> Op {
        self.step.op()
    }

    /// What this step should end with in a run of `strategy` (a compare/--strategy run's
    /// strategy, else the step's own).
    pub fn expect_for(&self, strategy: Option<&str>) -> &Expect {
        strategy
            .or(self.step.strategy())
            .and_then(|s| self.expect_by_strategy.iter().find(|(n, _)| n == s))
            .map_or(&self.expect, |(_, e)| e)
    }
}

/// Parse one `expect` value.
fn parse_expect(loaded: &Loaded, span: std::ops::Range<usize>, text: &str) -> Result<Expect, ConfigError> {
    if text == "ok" {
        Ok(Expect::Ok)
    } else if text == "partial" {
        Ok(Expect::Partial)
    } else if text == "any" {
        Ok(Expect::Any)
    } else if let Some(code) = ErrorCode::from_name(text) {
        Ok(Expect::Error(code))
    } else {
        Err(loaded.error_at(
            span,
            format!("unknown expect \"{text}\": use \"ok\", \"partial\", an errno name such as \"ENOMEM\", \"EPLUGIN\" or \"any\""),
        ))
    }
}

/// A config, checked and resolved.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub path: PathBuf,
    pub machine: MachineSpec,
    pub plugin_dirs: Vec<PathBuf>,
    pub strategies: Vec<StrategySpec>,
    pub steps: Vec<StepSpec>,
    pub compare: Option<Vec<String>>,
    /// `[plan]`, checked: what `host plan` plans.
    pub plan: PlanSpec,
}

/// `[plan]`, resolved: each field `None` when the config leaves it to `host plan`.
#[derive(Debug, Clone, Default)]
pub struct PlanSpec {
    pub target: Option<u64>,
    pub start: Option<u64>,
    pub node: u32,
    /// Strategy instance names, each defined and given System RAM.
    pub strategies: Vec<String>,
}

/// Check `loaded` and resolve it. `strategy_override` (the CLI's `--strategy`) replaces
/// the strategy of every add step.
pub fn resolve(loaded: &Loaded, strategy_override: Option<&str>) -> Result<Scenario, ConfigError> {
    let (geometry, nodes) = geometry_and_nodes(loaded)?;
    let machine = machine(loaded, geometry, nodes)?;
    let m = loaded.file.machine.get_ref();
    let plugin_dirs = m.plugin_dirs.iter().map(|d| loaded.dir().join(d.get_ref())).collect();
    let mut strategies = strategies(loaded, strategy_override)?;
    let mut steps = Vec::new();
    for (i, s) in loaded.file.step.iter().enumerate() {
        steps.push(step(loaded, i, s, strategy_override, &mut strategies)?);
    }
    let compare = compare(loaded, &mut strategies)?;
    let plan = plan(loaded, &machine, &mut strategies)?;
    Ok(Scenario { path: loaded.path.clone(), machine, plugin_dirs, strategies, steps, compare, plan })
}

/// The most NUMA nodes a kernel knows: node ids are below it (x86_64's NODES_SHIFT of
/// 10 with MAXSMP, Debian's build). Also what keeps a config's node count bounded.
pub const MAX_NUMNODES: u32 = 1024;

/// `[machine]`'s geometry (the arch preset, then each key given; the block size probed
/// from the boot memory's end when "auto") and its nodes.
fn geometry_and_nodes(loaded: &Loaded) -> Result<(hotplug_core::Geometry, Vec<NodeSpec>), ConfigError> {
    let m = loaded.file.machine.get_ref();
    let machine_span = loaded.file.machine.span();
    // Geometry: the arch preset, then each key given.
    let arch = match &m.arch {
        Some(a) => arch_from_name(a.get_ref()).ok_or_else(|| {
            loaded.error_at(a.span(), format!("unknown arch \"{}\": use {}", a.get_ref(), or_list(Arch::ALL.map(Arch::name))))
        })?,
        None => hotplug_core::Arch::X86_64,
    };
    let mut g = preset(arch);
    let set = |slot: &mut u64, v: &Option<toml::Spanned<config::Size>>| {
        if let Some(v) = v {
            *slot = v.get_ref().0;
        }
    };
    set(&mut g.page_size, &m.page_size);
    set(&mut g.struct_page_size, &m.struct_page_size);
    set(&mut g.section_size, &m.section_size);
    set(&mut g.subsection_size, &m.subsection_size);
    set(&mut g.pmd_size, &m.pmd_size);
    if let Some(p) = &m.pageblock_pages {
        g.pageblock_pages = *p.get_ref();
    }
    if let Some(b) = &m.max_phys_bits {
        g.max_phys_bits = *b.get_ref();
    }

    // Nodes (bytes); a machine with none gets node 0 with 1 GiB at 0.
    let mut nodes = Vec::new();
    for n in &m.node {
        let nc = n.get_ref();
        if nc.id >= MAX_NUMNODES {
            return Err(loaded.error_at(
                n.span(),
                format!("node id {} is not below MAX_NUMNODES, {MAX_NUMNODES} on x86_64 (CONFIG_NODES_SHIFT=10)", nc.id),
            ));
        }
        let boot = nc.boot.iter().map(|r| phys_range(loaded, r, &format!("node {}: boot range", nc.id))).collect::<Result<_, _>>()?;
        let mut node = NodeSpec::new(nc.id, boot);
        node.free = nc.free.as_ref().map(|f| f.get_ref().0);
        node.reserved = nc.reserved.as_ref().map_or(0, |r| r.get_ref().0);
        node.reserved_ranges = nc
            .reserved_ranges
            .iter()
            .map(|r| phys_range(loaded, r, &format!("node {}: reserved range", nc.id)))
            .collect::<Result<_, _>>()?;
        node.facts = NodeFacts { has_cpus: nc.cpus.unwrap_or(true), tier: nc.tier.unwrap_or(DRAM_TIER) };
        nodes.push(node);
    }
    resolve_distances(loaded, &mut nodes)?;
    if nodes.is_empty() {
        nodes.push(NodeSpec::new(0, PhysRange::new(0, 1 << 30).into_iter().collect()));
    }
    let boot_end = nodes.iter().flat_map(|n| n.boot.iter().map(PhysRange::end)).max().unwrap_or(0);
    g.memory_block_size = match m.memory_block_size.as_ref().map(|b| *b.get_ref()) {
        Some(BlockSizeConfig::Bytes(b)) => b,
        Some(BlockSizeConfig::Auto) => probe_block_size(boot_end, g.section_size, m.hypervisor.unwrap_or(false)),
        None => g.memory_block_size.max(g.section_size),
    };
    if let Err(e) = MachineGeometry::new(g) {
        // The key the message is about, when the config gives it; else the first given.
        let keys = [
            ("memory_block_size", m.memory_block_size.as_ref().map(|v| v.span())),
            ("section_size", m.section_size.as_ref().map(|v| v.span())),
            ("page_size", m.page_size.as_ref().map(|v| v.span())),
        ];
        let named = keys.iter().find(|(k, span)| e.starts_with(k) && span.is_some()).and_then(|(_, span)| span.clone());
        let span = named.or_else(|| keys.iter().find_map(|(_, span)| span.clone())).unwrap_or(machine_span.clone());
        return Err(loaded.error_at(span, format!("invalid geometry: {e}")));
    }
    Ok((g, nodes))
}

/// The machine: geometry, nodes and policies, or a captured machine's; booted once so a
/// bad layout is reported at the config's `[machine]` table.
fn machine(loaded: &Loaded, g: hotplug_core::Geometry, nodes: Vec<NodeSpec>) -> Result<MachineSpec, ConfigError> {
    let m = loaded.file.machine.get_ref();
    let machine_span = loaded.file.machine.span();
    let mut d = MachineSpec::with_defaults(g, nodes);
    if let Some(defaults) = m.defaults {
        d.auto_online_blocks = defaults.auto_online_blocks();
    }
    let mut machine = MachineSpec {
        auto_online_blocks: m.auto_online_blocks.unwrap_or(d.auto_online_blocks),
        online_policy: m.online_policy.unwrap_or(d.online_policy),
        auto_movable_ratio: m.auto_movable_ratio.unwrap_or(d.auto_movable_ratio),
        auto_movable_numa_aware: m.auto_movable_numa_aware.unwrap_or(d.auto_movable_numa_aware),
        movable_node: m.movable_node.unwrap_or(d.movable_node),
        min_free: m.min_free.as_ref().map(|v| v.get_ref().0),
        thp: m.transparent_hugepage.unwrap_or(d.thp),
        kernelcore: m.kernelcore,
        movablecore: m.movablecore,
        pmem: pmem_regions(loaded)?,
        ..d.clone()
    };
    // A captured machine gives the nodes, the block size and (unless the config says
    // otherwise) the policies.
    if let Some(from) = &m.from {
        let here = |msg: String| loaded.error_at(from.span(), msg);
        if !m.node.is_empty() || m.memory_block_size.is_some() {
            return Err(here("`from` gives the nodes and the block size: drop [[machine.node]] and memory_block_size".into()));
        }
        let mut capture = crate::views::capture::read(&loaded.dir().join(from.get_ref())).map_err(here)?;
        if let Some(gap) = capture.unsettled(g.page_size) {
            let (line, _) = loaded.line_col(from.span().start);
            if m.settle {
                let pages = capture.settle_to_meminfo(g.page_size);
                log::info!(
                    "{}:{line}: capture {}: {gap}; booting with meminfo's MemTotal ({} kB): {pages} pages given to the zones deferred init had not freed yet",
                    loaded.path.display(),
                    from.get_ref(),
                    gap.memtotal_kb
                );
            } else {
                log::warn!(
                    "{}:{line}: capture {}: {gap}; the model boots with zoneinfo's counters (MemTotal {} kB, not {} kB): set `settle = true` in [machine] to boot with meminfo's totals, or retake it with `host snapshot`, which waits for them to settle",
                    loaded.path.display(),
                    from.get_ref(),
                    gap.managed_kb,
                    gap.memtotal_kb
                );
            }
        }
        let p = &capture.params;
        machine.auto_online_blocks = m.auto_online_blocks.or(capture.auto_online_blocks).unwrap_or(d.auto_online_blocks);
        machine.online_policy = m.online_policy.or(p.online_policy).unwrap_or(d.online_policy);
        machine.auto_movable_ratio = m.auto_movable_ratio.or(p.auto_movable_ratio).unwrap_or(d.auto_movable_ratio);
        machine.auto_movable_numa_aware = m.auto_movable_numa_aware.or(p.auto_movable_numa_aware).unwrap_or(d.auto_movable_numa_aware);
        machine = capture.machine_spec(g, &machine).map_err(here)?;
        machine.capture = Some(Box::new(capture));
        if let Err(e) = MachineGeometry::new(machine.geometry) {
            return Err(here(format!("invalid geometry: {e}")));
        }
    }
    // Boot now, so a bad node layout is reported at the config's [machine] table.
    let span = m.from.as_ref().map(|f| f.span()).or_else(|| m.node.first().map(|n| n.span())).unwrap_or(machine_span.clone());
    match crate::model::Model::boot(&machine) {
        Err(e) => return Err(loaded.error_at(span, format!("invalid machine: {e}"))),
        // A capture is data we did not make: one whose files disagree with each other or
        // with this config's geometry (a 4 KiB-page capture read with page_size = 64KiB)
        // boots a machine that breaks the model's invariants. Refused here, once.
        Ok(model) if m.from.is_some() => {
            if let Err(e) = model.check_invariants() {
                return Err(loaded.error_at(span, format!("the capture does not describe a consistent machine with this config: {e}")));
            }
        }
        Ok(_) => {}
    }
    Ok(machine)
}

/// The `[[strategy]]` tables (and `--strategy`'s implicit default), ready to load.
fn strategies(loaded: &Loaded, strategy_override: Option<&str>) -> Result<Vec<StrategySpec>, ConfigError> {
    let file = &loaded.file;
    // Strategies.
    let mut strategies: Vec<StrategySpec> = Vec::new();
    for s in &file.strategy {
        let sc = s.get_ref();
        let name = sc.name.get_ref().clone();
        if strategies.iter().any(|x| x.name == name) {
            return Err(loaded.error_at(sc.name.span(), format!("strategy \"{name}\" is defined twice")));
        }
        let option_entries: Vec<OptionEntry> = sc.options.as_ref().map_or_else(Vec::new, |t| {
            t.get_ref()
                .iter()
                .map(|(k, v)| OptionEntry {
                    key: k.get_ref().clone(),
                    value: v.get_ref().clone(),
                    key_at: loaded.line_col(k.span().start),
                    value_at: loaded.line_col(v.span().start),
                })
                .collect()
        });
        let options = match &sc.options {
            Some(t) => {
                let table: toml::Table = option_entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
                toml::to_string(&table).map_err(|e| loaded.error_at(t.span(), format!("options: {e}")))?
            }
            None => String::new(),
        };
        strategies.push(StrategySpec {
            name,
            plugin: sc.plugin.get_ref().clone(),
            options,
            option_entries,
            line: loaded.line_col(s.span().start).0,
            needs: Vec::new(),
            isolate: sc.isolate.unwrap_or(false),
        });
    }
    if let Some(o) = strategy_override {
        if !strategies.iter().any(|s| s.name == o) {
            if o == DEFAULT_STRATEGY {
                strategies.push(implicit_default());
            } else {
                return Err(ConfigError::file(
                    &loaded.path,
                    format!("--strategy {o}: no [[strategy]] of that name (defined: {})", defined_names(&strategies)),
                ));
            }
        }
    }
    Ok(strategies)
}

/// `[[step]]` number `i` (0-based), typed; records in `strategies` the kinds each needs.
fn step(
    loaded: &Loaded,
    i: usize,
    s: &toml::Spanned<config::StepConfig>,
    strategy_override: Option<&str>,
    strategies: &mut Vec<StrategySpec>,
) -> Result<StepSpec, ConfigError> {
    let sc = s.get_ref();
    let line = loaded.line_col(s.span().start).0;
    let (start, size, device) = step_range(loaded, i, s)?;
    let driver = match &sc.driver {
        Some(d) => Driver::from_name(d.get_ref()).ok_or_else(|| {
            loaded.error_at(d.span(), format!("unknown driver \"{}\": use {}", d.get_ref(), or_list(Driver::ALL.map(Driver::name))))
        })?,
        None => Driver::NONE,
    };
    let (expect, expect_by_strategy) = expectations(loaded, sc, strategies)?;
    let driver = if matches!(sc.op, Op::Grow | Op::Shrink) { Driver::VIRTIO_MEM } else { driver };
    let strategy = step_strategy(loaded, i, s, strategy_override, strategies)?;
    let device_name = || sc.device.clone().unwrap_or_else(|| "virtio0".to_string());
    let params = set_params(sc);
    if sc.op != Op::Set && !params.is_empty() {
        let keys = params.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ");
        return Err(loaded.error_at(s.span(), format!("step {}: {keys}: a key of `set` steps, not of `{}`", i + 1, sc.op.as_str())));
    }
    let step = match sc.op {
        Op::Add => Step::Add { start, size, node: sc.node, driver, device: sc.device.clone(), strategy },
        Op::Online => Step::Online { start, size, online_type: sc.online_type.unwrap_or(OnlineType::Online) },
        Op::Offline => Step::Offline { start, size, unmovable: sc.unmovable },
        Op::Remove => Step::Remove { start, size },
        Op::Memremap => match device {
            Some((pgmap, find_free)) => Step::Memremap { pgmap, find_free, strategy },
            None => return Err(loaded.error_at(s.span(), format!("step {}: `memremap` without a pgmap", i + 1))),
        },
        Op::Memunmap => Step::Memunmap { start },
        Op::Grow => Step::Grow {
            device: device_name(),
            start,
            size,
            node: sc.node,
            unit: sc.unit.as_ref().map(|u| u.get_ref().0),
            region_size: sc.region_size.as_ref().map(|u| u.get_ref().0),
            block_size: sc.block_size.as_ref().map(|u| u.get_ref().0),
            strategy,
        },
        Op::Shrink => {
            let mut unmovable_ranges = Vec::new();
            for r in sc.unmovable_ranges.iter().flat_map(|v| v.get_ref()) {
                let span = sc.unmovable_ranges.as_ref().map_or(s.span(), |v| v.span());
                unmovable_ranges.push(checked_range(loaded, span, r, "unmovable range")?);
            }
            Step::Shrink { device: device_name(), size, unmovable: sc.unmovable, unmovable_ranges }
        }
        Op::Set => {
            if params.is_empty() {
                return Err(loaded.error_at(s.span(), format!("step {}: `set` needs one of {}", i + 1, or_list(SET_KEYS))));
            }
            Step::Set { params }
        }
    };
    Ok(StepSpec { index: i + 1, step, start, size, node: sc.node, expect, expect_by_strategy, name: sc.name.clone(), line })
}

/// `[[machine.pmem]]`, each a range that fits in 64 bits.
fn pmem_regions(loaded: &Loaded) -> Result<Vec<(PhysRange, bool)>, ConfigError> {
    let mut out = Vec::new();
    for p in &loaded.file.machine.get_ref().pmem {
        let c = p.get_ref();
        let range = config::RangeConfig { start: c.start, size: c.size };
        out.push((checked_range(loaded, p.span(), &range, "persistent memory")?, c.legacy));
    }
    Ok(out)
}

/// The keys of a `set` step: the hotplug parameters a running kernel lets you write.
const SET_KEYS: [&str; 6] =
    ["auto_online_blocks", "online_policy", "auto_movable_ratio", "auto_movable_numa_aware", "min_free_kbytes", "transparent_hugepage"];

/// The parameters a step's keys write, in [`SET_KEYS`] order.
fn set_params(sc: &config::StepConfig) -> Vec<Param> {
    let params = [
        sc.auto_online_blocks.map(Param::AutoOnlineBlocks),
        sc.online_policy.map(Param::OnlinePolicy),
        sc.auto_movable_ratio.map(Param::AutoMovableRatio),
        sc.auto_movable_numa_aware.map(Param::AutoMovableNumaAware),
        sc.min_free_kbytes.map(Param::MinFreeKbytes),
        sc.transparent_hugepage.map(Param::TransparentHugepage),
    ];
    params.into_iter().flatten().collect()
}

/// The strategy instance a step calls: `--strategy`, the step's `strategy`, a compare
/// run's first, the only one defined, or the implicit default; "" for ops that call none.
fn step_strategy(
    loaded: &Loaded,
    i: usize,
    s: &toml::Spanned<config::StepConfig>,
    strategy_override: Option<&str>,
    strategies: &mut Vec<StrategySpec>,
) -> Result<String, ConfigError> {
    let file = &loaded.file;
    let sc = s.get_ref();
    let (kind, implicit) = match sc.op {
        Op::Memremap => (RequestKind::DEVICE, DEFAULT_DEVICE_STRATEGY),
        _ => (RequestKind::SYSTEM_RAM, DEFAULT_STRATEGY),
    };
    if matches!(sc.op, Op::Add | Op::Memremap | Op::Grow) {
        let named = match (strategy_override, &sc.strategy) {
            (Some(o), _) => o.to_string(),
            (None, Some(n)) => {
                if !strategies.iter().any(|x| &x.name == n.get_ref()) {
                    return Err(
                        loaded.error_at(n.span(), format!("unknown strategy \"{}\" (defined: {})", n.get_ref(), defined_names(strategies)))
                    );
                }
                n.get_ref().clone()
            }
            // A compare run gives every add step each compared strategy in turn.
            (None, None) if file.compare.as_ref().is_some_and(|c| !c.get_ref().is_empty()) => {
                file.compare.as_ref().map(|c| c.get_ref()[0].clone()).unwrap_or_default()
            }
            // Implicit strategies (line 0) are the config's defaults, one per kind: a
            // memremap after an add gets device-pgmap, not the add's system-ram.
            (None, None) => match strategies.iter().filter(|x| x.line > 0).count() {
                0 => {
                    if !strategies.iter().any(|x| x.name == implicit) {
                        strategies.push(implicit_strategy(implicit));
                    }
                    implicit.to_string()
                }
                1 => strategies.iter().find(|x| x.line > 0).map(|x| x.name.clone()).unwrap_or_default(),
                _ if strategies.iter().any(|s| s.name == implicit) => implicit.to_string(),
                _ => {
                    return Err(loaded.error_at(
                        s.span(),
                        format!("step {}: several strategies are defined; say which with `strategy = \"...\"`", i + 1),
                    ))
                }
            },
        };
        if let Some(st) = strategies.iter_mut().find(|x| x.name == named) {
            if !st.needs.contains(&kind) {
                st.needs.push(kind);
            }
        }
        Ok(named)
    } else {
        Ok(String::new())
    }
}

/// A step's `start` and `size` as written, and a memremap's pgmap with its `find_free`.
type StepRange = (u64, u64, Option<(MemremapParams, bool)>);

/// A step's `start` and `size` as written, and a memremap's pgmap.
fn step_range(loaded: &Loaded, i: usize, s: &toml::Spanned<config::StepConfig>) -> Result<StepRange, ConfigError> {
    let sc = s.get_ref();
    let need = |v: &Option<toml::Spanned<config::Size>>, key: &str| {
        v.as_ref()
            .map(|x| x.get_ref().0)
            .ok_or_else(|| loaded.error_at(s.span(), format!("step {}: `{}` needs `{key}`", i + 1, sc.op.as_str())))
    };
    let (start, size, device) = match sc.op {
        Op::Memremap => {
            let pgmap_type = match &sc.pgmap_type {
                Some(t) => PgmapType::from_name(t.get_ref()).ok_or_else(|| {
                    loaded.error_at(
                        t.span(),
                        format!("unknown pgmap_type \"{}\": use {}", t.get_ref(), or_list(PgmapType::ALL.map(PgmapType::name))),
                    )
                })?,
                None => PgmapType::NONE,
            };
            let (ranges, find_free) = match (&sc.ranges, &sc.start, &sc.size) {
                (Some(r), None, None) if !r.get_ref().is_empty() => {
                    let span = r.span();
                    let ranges = r.get_ref().iter().map(|c| checked_range(loaded, span.clone(), c, &format!("step {}: range", i + 1)));
                    (ranges.collect::<Result<_, _>>()?, false)
                }
                (Some(r), _, _) => {
                    return Err(loaded.error_at(r.span(), format!("step {}: give either `ranges` (non-empty) or `start`/`size`", i + 1)))
                }
                (None, Some(st), Some(sz)) => {
                    let (start, size) = (st.get_ref().0, sz.get_ref().0);
                    let range = PhysRange::new(start, size)
                        .ok_or_else(|| loaded.error_at(s.span(), format!("step {}: {start:#x}+{size:#x} passes 2^64", i + 1)))?;
                    (vec![range], false)
                }
                (None, None, Some(sz)) => (vec![PhysRange::new(0, sz.get_ref().0).expect("a size from 0 fits")], true),
                (None, _, None) => return Err(loaded.error_at(s.span(), format!("step {}: `memremap` needs `size`", i + 1))),
            };
            let (start, size) = (ranges[0].start(), ranges[0].size());
            let vmemmap_shift = sc.vmemmap_shift.unwrap_or(0);
            let pgmap = MemremapParams {
                ranges,
                nid: sc.node,
                pgmap_type,
                vmemmap_shift,
                resource: sc.resource.clone(),
                namespace: sc.namespace.clone(),
            };
            (start, size, Some((pgmap, find_free)))
        }
        Op::Memunmap => (need(&sc.start, "start")?, sc.size.as_ref().map_or(0, |v| v.get_ref().0), None),
        Op::Set => (0, 0, None),
        Op::Grow | Op::Shrink => {
            if sc.device.is_none() {
                return Err(loaded
                    .error_at(s.span(), format!("step {}: `{}` needs `device` (the virtio-mem device's name)", i + 1, sc.op.as_str())));
            }
            (sc.start.as_ref().map_or(0, |v| v.get_ref().0), need(&sc.size, "size")?, None)
        }
        // dax/kmem onto a device-dax device an earlier memremap created: its range.
        Op::Add
            if sc.start.is_none()
                && sc.size.is_none()
                && sc.device.is_some()
                && sc.driver.as_ref().is_some_and(|d| d.get_ref() == Driver::DAX_KMEM.name()) =>
        {
            (0, 0, None)
        }
        _ => (need(&sc.start, "start")?, need(&sc.size, "size")?, None),
    };
    // Checked once, here: no range of a step may wrap past 2^64 (the kernel's own limits,
    // the pluggable range among them, are the model's errnos).
    let at = sc.size.as_ref().map_or(s.span(), |v| v.span());
    if start.checked_add(size).is_none() {
        return Err(loaded.error_at(at, format!("step {}: start {start:#x} + size {size:#x} passes 2^64", i + 1)));
    }
    if let Some(region) = &sc.region_size {
        if start.checked_add(region.get_ref().0).is_none() {
            return Err(loaded
                .error_at(region.span(), format!("step {}: start {start:#x} + region_size {:#x} passes 2^64", i + 1, region.get_ref().0)));
        }
    }
    Ok((start, size, device))
}

/// A range of the config as a [`PhysRange`], or a located error naming `what` when its
/// end passes 2^64.
fn phys_range(loaded: &Loaded, r: &toml::Spanned<config::RangeConfig>, what: &str) -> Result<PhysRange, ConfigError> {
    checked_range(loaded, r.span(), r.get_ref(), what)
}

fn checked_range(loaded: &Loaded, span: std::ops::Range<usize>, r: &config::RangeConfig, what: &str) -> Result<PhysRange, ConfigError> {
    let (start, size) = (r.start.0, r.size.0);
    PhysRange::new(start, size).ok_or_else(|| loaded.error_at(span, format!("{what} {start:#x}+{size:#x} passes 2^64")))
}

/// A step's `expect`: one outcome, or one per strategy (each a defined strategy).
fn expectations(
    loaded: &Loaded,
    sc: &config::StepConfig,
    strategies: &[StrategySpec],
) -> Result<(Expect, Vec<(String, Expect)>), ConfigError> {
    let (expect, expect_by_strategy) = match &sc.expect {
        None => (Expect::Ok, Vec::new()),
        Some(e) => match e.get_ref() {
            config::ExpectConfig::One(text) => (parse_expect(loaded, e.span(), text)?, Vec::new()),
            config::ExpectConfig::PerStrategy(map) => {
                let mut by = Vec::new();
                for (name, text) in map {
                    if !strategies.iter().any(|x| &x.name == name) {
                        return Err(loaded.error_at(
                            e.span(),
                            format!("expect names unknown strategy \"{name}\" (defined: {})", defined_names(strategies)),
                        ));
                    }
                    by.push((name.clone(), parse_expect(loaded, e.span(), text)?));
                }
                (Expect::Ok, by)
            }
        },
    };
    Ok((expect, expect_by_strategy))
}

/// `compare`: each name a defined strategy, which then needs System RAM.
fn compare(loaded: &Loaded, strategies: &mut [StrategySpec]) -> Result<Option<Vec<String>>, ConfigError> {
    let file = &loaded.file;
    let compare = match &file.compare {
        Some(c) => {
            if c.get_ref().is_empty() {
                return Err(loaded
                    .error_at(c.span(), "compare = [] names no strategy to run: list the [[strategy]] names to compare, or drop the key"));
            }
            for (i, name) in c.get_ref().iter().enumerate() {
                if c.get_ref()[..i].contains(name) {
                    return Err(loaded.error_at(c.span(), format!("compare names strategy \"{name}\" twice")));
                }
                if !strategies.iter().any(|s| &s.name == name) {
                    return Err(loaded.error_at(c.span(), format!("compare names unknown strategy \"{name}\"")));
                }
            }
            for st in strategies.iter_mut().filter(|s| c.get_ref().contains(&s.name)) {
                if !st.needs.contains(&RequestKind::SYSTEM_RAM) {
                    st.needs.push(RequestKind::SYSTEM_RAM);
                }
            }
            Some(c.get_ref().clone())
        }
        None => None,
    };

    Ok(compare)
}

/// `[plan]`: a node that exists, a block-aligned start, strategies that are defined
/// (which then need System RAM, as compared ones do). Without `strategies`, every
/// defined strategy that can take System RAM is planned with.
fn plan(loaded: &Loaded, machine: &MachineSpec, strategies: &mut [StrategySpec]) -> Result<PlanSpec, ConfigError> {
    let Some(p) = &loaded.file.plan else {
        return Ok(PlanSpec::default());
    };
    let (cfg, span) = (p.get_ref(), p.span());
    let node = cfg.node.unwrap_or(0);
    if !machine.nodes.iter().any(|n| n.id == node) {
        return Err(loaded.error_at(span, format!("[plan] node {node} is not a [[machine.node]]")));
    }
    let block = machine.geometry.memory_block_size;
    let start = match &cfg.start {
        Some(s) if s.get_ref().0 % block != 0 => {
            return Err(loaded.error_at(
                s.span(),
                format!("[plan] start {:#x} is not aligned to the memory block size {}", s.get_ref().0, config::format_size(block)),
            ))
        }
        Some(s) => Some(s.get_ref().0),
        None => None,
    };
    let target = match &cfg.target {
        Some(t) if t.get_ref().0 == 0 || t.get_ref().0 % block != 0 => {
            return Err(loaded.error_at(
                t.span(),
                format!("[plan] target must be a positive multiple of the memory block size {}", config::format_size(block)),
            ))
        }
        Some(t) => Some(t.get_ref().0),
        None => None,
    };
    let mut names = Vec::new();
    if let Some(list) = &cfg.strategies {
        for name in list.get_ref() {
            if !strategies.iter().any(|s| &s.name == name) {
                return Err(loaded.error_at(list.span(), format!("[plan] strategies names unknown strategy \"{name}\"")));
            }
            if names.contains(name) {
                return Err(loaded.error_at(list.span(), format!("[plan] strategies names \"{name}\" twice")));
            }
            names.push(name.clone());
        }
        for st in strategies.iter_mut().filter(|s| names.contains(&s.name)) {
            if !st.needs.contains(&RequestKind::SYSTEM_RAM) {
                st.needs.push(RequestKind::SYSTEM_RAM);
            }
        }
    }
    Ok(PlanSpec { target, start, node, strategies: names })
}

/// The strategies `host plan` uses when `[plan] strategies` names none: every defined
/// strategy not given to device memory only (each then needs System RAM), or the
/// default system-ram when the config defines none. Called by the plan command only, so
/// a normal run loads what it always did.
pub fn default_plan_strategies(scenario: &mut Scenario) {
    if !scenario.plan.strategies.is_empty() {
        return;
    }
    let strategies = &mut scenario.strategies;
    if strategies.is_empty() {
        strategies.push(implicit_default());
    }
    let names: Vec<String> =
        strategies.iter().filter(|s| s.needs.is_empty() || s.needs.contains(&RequestKind::SYSTEM_RAM)).map(|s| s.name.clone()).collect();
    for st in strategies.iter_mut().filter(|s| names.contains(&s.name)) {
        if !st.needs.contains(&RequestKind::SYSTEM_RAM) {
            st.needs.push(RequestKind::SYSTEM_RAM);
        }
    }
    scenario.plan.strategies = names;
}

fn implicit_default() -> StrategySpec {
    implicit_strategy(DEFAULT_STRATEGY)
}

/// The `distance` tables of `[[machine.node]]`: node ids that exist, 10 to itself
/// (numa_set_distance ignores anything else), and a remote distance in 11..=255 (the SLIT
/// holds bytes, and acpi_numa's slit_valid() rejects a remote distance of 10 or less).
fn resolve_distances(loaded: &Loaded, nodes: &mut [NodeSpec]) -> Result<(), ConfigError> {
    let ids: Vec<u32> = nodes.iter().map(|n| n.id).collect();
    for (node, config) in nodes.iter_mut().zip(&loaded.file.machine.get_ref().node) {
        let Some(table) = &config.get_ref().distance else { continue };
        for (to, d) in table.get_ref() {
            let to_id: u32 = to
                .get_ref()
                .parse()
                .map_err(|_| loaded.error_at(to.span(), format!("distance key \"{}\" is not a node id", to.get_ref())))?;
            if !ids.contains(&to_id) {
                return Err(loaded.error_at(to.span(), format!("distance to node {to_id}, which is not a [[machine.node]]")));
            }
            let distance = *d.get_ref();
            let fine = if to_id == node.id { distance == LOCAL_DISTANCE } else { (LOCAL_DISTANCE + 1..=255).contains(&distance) };
            if !fine {
                let rule = if to_id == node.id { "a node's distance to itself is 10" } else { "a remote distance is 11 to 255" };
                return Err(loaded.error_at(d.span(), format!("distance {distance} from node {} to node {to_id}: {rule}", node.id)));
            }
            node.distance.insert(to_id, distance);
        }
    }
    Ok(())
}

/// The strategy a step uses when the config defines none: the plugin of that name.
fn implicit_strategy(name: &str) -> StrategySpec {
    let kind = if name == DEFAULT_DEVICE_STRATEGY { RequestKind::DEVICE } else { RequestKind::SYSTEM_RAM };
    StrategySpec {
        name: name.into(),
        plugin: name.into(),
        options: String::new(),
        option_entries: Vec::new(),
        line: 0,
        needs: vec![kind],
        isolate: false,
    }
}

/// The defined strategy names, for "unknown strategy" messages.
fn defined_names(strategies: &[StrategySpec]) -> String {
    if strategies.is_empty() {
        "none".into()
    } else {
        strategies.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}
