//! The check bodies. Each runs in a child process on a fresh, small two-node machine and
//! returns pass, fail (what was expected, what came back) or skip (why it does not apply).

use std::sync::Barrier;

use hotplug_core::{
    Altmap, ContractVersion, Driver, PgmapType, PluginError, Request, RequestKind, RequestKinds, RestrictionFlags, Restrictions,
};

use super::Status;
use crate::config::{format_size, AutoOnline};
use crate::loader::{LoadedLibrary, StrategyInstance};
use crate::model::boot::{MachineSpec, NodeSpec};
use crate::model::device::MemremapParams;
use crate::model::geometry::preset;
use crate::model::hotplug::memmap_payers;
use crate::model::numa::NodeFacts;
use crate::model::ops::{ModelOps, RequestData, StrategyHandle, StrategyLookup};
use crate::model::range::{PfnRange, PhysRange};
use crate::model::step::{Outcome as StepOutcome, Step};
use crate::model::{altmap, BlockState, Model, PageState};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// The differences from a snapshot the kernel itself leaves behind after a remove.
const ALLOWED_AFTER_REMOVE: &[&str] = &["max_pfn", "device_zone_spans"];

/// The plugin under test: its library and the options to build instances with.
pub struct Subject {
    lib: LoadedLibrary,
    options: String,
}

impl Subject {
    pub fn new(lib: LoadedLibrary, options: String) -> Self {
        Subject { lib, options }
    }

    /// A fresh instance, as a `[[strategy]]` named "under-test" on the two-node machine.
    pub fn instance(&self) -> Result<StrategyInstance, String> {
        self.instance_on(&machine_spec(AutoOnline::Offline))
    }

    /// A fresh instance that knows `spec`'s geometry and node distances (`Host::distance`).
    fn instance_on(&self, spec: &MachineSpec) -> Result<StrategyInstance, String> {
        StrategyInstance::new("under-test", &self.lib, &self.options, spec, &[]).map_err(|e| e.to_string())
    }
}

type Outcome = (Status, String);

fn pass(detail: impl Into<String>) -> Outcome {
    (Status::Pass, detail.into())
}

fn skip(detail: impl Into<String>) -> Outcome {
    (Status::Skip, detail.into())
}

fn fail(expected: impl std::fmt::Display, got: impl std::fmt::Display) -> Outcome {
    (Status::Fail, format!("expected {expected}; got {got}"))
}

/// Run check `name`; `None` if there is no such check.
pub fn run(name: &str, subject: &Subject) -> Option<Outcome> {
    let instance = match subject.instance() {
        Ok(i) => i,
        Err(e) => return Some(fail("an instance with the given options", format!("the constructor failed: {e}"))),
    };
    let outcome = match name {
        "info" => info(subject, &instance),
        "options" => options(subject),
        "kinds" => kinds(&instance),
        "set-up-grid" => set_up_grid(&instance),
        "altmap-bounds" => altmap_bounds(&instance),
        "construct-marks" => construct_marks(&instance),
        "add-remove" => add_remove(&instance),
        "memmap-node" => memmap_node(subject),
        "deterministic" => deterministic(subject, &instance),
        "cycles" => cycles(&instance),
        "threads" => threads(&instance),
        _ => return None,
    };
    Some(outcome)
}

// ---- the machine and the requests ------------------------------------------------------

/// x86_64 defaults: 4 KiB pages, 128 MiB sections and blocks, 46 physical address bits.
fn machine_geometry() -> hotplug_core::Geometry {
    preset(hotplug_core::Arch::X86_64)
}

/// Two nodes of 8 GiB each: node 0 [0, 8 GiB), node 1 [8 GiB, 16 GiB).
fn machine_spec(auto: AutoOnline) -> MachineSpec {
    let mut spec = MachineSpec::new(machine_geometry(), &[(0, 0, 8 * GIB), (1, 8 * GIB, 8 * GIB)]);
    spec.auto_online_blocks = auto;
    spec
}

fn machine(auto: AutoOnline) -> Model {
    Model::boot(&machine_spec(auto)).expect("the conformance machine boots")
}

const KINDS: [RequestKind; 2] = [RequestKind::SYSTEM_RAM, RequestKind::DEVICE];

/// One request of the grid, in bytes.
#[derive(Debug, Clone, Copy)]
struct Point {
    kind: RequestKind,
    start: u64,
    size: u64,
    nid: u32,
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:#x}+{} node {}", self.kind.name(), self.start, format_size(self.size), self.nid)
    }
}

