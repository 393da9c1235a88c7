//! The TOML scenario file: a machine, named strategy instances, and steps.
//!
//! Names follow DESIGN section 5. Unknown keys are refused, and every error carries the
//! file, line and column so a user can jump straight to it.

pub mod size;
mod words;

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use crate::model::policy::{AutoOnline, OnlinePolicy, OnlineType};
pub use crate::model::step::Op;
pub use crate::model::units::format_size;
pub use size::{parse_size, Size};

/// Configs larger than this are refused before parsing: 16 MiB holds a generated
/// scenario of 100,000 steps (about 5 MB) three times over, and bounds what a pipe or
/// `/dev/zero` can make the host read.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// A config problem, located in its file where possible.
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", location_prefix(path, *line_col))]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line and column.
    pub line_col: Option<(usize, usize)>,
    pub message: String,
}

fn location_prefix(path: &Path, line_col: Option<(usize, usize)>) -> String {
    match line_col {
        Some((line, col)) => format!("{}:{line}:{col}: ", path.display()),
        None => format!("{}: ", path.display()),
    }
}

impl ConfigError {
    /// An error about the file as a whole.
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        ConfigError { path: path.to_path_buf(), line_col: None, message: message.into() }
    }

    /// An error at a byte span of `text`.
    pub fn at(path: &Path, text: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        ConfigError { path: path.to_path_buf(), line_col: Some(line_col(text, span.start)), message: message.into() }
    }
}

/// Where each line of a text starts, so locating a span costs a binary search and the
/// length of its line, not a scan from the top (a 100,000-step config has 100,000 spans).
#[derive(Debug, Clone, Default)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        LineIndex { starts }
    }

    /// 1-based line and column (in characters) of byte `offset` in `text`, the text this
    /// index was built from; the same answer as [`line_col`].
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts.get(line.wrapping_sub(1)).copied().unwrap_or(0);
        (line.max(1), text[start..offset].chars().count() + 1)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub machine: Spanned<MachineConfig>,
    #[serde(default)]
    pub strategy: Vec<Spanned<StrategyConfig>>,
    #[serde(default)]
    pub step: Vec<Spanned<StepConfig>>,
    /// Run the System RAM steps once per named strategy and show the results side by side.
    #[serde(default)]
    pub compare: Option<Spanned<Vec<String>>>,
    /// What `host plan` plans for this machine.
    #[serde(default)]
    pub plan: Option<Spanned<PlanConfig>>,
}

/// `[plan]`: the hot-add `host plan` works out (docs/plan.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// The size to reach (`--target` overrides it).
    pub target: Option<Spanned<Size>>,
    /// Where the hot-adds start (default: the first block-aligned address above every
    /// boot range and device, and not below 4 GiB on x86_64).
    pub start: Option<Spanned<Size>>,
    /// The node they go to (default 0).
    pub node: Option<u32>,
    /// The strategies to plan with (default: every [[strategy]], else system-ram).
    pub strategies: Option<Spanned<Vec<String>>>,
}

/// `memory_block_size`: a size, or the kernel's x86_64 boot probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockSizeConfig {
    Auto,
    Bytes(u64),
}

impl<'de> Deserialize<'de> for BlockSizeConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| serde::de::Error::custom("expected a size or \"auto\""))? {
            Raw::Text(t) if t == "auto" => Ok(BlockSizeConfig::Auto),
            Raw::Text(t) => parse_size(&t).map(BlockSizeConfig::Bytes).map_err(serde::de::Error::custom),
            Raw::Int(v) => u64::try_from(v).map(BlockSizeConfig::Bytes).map_err(|_| serde::de::Error::custom(format!("negative size {v}"))),
        }
    }
}

