//! Atomic writes (temp file in the same directory, fsync, rename, directory fsync) and tolerant
//! JSON reads.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, StoreError};

/// Prefix of every temporary file this crate creates (hidden, so nobody mistakes it for data).
pub(crate) const TEMP_PREFIX: &str = ".slurptuna-tmp.";

/// Whether an atomic write waits for the data to reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
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
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = File::open(dir).map_err(|e| StoreError::io("open directory", dir, e))?;
        d.sync_all()
            .map_err(|e| StoreError::io("sync directory", dir, e))?;
    }
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
pub(crate) fn write_bytes_atomic(path: &Path, bytes: &[u8], durability: Durability) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| StoreError::io("create temporary file", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| StoreError::io("write", &tmp, e))?;
        if durability == Durability::Synced {
            f.sync_all().map_err(|e| StoreError::io("sync", &tmp, e))?;
        }
        drop(f);
        fs::rename(&tmp, path).map_err(|e| StoreError::io("rename into place", path, e))
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

/// Writes `value` as pretty JSON to `path` atomically: the document goes to a temporary file in
/// the same directory, is fsynced, renamed over `path`, and the directory is fsynced. A reader
/// (or a crash at any point) sees the previous document or the new one, never a partial one.
///
/// Non-finite floats are written as `null` (JSON has no NaN).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("slurptuna-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("summary.json");
/// slurptuna_store::write_json_atomic(&path, &serde_json::json!({"best_value": 0.5})).unwrap();
/// let back: serde_json::Value = slurptuna_store::read_json(&path).unwrap().unwrap();
/// assert_eq!(back["best_value"], 0.5);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Json {
        what: json_what(path),
        path: path.to_path_buf(),
        source: e,
    })?;
    bytes.push(b'\n');
    write_bytes_atomic(path, &bytes, Durability::Synced)
}

/// Reads the JSON document at `path`; `Ok(None)` when the file does not exist.
///
/// Bare `NaN`, `Infinity` and `-Infinity` tokens (as Python's `json` module writes them) are
/// read as `null`, so documents written by the Python original parse.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read", path, e)),
    };
    serde_json::from_str(&relax_json(&text))
        .map(Some)
        .map_err(|e| StoreError::Json {
            what: json_what(path),
            path: path.to_path_buf(),
            source: e,
        })
}

fn json_what(path: &Path) -> &'static str {
    match path.file_name().and_then(OsStr::to_str) {
        Some("meta.json") => "meta.json",
        Some("summary.json") => "summary.json",
        _ => "JSON",
    }
}

/// Replaces the non-standard tokens `NaN`, `Infinity` and `-Infinity` outside strings by `null`.
pub(crate) fn relax_json(text: &str) -> Cow<'_, str> {
    if !(text.contains("NaN") || text.contains("Infinity")) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut in_string = false;
    while let Some(c) = rest.chars().next() {
        if in_string {
            match c {
                '\\' => {
                    let take = rest.char_indices().nth(2).map_or(rest.len(), |(i, _)| i);
                    out.push_str(&rest[..take]);
                    rest = &rest[take..];
                    continue;
                }
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if let Some(token) = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t))
        {
            out.push_str("null");
            rest = &rest[token.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// Removes temporary files left in `dir` by a writer that was killed mid-write (callers hold the
/// run lock, so no live writer owns them).
pub(crate) fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = fs::remove_file(e.path());
        }
    }
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
    fn atomic_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        write_json_atomic(&p, &[1, 2, 3]).unwrap();
        write_json_atomic(&p, &[4]).unwrap();
        let back: Vec<i32> = read_json(&p).unwrap().unwrap();
        assert_eq!(back, vec![4]);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.json")]);
        assert!(read_json::<Vec<i32>>(&dir.path().join("missing.json"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn failed_write_cleans_up_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no-such-dir").join("x.json");
        let e = write_json_atomic(&p, &1).unwrap_err();
        assert!(e.to_string().contains("no-such-dir"), "{e}");
    }
}