impl Point {
    fn data(&self, model: &Model) -> RequestData {
        let page = model.geometry.page_size();
        let pfns = PfnRange::new(self.start / page, self.size / page).expect("conformance points lie far below 2^64");
        match self.kind {
            RequestKind::DEVICE => RequestData::device(model, pfns, self.nid, PgmapType::GENERIC, 0, 1),
            _ => RequestData::system_ram(model, pfns, self.nid, Driver::ACPI_DIMM, 0),
        }
    }
}

/// The plain request of each kind: 1 GiB, 1 GiB-aligned, above the boot memory.
fn plain(kind: RequestKind) -> Point {
    let start = if kind == RequestKind::DEVICE { 64 * GIB } else { 32 * GIB };
    Point { kind, start, size: GIB, nid: 0 }
}

/// Sizes from one subsection to terabytes; starts aligned to the size (and above the
/// boot memory), then off by a page, a subsection and half a block; every node.
fn grid(kinds: RequestKinds) -> Vec<Point> {
    let sizes = [2 * MIB, 128 * MIB, GIB, 64 * GIB, 4 * TIB];
    let offsets = [0, 4096, 2 * MIB, 64 * MIB];
    let mut points = Vec::new();
    for kind in KINDS.into_iter().filter(|k| kinds.contains(*k)) {
        for size in sizes {
            let base = (32 * GIB).max(size).next_multiple_of(size);
            for offset in offsets {
                for nid in [0, 1] {
                    points.push(Point { kind, start: base + offset, size, nid });
                }
            }
        }
    }
    points
}

fn is_panic(e: &PluginError) -> bool {
    e.message.as_str().starts_with("plugin panicked")
}

