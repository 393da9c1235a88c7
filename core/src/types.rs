//! Plain `#[repr(C)]` data that crosses the plugin boundary.
//!
//! Contract 1.1.0. A field added to any of these types costs a new contract version and a
//! frozen copy of the old one (see [`crate::compat`] and docs/abi.md). Codes that may grow
//! (request kinds, drivers, pgmap types, flags, option types) are open `u32`/`u64`
//! newtypes with named constants, so a new value never changes a layout.
//!
//! New in 1.1: [`NodeInfo::has_cpus`] and [`NodeInfo::tier`], [`Restrictions::memmap_nodes`],
//! [`OptionSpec`] (a plugin's declared options) and [`StridedRange`] (for the strided
//! `MemmapOps` calls).

use abi_stable::std_types::{ROption, RSlice, RStr, RString, RVec};
use abi_stable::StableAbi;

/// The contract version a library was built against, readable without abi_stable.
///
/// The export macro emits it as the plain symbol [`CONTRACT_VERSION_SYMBOL`], so the
/// host can name both versions in one line before abi_stable checks any layout.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContractVersion {
    /// Guards against an unrelated library that happens to export the same name.
    pub magic: u64,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// `"HOTPLUG1"` in ASCII: the value of [`ContractVersion::magic`].
pub const CONTRACT_MAGIC: u64 = u64::from_le_bytes(*b"HOTPLUG1");

/// The name of the plain symbol holding a plugin's [`ContractVersion`].
pub const CONTRACT_VERSION_SYMBOL: &str = "HOTPLUG_CONTRACT_VERSION";

impl ContractVersion {
    /// The contract this crate defines.
    pub const CURRENT: ContractVersion = ContractVersion::new(1, 1, 0);

    /// A version with the right magic.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        ContractVersion { magic: CONTRACT_MAGIC, major, minor, patch }
    }

    /// A host of `self` can load a plugin built for `plugin` when the majors agree and the
    /// plugin's minor is not newer: the host keeps the layouts of every older minor of its
    /// major ([`crate::compat`]), but cannot know what a newer minor added.
    pub fn accepts(&self, plugin: &ContractVersion) -> bool {
        plugin.magic == CONTRACT_MAGIC && plugin.major == self.major && plugin.minor <= self.minor
    }
}

impl std::fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What a request asks for: hot-added System RAM or mapped device memory.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKind(pub u32);

impl RequestKind {
    /// `add_memory()`: System RAM that may be onlined into a zone.
    pub const SYSTEM_RAM: RequestKind = RequestKind(0);
    /// `memremap_pages()`: ZONE_DEVICE memory with a dev_pagemap.
    pub const DEVICE: RequestKind = RequestKind(1);

    /// The bit this kind occupies in a [`RequestKinds`] mask (`None` past 63).
    pub fn bit(self) -> Option<RequestKinds> {
        1u64.checked_shl(self.0).map(RequestKinds)
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::SYSTEM_RAM => "system-ram",
            RequestKind::DEVICE => "device",
            _ => "unknown",
        }
    }
}

/// An open bitmask of request kinds; bits a host does not know are ignored.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RequestKinds(pub u64);

impl RequestKinds {
    pub const SYSTEM_RAM: RequestKinds = RequestKinds(1 << 0);
    pub const DEVICE: RequestKinds = RequestKinds(1 << 1);

    /// Whether `kind` is in the mask.
    pub fn contains(self, kind: RequestKind) -> bool {
        kind.bit().is_some_and(|b| self.0 & b.0 != 0)
    }

    /// Both masks together.
    pub const fn union(self, other: RequestKinds) -> RequestKinds {
        RequestKinds(self.0 | other.0)
    }

