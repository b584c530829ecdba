//! [`FsStore`]: one run directory on disk, claimed by one controller.

use std::fs;
use std::path::{Path, PathBuf};

use slurptuna_core::{RunHistory, RunMeta, RunSummary, Store, TrialEvent, TrialNumber};

use crate::atomic::{read_json, remove_stale_temps, write_json_atomic};
use crate::error::{Result, StoreError};
use crate::journal::{trial_dir_path, Journal, LoadReport};
use crate::lock::RunLock;
use crate::version::create_versioned_dir;

/// File name of the run's metadata document.
pub const META_FILE: &str = "meta.json";
/// File name of the run's (and the entries parent's) summary document.
pub const SUMMARY_FILE: &str = "summary.json";

/// The on-disk [`Store`] of one run directory (`meta.json`, `summary.json`, `journal.jsonl`,
/// `run.lock`, `trials/`; see "Run directory format" in the crate documentation).
///
/// An `FsStore` holds the run lock for as long as it lives: a second `FsStore` on the same
/// directory (in any process on a host sharing the file system) fails with
/// [`StoreError::Locked`] naming the holder. The lock of a process that died is free.
///
/// ```
/// use slurptuna_core::{Params, Store, TrialEvent, TrialNumber};
/// use slurptuna_store::{create_versioned_dir, FsStore};
/// let root = std::env::temp_dir().join(format!("slurptuna-doc-fs-{}", std::process::id()));
/// // `FsStore::create_versioned(&root, "toy", &meta)` also writes meta.json.
/// let store = FsStore::attach(&create_versioned_dir(&root, "toy").unwrap()).unwrap();
/// assert!(store.dir().ends_with("toy_v0001"));
/// assert!(FsStore::attach(store.dir()).unwrap_err().is_locked());
/// let params: Params = [("x", 0.5)].into_iter().collect();
/// store.append(&TrialEvent::Asked { trial: TrialNumber(0), params }).unwrap();
/// assert_eq!(store.load().unwrap().next_trial_number(), TrialNumber(1));
/// # drop(store);
/// # std::fs::remove_dir_all(&root).unwrap();
/// ```
#[derive(Debug)]
pub struct FsStore {
    run_dir: PathBuf,
    journal: Journal,
    _lock: RunLock,
}

impl FsStore {
    /// Takes the lock of the existing directory `run_dir` without reading or writing
    /// `meta.json` (for tools that inspect or repair a run, and for tests). Temporary files left
    /// by a killed writer are removed.
    pub fn attach(run_dir: &Path) -> Result<FsStore> {
        let lock = RunLock::acquire(run_dir)?;
        remove_stale_temps(run_dir);
        Ok(FsStore {
            run_dir: run_dir.to_path_buf(),
            journal: Journal::new(run_dir),
            _lock: lock,
        })
    }

    /// Claims `run_root/<base>_vNNNN` (see [`create_versioned_dir`]), takes its lock and writes
    /// `meta.json`. The stored meta's `run_name` and `run_dir` are set to the claimed directory.
    pub fn create_versioned(run_root: &Path, base: &str, meta: &RunMeta) -> Result<FsStore> {
        let dir = create_versioned_dir(run_root, base)?;
        let store = FsStore::attach(&dir)?;
        store.write_meta_doc(&with_location(meta, &dir))?;
        Ok(store)
    }

    /// Opens the named run `run_dir` (created with its parents if missing) and takes its lock.
    ///
    /// Returns the previously stored meta when the run existed — the caller compares it with
    /// [`RunMeta::resume_conflicts`] and writes the updated meta (first start kept, a resume
    /// recorded) with [`Store::write_meta`]. For a new run, `meta` is written (with `run_name`
    /// and `run_dir` set from `run_dir`) and `None` is returned.
    pub fn open_or_create(run_dir: &Path, meta: &RunMeta) -> Result<(FsStore, Option<RunMeta>)> {
        fs::create_dir_all(run_dir)
            .map_err(|e| StoreError::io("create the run directory", run_dir, e))?;
        let store = FsStore::attach(run_dir)?;
        match store.read_meta_doc()? {
            Some(old) => Ok((store, Some(old))),
            None => {
                store.write_meta_doc(&with_location(meta, run_dir))?;
                Ok((store, None))
            }
        }
    }