fn call_set_up(s: &dyn StrategyHandle, model: &Model, p: &Point) -> Result<Restrictions, PluginError> {
    p.data(model).with(|r: &Request<'_>| s.set_up(r))
}

fn error_text(e: &PluginError) -> String {
    let name = hotplug_core::errno::name(e.errno).map_or_else(|| format!("errno {}", e.errno), str::to_string);
    if e.errno == 0 {
        e.message.to_string()
    } else {
        format!("{name}: {}", e.message)
    }
}

fn summary(r: &Restrictions) -> String {
    let mut s = format!("flags {:#x}", r.flags.0);
    if let Some(a) = r.altmap.into_option() {
        s += &format!(", altmap base {:#x} reserve {} free {}", a.base_pfn, a.reserve, a.free);
    }
    if let Some(n) = r.memmap_nid.into_option() {
        s += &format!(", memmap_nid {n}");
    }
    s
}

/// "a, b, c (and N more)".
fn first_few(problems: &[String]) -> String {
    let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
    let more = problems.len().saturating_sub(3);
    if more > 0 {
        format!("{} (and {more} more)", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

// ---- the checks ------------------------------------------------------------------------

fn info(subject: &Subject, s: &StrategyInstance) -> Outcome {
    let i = &s.info;
    let known = RequestKinds::SYSTEM_RAM.0 | RequestKinds::DEVICE.0;
    let name = i.name.as_str();
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_graphic()) {
        return fail("a name of 1 to 64 printable characters", format!("{name:?}"));
    }
    if !is_semver(i.version.as_str()) {
        return fail("a semver version such as 1.2.3", format!("{:?}", i.version.as_str()));
    }
    if i.contract.major != ContractVersion::CURRENT.major {
        return fail(format!("contract {}.x", ContractVersion::CURRENT.major), i.contract);
    }
    if i.kinds.0 == 0 {
        return fail("at least one request kind", "kinds 0 (handles nothing)");
    }
    if i.kinds.0 & !known != 0 {
        return fail(
            format!("kinds within {known:#x} (system-ram, device)"),
            format!("kinds {:#x}, with bits contract {} does not define ({:#x})", i.kinds.0, ContractVersion::CURRENT, i.kinds.0 & !known),
        );
    }
    let again = match subject.instance() {
        Ok(other) => other.info.clone(),
        Err(e) => return fail("a second instance", e),
    };
    if again != *i {
        return fail("the same info from every instance", format!("{:?} then {:?}", i, again));
    }
    pass(format!("{name} {} (contract {}, handles {})", i.version, i.contract, i.kinds.names()))
}

/// The schema a plugin declares must agree with its own constructor: an author who
/// declares `mode` but parses `mod` would have every user's config refused or ignored.
fn options(subject: &Subject) -> Outcome {
    let Some(schema) = subject.lib.options_schema() else {
        return skip("the plugin declares no options (options_schema is RNone): its options reach its constructor unchecked");
    };
    let mut problems = Vec::new();
    for (i, o) in schema.iter().enumerate() {
        let name = o.name.as_str();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            problems.push(format!("option name {name:?} is not a bare TOML key"));
            continue;
        }
        if schema[..i].iter().any(|p| p.name.as_str() == name) {
            problems.push(format!("option \"{name}\" is declared twice"));
        }
        if o.help.as_str().trim().is_empty() || o.help.as_str().chars().any(char::is_control) {
            problems.push(format!("option \"{name}\" has no one-line help"));
        }
        if o.ty == hotplug_core::OptionType::CHOICE && o.choice_list().next().is_none() {
            problems.push(format!("choice option \"{name}\" lists no choices"));
        }
        let default = o.default.as_str();
        if default.is_empty() || default.starts_with('(') {
            continue;
        }
        let text = format!("{name} = {default}\n");
        let Ok(table) = text.parse::<toml::Table>() else {
            problems.push(format!("the default of \"{name}\", {default:?}, is not a TOML value"));
            continue;
        };
        if let Err(p) = crate::loader::options::check("under test", schema, table.iter().map(|(k, v)| (k.as_str(), v))) {
            problems.push(format!("its declared default: {}", p.message));
            continue;
        }
        if let Err(e) = subject.lib.instantiate(&text, machine_geometry()) {
            problems.push(format!("the constructor refuses the declared default {}: {}", text.trim(), e.message));
        }
    }
    if problems.is_empty() {
        pass(format!("{} declared option(s), each default accepted by the constructor", schema.len()))
    } else {
        fail("declared options whose defaults the constructor accepts", first_few(&problems))
    }
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn kinds(s: &StrategyInstance) -> Outcome {
    let model = machine(AutoOnline::Offline);
    let mut notes = Vec::new();
    for kind in KINDS {
        let p = plain(kind);
        let result = call_set_up(s, &model, &p);
        let claimed = s.info.kinds.contains(kind);
        match (claimed, result) {
            (_, Err(e)) if is_panic(&e) => return fail(format!("an answer to a plain {} request", kind.name()), error_text(&e)),
            (true, Ok(r)) => {
                let page = model.geometry.page_size();
                if let Err(e) = model.validate_restrictions(kind, &r, p.start / page, p.size / page, &s.info.name) {
                    return fail(format!("restrictions the host accepts for {p}"), e.reason);
                }
                notes.push(format!("accepts {}", kind.name()));
            }
            (true, Err(e)) => {
                return fail(
                    format!("set_up to accept a plain {} request ({p}), since the plugin claims that kind", kind.name()),
                    error_text(&e),
                )
            }
            (false, Ok(r)) => {
                return fail(
                    format!("an error for {} (not a kind the plugin claims)", kind.name()),
                    format!("restrictions ({})", summary(&r)),
                )
            }
            (false, Err(e)) => {
                notes.push(format!("refuses {} ({})", kind.name(), hotplug_core::errno::name(e.errno).unwrap_or("an error")))
            }
        }
    }
    pass(notes.join(", "))
}

fn set_up_grid(s: &StrategyInstance) -> Outcome {
    let model = machine(AutoOnline::Offline);
    let page = model.geometry.page_size();
    let points = grid(s.info.kinds);
    let (mut accepted, mut refused) = (0, 0);
    let mut problems = Vec::new();
    for p in &points {
        match call_set_up(s, &model, p) {
            Ok(r) => match model.validate_restrictions(p.kind, &r, p.start / page, p.size / page, &s.info.name) {
                Ok(()) => accepted += 1,
                Err(e) => problems.push(format!("{p}: {}", e.reason)),
            },
            Err(e) if is_panic(&e) => problems.push(format!("{p}: {}", e.message)),
            Err(_) => refused += 1,
        }
    }
    if !problems.is_empty() {
        return fail(
            format!("valid restrictions or a clean error for each of {} requests", points.len()),
            format!("{} bad: {}", problems.len(), first_few(&problems)),
        );
    }
    pass(format!("{} requests: {accepted} accepted, {refused} refused with an error", points.len()))
}

/// Allocate the memmap of every whole section of `[start, start + nr)` from `a`, PMD by
/// PMD as x86_64 does; `Err` says how far it got.
fn fill_altmap(model: &Model, a: &mut Altmap, start: u64, nr: u64) -> Result<u64, String> {
    let g = model.geometry;
    let pps = g.pages_per_section();
    let pmds_per_section = g.section_memmap_pages_pmd() / g.pmd_pages();
    let first = start.next_multiple_of(pps);
    let mut used = 0;
    let mut sec = first;
    while sec + pps <= start + nr {
        for _ in 0..pmds_per_section {
            if altmap::alloc(a, g.pmd_pages()).is_none() {
                return Err(format!(
                    "free {} pages run out at section {:#x} after {used} pages of memmap (alignment {})",
                    a.free,
                    g.pfn_to_section(sec),
                    a.align
                ));
            }
            used += g.pmd_pages();
        }
        sec += pps;
    }
    Ok(used)
}

fn altmap_bounds(s: &StrategyInstance) -> Outcome {
    let model = machine(AutoOnline::Offline);
    let g = model.geometry;
    let page = g.page_size();
    let (mut checked, mut problems) = (0, Vec::new());
    for p in grid(s.info.kinds) {
        let Ok(r) = call_set_up(s, &model, &p) else { continue };
        let Some(a) = r.altmap.into_option() else { continue };
        checked += 1;
        let (start, nr) = (p.start / page, p.size / page);
        let per_block = r.flags.contains(RestrictionFlags::MEMMAP_ON_MEMORY);
        // The area the altmap describes: one memory block with MEMMAP_ON_MEMORY (the host
        // repeats it per block), else the whole range.
        let area = if per_block { g.pages_per_block().min(nr) } else { nr };
        let Some(end) = a.base_pfn.checked_add(a.reserve).and_then(|v| v.checked_add(a.free)) else {
            problems.push(format!("{p}: base + reserve + free overflows"));
            continue;
        };
        if a.base_pfn != start || end > start + area {
            problems.push(format!(
                "{p}: altmap [{:#x}, {end:#x}) (base, reserve {}, free {}) is not inside [{start:#x}, {:#x})",
                a.base_pfn,
                a.reserve,
                a.free,
                start + area
            ));
            continue;
        }
        let mut sim = Altmap { base_pfn: start, end_pfn: start + area - 1, reserve: a.reserve, free: a.free, align: 0, alloc: 0 };
        if let Err(e) = fill_altmap(&model, &mut sim, start, area) {
            problems.push(format!("{p}: the altmap cannot hold the memmap of the {} it covers: {e}", format_size(area * page)));
        }
    }
    if !problems.is_empty() {
        return fail(
            "every altmap inside its range and large enough for its memmap",
            format!("{} bad: {}", problems.len(), first_few(&problems)),
        );
    }
    if checked == 0 {
        return skip("the strategy returned no altmap for any request of the grid: nothing to bound");
    }
    pass(format!("{checked} altmaps inside their ranges, each large enough for its memmap"))
}

/// One hot-plug the model-level checks make: a System RAM add or a device memremap.
#[derive(Debug, Clone, Copy)]
struct Plug {
    kind: RequestKind,
    start: u64,
    size: u64,
    nid: u32,
}

impl std::fmt::Display for Plug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = if self.kind == RequestKind::DEVICE { "memremap" } else { "add" };
        write!(f, "{op} {:#x}+{} node {}", self.start, format_size(self.size), self.nid)
    }
}

/// The plugs for the kinds the plugin claims: 1 GiB on node 0 and 2 GiB on node 1 each.
fn plugs(s: &StrategyInstance) -> Vec<Plug> {
    let mut out = Vec::new();
    if s.info.kinds.contains(RequestKind::SYSTEM_RAM) {
        out.push(Plug { kind: RequestKind::SYSTEM_RAM, start: 32 * GIB, size: GIB, nid: 0 });
        out.push(Plug { kind: RequestKind::SYSTEM_RAM, start: 64 * GIB, size: 2 * GIB, nid: 1 });
    }
    if s.info.kinds.contains(RequestKind::DEVICE) {
        out.push(Plug { kind: RequestKind::DEVICE, start: 128 * GIB, size: GIB, nid: 0 });
        out.push(Plug { kind: RequestKind::DEVICE, start: 192 * GIB, size: 2 * GIB, nid: 1 });
    }
    out
}

impl Plug {
    /// The step that makes this plug: an ACPI DIMM add, or a memremap of the plugin's type.
    fn step(&self) -> Step {
        let strategy = "under-test".to_string();
        if self.kind == RequestKind::DEVICE {
            let pgmap = MemremapParams {
                ranges: PhysRange::new(self.start, self.size).into_iter().collect(),
                nid: self.nid,
                pgmap_type: PgmapType::NONE,
                vmemmap_shift: 0,
                resource: None,
                namespace: None,
            };
            Step::Memremap { pgmap, find_free: false, strategy }
        } else {
            Step::Add { start: self.start, size: self.size, node: self.nid, driver: Driver::ACPI_DIMM, device: None, strategy }
        }
    }
}

/// Run `step` through `s`, as the runner would.
fn apply(model: &mut Model, s: &dyn StrategyHandle, step: &Step) -> Result<(), String> {
    match model.apply(step, &One(s)) {
        StepOutcome::Failed(e) => Err(e.to_string()),
        _ => Ok(()),
    }
}

fn plug(model: &mut Model, s: &dyn StrategyHandle, p: Plug) -> Result<(), String> {
    apply(model, s, &p.step()).map_err(|e| format!("{p} failed: {e}"))
}

/// Undo `p`: offline (when online) and remove System RAM; memunmap device memory.
fn unplug(model: &mut Model, s: &dyn StrategyHandle, p: Plug) -> Result<(), String> {
    let result = if p.kind == RequestKind::DEVICE {
        apply(model, s, &Step::Memunmap { start: p.start })
    } else {
        let g = model.geometry;
        let online = model.blocks.get(&g.pfn_to_block(p.start / g.page_size())).is_some_and(|b| b.state == BlockState::Online);
        if online {
            apply(model, s, &Step::Offline { start: p.start, size: p.size, unmovable: false })
                .map_err(|e| format!("offline {:#x}+{} failed: {e}", p.start, format_size(p.size)))?;
        }
        apply(model, s, &Step::Remove { start: p.start, size: p.size })
    };
    result.map_err(|e| format!("undoing {p} failed: {e}"))
}

/// The same plug, `i` steps further up the address space (for cycles and threads).
fn shifted(p: Plug, i: usize, size: u64) -> Plug {
    Plug { start: p.start + i as u64 * 2 * GIB, size, ..p }
}

/// The pages an altmap's memmap occupies must all be marked as vmemmap.
fn check_altmap_marks(model: &Model, a: &Altmap, what: &str) -> Result<u64, Outcome> {
    let (from, to) = (a.base_pfn + a.reserve, a.base_pfn + a.reserve + a.free);
    let n = model.pages.count(from, to, |v| *v == PageState::Vmemmap);
    if n != a.free {
        return Err(fail(
            format!("all {} pages holding {what}'s memmap ({from:#x}-{:#x}) marked as vmemmap", a.free, to - 1),
            format!("{n} marked"),
        ));
    }
    Ok(n)
}

fn construct_marks(s: &StrategyInstance) -> Outcome {
    let mut model = machine(AutoOnline::Offline);
    let g = model.geometry;
    let mut marked = 0;
    let plugs = plugs(s);
    for p in &plugs {
        if let Err(e) = plug(&mut model, s, *p) {
            return fail("a plain hot-plug to succeed, construct marking only its own pages", e);
        }
        let (start, end) = (p.start / g.page_size(), (p.start + p.size) / g.page_size());
        if p.kind == RequestKind::DEVICE {
            // The host has checked that every device page is initialised; the altmap's
            // memmap area must be marked too.
            if let Some(a) = model.pgmap_at(start).and_then(|pg| pg.ranges.first()).and_then(|r| r.restrictions.altmap.into_option()) {
                match check_altmap_marks(&model, &a, "the device") {
                    Ok(n) => marked += n,
                    Err(o) => return o,
                }
            }
            continue;
        }
        if let Some((ms, me, v)) = model.pages.overlapping(start, end).into_iter().find(|(_, _, v)| matches!(v, PageState::Device { .. })) {
            return fail("no device pages in System RAM", format!("pfns {ms:#x}-{:#x} marked {v:?}", me - 1));
        }
        for b in g.pfn_to_block(start)..g.pfn_to_block(end) {
            let Some(alt) = model.blocks.get(&b).and_then(|blk| blk.altmap) else { continue };
            match check_altmap_marks(&model, &alt, &format!("memory{b}")) {
                Ok(n) => marked += n,
                Err(o) => return o,
            }
        }
    }
    pass(format!("{} hot-plugs: marks inside the ranges, {marked} memmap pages marked", plugs.len()))
}

/// A lookup that finds the one strategy under test.
struct One<'a>(&'a dyn StrategyHandle);

