//! The shipped scenarios, built into the binary so `host --config device.toml` works
//! from any directory and after `cargo install` (which installs only the binary). The
//! captured-machine config is not among them: it needs the capture's files beside it.

use std::path::{Path, PathBuf};

/// One shipped config: its file name and text.
#[derive(Debug, Clone, Copy)]
pub struct ShippedConfig {
    pub name: &'static str,
    pub text: &'static str,
}

macro_rules! shipped {
    ($($name:literal),* $(,)?) => {
        &[$(ShippedConfig { name: $name, text: include_str!(concat!("../../configs/", $name)) }),*]
    };
}

/// Every config built in, by name.
pub const CONFIGS: &[ShippedConfig] = shipped![
    "acpi-dimm.toml",
    "auto-movable.toml",
    "cxl-expander.toml",
    "cxl-memmap.toml",
    "dax-kmem.toml",
    "device.toml",
    "memmap-on-memory.toml",
    "small-vm-grow.toml",
    "small-vm-plan.toml",
    "small-vm.toml",
    "system-ram.toml",
    "two-socket-cxl.toml",
    "virtio-mem.toml",
];

impl ShippedConfig {
    /// The question the config answers: its opening comment, up to the first blank one.
    pub fn question(&self) -> String {
        let lines: Vec<&str> = self.text.lines().map_while(|l| l.strip_prefix('#')).map(str::trim).take_while(|l| !l.is_empty()).collect();
        lines.join(" ")
    }
}

/// The shipped config `name` (with or without `.toml`).
pub fn find(name: &str) -> Option<&'static ShippedConfig> {
    let file = if name.ends_with(".toml") { name.to_string() } else { format!("{name}.toml") };
    CONFIGS.iter().find(|c| c.name == file)
}

/// configs/ of the source tree this binary was built from (it may be gone since).
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

/// Where a shipped config's relative paths (`plugin_dirs`) point from: its directory in
/// the source tree, while that exists; else the current one.
pub fn path_of(config: &ShippedConfig) -> PathBuf {
    match source_dir().canonicalize() {
        Ok(d) => d.join(config.name),
        Err(_) => PathBuf::from(config.name),
    }
}

/// Shipped config names close to `name` (edit distance at most a third of its length,
/// or sharing its stem), closest first: for "did you mean".
pub fn closest(name: &str) -> Vec<&'static str> {
    let stem = name.trim_end_matches(".toml");
    let mut scored: Vec<(usize, &'static str)> = CONFIGS
        .iter()
        .map(|c| (edit_distance(stem, c.name.trim_end_matches(".toml")), c.name))
        .filter(|&(d, n)| d <= stem.len().max(3) / 3 || (!stem.is_empty() && n.contains(stem)))
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_config_file_but_the_capture_is_built_in_as_it_is() {
        let dir = source_dir();
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".toml") && n != "captured-vm.toml")
            .collect();
        files.sort();
        let built_in: Vec<&str> = CONFIGS.iter().map(|c| c.name).collect();
        assert_eq!(files, built_in, "a config added to configs/ must be listed in CONFIGS");
        for c in CONFIGS {
            assert_eq!(std::fs::read_to_string(dir.join(c.name)).unwrap(), c.text);
            assert!(!c.question().is_empty() && c.question().ends_with('?'), "{}: {}", c.name, c.question());
        }
    }

    #[test]
    fn near_misses_are_suggested() {
        assert_eq!(closest("devce.toml"), ["device.toml"]);
        assert_eq!(closest("small-vm"), ["small-vm.toml", "small-vm-grow.toml", "small-vm-plan.toml"]);
        assert!(closest("zzzzzzzz").is_empty());
        assert_eq!(find("device").map(|c| c.name), Some("device.toml"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