    /// The names of the kinds this contract defines that are in the mask, in order
    /// (`["system-ram", "device"]`), for programs.
    pub fn list(self) -> Vec<&'static str> {
        [RequestKind::SYSTEM_RAM, RequestKind::DEVICE].into_iter().filter(|k| self.contains(*k)).map(RequestKind::name).collect()
    }

    /// The kinds this contract defines that are in the mask, for messages:
    /// `"system-ram, device"`, or `"nothing"`.
    pub fn names(self) -> String {
        let names = self.list();
        if names.is_empty() {
            "nothing".to_string()
        } else {
            names.join(", ")
        }
    }
}

/// Who asked for the memory: sets the resource name and the memory group, as in the kernel.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Driver(pub u32);

impl Driver {
    /// A plain `add_memory()` caller ("System RAM", no group): the probe interface.
    pub const NONE: Driver = Driver(0);
    /// ACPI memory device: "System RAM", one static group per device.
    pub const ACPI_DIMM: Driver = Driver(1);
    /// virtio-mem: "System RAM (virtio_mem)", a dynamic group.
    pub const VIRTIO_MEM: Driver = Driver(2);
    /// dax/kmem: "System RAM (kmem)" under the dax device, one static group.
    pub const DAX_KMEM: Driver = Driver(3);

    /// Every driver this contract names, in the order messages list them.
    pub const ALL: [Driver; 4] = [Driver::NONE, Driver::ACPI_DIMM, Driver::VIRTIO_MEM, Driver::DAX_KMEM];

    /// The name users type in a config.
    pub fn name(self) -> &'static str {
        match self {
            Driver::NONE => "none",
            Driver::ACPI_DIMM => "acpi-dimm",
            Driver::VIRTIO_MEM => "virtio-mem",
            Driver::DAX_KMEM => "dax-kmem",
            _ => "unknown",
        }
    }

    /// The driver a config names.
    pub fn from_name(name: &str) -> Option<Driver> {
        Driver::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// The kernel's `enum memory_type` for a dev_pagemap (0 = not a device request).
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PgmapType(pub u32);

impl PgmapType {
    pub const NONE: PgmapType = PgmapType(0);
    /// MEMORY_DEVICE_PRIVATE: no direct map, pages migrate to RAM on CPU access.
    pub const PRIVATE: PgmapType = PgmapType(1);
    /// MEMORY_DEVICE_COHERENT: device memory the CPU can access coherently.
    pub const COHERENT: PgmapType = PgmapType(2);
    /// MEMORY_DEVICE_FS_DAX: persistent memory under a DAX file system.
    pub const FS_DAX: PgmapType = PgmapType(3);
    /// MEMORY_DEVICE_GENERIC: device-dax.
    pub const GENERIC: PgmapType = PgmapType(4);
    /// MEMORY_DEVICE_PCI_P2PDMA: PCI peer-to-peer BAR memory.
    pub const PCI_P2PDMA: PgmapType = PgmapType(5);

    /// Every pgmap type a device request may carry (all but `NONE`).
    pub const ALL: [PgmapType; 5] = [PgmapType::PRIVATE, PgmapType::COHERENT, PgmapType::FS_DAX, PgmapType::GENERIC, PgmapType::PCI_P2PDMA];

    /// The pgmap type a config or an option names (`NONE` is not one).
    pub fn from_name(name: &str) -> Option<PgmapType> {
        PgmapType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The name users type in a config.
    pub fn name(self) -> &'static str {
        match self {
            PgmapType::NONE => "none",
            PgmapType::PRIVATE => "private",
            PgmapType::COHERENT => "coherent",
            PgmapType::FS_DAX => "fsdax",
            PgmapType::GENERIC => "generic",
            PgmapType::PCI_P2PDMA => "p2pdma",
            _ => "unknown",
        }
    }
}

/// Which architecture rule decides memmap-on-memory eligibility.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arch(pub u32);

impl Arch {
    /// x86_64: vmemmap mapped in PMDs, so memmap on memory needs whole PMDs of memmap.
    pub const X86_64: Arch = Arch(0);
    /// arm64: the same PMD rule as x86_64.
    pub const ARM64: Arch = Arch(1);
    /// ppc64 with the radix MMU: page-aligned memmap suffices.
    pub const PPC64_RADIX: Arch = Arch(2);

    /// Every architecture the contract names.
    pub const ALL: [Arch; 3] = [Arch::X86_64, Arch::ARM64, Arch::PPC64_RADIX];

    /// The architecture a config names.
    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The name users type in a config.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::ARM64 => "arm64",
            Arch::PPC64_RADIX => "ppc64-radix",
            _ => "unknown",
        }
    }
}

