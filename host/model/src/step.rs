//! One typed step and the one way to run it: [`Model::apply`]. The runner, the
//! conformance suite, the fuzz targets and the property tests all build [`Step`]s and
//! call `apply`, so a new op is a new variant that each of them must handle before it
//! builds.

use std::borrow::Cow;

use hotplug_core::{errno, Driver};

use super::range::PhysRange;

use super::device::{MemremapOutcome, MemremapParams, MemunmapOutcome};
use super::error::ErrorCode;
use super::hotplug::{AddOutcome, AddParams, RemoveOutcome};
use super::online::BlocksOutcome;
use super::ops::StrategyLookup;
use super::policy::{AutoOnline, OnlinePolicy, OnlineType};
use super::units::format_size;
use super::virtio::{NewDevice, ResizeOutcome, Unmovable};
use super::{Model, Policy, StepError};

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Online,
    Offline,
    Remove,
    Memremap,
    Memunmap,
    /// virtio-mem: plug more of a device.
    Grow,
    /// virtio-mem: unplug from the end of a device.
    Shrink,
    /// Write runtime hotplug parameters (the ones the kernel lets you change after boot).
    Set,
}

impl Op {
    /// Every op, for generators that must cover them all (fuzz, property tests): they
    /// build a step for each with an exhaustive `match`, so a new op breaks their build.
    pub const ALL: [Op; 9] = [Op::Add, Op::Online, Op::Offline, Op::Remove, Op::Memremap, Op::Memunmap, Op::Grow, Op::Shrink, Op::Set];

    /// The op a config names.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// The name users type (`op = "add"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Online => "online",
            Op::Offline => "offline",
            Op::Remove => "remove",
            Op::Memremap => "memremap",
            Op::Memunmap => "memunmap",
            Op::Grow => "grow",
            Op::Shrink => "shrink",
            Op::Set => "set",
        }
    }
}

/// A step, with exactly the fields its op uses (addresses and sizes in bytes).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// add_memory by `driver` (dax/kmem trims the range inward to whole blocks).
    Add { start: u64, size: u64, node: u32, driver: Driver, device: Option<String>, strategy: String },
    /// Online every block of the range (all or none).
    Online { start: u64, size: u64, online_type: OnlineType },
    /// Offline every block of the range (all or none); `unmovable`: isolation fails.
    Offline { start: u64, size: u64, unmovable: bool },
    /// try_remove_memory of whole hot-adds.
    Remove { start: u64, size: u64 },
    /// memremap_pages of `pgmap`; `find_free`: its single range has no start yet and gets
    /// the region request_free_mem_region picks.
    Memremap { pgmap: MemremapParams, find_free: bool, strategy: String },
    /// memunmap_pages of the pgmap starting at `start`.
    Memunmap { start: u64 },
    /// virtio-mem: plug `size` more of `device` (a new device's region starts at
    /// `start`, `region_size` long, with `block_size` device blocks and a group `unit`).
    Grow {
        device: String,
        start: u64,
        size: u64,
        node: u32,
        unit: Option<u64>,
        region_size: Option<u64>,
        block_size: Option<u64>,
        strategy: String,
    },
    /// virtio-mem: unplug `size` of `device`; `unmovable`: no online page can be taken;
    /// `unmovable_ranges`: none in these.
    Shrink { device: String, size: u64, unmovable: bool, unmovable_ranges: Vec<PhysRange> },
    /// Write runtime parameters, in order (as `echo VALUE > FILE` would, one after another).
    Set { params: Vec<Param> },
}

/// A hotplug parameter the kernel lets a running system change, with its new value.
/// (`memory_hotplug.memmap_on_memory` is 0444 and `movable_node` a boot option: not here.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// /sys/devices/system/memory/auto_online_blocks (auto_online_blocks_store).
    AutoOnlineBlocks(AutoOnline),
    /// memory_hotplug.online_policy (a 0644 module parameter).
    OnlinePolicy(OnlinePolicy),
    /// memory_hotplug.auto_movable_ratio (0644).
    AutoMovableRatio(u32),
    /// memory_hotplug.auto_movable_numa_aware (0644).
    AutoMovableNumaAware(bool),
    /// vm.min_free_kbytes (min_free_kbytes_sysctl_handler): the value, kept as the user's,
    /// and the watermarks set from it.
    MinFreeKbytes(u64),
    /// /sys/kernel/mm/transparent_hugepage/enabled (enabled_store): khugepaged starts or
    /// stops, and min_free_kbytes is raised or recomputed.
    TransparentHugepage(super::watermarks::Thp),
}

