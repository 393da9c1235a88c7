//! Files we did not write, read with a bound; trees we write, all or nothing.
//!
//! A path a user or a capture names may be a FIFO (an open would wait forever for a
//! writer), a device (`/dev/zero` never ends), or a symlink out of the capture. Every
//! read of such a file goes through [`read_bounded`]: opened without blocking, refused
//! unless it is a regular file, and never read past its limit. Every tree the host writes
//! (`--sysfs-out`, `--sysroot-out`, `host snapshot`) goes through [`write_tree`], which
//! fills a temporary directory beside the target and renames it into place, so a failure
//! (a file in the way, a read-only or full disk) leaves no half-written tree behind.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}", crate::config::io_reason(.0))]
    Io(std::io::Error),
    /// A FIFO, socket or device: reading it could block forever or never end.
    #[error("is {0}, not a regular file")]
    NotAFile(&'static str),
    #[error("is a directory, not a file")]
    Directory,
    /// More than the limit (the count is what was read: the file may hold more).
    #[error("is more than {limit} bytes (the limit for this file)")]
    TooBig { limit: u64 },
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// The most a capture's file `rel` (relative to the capture's root) may hold: the kernel
/// text files as large as a machine of MAX_NUMNODES nodes makes them, a sysfs attribute
/// one page (64 KiB pages on arm64; sysfs_emit writes at most a page).
pub fn capture_limit(rel: &str) -> u64 {
    match rel {
        "proc/zoneinfo" => 64 << 20,
        "proc/iomem" => 16 << 20,
        _ => 64 << 10,
    }
}

/// What kind of file `meta` describes, in words, when it is not a regular file.
fn not_a_file(meta: &std::fs::Metadata) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return Some("a FIFO");
        }
        if t.is_socket() {
            return Some("a socket");
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
    }
    (!meta.is_file() && !meta.is_dir()).then_some("not a regular file")
}

/// Refuse anything at `path` that is not a regular file (following symlinks), without
/// opening it (a FIFO's open blocks).
pub fn check_regular(path: &Path) -> Result<(), ReadError> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(ReadError::Directory);
    }
    match not_a_file(&meta) {
        Some(kind) => Err(ReadError::NotAFile(kind)),
        None => Ok(()),
    }
}

/// The bytes of the regular file at `path`, at most `limit` of them.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // A FIFO opened without O_NONBLOCK waits for a writer; with it, the open returns
        // and the type check below refuses it.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(ReadError::Directory);
    }
    if let Some(kind) = not_a_file(&meta) {
        return Err(ReadError::NotAFile(kind));
    }
    read_limited(file, limit)
}

/// At most `limit` bytes of `reader` (standard input for `--config -`).
pub fn read_limited(reader: impl Read, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooBig { limit });
    }
    Ok(bytes)
}

/// `path` resolved, when it stays inside `root` (resolved too): a capture's files may be
/// symlinks within the capture (sysfs's node links), never out of it.
pub fn inside(root: &Path, path: &Path) -> Result<PathBuf, String> {
    let root = root.canonicalize().map_err(|e| crate::config::io_reason(&e))?;
    let resolved = path.canonicalize().map_err(|e| crate::config::io_reason(&e))?;
    if resolved.starts_with(&root) {
        Ok(resolved)
    } else {
        Err("it is a symlink out of the capture directory (a capture holds its own files)".into())
    }
}

/// At most `max` bytes of `line` for an error message, control characters escaped, with
/// the length when it was cut: a file's content is never echoed whole.
pub fn excerpt(line: &str, max: usize) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for c in line.chars() {
        if shown + c.len_utf8() > max {
            out.push_str(&format!("... ({} bytes)", line.len()));
            return format!("\"{out}\"");
        }
        shown += c.len_utf8();
        out.extend(c.escape_debug());
    }
    format!("\"{out}\"")
}

/// Write a tree at `dir` with `fill`, which writes into the directory it is given: a
/// temporary directory beside `dir`, renamed to `dir` only when `fill` succeeded. `dir`
/// must not exist or be an empty directory; errors name `flag`.
pub fn write_tree<T>(dir: &Path, flag: &str, fill: impl FnOnce(&Path) -> Result<T, String>) -> Result<T, String> {
    let shown = dir.display();
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let mut listing = std::fs::read_dir(dir).map_err(|e| format!("{flag} {shown}: {}", crate::config::io_reason(&e)))?;
            if listing.next().is_some() {
                return Err(format!("{flag} {shown}: the directory is not empty (refusing to mix trees)"));
            }
        }
        Ok(_) => return Err(format!("{flag} {shown}: exists and is not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{flag} {shown}: {}", crate::config::io_reason(&e))),
    }
    let name = dir.file_name().ok_or_else(|| format!("{flag} {shown}: names no directory"))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = parent.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_dir_all(&temp);
    std::fs::create_dir(&temp)
        .map_err(|e| format!("{flag} {shown}: cannot create {}: {}", temp.display(), crate::config::io_reason(&e)))?;
    let result = fill(&temp).and_then(|value| {
        if dir.exists() {
            std::fs::remove_dir(dir).map_err(|e| format!("{flag} {shown}: {}", crate::config::io_reason(&e)))?;
        }
        std::fs::rename(&temp, dir)
            .map_err(|e| format!("{flag} {shown}: cannot move the tree into place: {}", crate::config::io_reason(&e)))?;
        Ok(value)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_escaped() {
        assert_eq!(excerpt("abc", 10), "\"abc\"");
        assert_eq!(excerpt("a\u{1b}[31m", 10), "\"a\\u{1b}[31m\"");
        // 100 bytes cut at 8: the first 8, then the full length.
        assert_eq!(excerpt(&"x".repeat(100), 8), "\"xxxxxxxx... (100 bytes)\"");
    }

    #[test]
    fn reads_stop_at_the_limit() {
        assert_eq!(read_limited(&b"12345"[..], 5).unwrap(), b"12345");
        assert!(matches!(read_limited(&b"123456"[..], 5), Err(ReadError::TooBig { limit: 5 })));
        assert!(matches!(read_bounded(Path::new("/dev/zero"), 10), Err(ReadError::NotAFile("a character device"))));
    }
}