/// The machine's geometry, in bytes unless named otherwise.
///
/// Passed in every request so a plugin never guesses a constant the host configured.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub page_size: u64,
    /// `sizeof(struct page)`: 64 on x86_64, more on debug kernels.
    pub struct_page_size: u64,
    pub section_size: u64,
    /// The ZONE_DEVICE hot-plug granule (2 MiB on x86_64).
    pub subsection_size: u64,
    pub memory_block_size: u64,
    /// The size one page-middle-directory entry maps (2 MiB on x86_64).
    pub pmd_size: u64,
    /// Pages per pageblock (512 with THP on x86_64).
    pub pageblock_pages: u64,
    pub max_phys_bits: u32,
    pub arch: Arch,
}

impl Geometry {
    /// Pages in one memory block.
    pub fn pages_per_block(&self) -> u64 {
        self.memory_block_size / self.page_size
    }

    /// Pages in one section.
    pub fn pages_per_section(&self) -> u64 {
        self.section_size / self.page_size
    }

    /// Bytes of `struct page` needed to describe `pages` pages.
    pub fn memmap_bytes(&self, pages: u64) -> u64 {
        pages.saturating_mul(self.struct_page_size)
    }

    /// Byte address to page frame number (floor).
    pub fn pfn(&self, addr: u64) -> u64 {
        addr / self.page_size
    }
}

/// A half-open range of page frame numbers `[start, start + count)`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PfnRange {
    pub start: u64,
    pub count: u64,
}

impl PfnRange {
    /// A range from its first pfn and its length.
    pub const fn new(start: u64, count: u64) -> Self {
        PfnRange { start, count }
    }

    /// One past the last pfn, or `None` when that overflows.
    pub fn end(&self) -> Option<u64> {
        self.start.checked_add(self.count)
    }

    /// Whether `inner` lies wholly inside `self` (empty ranges inside anything that
    /// contains their start).
    pub fn contains_range(&self, inner: &PfnRange) -> bool {
        match (self.end(), inner.end()) {
            (Some(end), Some(inner_end)) => inner.start >= self.start && inner_end <= end,
            _ => false,
        }
    }
}

/// One NUMA node as the host sees it when the request is made.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct NodeInfo<'a> {
    pub id: u32,
    /// The node's boot RAM.
    pub boot_ranges: RSlice<'a, PfnRange>,
    /// Pages the node can still give to memmap (see the allocation rule in docs/model.md).
    pub free_pages: u64,
    /// Pages present in the node's zones now.
    pub present_pages: u64,
    /// Whether the node has CPUs (a CXL or other memory-only node has none). New in 1.1.
    pub has_cpus: bool,
    /// The node's memory tier: lower is faster (the kernel's DRAM is tier 4, as
    /// `/sys/devices/virtual/memory_tiering/memory_tier4` shows). New in 1.1.
    pub tier: u32,
}

