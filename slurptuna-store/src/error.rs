//! The one error type of `slurptuna-store`.

use std::fmt;
use std::io;
use std::path::PathBuf;

use slurptuna_core::CoreError;

use crate::lock::LockHolder;

/// `Result` with [`StoreError`] as the default error.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong with a run directory.
///
/// Messages are lowercase, say what failed and where, and what to do; the underlying cause (an
/// I/O or JSON error) is the [`std::error::Error::source`], never repeated in the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file system operation failed.
    #[error("could not {action} {}: check that the path exists, is writable and the disk is not full", path.display())]
    Io {
        /// What was being done (`create directory`, `write`, `read`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A JSON document could not be written or read back.
    #[error("{} is not a valid {what} document: restore it or move the run directory aside", path.display())]
    Json {
        /// Which document (`meta.json`, `summary.json`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// Another live controller holds the run lock.
    #[error("run {} is in use by {}: stop that controller first, or use another run_name", run_dir.display(), HolderText(holder))]
    Locked {
        /// The run directory.
        run_dir: PathBuf,
        /// Who holds the lock, when it could be read.
        holder: Option<LockHolder>,
    },
    /// A run name or a versioned-directory base is not a safe single directory name.
    #[error("invalid run name '{name}': {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Two entry ids would share one directory.
    #[error("entry ids '{first}' and '{second}' both map to the directory label '{label}': make the ids differ in letters, digits, '_', '-' or '.'")]
    LabelCollision {
        /// The earlier id (input order).
        first: String,
        /// The later id.
        second: String,
        /// The label they share (compared without case, as on case-insensitive file systems).
        label: String,
    },
    /// The journal is damaged somewhere other than a torn tail left by a crash.
    #[error("journal {} is damaged at line {line} ({reason}) and records synced after it follow, so it was not torn by a crash: restore the file or move the run directory aside", path.display())]
    CorruptJournal {
        /// The journal file.
        path: PathBuf,
        /// 1-based line number of the first damaged record.
        line: u64,
        /// Why the record could not be read.
        reason: String,
    },
    /// No free version could be claimed under the run root.
    #[error("could not claim a new '{base}_vNNNN' directory under {} after {attempts} attempts: other launchers keep taking them; retry", run_root.display())]
    VersionsBusy {
        /// The run root.
        run_root: PathBuf,
        /// The base name.
        base: String,
        /// How many names were tried.
        attempts: u32,
    },
    /// A sync policy name that is neither `always` nor `grouped`.
    #[error("unknown sync policy '{name}': use 'always' (fsync every trial boundary) or 'grouped' (group commit)")]
    UnknownSyncPolicy {
        /// The name as given.
        name: String,
    },
    /// `FsStore::open` was pointed at a directory that holds no run.
    #[error("{} holds no run (no meta.json): check the path", run_dir.display())]
    NotARun {
        /// The directory.
        run_dir: PathBuf,
    },
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// True when the error is [`StoreError::Locked`] (another controller runs this run).
    pub fn is_locked(&self) -> bool {
        matches!(self, StoreError::Locked { .. })
    }
}

struct HolderText<'a>(&'a Option<LockHolder>);

impl fmt::Display for HolderText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(h) => write!(f, "{h}"),
            None => f.write_str("another process (its pid and host could not be read yet)"),
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        CoreError::Store {
            store: "fs",
            source: Box::new(e),
        }
    }
}