impl StrategyLookup for One<'_> {
    fn strategy(&self, _instance: &str) -> Option<&dyn StrategyHandle> {
        Some(self.0)
    }
}

/// The differences from `before` beyond what the kernel itself leaves behind.
fn unexpected_differences(after: &Model, before: &Model) -> Vec<&'static str> {
    after.differences(before).into_iter().filter(|d| !ALLOWED_AFTER_REMOVE.contains(d)).collect()
}

fn add_remove(s: &StrategyInstance) -> Outcome {
    // Left offline, then auto-onlined (System RAM is offlined before its remove).
    for auto in [AutoOnline::Offline, AutoOnline::Online] {
        let mut model = machine(auto);
        let boot = model.clone();
        let plugs = plugs(s);
        for p in &plugs {
            if let Err(e) = plug(&mut model, s, *p) {
                return fail("the hot-plug to succeed", e);
            }
        }
        for p in &plugs {
            if let Err(e) = unplug(&mut model, s, *p) {
                return fail("the unplug to succeed", e);
            }
        }
        let diff = unexpected_differences(&model, &boot);
        if !diff.is_empty() {
            return fail(
                format!("the model as before (auto_online_blocks {}; allowed: {})", auto.as_str(), ALLOWED_AFTER_REMOVE.join(", ")),
                format!("{} differ{}", diff.join(", "), leftovers(&model, &boot)),
            );
        }
    }
    pass(format!("hot-plugged and removed: the model is as before, {} aside", ALLOWED_AFTER_REMOVE.join(" and ")))
}