/// What the host asks a strategy about: one hot-add (or one device range).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct Request<'a> {
    pub kind: RequestKind,
    pub start_pfn: u64,
    pub nr_pages: u64,
    /// The node the memory belongs to.
    pub nid: u32,
    pub driver: Driver,
    /// The memory group the range joins (0: none).
    pub group_id: u64,
    /// Device requests: the dev_pagemap type (NONE for System RAM).
    pub pgmap_type: PgmapType,
    /// Device requests: the compound-page order of device pages (0: base pages).
    pub vmemmap_shift: u32,
    /// Device requests: the host's id for the dev_pagemap, for `init_device_pages`.
    pub pgmap_id: u64,
    /// Device requests with several ranges: which one this is (the altmap only on 0).
    pub range_index: u32,
    pub range_count: u32,
    pub geometry: Geometry,
    pub nodes: RSlice<'a, NodeInfo<'a>>,
}

impl Request<'_> {
    /// The requested pfns.
    pub fn range(&self) -> PfnRange {
        PfnRange::new(self.start_pfn, self.nr_pages)
    }

    /// The node `id`, if the machine has it.
    pub fn node(&self, id: u32) -> Option<&NodeInfo<'_>> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// The kernel's `struct vmem_altmap`: pages at the start of a range that hold its memmap.
///
/// All counts are in pages. The host fills `align` and `alloc` as allocation leaves them.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Altmap {
    /// First pfn the altmap covers: the start of the range.
    pub base_pfn: u64,
    /// The last pfn, inclusive, as the kernel keeps it (informational: not used to allocate).
    pub end_pfn: u64,
    /// Head pages left untouched (an nvdimm info block).
    pub reserve: u64,
    /// Pages that may hold memmap.
    pub free: u64,
    /// Pages skipped to align allocations.
    pub align: u64,
    /// Pages handed out.
    pub alloc: u64,
}

/// Bits of [`Restrictions::flags`]. Unknown bits are refused by the host's validator.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RestrictionFlags(pub u64);

impl RestrictionFlags {
    /// Create memory-block devices (System RAM only), so blocks can be onlined.
    pub const MEMORY_BLOCK_DEVICES: RestrictionFlags = RestrictionFlags(1 << 0);
    /// MHP_MEMMAP_ON_MEMORY: the altmap describes the first memory block; the host
    /// repeats it at the start of every block of the add (Linux 6.8+ per-block altmaps).
    pub const MEMMAP_ON_MEMORY: RestrictionFlags = RestrictionFlags(1 << 1);
    /// Device private memory: pages added without a direct (linear) mapping.
    pub const NO_DIRECT_MAP: RestrictionFlags = RestrictionFlags(1 << 2);
    /// Every bit the contract defines (the same in 1.0 and 1.1).
    pub const ALL: RestrictionFlags = RestrictionFlags(0b111);

    pub const fn empty() -> Self {
        RestrictionFlags(0)
    }

    pub const fn contains(self, other: RestrictionFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: RestrictionFlags) -> RestrictionFlags {
        RestrictionFlags(self.0 | other.0)
    }
}

/// What `set_up` returns: the kernel's `mhp_params`/`mhp_restrictions`, made explicit.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Restrictions {
    pub flags: RestrictionFlags,
    /// Pages of the range itself that hold its memmap.
    pub altmap: ROption<Altmap>,
    /// Take memmap from this node's free memory instead of the range's own node.
    pub memmap_nid: ROption<u32>,
    /// Why the strategy chose this (e.g. why memmap on memory fell back); shown in reports.
    pub note: RString,
    /// Nodes that may pay for the memmap not held by an altmap, in order of preference:
    /// each allocation comes from the first listed node with room; when none has room
    /// the step fails with ENOMEM. Empty: `memmap_nid`, else the range's own node. Set
    /// this or `memmap_nid`, not both. New in 1.1.
    pub memmap_nodes: RVec<u32>,
}

impl Restrictions {
    /// No flags, no altmap: memmap from the range's node.
    pub fn new(flags: RestrictionFlags) -> Self {
        Restrictions { flags, altmap: ROption::RNone, memmap_nid: ROption::RNone, note: RString::new(), memmap_nodes: RVec::new() }
    }

