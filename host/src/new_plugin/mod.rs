//! `host new-plugin NAME`: a ready plugin crate an author can `cargo test` at once.
//!
//! The crate is written from the files in `template/`, which are real Rust and TOML with
//! the literal names `my-strategy`, `my_strategy` and `MyStrategy` in them (so the
//! template itself is what the guide shows and the tests build), renamed on the way out.
//! It builds outside this repository: its own `[workspace]`, this workspace's Cargo.lock
//! and `[profile]` sections (so versions and build settings match the host's), the
//! contract and the test kit by path, and `HOTPLUG_HOST` naming the host that wrote it.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// What the author asked for.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// The crate's name (a cargo package name; the plugin is `lib<name>.so`).
    pub name: String,
    /// The directory to create the crate in (it gets a new `<name>/` subdirectory).
    pub parent: PathBuf,
    /// hotplug-lab's `core/` directory, when this host was not built from a checkout.
    pub core: Option<PathBuf>,
    /// The `host` the crate's tests run the suite in (normally this very binary).
    pub host: PathBuf,
}

/// Why no crate was written. Nothing is left behind in any case.
#[derive(Debug, thiserror::Error)]
pub enum NewPluginError {
    /// NAME is not a name cargo and the loader accept.
    #[error("{name:?} is not a usable plugin name: {why}")]
    BadName {
        /// What was given.
        name: String,
        /// The rule it breaks.
        why: String,
    },
    /// The target directory exists: never overwritten.
    #[error("{} already exists: choose another name or --dir (nothing was written)", .0.display())]
    Exists(PathBuf),
    /// The contract crate could not be found.
    #[error(
        "this host was not built from a hotplug-lab checkout that still exists ({}): give --core PATH, the core/ directory of a hotplug-lab checkout",
        .0.display()
    )]
    NoCore(PathBuf),
    /// `--core` (or the checkout's core/) is not the contract this host speaks.
    #[error("{}: {why}", path.display())]
    BadCore {
        /// The directory given.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// Writing failed (the partly written crate was removed).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory being written.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// One generated file: its path in the crate, and its template.
struct TemplateFile {
    path: &'static str,
    text: &'static str,
}

/// The files every new crate gets, besides Cargo.toml and .cargo/config.toml (which need
/// paths) and Cargo.lock.
const FILES: &[TemplateFile] = &[
    TemplateFile { path: "src/lib.rs", text: include_str!("template/lib.rs") },
    TemplateFile { path: "tests/conformance.rs", text: include_str!("template/conformance.rs") },
    TemplateFile { path: "scenario.toml", text: include_str!("template/scenario.toml") },
    TemplateFile { path: "README.md", text: include_str!("template/README.md") },
    TemplateFile { path: ".gitignore", text: include_str!("template/gitignore") },
];

const CARGO_TOML: &str = include_str!("template/Cargo.toml.in");
const CARGO_CONFIG: &str = include_str!("template/cargo-config.toml.in");
/// This workspace's lock file and manifest: the versions and profiles the host was built with.
const WORKSPACE_LOCK: &str = include_str!("../../../Cargo.lock");
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");

/// The template's source, as the guide quotes it: `src/lib.rs` before renaming.
pub const TEMPLATE_LIB_RS: &str = include_str!("template/lib.rs");
/// The template's `tests/conformance.rs`, as the guide quotes it.
pub const TEMPLATE_CONFORMANCE_RS: &str = include_str!("template/conformance.rs");

/// Write the crate; returns its directory.
pub fn create(request: &NewPlugin) -> Result<PathBuf, NewPluginError> {
    let names = Names::new(&request.name)?;
    let core = find_core(request.core.as_deref())?;
    let kit = find_kit(&core)?;
    let parent = request.parent.canonicalize().map_err(|source| NewPluginError::Io { path: request.parent.clone(), source })?;
    let dir = parent.join(&names.kebab);
    std::fs::create_dir(&dir).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => NewPluginError::Exists(dir.clone()),
        _ => NewPluginError::Io { path: dir.clone(), source },
    })?;
    // From here on the directory is ours: remove it again if anything fails.
    let written = write_all(&dir, &names, &core, &kit, &request.host);
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    written.map(|()| dir)
}