/// What is left over compared with `boot`, in numbers.
fn leftovers(model: &Model, boot: &Model) -> String {
    let mut parts = Vec::new();
    let extra = model.reservations.len().saturating_sub(boot.reservations.len());
    if extra > 0 {
        parts.push(format!("{extra} reservation(s) never released"));
    }
    let extra = model.resources.len().saturating_sub(boot.resources.len());
    if extra > 0 {
        parts.push(format!("{extra} resource(s) left in iomem"));
    }
    let marks = model.pages.iter().count().saturating_sub(boot.pages.iter().count());
    if marks > 0 {
        parts.push(format!("{marks} page-mark run(s) left"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn deterministic(subject: &Subject, s: &StrategyInstance) -> Outcome {
    let model = machine(AutoOnline::Offline);
    let fresh = match subject.instance() {
        Ok(i) => i,
        Err(e) => return fail("a second instance", e),
    };
    let show = |r: &Result<Restrictions, PluginError>| match r {
        Ok(r) => summary(r),
        Err(e) => format!("error {}", error_text(e)),
    };
    let points: Vec<Point> = grid(s.info.kinds).into_iter().filter(|p| p.start % p.size == 0).collect();
    for p in &points {
        let first = call_set_up(s, &model, p);
        for call in 2..=4 {
            let again = call_set_up(s, &model, p);
            if again != first {
                return fail(format!("call {call} for {p} to return what call 1 did ({})", show(&first)), show(&again));
            }
        }
        let other = call_set_up(&fresh, &model, p);
        if other != first {
            return fail(format!("a second instance to return for {p} what the first did ({})", show(&first)), show(&other));
        }
    }
    let mut models = [machine(AutoOnline::Online), machine(AutoOnline::Online)];
    for (i, m) in models.iter_mut().enumerate() {
        for p in plugs(s) {
            if let Err(e) = plug(m, if i == 0 { s } else { &fresh }, p) {
                return fail("the hot-plugs to succeed", e);
            }
        }
    }
    let diff = models[0].differences(&models[1]);
    if !diff.is_empty() {
        return fail("the same model after the same hot-plugs", format!("{} differ", diff.join(", ")));
    }
    pass(format!("{} requests answered alike 5 times over two instances", points.len()))
}

/// How many add/remove cycles `cycles` runs.
pub const CYCLES: usize = 1000;

fn cycles(s: &StrategyInstance) -> Outcome {
    let mut model = machine(AutoOnline::Offline);
    let boot = model.clone();
    // One 1 GiB plug of each kind the plugin claims, plugged and unplugged in turn.
    let mut ones: Vec<Plug> = Vec::new();
    for p in plugs(s) {
        if !ones.iter().any(|o| o.kind == p.kind) {
            ones.push(p);
        }
    }
    for cycle in 1..=CYCLES {
        for &one in &ones {
            let result = plug(&mut model, s, one).and_then(|()| unplug(&mut model, s, one));
            if let Err(e) = result {
                return fail(
                    format!("{CYCLES} plug/unplug cycles of 1 GiB to succeed"),
                    format!("cycle {cycle}: {e}{}", leftovers(&model, &boot)),
                );
            }
        }
    }
    let diff = unexpected_differences(&model, &boot);
    if !diff.is_empty() {
        return fail(
            format!("resources, page marks, reservations, pgmaps and altmaps as at boot after {CYCLES} cycles"),
            format!("{} differ{}", diff.join(", "), leftovers(&model, &boot)),
        );
    }
    pass(format!("{CYCLES} plug/unplug cycles: the host's tables are as at boot"))
}

/// Holds every thread's `set_up` until all have returned, so the calls of the threads
/// overlap for certain (a strategy that keeps per-request state in a global fails).
struct Gate<'a> {
    inner: &'a StrategyInstance,
    barrier: &'a Barrier,
}

impl StrategyHandle for Gate<'_> {
    fn instance_name(&self) -> &str {
        self.inner.instance_name()
    }
    fn plugin_name(&self) -> &str {
        self.inner.plugin_name()
    }
    fn kinds(&self) -> RequestKinds {
        self.inner.kinds()
    }
    fn set_up(&self, request: &Request<'_>) -> Result<Restrictions, PluginError> {
        let r = self.inner.set_up(request);
        self.barrier.wait();
        r
    }
    fn construct(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut ModelOps<'_>) -> Result<(), PluginError> {
        self.inner.construct(request, restrictions, ops)
    }
    fn tear_down(&self, request: &Request<'_>, restrictions: &Restrictions, ops: &mut ModelOps<'_>) -> Result<(), PluginError> {
        self.inner.tear_down(request, restrictions, ops)
    }
}

/// Threads the `threads` check runs at once.
pub const THREADS: usize = 4;

fn threads(s: &StrategyInstance) -> Outcome {
    let Some(&first) = plugs(s).first() else { return skip("the plugin claims no kind") };
    let plug_of = |i: usize| shifted(first, i, GIB);
    // What each plug gives when made alone.
    let mut expected = Vec::new();
    for i in 0..THREADS {
        let mut m = machine(AutoOnline::Online);
        if let Err(e) = plug(&mut m, s, plug_of(i)) {
            return fail("the hot-plug to succeed single-threaded", e);
        }
        expected.push(m);
    }
    let barrier = Barrier::new(THREADS);
    let results: Vec<Result<Model, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let gate = Gate { inner: s, barrier: &barrier };
                scope.spawn(move || {
                    let mut m = machine(AutoOnline::Online);
                    plug(&mut m, &gate, plug_of(i)).map(|()| m)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("the thread panicked".into()))).collect()
    });
    for (i, (got, want)) in results.into_iter().zip(&expected).enumerate() {
        match got {
            Err(e) => return fail(format!("thread {i}'s hot-plug to succeed as it does alone"), e),
            Ok(m) => {
                let diff = m.differences(want);
                if !diff.is_empty() {
                    return fail(format!("thread {i}'s model to equal the single-threaded one"), format!("{} differ", diff.join(", ")));
                }
            }
        }
    }
    pass(format!("{THREADS} threads hot-plugging at once on their own models: each as when alone"))
}