    /// Opens an existing run (one with a `meta.json`) and takes its lock; returns the stored meta.
    pub fn open(run_dir: &Path) -> Result<(FsStore, RunMeta)> {
        if !run_dir.join(META_FILE).is_file() {
            return Err(StoreError::NotARun {
                run_dir: run_dir.to_path_buf(),
            });
        }
        let store = FsStore::attach(run_dir)?;
        let meta = store.read_meta_doc()?.ok_or_else(|| StoreError::NotARun {
            run_dir: run_dir.to_path_buf(),
        })?;
        Ok((store, meta))
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.run_dir
    }

    /// The journal file (`run_dir/journal.jsonl`).
    pub fn journal_path(&self) -> &Path {
        self.journal.path()
    }

    /// Like [`Store::load`], with what was dropped (torn tail, chunks whose values did not
    /// verify) and the crate's own error type.
    pub fn load_with_report(&self) -> Result<(RunHistory, LoadReport)> {
        self.journal.load()
    }

    /// The stored `meta.json`, if any.
    pub fn read_meta_doc(&self) -> Result<Option<RunMeta>> {
        read_json(&self.run_dir.join(META_FILE))
    }

    /// Replaces `meta.json` atomically.
    pub fn write_meta_doc(&self, meta: &RunMeta) -> Result<()> {
        write_json_atomic(&self.run_dir.join(META_FILE), meta)
    }

    /// The stored `summary.json`, if any.
    pub fn read_summary_doc(&self) -> Result<Option<RunSummary>> {
        read_json(&self.run_dir.join(SUMMARY_FILE))
    }

    /// Replaces `summary.json` atomically.
    pub fn write_summary_doc(&self, summary: &RunSummary) -> Result<()> {
        write_json_atomic(&self.run_dir.join(SUMMARY_FILE), summary)
    }

    /// `run_dir/trials/trial_NNNNN`, created if missing.
    pub fn trial_path(&self, trial: TrialNumber) -> Result<PathBuf> {
        let dir = trial_dir_path(&self.run_dir, trial);
        fs::create_dir_all(&dir).map_err(|e| StoreError::io("create directory", &dir, e))?;
        Ok(dir)
    }
}

fn with_location(meta: &RunMeta, dir: &Path) -> RunMeta {
    let mut m = meta.clone();
    if let Some(name) = dir.file_name() {
        m.run_name = name.to_string_lossy().into_owned();
    }
    m.run_dir = dir.display().to_string();
    m
}

impl Store for FsStore {
    fn name(&self) -> &'static str {
        "fs"
    }
    fn append(&self, event: &TrialEvent) -> slurptuna_core::Result<()> {
        Ok(self.journal.append(event)?)
    }
    fn load(&self) -> slurptuna_core::Result<RunHistory> {
        Ok(self.journal.load()?.0)
    }
    fn read_meta(&self) -> slurptuna_core::Result<Option<RunMeta>> {
        Ok(self.read_meta_doc()?)
    }
    fn write_meta(&self, meta: &RunMeta) -> slurptuna_core::Result<()> {
        Ok(self.write_meta_doc(meta)?)
    }
    fn write_summary(&self, summary: &RunSummary) -> slurptuna_core::Result<()> {
        Ok(self.write_summary_doc(summary)?)
    }
    fn read_summary(&self) -> slurptuna_core::Result<Option<RunSummary>> {
        Ok(self.read_summary_doc()?)
    }
    fn run_dir(&self) -> Option<&Path> {
        Some(&self.run_dir)
    }
    fn trial_dir(&self, trial: TrialNumber) -> slurptuna_core::Result<Option<PathBuf>> {
        Ok(Some(self.trial_path(trial)?))
    }
}