impl Param {
    /// The parameter's name, as a `[machine]` key and a `set` step key spell it.
    pub fn name(self) -> &'static str {
        match self {
            Param::AutoOnlineBlocks(_) => "auto_online_blocks",
            Param::OnlinePolicy(_) => "online_policy",
            Param::AutoMovableRatio(_) => "auto_movable_ratio",
            Param::AutoMovableNumaAware(_) => "auto_movable_numa_aware",
            Param::MinFreeKbytes(_) => "min_free_kbytes",
            Param::TransparentHugepage(_) => "transparent_hugepage",
        }
    }

    /// The value as the kernel's file shows it.
    pub fn value(self) -> String {
        match self {
            Param::AutoOnlineBlocks(a) => a.as_str().to_string(),
            Param::OnlinePolicy(p) => p.as_str().to_string(),
            Param::AutoMovableRatio(r) => r.to_string(),
            Param::AutoMovableNumaAware(b) => if b { "Y" } else { "N" }.to_string(),
            Param::MinFreeKbytes(kb) => kb.to_string(),
            Param::TransparentHugepage(t) => t.as_str().to_string(),
        }
    }

    /// This parameter's current value on `model`.
    fn current(self, model: &Model) -> Param {
        let policy: &Policy = &model.policy;
        match self {
            Param::AutoOnlineBlocks(_) => Param::AutoOnlineBlocks(policy.auto_online_blocks),
            Param::OnlinePolicy(_) => Param::OnlinePolicy(policy.online_policy),
            Param::AutoMovableRatio(_) => Param::AutoMovableRatio(policy.auto_movable_ratio),
            Param::AutoMovableNumaAware(_) => Param::AutoMovableNumaAware(policy.auto_movable_numa_aware),
            Param::MinFreeKbytes(_) => Param::MinFreeKbytes(model.min_free_kbytes()),
            Param::TransparentHugepage(_) => Param::TransparentHugepage(policy.thp),
        }
    }
}

/// What a `set` step changed: each parameter with its value before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetOutcome {
    pub changed: Vec<(Param, Param)>,
}

impl Step {
    /// The op's config name.
    pub fn op(&self) -> Op {
        match self {
            Step::Add { .. } => Op::Add,
            Step::Online { .. } => Op::Online,
            Step::Offline { .. } => Op::Offline,
            Step::Remove { .. } => Op::Remove,
            Step::Memremap { .. } => Op::Memremap,
            Step::Memunmap { .. } => Op::Memunmap,
            Step::Grow { .. } => Op::Grow,
            Step::Shrink { .. } => Op::Shrink,
            Step::Set { .. } => Op::Set,
        }
    }

    /// The strategy instance the step calls, for ops that call one.
    pub fn strategy(&self) -> Option<&str> {
        match self {
            Step::Add { strategy, .. } | Step::Memremap { strategy, .. } | Step::Grow { strategy, .. } => Some(strategy),
            _ => None,
        }
    }

    /// The same step run with strategy `name` (a compare or `--strategy` run forces the
    /// strategy of add steps only).
    pub fn with_add_strategy(&self, name: &str) -> Step {
        let mut step = self.clone();
        if let Step::Add { strategy, .. } = &mut step {
            *strategy = name.to_string();
        }
        step
    }
}

/// The numbers a generated step is built from, any values at all (fuzz bytes, proptest
/// draws): [`Step::sample`] folds them into a [`SampleSpace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepSeed {
    pub op: Op,
    /// Which memory block of the space the step starts at.
    pub slot: u64,
    /// How many blocks it spans.
    pub blocks: u64,
    /// Picks the driver of an add, the online type of an online, the compound order of a
    /// memremap.
    pub choice: u64,
    /// Picks the strategy of an add or memremap; unmovable for an offline or shrink.
    pub flag: bool,
    /// How many subsections a memremap maps.
    pub subsections: u64,
}

