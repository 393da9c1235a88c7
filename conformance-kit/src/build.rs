//! Building the crate under test, so the library the suite loads is never stale.
//!
//! `cargo test` compiles a crate's tests and its rlib, not its `cdylib`: a test that loads
//! `target/debug/libx.so` would test whatever was built last. So the kit runs
//! `cargo build --lib` itself, in the same target directory and profile as the running
//! test (cargo has released its lock by the time tests run), and takes the library's path
//! from cargo's own artifact messages rather than guessing it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// Where and how the running test binary was built: `<target>/<profile dir>/deps/<test>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildLayout {
    pub(crate) target_dir: Option<PathBuf>,
    pub(crate) profile_args: Vec<String>,
}

impl BuildLayout {
    /// Read the layout off a test executable's path; anything else builds with cargo's
    /// defaults (its own config decides the target directory).
    pub(crate) fn of_test_exe(exe: &Path) -> BuildLayout {
        let deps = exe.parent();
        let profile_dir = deps.filter(|d| d.file_name().is_some_and(|n| n == "deps")).and_then(Path::parent);
        let (Some(profile_dir), Some(target_dir)) = (profile_dir, profile_dir.and_then(Path::parent)) else {
            return BuildLayout { target_dir: None, profile_args: Vec::new() };
        };
        let profile_args = match profile_dir.file_name().and_then(|n| n.to_str()) {
            // `cargo test` builds with the test profile, which lands in the dev profile's
            // directory: build the library with dev so the two share one directory.
            Some("debug") | None => Vec::new(),
            Some("release") => vec!["--release".to_string()],
            Some(custom) => vec!["--profile".to_string(), custom.to_string()],
        };
        BuildLayout { target_dir: Some(target_dir.to_path_buf()), profile_args }
    }
}

/// Build the library of the crate at `manifest_dir` and return its dynamic library.
pub(crate) fn build_cdylib(manifest_dir: &Path, layout: &BuildLayout) -> Result<PathBuf, Error> {
    let manifest = manifest_dir.join("Cargo.toml");
    let mut args: Vec<OsString> = vec!["--lib".into()];
    args.extend(layout.profile_args.iter().map(OsString::from));
    if let Some(dir) = &layout.target_dir {
        args.extend(["--target-dir".into(), dir.into()]);
    }
    let stdout = cargo_build(&manifest, &args, 60, |cmd| cmd)?;
    cdylib_from_messages(&stdout, &manifest).ok_or(Error::NoCdylib { manifest })
}

/// `cargo build --message-format=json-render-diagnostics --manifest-path MANIFEST ARGS`
/// (`adjust` may change the command's environment): cargo's JSON messages, or a build
/// error carrying the last `log_lines` lines of its output (where the compiler errors are).
pub(crate) fn cargo_build(
    manifest: &Path,
    args: &[OsString],
    log_lines: usize,
    adjust: impl FnOnce(&mut Command) -> &mut Command,
) -> Result<String, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--message-format=json-render-diagnostics", "--manifest-path"]).arg(manifest).args(args);
    let out = adjust(&mut cmd).output().map_err(|e| Error::Cargo(format!("cannot run {}: {e}", Path::new(&cargo).display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Build { manifest: manifest.to_path_buf(), log: tail(&stderr, log_lines) });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `compiler-artifact` messages of a cargo build's JSON output.
pub(crate) fn artifacts(stdout: &str) -> impl Iterator<Item = serde_json::Value> + '_ {
    stdout.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).filter(|m| m["reason"] == "compiler-artifact")
}

/// The `cdylib` cargo reports for the package whose manifest is `manifest`.
fn cdylib_from_messages(stdout: &str, manifest: &Path) -> Option<PathBuf> {
    let want = manifest.canonicalize().unwrap_or_else(|_| manifest.to_path_buf());
    artifacts(stdout).find_map(|m| {
        let theirs = Path::new(m["manifest_path"].as_str()?);
        if theirs.canonicalize().unwrap_or_else(|_| theirs.to_path_buf()) != want {
            return None;
        }
        if !m["target"]["kind"].as_array()?.iter().any(|k| k == "cdylib") {
            return None;
        }
        m["filenames"].as_array()?.iter().filter_map(|f| f.as_str()).find(|f| f.ends_with(std::env::consts::DLL_SUFFIX)).map(PathBuf::from)
    })
}

/// The last `lines` lines of a build log: the compiler errors are at its end.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_the_test_binary() {
        let l = BuildLayout::of_test_exe(Path::new("/w/target/debug/deps/conformance-0123"));
        assert_eq!(l, BuildLayout { target_dir: Some("/w/target".into()), profile_args: vec![] });
        let l = BuildLayout::of_test_exe(Path::new("/w/t/release/deps/conformance-0123"));
        assert_eq!(l.profile_args, ["--release"]);
        let l = BuildLayout::of_test_exe(Path::new("/w/t/ci/deps/conformance-0123"));
        assert_eq!(l.profile_args, ["--profile", "ci"]);
        // Not a cargo layout (a copied binary): leave the choice to cargo.
        let l = BuildLayout::of_test_exe(Path::new("/usr/local/bin/conformance"));
        assert_eq!(l, BuildLayout { target_dir: None, profile_args: vec![] });
    }

    #[test]
    fn the_cdylib_is_the_one_of_this_package() {
        let messages = [
            r#"{"reason":"compiler-artifact","manifest_path":"/nonexistent/dep/Cargo.toml","target":{"kind":["cdylib"]},"filenames":["/t/debug/libdep.so"]}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/nonexistent/me/Cargo.toml","target":{"kind":["cdylib","rlib"]},"filenames":["/t/debug/libme.rlib","/t/debug/libme.so"]}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        let got = cdylib_from_messages(&messages, Path::new("/nonexistent/me/Cargo.toml"));
        assert_eq!(got, Some(PathBuf::from("/t/debug/libme.so")));
        assert_eq!(cdylib_from_messages(&messages, Path::new("/nonexistent/other/Cargo.toml")), None);
    }
}