/// Four nodes: 0 and 1 as in [`machine`], node 2 a CPU-less, slower tier with 4 GiB of its
/// own (a CXL expander, 20 from node 1 and 32 from node 0), node 3 CPU-less and empty (an
/// expander not yet populated), farthest from every node.
fn expander_spec() -> MachineSpec {
    let mut spec = MachineSpec::new(machine_geometry(), &[(0, 0, 8 * GIB), (1, 8 * GIB, 8 * GIB), (2, 16 * GIB, 4 * GIB)]);
    spec.nodes.push(NodeSpec::new(3, Vec::new()));
    let far = NodeFacts { has_cpus: false, tier: 22 };
    for node in spec.nodes.iter_mut().filter(|n| n.id >= 2) {
        node.facts = far;
    }
    spec.nodes[2].distance = [(0, 32), (1, 20)].into_iter().collect();
    spec.nodes[3].distance = [(0, 40), (1, 40), (2, 40)].into_iter().collect();
    spec
}

/// The plugs of [`memmap_node`]: 1 GiB on each node with memory, of each kind claimed.
fn node_plugs(s: &StrategyInstance) -> Vec<Plug> {
    let mut out = Vec::new();
    for (kind, base) in [(RequestKind::SYSTEM_RAM, 32 * GIB), (RequestKind::DEVICE, 128 * GIB)] {
        if s.info.kinds.contains(kind) {
            out.extend((0..3).map(|nid| Plug { kind, start: base + u64::from(nid) * 32 * GIB, size: GIB, nid }));
        }
    }
    out
}