/// Where generated steps land and which strategy instances they call.
#[derive(Debug, Clone)]
pub struct SampleSpace {
    /// First byte of the hot-plug window, and the window's size in blocks.
    pub base: u64,
    pub slots: u64,
    pub block_size: u64,
    /// Most blocks one step spans.
    pub max_blocks: u64,
    pub subsection_size: u64,
    /// Most subsections one memremap maps.
    pub max_subsections: u64,
    /// The virtio-mem device grow and shrink steps use, and where it starts.
    pub virtio_device: String,
    pub virtio_start: u64,
    /// System RAM strategy instances (`flag` picks between the first two).
    pub system_ram: Vec<String>,
    /// ZONE_DEVICE strategy instances (`flag` picks between the first two).
    pub device: Vec<String>,
}

impl Step {
    /// The step of `seed.op` that `seed` picks in `space`: how the fuzz targets and the
    /// property tests cover every op by construction (a new op fails to build here until
    /// it is generated).
    pub fn sample(seed: &StepSeed, space: &SampleSpace) -> Step {
        let slot = seed.slot % space.slots.max(1);
        let start = space.base + slot * space.block_size;
        let size = (seed.blocks % space.max_blocks.max(1) + 1) * space.block_size;
        // virtio-mem grows and shrinks by 1 to 3 blocks.
        let virtio_size = (seed.blocks % 3 + 1) * space.block_size;
        let pick = |names: &[String]| names.get(usize::from(seed.flag) % names.len().max(1)).cloned().unwrap_or_default();
        let three = (seed.choice % 3) as usize;
        match seed.op {
            Op::Add => Step::Add {
                start,
                size,
                node: 0,
                driver: [Driver::NONE, Driver::ACPI_DIMM, Driver::DAX_KMEM][three],
                device: Some(format!("dax{slot}.0")),
                strategy: pick(&space.system_ram),
            },
            Op::Online => {
                Step::Online { start, size, online_type: [OnlineType::Online, OnlineType::OnlineKernel, OnlineType::OnlineMovable][three] }
            }
            Op::Offline => Step::Offline { start, size, unmovable: seed.flag },
            Op::Remove => Step::Remove { start, size },
            Op::Grow => Step::Grow {
                device: space.virtio_device.clone(),
                start: space.virtio_start,
                size: virtio_size,
                node: 0,
                unit: None,
                region_size: None,
                block_size: None,
                strategy: space.system_ram.first().cloned().unwrap_or_default(),
            },
            Op::Shrink => {
                // Now and then a single unmovable sub-block inside the device's first blocks.
                let ranges = (seed.choice % 4 == 1)
                    .then(|| PhysRange::new(space.virtio_start + (seed.subsections % 64) * (2 << 20), 2 << 20))
                    .flatten()
                    .into_iter()
                    .collect();
                Step::Shrink { device: space.virtio_device.clone(), size: virtio_size, unmovable: seed.flag, unmovable_ranges: ranges }
            }
            Op::Set => Step::Set {
                params: vec![
                    Param::AutoOnlineBlocks(AutoOnline::ALL[(seed.slot % 4) as usize]),
                    Param::OnlinePolicy(OnlinePolicy::ALL[usize::from(seed.flag)]),
                ],
            },
            Op::Memremap => {
                let bytes = (seed.subsections % space.max_subsections.max(1) + 1) * space.subsection_size;
                Step::Memremap {
                    pgmap: MemremapParams {
                        ranges: PhysRange::new(start, bytes).into_iter().collect(),
                        nid: 0,
                        pgmap_type: hotplug_core::PgmapType::NONE,
                        vmemmap_shift: [0, 9, 18][three],
                        resource: None,
                        namespace: None,
                    },
                    find_free: false,
                    strategy: pick(&space.device),
                }
            }
            Op::Memunmap => Step::Memunmap { start },
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Added(AddOutcome),
    Blocks(BlocksOutcome),
    Removed(RemoveOutcome),
    Mapped(MemremapOutcome),
    Resized(ResizeOutcome),
    /// A virtio-mem request that got part of the way: the device keeps what changed.
    Partial(ResizeOutcome),
    Unmapped(MemunmapOutcome),
    Set(SetOutcome),
    Failed(StepError),
}

impl Outcome {
    /// "ok", "partial" or the error code's name.
    pub fn code(&self) -> String {
        match self {
            Outcome::Failed(e) => e.code.name(),
            Outcome::Partial(_) => "partial".to_string(),
            _ => "ok".to_string(),
        }
    }

    /// The error code, when the step failed.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Outcome::Failed(e) => Some(e.code),
            _ => None,
        }
    }
}