fn write_all(dir: &Path, names: &Names, core: &Path, kit: &Path, host: &Path) -> Result<(), NewPluginError> {
    let cargo_toml =
        CARGO_TOML.replace("@CORE@", &toml_string(core)).replace("@KIT@", &toml_string(kit)).replace("@PROFILES@", profiles().trim_end());
    write_new(dir, "Cargo.toml", &names.render(&cargo_toml))?;
    write_new(dir, "Cargo.lock", WORKSPACE_LOCK)?;
    write_new(dir, ".cargo/config.toml", &CARGO_CONFIG.replace("@HOST@", &toml_string(host)))?;
    for f in FILES {
        write_new(dir, f.path, &names.render(f.text))?;
    }
    Ok(())
}

/// Create `dir/rel` (and its parent directories inside `dir`); never overwrite.
fn write_new(dir: &Path, rel: &str, text: &str) -> Result<(), NewPluginError> {
    let path = dir.join(rel);
    let io = |source| NewPluginError::Io { path: path.clone(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}

/// A path as a TOML basic string (quoted, escaped).
fn toml_string(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

/// This workspace's `[profile.*]` sections as TOML text: what a crate built outside it
/// copies so its build settings match the host's (the scaffold, the tests' out-of-tree
/// builds).
pub fn profiles() -> String {
    let manifest: toml::Table = WORKSPACE_MANIFEST.parse().expect("the workspace manifest built into host parses");
    let mut t = toml::Table::new();
    if let Some(p) = manifest.get("profile") {
        t.insert("profile".into(), p.clone());
    }
    toml::to_string(&t).expect("a parsed TOML table serialises")
}

/// The contract crate: `--core`, else the checkout this host was built from.
fn find_core(explicit: Option<&Path>) -> Result<PathBuf, NewPluginError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core");
            if !built_from.join("Cargo.toml").is_file() {
                return Err(NewPluginError::NoCore(built_from));
            }
            built_from
        }
    };
    let path = path.canonicalize().map_err(|e| NewPluginError::BadCore { path: path.clone(), why: e.to_string() })?;
    let (name, version) = package_of(&path)?;
    let want = hotplug_core::ContractVersion::CURRENT;
    let speaks = version.split('.').take(2).map(|n| n.parse::<u32>().ok()).collect::<Vec<_>>() == [Some(want.major), Some(want.minor)];
    if name != "hotplug-core" || !speaks {
        return Err(NewPluginError::BadCore {
            path,
            why: format!("is {name} {version}, not hotplug-core {}.{}.x (the contract this host speaks)", want.major, want.minor),
        });
    }
    Ok(path)
}

/// The authors' test kit, which sits beside core/ in a checkout.
fn find_kit(core: &Path) -> Result<PathBuf, NewPluginError> {
    let kit = core.join("../conformance-kit");
    let bad = |why: String| NewPluginError::BadCore { path: core.to_path_buf(), why };
    let kit = kit.canonicalize().map_err(|e| bad(format!("no conformance-kit/ beside it ({e}): give the core/ of a whole checkout")))?;
    match package_of(&kit)? {
        (name, _) if name == "hotplug-conformance" => Ok(kit),
        (name, _) => Err(bad(format!("{} is {name}, not hotplug-conformance", kit.display()))),
    }
}

/// The package name and version of the crate at `dir`.
fn package_of(dir: &Path) -> Result<(String, String), NewPluginError> {
    let manifest = dir.join("Cargo.toml");
    let bad = |why: String| NewPluginError::BadCore { path: dir.to_path_buf(), why };
    let text = std::fs::read_to_string(&manifest).map_err(|e| bad(format!("cannot read Cargo.toml: {e}")))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| bad(format!("Cargo.toml: {}", e.message())))?;
    let package = table.get("package").and_then(toml::Value::as_table).ok_or_else(|| bad("Cargo.toml has no [package]".into()))?;
    let name = package.get("name").and_then(toml::Value::as_str).unwrap_or_default().to_string();
    let version = package.get("version").and_then(toml::Value::as_str).unwrap_or_default().to_string();
    Ok((name, version))
}

/// The three spellings of the plugin's name the template uses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Names {
    /// The package name (`my-strategy`): also the plugin's name in a scenario.
    kebab: String,
    /// The library name (`my_strategy`).
    snake: String,
    /// The strategy's type (`MyStrategy`).
    camel: String,
}

