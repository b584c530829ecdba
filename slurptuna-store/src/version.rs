//! Versioned directory names (`<base>_vNNNN`), claimed atomically.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::names::RunName;

/// How many names a claim tries before giving up (each failure means another launcher took one).
const MAX_ATTEMPTS: u32 = 10_000;

/// `<base>_v<n>` with at least four digits (`toy_v0001`, ..., `toy_v9999`, `toy_v10000`).
pub fn versioned_name(base: &str, n: u64) -> String {
    format!("{base}_v{n:04}")
}

/// The version of `name` if it is `<base>_v` followed by four or more digits.
///
/// ```
/// use slurptuna_store::parse_version;
/// assert_eq!(parse_version("toy_v0012", "toy"), Some(12));
/// assert_eq!(parse_version("toy_v10000", "toy"), Some(10000));
/// assert_eq!(parse_version("toy_v12", "toy"), None);
/// assert_eq!(parse_version("toy2_v0001", "toy"), None);
/// ```
pub fn parse_version(name: &str, base: &str) -> Option<u64> {
    let digits = name.strip_prefix(base)?.strip_prefix("_v")?;
    if digits.len() < 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn highest_version(run_root: &Path, base: &str) -> Result<u64> {
    let entries = match fs::read_dir(run_root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::io("list", run_root, e)),
    };
    let mut max = 0;
    for e in entries {
        let e = e.map_err(|e| StoreError::io("list", run_root, e))?;
        if let Some(v) = e.file_name().to_str().and_then(|n| parse_version(n, base)) {
            max = max.max(v);
        }
    }
    Ok(max)
}

/// Claims `run_root/<base>_vNNNN` with the next free version and returns its path.
///
/// The claim is the creation of the final directory itself (`mkdir` fails if the name exists),
/// so two launchers, threads or processes never get the same version; a launcher that loses a
/// race moves on to the next number. Versions continue past `v9999` (`v10000`, ...). `run_root` is
/// created if missing. `base` must be a valid [`RunName`].
///
/// ```
/// let root = std::env::temp_dir().join(format!("slurptuna-doc-v-{}", std::process::id()));
/// let a = slurptuna_store::create_versioned_dir(&root, "toy_entries").unwrap();
/// let b = slurptuna_store::create_versioned_dir(&root, "toy_entries").unwrap();
/// assert!(a.ends_with("toy_entries_v0001") && b.ends_with("toy_entries_v0002"));
/// # std::fs::remove_dir_all(&root).unwrap();
/// ```
pub fn create_versioned_dir(run_root: &Path, base: &str) -> Result<PathBuf> {
    RunName::new(base)?;
    fs::create_dir_all(run_root).map_err(|e| StoreError::io("create the run root", run_root, e))?;
    let mut next = highest_version(run_root, base)? + 1;
    for _ in 0..MAX_ATTEMPTS {
        let dir = run_root.join(versioned_name(base, next));
        match fs::create_dir(&dir) {
            Ok(()) => {
                crate::atomic::sync_dir(run_root)?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Someone else took it (or a file has that name): jump past everything seen.
                next = (next + 1).max(highest_version(run_root, base)? + 1);
            }
            Err(e) => return Err(StoreError::io("create directory", &dir, e)),
        }
    }
    Err(StoreError::VersionsBusy {
        run_root: run_root.to_path_buf(),
        base: base.to_string(),
        attempts: MAX_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_past_9999_and_skips_files() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("toy_v9999")).unwrap();
        let d = create_versioned_dir(root.path(), "toy").unwrap();
        assert!(d.ends_with("toy_v10000"));
        let d = create_versioned_dir(root.path(), "toy").unwrap();
        assert!(d.ends_with("toy_v10001"));
        fs::write(root.path().join("other_v0001"), "a file").unwrap();
        fs::write(root.path().join("other_v0002"), "a file").unwrap();
        let d = create_versioned_dir(root.path(), "other").unwrap();
        assert!(d.ends_with("other_v0003"));
    }

    #[test]
    fn rejects_unsafe_bases_before_touching_disk() {
        let root = tempfile::tempdir().unwrap();
        let run_root = root.path().join("runs");
        for base in ["", "..", "a/b", ".x"] {
            assert!(create_versioned_dir(&run_root, base).is_err(), "{base:?}");
        }
        assert!(!run_root.exists());
    }
}
