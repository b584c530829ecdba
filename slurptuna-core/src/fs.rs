//! The one atomic-write helper (feature `fs`): every file that someone else may read is written
//! to a temporary file in the same directory, fsynced, renamed into place, and its directory
//! fsynced. Also: reading JSON the Python original wrote (`NaN`, `Infinity` tokens).
//!
//! This is the only file I/O of `slurptuna-core` outside the `batch` feature; the store and the
//! batch schedulers share it so that no call site can forget a step.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of every temporary file [`write_atomic`] creates (hidden, so nobody mistakes it for
/// data; [`remove_stale_temps`] removes what a killed writer left).
pub const TEMP_PREFIX: &str = ".slurptuna-tmp.";

/// Whether an atomic write waits for the data to reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file before the rename and the directory after it: survives a machine crash.
    Synced,
    /// Rename only: survives a killed process; readers must verify the content (checksums).
    ProcessCrash,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_path(path: &Path) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(OsStr::to_string_lossy)
        .unwrap_or(Cow::Borrowed("file"));
    path.with_file_name(format!("{TEMP_PREFIX}{name}.{}.{n}", std::process::id()))
}

/// fsyncs a directory so a rename or create inside it survives a machine crash (no-op off Unix).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `bytes` atomically: readers see the old content or the new, never a mix.
/// `mode` sets the Unix permissions of the new file (default `0o644`; ignored elsewhere).
///
/// ```
/// use slurptuna_core::fs::{write_atomic, Durability};
/// let dir = std::env::temp_dir().join(format!("slurptuna-doc-fs-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// write_atomic(&dir.join("a.txt"), b"one", Durability::Synced, None).unwrap();
/// write_atomic(&dir.join("a.txt"), b"two", Durability::Synced, None).unwrap();
/// assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"two");
/// assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
    mode: Option<u32>,
) -> io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode.unwrap_or(0o644));
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        if durability == Durability::Synced {
            f.sync_all()?;
        }
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    if durability == Durability::Synced {
        sync_dir(parent_of(path))?;
    }
    Ok(())
}

/// Removes temporary files left in `dir` by a writer that was killed mid-write (callers make
/// sure no live writer owns them, e.g. by holding the run lock).
pub fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Replaces the non-standard tokens `NaN`, `Infinity` and `-Infinity` outside strings by `null`
/// (Python's `json` module writes them), so documents of the Python original parse.
pub fn relax_json(text: &str) -> Cow<'_, str> {
    crate::json::replace_bare_tokens(
        text,
        &[("-Infinity", "null"), ("Infinity", "null"), ("NaN", "null")],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relax_replaces_tokens_outside_strings_only() {
        let t = r#"{"a": NaN, "b": -Infinity, "c": "NaN \"Infinity\"", "d": [Infinity, 1]}"#;
        let v: serde_json::Value = serde_json::from_str(&relax_json(t)).unwrap();
        assert!(v["a"].is_null() && v["b"].is_null() && v["d"][0].is_null());
        assert_eq!(v["c"], "NaN \"Infinity\"");
        assert_eq!(v["d"][1], 1);
        assert!(matches!(relax_json(r#"{"a": 1}"#), Cow::Borrowed(_)));
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("slurptuna-fs-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("no-such-dir").join("x");
        assert!(write_atomic(&p, b"x", Durability::Synced, None).is_err());
        write_atomic(
            &dir.join("s.sh"),
            b"#!/bin/sh\n",
            Durability::ProcessCrash,
            Some(0o755),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join("s.sh")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755);
        }
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("s.sh")]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