    /// The same, with the memmap paid by the first of `nodes` that has room.
    pub fn with_memmap_nodes(mut self, nodes: impl IntoIterator<Item = u32>) -> Self {
        self.memmap_nodes = nodes.into_iter().collect();
        self
    }
}

/// `count` equal runs of `len` pages, the `i`-th starting at `start + i * stride`: the
/// memmap of many memory blocks in one call, instead of one call per block.
///
/// The host treats it exactly as the `count` single-range calls it stands for.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StridedRange {
    pub start: u64,
    /// Pages in each run.
    pub len: u64,
    /// Pages from the start of one run to the start of the next.
    pub stride: u64,
    /// How many runs.
    pub count: u64,
}

impl StridedRange {
    /// `count` runs of `len` pages, `stride` pages apart, from `start`.
    pub const fn new(start: u64, len: u64, stride: u64, count: u64) -> Self {
        StridedRange { start, len, stride, count }
    }

    /// The `i`-th run, or `None` past the last or when its end overflows.
    pub fn run(&self, i: u64) -> Option<PfnRange> {
        if i >= self.count {
            return None;
        }
        let start = self.start.checked_add(i.checked_mul(self.stride)?)?;
        start.checked_add(self.len)?;
        Some(PfnRange::new(start, self.len))
    }

    /// The pfns from the first run's start to the last run's end, or `None` when the
    /// range is empty (`len` or `count` 0) or overflows.
    pub fn span(&self) -> Option<PfnRange> {
        if self.len == 0 || self.count == 0 {
            return None;
        }
        let last = self.run(self.count - 1)?;
        Some(PfnRange::new(self.start, last.end()? - self.start))
    }
}

/// The type of a declared option: an open code (a newer plugin's unknown type is shown
/// as "unknown" and not checked).
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OptionType(pub u32);

impl OptionType {
    /// `true` or `false`.
    pub const BOOL: OptionType = OptionType(0);
    /// A TOML integer.
    pub const INTEGER: OptionType = OptionType(1);
    /// A TOML float (an integer is accepted too).
    pub const FLOAT: OptionType = OptionType(2);
    /// Any TOML string.
    pub const STRING: OptionType = OptionType(3);
    /// One of the strings in [`OptionSpec::choices`].
    pub const CHOICE: OptionType = OptionType(4);
    /// An array of TOML integers (e.g. node ids).
    pub const INTEGER_LIST: OptionType = OptionType(5);
    /// A size: an integer of bytes, or a string with a binary unit (`"2MiB"`).
    pub const SIZE: OptionType = OptionType(6);

    /// The name shown by `host plugins --verbose`.
    pub fn name(self) -> &'static str {
        match self {
            OptionType::BOOL => "bool",
            OptionType::INTEGER => "integer",
            OptionType::FLOAT => "float",
            OptionType::STRING => "string",
            OptionType::CHOICE => "choice",
            OptionType::INTEGER_LIST => "integer list",
            OptionType::SIZE => "size",
            _ => "unknown",
        }
    }
}

/// One option a plugin declares (`Strategy::OPTIONS`): the host refuses a `[[strategy]]`
/// whose `options` name a key no spec declares, or give a value of the wrong type,
/// before the run starts. Static data: it lives as long as the library, which is never
/// unloaded.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// The key, as written in the `options` table.
    pub name: RStr<'static>,
    pub ty: OptionType,
    /// [`OptionType::CHOICE`]: the allowed strings, separated by `|` (e.g. `"strict|force"`).
    pub choices: RStr<'static>,
    /// The value used when the key is absent, as TOML text (`"\"strict\""`, `"true"`), or
    /// a description in parentheses when there is no literal default (`"(the range's node)"`).
    pub default: RStr<'static>,
    /// One line for `host plugins --verbose`.
    pub help: RStr<'static>,
}