fn memmap_node(subject: &Subject) -> Outcome {
    let spec = expander_spec();
    // An instance of its own: its Host must answer distances on this machine.
    let instance = match subject.instance_on(&spec) {
        Ok(i) => i,
        Err(e) => return fail("an instance on the expander machine", format!("the constructor failed: {e}")),
    };
    let s = &instance;
    let mut model = Model::boot(&spec).expect("the expander machine boots");
    let node_ids: Vec<u32> = model.nodes.map().keys().copied().collect();
    let mut placed = Vec::new();
    for p in node_plugs(s) {
        let point = Point { kind: p.kind, start: p.start, size: p.size, nid: p.nid };
        let asked = match call_set_up(s, &model, &point) {
            Ok(r) => r,
            Err(e) => return fail(format!("an answer to {p}"), error_text(&e)),
        };
        // Device memmap always comes from the pgmap's node (the host refuses memmap_nodes there).
        let payers = if p.kind == RequestKind::DEVICE {
            vec![p.nid]
        } else {
            let fresh = model.nodes.get(&p.nid).is_some_and(|n| !n.online);
            model.payer_nodes(&memmap_payers(&asked, p.nid, fresh))
        };
        let before: Vec<u64> = node_ids.iter().map(|&n| model.allocatable(n)).collect();
        let taken = |m: &Model| -> Vec<u64> { node_ids.iter().map(|n| m.nodes.get(n).map_or(0, |n| n.memmap_taken)).collect() };
        let taken_before = taken(&model);
        if let Err(e) = plug(&mut model, s, p) {
            let hint = "(a strategy must ask nodes that have room: NodeInfo::free_pages)";
            return fail(format!("{p} to succeed with its memmap on the nodes asked, {payers:?} {hint}"), e);
        }
        let paid: Vec<(u32, u64)> = node_ids
            .iter()
            .zip(taken(&model).iter().zip(&taken_before))
            .map(|(&n, (&now, &was))| (n, now.saturating_sub(was)))
            .filter(|&(_, pages)| pages > 0)
            .collect();
        if let Some(&(n, pages)) = paid.iter().find(|(n, _)| !payers.contains(n)) {
            return fail(format!("{p}: memmap charged only to the nodes asked, {payers:?}"), format!("node {n} paid {pages} pages"));
        }
        // The first asked node with room for all of it pays all of it.
        let total: u64 = paid.iter().map(|&(_, pages)| pages).sum();
        let index = |n: u32| node_ids.iter().position(|&id| id == n).expect("payers are nodes of the machine");
        if let Some(&first) = payers.iter().find(|&&n| before[index(n)] >= total) {
            let by_first = paid.iter().find(|&&(n, _)| n == first).map_or(0, |&(_, pages)| pages);
            if by_first != total {
                return fail(
                    format!("{p}: all {total} memmap pages from node {first}, the first node asked with room"),
                    format!("{paid:?} (node, pages)"),
                );
            }
        }
        let on = if paid.is_empty() {
            "in the range".to_string()
        } else {
            paid.iter().map(|(n, pages)| format!("{pages} pages from node {n}")).collect::<Vec<_>>().join(" + ")
        };
        placed.push(format!("{} on node {}: {on}", p.kind.name(), p.nid));
    }
    if placed.is_empty() {
        return skip("the plugin claims no kind this check plugs");
    }
    pass(format!("memmap where asked: {}", placed.join(", ")))
}