/// Names the template's code already uses: a type of the same name would not compile.
const TEMPLATE_IDENTS: &[&str] = &[
    "Altmap",
    "Deserialize",
    "Driver",
    "Geometry",
    "Host",
    "Ops",
    "OptionSpec",
    "OptionType",
    "Options",
    "PluginError",
    "ROption",
    "Request",
    "RequestKinds",
    "RestrictionFlags",
    "Restrictions",
    "Strategy",
    "StridedRange",
    "Self",
];

/// Names cargo or Rust refuse for a package, and the template's own dependencies.
const RESERVED: &[&str] = &[
    // Rust keywords (strict and reserved), which cannot be a crate name.
    "abstract",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
    // The standard crates, and the names cargo keeps for its target directory.
    "alloc",
    "core",
    "proc_macro",
    "std",
    "test",
    "build",
    "deps",
    "examples",
    "incremental",
    // The crate's own dependencies: a package cannot depend on its own name.
    "hotplug_core",
    "hotplug_conformance",
    "serde",
    "log",
];

impl Names {
    fn new(name: &str) -> Result<Names, NewPluginError> {
        let bad = |why: &str| NewPluginError::BadName { name: name.to_string(), why: why.to_string() };
        if name.is_empty() || name.len() > 64 {
            return Err(bad("a name has 1 to 64 characters"));
        }
        if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
            return Err(bad("use lowercase letters, digits, '-' and '_' only (no paths: --dir says where)"));
        }
        if !name.as_bytes()[0].is_ascii_lowercase() {
            return Err(bad("a name starts with a letter"));
        }
        let snake = name.replace('-', "_");
        if RESERVED.contains(&snake.as_str()) {
            return Err(bad("it is a Rust keyword, a standard crate, a name cargo reserves, or a dependency of the crate"));
        }
        let mut camel: String = snake
            .split('_')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let mut c = p.chars();
                c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
            })
            .collect();
        if TEMPLATE_IDENTS.contains(&camel.as_str()) {
            camel.push_str("Strategy");
        }
        Ok(Names { kebab: name.to_string(), snake, camel })
    }

    /// The template text with its placeholder names replaced, in one pass (a new name may
    /// itself contain a placeholder: replacing one after another would rewrite it).
    fn render(&self, text: &str) -> String {
        let tokens = [("my-strategy", &self.kebab), ("my_strategy", &self.snake), ("MyStrategy", &self.camel)];
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        'outer: while !rest.is_empty() {
            for (token, value) in &tokens {
                if let Some(after) = rest.strip_prefix(token) {
                    out.push_str(value);
                    rest = after;
                    continue 'outer;
                }
            }
            let c = rest.chars().next().expect("rest is not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_cargo_and_rust() {
        let n = Names::new("cxl-near").unwrap();
        assert_eq!((n.kebab.as_str(), n.snake.as_str(), n.camel.as_str()), ("cxl-near", "cxl_near", "CxlNear"));
        assert_eq!(Names::new("a2").unwrap().camel, "A2");
        // A type called Host would clash with the template's `use hotplug_core::Host`.
        assert_eq!(Names::new("host").unwrap().camel, "HostStrategy");
        assert_eq!(Names::new("my__odd-name").unwrap().camel, "MyOddName");
        for bad in ["", "../x", "x/y", "Upper", "1st", "-x", "_x", "with space", "fn", "self", "std", "test", "serde", "hotplug-core", "é"]
        {
            assert!(Names::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Names::new(&"a".repeat(64)).is_ok());
        assert!(Names::new(&"a".repeat(65)).is_err());
    }

    #[test]
    fn rendering_is_one_pass() {
        // A name containing a placeholder must not be rewritten a second time.
        let n = Names::new("my_strategy-x").unwrap();
        assert_eq!(n.render("my-strategy my_strategy MyStrategy"), "my_strategy-x my_strategy_x MyStrategyX");
    }

    #[test]
    fn the_template_uses_no_other_spelling() {
        // Every name the template carries is one of the three placeholders.
        for f in FILES {
            assert!(!f.text.contains("my strategy") && !f.text.contains("Mystrategy"), "{}", f.path);
        }
        assert!(TEMPLATE_LIB_RS.contains("pub struct MyStrategy"));
        assert!(CARGO_TOML.contains("name = \"my-strategy\""));
    }

    #[test]
    fn profiles_carry_the_workspace_settings() {
        let p = profiles();
        let t: toml::Table = p.parse().unwrap();
        assert!(t["profile"].get("dev").is_some(), "{p}");
        assert!(!p.contains("abort"), "{p}");
    }
}
