//! JSON documents written through the one atomic-write helper (`slurptuna_core::fs`) and read
//! tolerantly (the Python original's `NaN`/`Infinity` tokens).

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use slurptuna_core::fs::{relax_json, write_atomic};
pub(crate) use slurptuna_core::fs::{remove_stale_temps, Durability};

use crate::error::{Result, StoreError};

/// fsyncs a directory so a rename or create inside it survives a machine crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    slurptuna_core::fs::sync_dir(dir).map_err(|e| StoreError::io("sync directory", dir, e))
}

/// Replaces `path` with `bytes` atomically: readers see the old content or the new, never a mix.
pub(crate) fn write_bytes_atomic(path: &Path, bytes: &[u8], durability: Durability) -> Result<()> {
    write_atomic(path, bytes, durability, None)
        .map_err(|e| StoreError::io("write atomically", path, e))
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
    write_json_with(path, value, Durability::Synced)
}

/// Like [`write_json_atomic`], with the durability chosen: [`Durability::ProcessCrash`] renames
/// without any fsync (the caller makes the document durable later).
pub(crate) fn write_json_with<T: Serialize + ?Sized>(
    path: &Path,
    value: &T,
    durability: Durability,
) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Json {
        what: json_what(path),
        path: path.to_path_buf(),
        source: e,
    })?;
    bytes.push(b'\n');
    write_bytes_atomic(path, &bytes, durability)
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

#[cfg(test)]
mod tests {
    use super::*;

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