/// `[machine]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// Boot state from a captured real machine (part 2 of the model).
    pub from: Option<Spanned<String>>,
    /// With `from`: boot with meminfo's MemTotal when zoneinfo's managed pages were read
    /// before deferred struct-page init finished (`true`), or with zoneinfo's as read.
    #[serde(default)]
    pub settle: bool,
    pub arch: Option<Spanned<String>>,
    pub page_size: Option<Spanned<Size>>,
    pub struct_page_size: Option<Spanned<Size>>,
    pub section_size: Option<Spanned<Size>>,
    pub subsection_size: Option<Spanned<Size>>,
    pub memory_block_size: Option<Spanned<BlockSizeConfig>>,
    pub pmd_size: Option<Spanned<Size>>,
    pub pageblock_pages: Option<Spanned<u64>>,
    pub max_phys_bits: Option<Spanned<u32>>,
    /// Whether the probe sees a hypervisor (for `memory_block_size = "auto"`).
    pub hypervisor: Option<bool>,
    /// Whose build-time defaults the policies start from: `kernel` (Kconfig's own) or
    /// `debian` (Debian's 6.12 kernels); the keys below override them.
    #[serde(default, deserialize_with = "words::defaults")]
    pub defaults: Option<words::Defaults>,
    #[serde(default, deserialize_with = "words::auto_online")]
    pub auto_online_blocks: Option<AutoOnline>,
    #[serde(default, deserialize_with = "words::online_policy")]
    pub online_policy: Option<OnlinePolicy>,
    pub auto_movable_ratio: Option<u32>,
    pub auto_movable_numa_aware: Option<bool>,
    pub movable_node: Option<bool>,
    /// A value written to vm.min_free_kbytes after boot (the kernel keeps it until its
    /// own rule gives more).
    pub min_free: Option<Spanned<Size>>,
    /// The `kernelcore=` and `movablecore=` boot options: a size or a percentage.
    #[serde(default, deserialize_with = "words::core_size")]
    pub kernelcore: Option<crate::model::boot::CoreSize>,
    #[serde(default, deserialize_with = "words::core_size")]
    pub movablecore: Option<crate::model::boot::CoreSize>,
    /// transparent_hugepage/enabled: `always` (default), `madvise` or `never`.
    #[serde(default, deserialize_with = "words::thp")]
    pub transparent_hugepage: Option<crate::model::watermarks::Thp>,
    #[serde(default)]
    pub plugin_dirs: Vec<Spanned<String>>,
    #[serde(default)]
    pub node: Vec<Spanned<NodeConfig>>,
    /// `[[machine.pmem]]`: persistent memory regions the firmware describes.
    #[serde(default)]
    pub pmem: Vec<Spanned<PmemConfig>>,
}

/// `[[machine.pmem]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PmemConfig {
    pub start: Size,
    pub size: Size,
    /// An e820 type-12 range ("Persistent Memory (legacy)") rather than an NFIT region.
    #[serde(default)]
    pub legacy: bool,
}

/// `[[machine.node]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: u32,
    #[serde(default)]
    pub boot: Vec<Spanned<RangeConfig>>,
    /// Pages free after boot, for memmap of hot-added memory (default: all managed pages).
    pub free: Option<Spanned<Size>>,
    /// Boot memory the kernel holds back (kernel image, crash kernel, ...): present, not managed.
    pub reserved: Option<Spanned<Size>>,
    /// Boot ranges memblock reserves where they lie (x86's first MiB, ...).
    #[serde(default)]
    pub reserved_ranges: Vec<Spanned<RangeConfig>>,
    /// Whether the node has CPUs (default true; a CXL memory expander has none).
    pub cpus: Option<bool>,
    /// The node's memory tier (default 4, the kernel's DRAM tier).
    pub tier: Option<u32>,
    /// Distances to other nodes by id, e.g. `{ 1 = 20, 2 = 30 }` (default 10 local, 20 remote).
    #[serde(default)]
    pub distance: Option<Spanned<std::collections::BTreeMap<Spanned<String>, Spanned<u32>>>>,
}

/// `{ start = ..., size = ... }`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeConfig {
    pub start: Size,
    pub size: Size,
}

/// `[[strategy]]`: a named plugin instance.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    pub name: Spanned<String>,
    pub plugin: Spanned<String>,
    /// The plugin's options; each key and value keeps its span, so an option the plugin
    /// does not declare is reported at its own line.
    pub options: Option<Spanned<OptionsTable>>,
    /// Run this plugin in a child process of its own (as `--isolate` does for all).
    pub isolate: Option<bool>,
}