impl OptionSpec {
    /// An option of type `ty` (for [`OptionType::CHOICE`] use [`OptionSpec::choice`]).
    pub const fn new(name: &'static str, ty: OptionType, default: &'static str, help: &'static str) -> Self {
        OptionSpec {
            name: RStr::from_str(name),
            ty,
            choices: RStr::from_str(""),
            default: RStr::from_str(default),
            help: RStr::from_str(help),
        }
    }

    /// A string option that must be one of `choices` (`|`-separated).
    pub const fn choice(name: &'static str, choices: &'static str, default: &'static str, help: &'static str) -> Self {
        OptionSpec {
            name: RStr::from_str(name),
            ty: OptionType::CHOICE,
            choices: RStr::from_str(choices),
            default: RStr::from_str(default),
            help: RStr::from_str(help),
        }
    }

    /// The allowed strings of a [`OptionType::CHOICE`] option.
    pub fn choice_list(&self) -> impl Iterator<Item = &'static str> {
        let text: &'static str = self.choices.as_str();
        text.split('|').filter(|c| !c.is_empty())
    }
}

/// How `init_device_pages` sets up each device page (memmap_init_zone_device).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DevicePageInit {
    pub nid: u32,
    pub pgmap_id: u64,
    /// Pages are grouped in compounds of `1 << compound_order` (the pgmap's vmemmap_shift).
    pub compound_order: u32,
    /// Initial reference count (0 for private and coherent, 1 otherwise in 6.12).
    pub refcount: u32,
}

/// An error a plugin returns: an errno the step fails with (0: none fits) and a message.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    pub errno: i32,
    pub message: RString,
}

impl PluginError {
    /// An error without a specific errno.
    pub fn msg(message: impl Into<String>) -> Self {
        PluginError { errno: 0, message: RString::from(message.into()) }
    }

    /// An error the step reports as `errno` (e.g. [`errno::ENXIO`]).
    pub fn errno(errno: i32, message: impl Into<String>) -> Self {
        PluginError { errno, message: RString::from(message.into()) }
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}

/// What a plugin says about itself.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: RString,
    pub version: RString,
    pub contract: ContractVersion,
    /// The request kinds `set_up` handles.
    pub kinds: RequestKinds,
    /// Reserved: 0 (contract 1.1 defines no bits).
    pub flags: u64,
}

/// `"a, b or c"`: the names a message offers, from one of the `ALL` lists.
pub fn or_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Linux errno values a strategy may report (x86_64 numbering).
pub mod errno {
    pub const ENOENT: i32 = 2;
    pub const EINTR: i32 = 4;
    pub const ENXIO: i32 = 6;
    pub const E2BIG: i32 = 7;
    pub const ENOMEM: i32 = 12;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const ENOSPC: i32 = 28;
    pub const ERANGE: i32 = 34;
    pub const EOPNOTSUPP: i32 = 95;
    pub const EHWPOISON: i32 = 133;

    /// Every errno listed here, with its name: the one table both directions read.
    pub const ALL: [(i32, &str); 13] = [
        (ENOENT, "ENOENT"),
        (EINTR, "EINTR"),
        (ENXIO, "ENXIO"),
        (E2BIG, "E2BIG"),
        (ENOMEM, "ENOMEM"),
        (EBUSY, "EBUSY"),
        (EEXIST, "EEXIST"),
        (ENODEV, "ENODEV"),
        (EINVAL, "EINVAL"),
        (ENOSPC, "ENOSPC"),
        (ERANGE, "ERANGE"),
        (EOPNOTSUPP, "EOPNOTSUPP"),
        (EHWPOISON, "EHWPOISON"),
    ];

    /// The symbolic name of an errno (e.g. "ENOMEM"), or `None` for one not listed.
    pub fn name(errno: i32) -> Option<&'static str> {
        ALL.iter().find(|(e, _)| *e == errno).map(|(_, n)| *n)
    }

    /// The errno for a symbolic name.
    pub fn from_name(name: &str) -> Option<i32> {
        ALL.iter().find(|(_, n)| *n == name).map(|(e, _)| *e)
    }
}