/// A resize that reached its size, or one that got part of the way.
fn resized(out: ResizeOutcome) -> Outcome {
    if out.complete() {
        Outcome::Resized(out)
    } else {
        Outcome::Partial(out)
    }
}

impl Model {
    /// The step as it runs on this model now: a memremap without `start` gets the region
    /// request_free_mem_region would pick (failing that, it keeps start 0 and fails on
    /// its own checks). Every other step is itself, borrowed.
    pub fn resolve_step<'s>(&self, step: &'s Step) -> Cow<'s, Step> {
        let Step::Memremap { pgmap, find_free: true, strategy } = step else { return Cow::Borrowed(step) };
        let Some(first) = pgmap.ranges.first() else { return Cow::Borrowed(step) };
        let Ok(start) = self.find_free_region(first.size()) else { return Cow::Borrowed(step) };
        let Some(found) = first.moved_to(start) else { return Cow::Borrowed(step) };
        let mut pgmap = pgmap.clone();
        pgmap.ranges[0] = found;
        // request_free_mem_region inserts the region it found.
        pgmap.resource.get_or_insert_with(|| "device private memory".to_string());
        Cow::Owned(Step::Memremap { pgmap, find_free: false, strategy: strategy.clone() })
    }

    /// Run one step as the kernel would, each op one transaction: a failed step leaves
    /// the model exactly as it was. The only way anything runs a step.
    pub fn apply(&mut self, step: &Step, strategies: &dyn StrategyLookup) -> Outcome {
        let step = self.resolve_step(step);
        let strategy = |name: &str| {
            strategies.strategy(name).ok_or_else(|| StepError::kernel(errno::EINVAL, format!("strategy \"{name}\" is not loaded")))
        };
        let result = match step.as_ref() {
            Step::Add { start: 0, size: 0, node, driver: Driver::DAX_KMEM, device: Some(device), strategy: name } => {
                strategy(name).and_then(|s| self.kmem_from_device_dax(device, *node, s, strategies).map(Outcome::Added))
            }
            Step::Add { start, size, node, driver, device, strategy: name } => strategy(name).and_then(|s| {
                let (start, size) = self.driver_range(*driver, *start, *size)?;
                self.add_memory(&AddParams::for_driver(start, size, *node, *driver, device.clone()), s).map(Outcome::Added)
            }),
            Step::Online { start, size, online_type } => self.online_range(*start, *size, *online_type).map(Outcome::Blocks),
            Step::Offline { start, size, unmovable } => self.offline_range(*start, *size, *unmovable).map(Outcome::Blocks),
            Step::Remove { start, size } => self.remove_memory(*start, *size, strategies).map(Outcome::Removed),
            // No free region was found (resolve_step kept the step): request_free_mem_region's ERANGE.
            Step::Memremap { pgmap, find_free: true, .. } => Err(self
                .find_free_region(pgmap.ranges.first().map_or(0, |r| r.size()))
                .err()
                .unwrap_or_else(|| StepError::kernel(errno::ERANGE, "no free region for the pgmap in the physical address space"))),
            Step::Memremap { pgmap, strategy: name, .. } => strategy(name).and_then(|s| self.memremap(pgmap, s).map(Outcome::Mapped)),
            Step::Memunmap { start } => self.memunmap(*start, strategies).map(Outcome::Unmapped),
            Step::Grow { device, start, size, node, unit, region_size, block_size, strategy: name } => strategy(name).and_then(|s| {
                // A start of 0 means "not given" for a device that already exists.
                let start = (*start != 0 || self.virtio.get(device).is_none()).then_some(*start);
                let new = NewDevice { start, region_size: *region_size, block_size: *block_size, unit: *unit };
                self.virtio_grow(device, new, *size, *node, s).map(resized)
            }),
            Step::Shrink { device, size, unmovable, unmovable_ranges } => {
                let unmovable = Unmovable { all: *unmovable, ranges: unmovable_ranges };
                self.virtio_shrink(device, *size, unmovable, strategies).map(resized)
            }
            Step::Set { params } => Ok(Outcome::Set(self.set_params(params))),
        };
        result.unwrap_or_else(Outcome::Failed)
    }

    /// Write `params` in order; the values were checked when the step was built, so a
    /// write cannot fail (the kernel's store functions refuse only unparsable text).
    fn set_params(&mut self, params: &[Param]) -> SetOutcome {
        let mut changed = Vec::with_capacity(params.len());
        for &p in params {
            changed.push((p.current(self), p));
            let policy = &mut self.policy;
            match p {
                Param::AutoOnlineBlocks(a) => policy.auto_online_blocks = a,
                Param::OnlinePolicy(o) => policy.online_policy = o,
                Param::AutoMovableRatio(r) => policy.auto_movable_ratio = r,
                Param::AutoMovableNumaAware(b) => policy.auto_movable_numa_aware = b,
                Param::MinFreeKbytes(kb) => self.write_min_free_kbytes(kb),
                Param::TransparentHugepage(t) => self.write_thp_enabled(t),
            }
        }
        SetOutcome { changed }
    }

    /// `daxctl reconfigure-device --mode=system-ram`: the device-dax device `device` (a
    /// pgmap an earlier memremap made, whose data region bears that name) is unbound from
    /// device_dax (its pgmap unmapped, its claim released) and bound to dax/kmem, which
    /// adds its range trimmed to whole blocks (dev_dax_kmem_probe). One transaction: a
    /// failed add leaves the device mapped as it was.
    fn kmem_from_device_dax(
        &mut self,
        device: &str,
        node: u32,
        strategy: &dyn super::ops::StrategyHandle,
        strategies: &dyn StrategyLookup,
    ) -> Result<AddOutcome, StepError> {
        let page = self.geometry.page_size();
        let found = self.pgmaps.values().find_map(|pg| {
            let r = pg.ranges.iter().find(|r| r.resource_id.and_then(|id| self.resources.get(id)).is_some_and(|res| res.name == device))?;
            let res = self.resources.get(r.resource_id?)?;
            Some((pg.id, pg.start_pfn() * page, res.start, res.end - res.start + 1))
        });
        let Some((pgmap_id, pgmap_start, start, size)) = found else {
            return Err(StepError::kernel(
                errno::ENODEV,
                format!("no device-dax device {device}: memremap one with resource = \"{device}\" first"),
            ));
        };
        let mut outcome = self.transaction(|m| {
            // The namespace's own claim is the namespace's, not device_dax's: it stays.
            m.pgmaps.update(&pgmap_id, |pg| pg.ranges.iter_mut().for_each(|r| r.namespace_id = None));
            m.memunmap_locked(pgmap_start, strategies)?;
            let (start, size) = m.driver_range(Driver::DAX_KMEM, start, size)?;
            m.add_memory_resource(&AddParams::for_driver(start, size, node, Driver::DAX_KMEM, Some(device.to_string())), strategy)
        })?;
        (outcome.onlined, outcome.online_error) = self.auto_online(&outcome.blocks);
        Ok(outcome)
    }

    /// The range a driver hands to add_memory: dax/kmem trims the device's range inward to
    /// whole memory blocks (EINVAL when none is left); the others add it as given.
    fn driver_range(&self, driver: Driver, start: u64, size: u64) -> Result<(u64, u64), StepError> {
        if driver != Driver::DAX_KMEM {
            return Ok((start, size));
        }
        let bs = self.geometry.g.memory_block_size;
        let first = start.div_ceil(bs) * bs;
        let end = start.saturating_add(size) / bs * bs;
        if end <= first {
            return Err(StepError::kernel(
                errno::EINVAL,
                format!("dax/kmem: {start:#x}+{size:#x} holds no whole {} memory block", format_size(bs)),
            ));
        }
        Ok((first, end - first))
    }
}