/// A `[[strategy]]`'s `options`, key by key.
pub type OptionsTable = std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// `[[step]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    #[serde(deserialize_with = "words::op")]
    pub op: Op,
    pub start: Option<Spanned<Size>>,
    pub size: Option<Spanned<Size>>,
    #[serde(default)]
    pub node: u32,
    pub strategy: Option<Spanned<String>>,
    pub driver: Option<Spanned<String>>,
    /// `online` steps: online, online_kernel or online_movable (default online).
    #[serde(default, deserialize_with = "words::online_type")]
    pub online_type: Option<OnlineType>,
    /// `offline` steps: the range holds unmovable pages, so offlining fails with EBUSY.
    #[serde(default)]
    pub unmovable: bool,
    /// The device: a dax/kmem device's name (its parent resource), a virtio-mem device's.
    pub device: Option<String>,
    /// `grow` steps: a new virtio-mem device's unit (default one memory block).
    pub unit: Option<Spanned<Size>>,
    /// `grow` steps: a new virtio-mem device's region size (default: as much as its
    /// requests need) and device block size (default 2 MiB).
    pub region_size: Option<Spanned<Size>>,
    pub block_size: Option<Spanned<Size>>,
    /// `shrink` steps: ranges whose pages cannot be migrated, so their sub-blocks stay
    /// plugged.
    pub unmovable_ranges: Option<Spanned<Vec<RangeConfig>>>,
    /// `memremap` steps: several ranges for one pgmap (instead of `start`/`size`).
    pub ranges: Option<Spanned<Vec<RangeConfig>>>,
    /// `memremap` steps: the pgmap type the driver asks for (default: the strategy's).
    pub pgmap_type: Option<Spanned<String>>,
    /// `memremap` steps: the compound-page order (default: the strategy's).
    pub vmemmap_shift: Option<u32>,
    /// `memremap` steps: the /proc/iomem name of the device's range.
    pub resource: Option<String>,
    /// `memremap` steps: a device-dax namespace's name, whose claim keeps the metadata
    /// part while `resource` (daxR.N) holds the data part.
    pub namespace: Option<String>,
    /// "ok" or an errno name; or a table of them by strategy name, for `compare` runs
    /// where the strategies are meant to end differently.
    pub expect: Option<Spanned<ExpectConfig>>,
    /// A label for the report.
    pub name: Option<String>,
    /// `set` steps: the runtime parameters to write (the `[machine]` keys of the same name).
    #[serde(default, deserialize_with = "words::auto_online")]
    pub auto_online_blocks: Option<AutoOnline>,
    #[serde(default, deserialize_with = "words::online_policy")]
    pub online_policy: Option<OnlinePolicy>,
    pub auto_movable_ratio: Option<u32>,
    pub auto_movable_numa_aware: Option<bool>,
    /// `set` steps: vm.min_free_kbytes.
    pub min_free_kbytes: Option<u64>,
    /// `set` steps: transparent_hugepage/enabled.
    #[serde(default, deserialize_with = "words::thp")]
    pub transparent_hugepage: Option<crate::model::watermarks::Thp>,
}

/// A step's `expect`: one outcome, or one per strategy.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ExpectConfig {
    One(String),
    PerStrategy(std::collections::BTreeMap<String, String>),
}

/// A config file as read, with its text kept for locating later errors.
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub text: String,
    pub file: ConfigFile,
    lines: LineIndex,
}

impl Loaded {
    /// Directory the config's relative paths are relative to.
    pub fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// An error located at `span` of this file.
    pub fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError { path: self.path.clone(), line_col: Some(self.line_col(span.start)), message: message.into() }
    }

    /// 1-based line and column of byte `offset` of this file.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        self.lines.line_col(&self.text, offset)
    }
}

/// Read and parse a config file: size and encoding checks first, then TOML with spans.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let bytes = if is_stdin(path) {
        crate::files::read_limited(std::io::stdin().lock(), MAX_CONFIG_BYTES)
    } else {
        crate::files::read_bounded(path, MAX_CONFIG_BYTES)
    };
    let bytes = bytes.map_err(|e| match e {
        crate::files::ReadError::Io(e) => ConfigError::file(path, format!("cannot read config: {}", io_reason(&e))),
        crate::files::ReadError::Directory => ConfigError::file(path, "is a directory, not a config file"),
        crate::files::ReadError::TooBig { .. } => {
            ConfigError::file(path, format!("config is larger than its limit: the limit is {MAX_CONFIG_BYTES} (16 MiB)"))
        }
        e @ crate::files::ReadError::NotAFile(_) => ConfigError::file(path, format!("{e} (give a file, or - for standard input)")),
    })?;
    from_bytes(path, bytes)
}

/// Whether `path` means standard input: `-`, or `/dev/stdin` (whatever it is: a pipe, a
/// terminal, a file), each read with the same bound as a file.
pub fn is_stdin(path: &Path) -> bool {
    path == Path::new("-") || path == Path::new("/dev/stdin")
}

/// Config bytes as read (from a file or standard input) to a parsed config.
fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Loaded, ConfigError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ConfigError::file(path, "config is empty: it needs at least a [machine] table"));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let valid = std::str::from_utf8(&e.as_bytes()[..offset]).unwrap_or("");
        let (line, col) = line_col(valid, offset);
        ConfigError { path: path.to_path_buf(), line_col: Some((line, col)), message: "config is not valid UTF-8".into() }
    })?;
    parse(path, text)
}

/// Parse config text already in memory (`path` is only for messages).
pub fn parse(path: &Path, text: String) -> Result<Loaded, ConfigError> {
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        let message = e.message().trim().replace('\n', " ");
        match e.span() {
            Some(span) => ConfigError::at(path, &text, span, message),
            None => ConfigError::file(path, message),
        }
    })?;
    let lines = LineIndex::new(&text);
    Ok(Loaded { path: path.to_path_buf(), text, file, lines })
}

/// The part of an I/O error a user needs.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Loaded, ConfigError> {
        parse(Path::new("t.toml"), text.to_string())
    }

    #[test]
    fn machine_only_is_valid() {
        let loaded = parse_str("[machine]\n").unwrap();
        assert!(loaded.file.step.is_empty());
    }

    #[test]
    fn unknown_key_is_located() {
        let err = parse_str("[machine]\npage_size = \"4KiB\"\nbogus = 1\n").unwrap_err();
        assert_eq!(err.line_col, Some((3, 1)));
        assert!(err.to_string().starts_with("t.toml:3:1: unknown field `bogus`"), "{err}");
    }

    #[test]
    fn bad_size_is_located_at_its_value() {
        let err = parse_str("[machine]\nsection_size = \"12XB\"\n").unwrap_err();
        assert_eq!(err.line_col, Some((2, 16)));
        assert!(err.message.contains("unknown unit"), "{err}");
    }

    #[test]
    fn missing_machine_is_an_error() {
        let err = parse_str("[[step]]\nop = \"add\"\n").unwrap_err();
        assert!(err.message.contains("machine"), "{err}");
    }

    #[test]
    fn option_keys_keep_their_spans() {
        let text = "[machine]\n[[strategy]]\nname = \"a\"\nplugin = \"p\"\noptions = { mode = \"x\", per_block = true }\n";
        let loaded = parse_str(text).unwrap();
        let options = loaded.file.strategy[0].get_ref().options.as_ref().unwrap().get_ref();
        let keys: Vec<(String, (usize, usize))> = options.keys().map(|k| (k.get_ref().clone(), loaded.line_col(k.span().start))).collect();
        assert_eq!(keys, [("mode".to_string(), (5, 13)), ("per_block".to_string(), (5, 25))]);
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn line_index_agrees_with_the_scan_at_every_offset() {
        // Every byte offset of a text with an empty line, a multi-byte character (é is 2
        // bytes: offset 6 falls inside it) and no final newline, and one past the end.
        let text = "ab\n\ncdé\nx";
        let index = LineIndex::new(text);
        for offset in 0..=text.len() + 1 {
            assert_eq!(index.line_col(text, offset), line_col(text, offset), "offset {offset}");
        }
        assert_eq!(index.line_col("", 0), (1, 1));
    }
}
