//! [`FsStore`]: one run directory on disk, claimed by one controller.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use slurptuna_core::{RunHistory, RunMeta, RunSummary, Store, TrialEvent, TrialNumber};

use crate::atomic::{
    read_json, remove_stale_temps, sync_dir, write_bytes_atomic, write_json_atomic,
    write_json_with, Durability,
};
use crate::error::{Result, StoreError};
use crate::journal::{trial_dir_path, Journal, LoadReport, SyncKind};
use crate::lock::RunLock;
use crate::sync::{SyncCounter, SyncPolicy};
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
/// When it waits for the disk is its [`SyncPolicy`] (default: `Grouped` every 100 ms; see
/// "Durability" in the crate documentation). Under `Grouped` the store owns a background
/// flusher thread, started by the first trial-boundary event and stopped (and joined) when the
/// store is dropped; dropping the store also syncs whatever is still unsynced.
///
/// ```
/// use slurptuna_core::{Params, Store, TrialEvent, TrialNumber};
/// use slurptuna_store::{create_versioned_dir, FsStore, SyncPolicy};
/// let root = std::env::temp_dir().join(format!("slurptuna-doc-fs-{}", std::process::id()));
/// // `FsStore::create_versioned(&root, "toy", &meta)` also writes meta.json.
/// let store = FsStore::attach(&create_versioned_dir(&root, "toy").unwrap()).unwrap();
/// assert!(store.dir().ends_with("toy_v0001"));
/// assert!(FsStore::attach(store.dir()).unwrap_err().is_locked());
/// assert_eq!(store.sync_policy(), SyncPolicy::default());
/// let params: Params = [("x", 0.5)].into_iter().collect();
/// store.append(&TrialEvent::Asked { trial: TrialNumber(0), params, control: None }).unwrap();
/// assert_eq!(store.load().unwrap().next_trial_number(), TrialNumber(1));
/// store.sync().unwrap(); // the event now survives an OS crash, whatever the policy
/// assert!(!store.is_dirty());
/// # drop(store);
/// # std::fs::remove_dir_all(&root).unwrap();
/// ```
#[derive(Debug)]
pub struct FsStore {
    run_dir: PathBuf,
    journal: Arc<Journal>,
    policy: SyncPolicy,
    /// True while `summary.json` was renamed into place without fsync since the last sync;
    /// held while writing the document under `Grouped` and while syncing it.
    summary_pending: Mutex<bool>,
    /// The flusher thread (`Grouped`), started by the first boundary event.
    flusher: Mutex<Option<JoinHandle<()>>>,
    _lock: RunLock,
}

impl FsStore {
    /// Takes the lock of the existing directory `run_dir` without reading or writing
    /// `meta.json` (for tools that inspect or repair a run, and for tests). Temporary files left
    /// by a killed writer are removed. The sync policy is [`SyncPolicy::default`].
    pub fn attach(run_dir: &Path) -> Result<FsStore> {
        let lock = RunLock::acquire(run_dir)?;
        remove_stale_temps(run_dir);
        let policy = SyncPolicy::default();
        Ok(FsStore {
            run_dir: run_dir.to_path_buf(),
            journal: Arc::new(Journal::new(run_dir, policy)),
            policy,
            summary_pending: Mutex::new(false),
            flusher: Mutex::new(None),
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

    /// The store with `policy` as its sync policy (from now on; nothing written so far is
    /// rewritten). A running flusher thread is stopped first; `Grouped` starts a new one with
    /// the next boundary event.
    ///
    /// ```
    /// use std::time::Duration;
    /// use slurptuna_store::{FsStore, SyncPolicy};
    /// let dir = std::env::temp_dir().join(format!("slurptuna-doc-sp-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let store = FsStore::attach(&dir).unwrap().with_sync_policy(SyncPolicy::Always);
    /// assert_eq!(store.sync_policy(), SyncPolicy::Always);
    /// let grouped = SyncPolicy::Grouped { interval: Duration::from_millis(20) };
    /// assert_eq!(store.with_sync_policy(grouped).sync_policy(), grouped);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn with_sync_policy(mut self, policy: SyncPolicy) -> FsStore {
        self.stop_flusher();
        self.policy = policy;
        self.journal.set_policy(policy);
        self
    }

    /// The sync policy.
    pub fn sync_policy(&self) -> SyncPolicy {
        self.policy
    }

    /// Number of fsync/fdatasync calls this store issued so far (journal, documents and
    /// directories, whether they succeeded or not): cheap, for tests and benchmarks.
    pub fn sync_count(&self) -> u64 {
        self.journal.sync_counter().get()
    }

    /// A handle on the counter of [`FsStore::sync_count`] that outlives the store (to count
    /// the syncs of its drop too).
    pub fn sync_counter(&self) -> SyncCounter {
        self.journal.sync_counter().clone()
    }

    /// True while something this store wrote (a journal record, a `summary.json` replaced
    /// under `Grouped`) is not yet known to survive an OS crash; false right after
    /// [`FsStore::sync_to_disk`] (or [`Store::sync`]) returned with nothing appended since.
    pub fn is_dirty(&self) -> bool {
        self.journal.is_dirty() || *lock_flag(&self.summary_pending)
    }

    /// Like [`Store::sync`], with the crate's own error type: fdatasyncs the journal if
    /// anything was appended since its last sync, and, when `summary.json` was replaced without
    /// fsync (`Grouped`) since the last sync, fsyncs it and the run directory. Also reports a
    /// failed background sync of the flusher thread.
    pub fn sync_to_disk(&self) -> Result<()> {
        let background = self.journal.take_sync_error();
        let journal = self.journal.sync(SyncKind::All);
        let summary = self.sync_summary();
        background.and(journal).and(summary)
    }

    fn sync_summary(&self) -> Result<()> {
        let mut pending = lock_flag(&self.summary_pending);
        if !*pending {
            return Ok(());
        }
        let path = self.run_dir.join(SUMMARY_FILE);
        match File::open(&path) {
            Ok(f) => {
                self.journal.count_syncs(1);
                f.sync_all().map_err(|e| StoreError::io("sync", &path, e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("open", &path, e)),
        }
        self.journal.count_syncs(1);
        sync_dir(&self.run_dir)?;
        *pending = false;
        Ok(())
    }

    /// Starts the flusher thread if it is not running. If no thread can be started, syncs now
    /// instead (so nothing is left waiting for a thread that does not exist).
    fn ensure_flusher(&self) -> Result<()> {
        let mut slot = self.flusher.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return Ok(());
        }
        let journal = Arc::clone(&self.journal);
        let spawned = std::thread::Builder::new()
            .name("slurptuna-store-flush".into())
            .spawn(move || journal.run_flusher());
        match spawned {
            Ok(h) => {
                *slot = Some(h);
                Ok(())
            }
            Err(_) => {
                drop(slot);
                self.journal.sync(SyncKind::All)
            }
        }
    }

    /// Stops the flusher thread (if any) and waits for it.
    fn stop_flusher(&mut self) {
        let handle = self
            .flusher
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle {
            self.journal.set_stop(true);
            // The thread never panics; a panic would only mean it is gone, which is the aim.
            let _ = h.join();
            self.journal.set_stop(false);
        }
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

    /// Replaces `meta.json` atomically and durably (file fsync, rename, directory fsync),
    /// whatever the sync policy: it is written once per start.
    pub fn write_meta_doc(&self, meta: &RunMeta) -> Result<()> {
        self.journal.count_syncs(2);
        write_json_atomic(&self.run_dir.join(META_FILE), meta)
    }

    /// The stored `summary.json`, if any.
    pub fn read_summary_doc(&self) -> Result<Option<RunSummary>> {
        read_json(&self.run_dir.join(SUMMARY_FILE))
    }

    /// Replaces `summary.json` atomically (a reader sees the old or the new document). Under
    /// `Always` it is durable on return (file fsync, rename, directory fsync); under `Grouped`
    /// it is renamed into place without fsync and made durable by the next
    /// [`FsStore::sync_to_disk`].
    pub fn write_summary_doc(&self, summary: &RunSummary) -> Result<()> {
        let path = self.run_dir.join(SUMMARY_FILE);
        match self.policy {
            SyncPolicy::Always => {
                self.journal.count_syncs(2);
                write_json_atomic(&path, summary)
            }
            SyncPolicy::Grouped { .. } => {
                let mut pending = lock_flag(&self.summary_pending);
                write_json_with(&path, summary, Durability::ProcessCrash)?;
                *pending = true;
                Ok(())
            }
        }
    }

    /// `run_dir/trials/trial_NNNNN`, not created (see [`FsStore::create_trial_dir`]).
    pub fn trial_path(&self, trial: TrialNumber) -> PathBuf {
        trial_dir_path(&self.run_dir, trial)
    }

    /// `run_dir/trials/trial_NNNNN`, created (with `trials/`) if missing.
    pub fn create_trial_dir(&self, trial: TrialNumber) -> Result<PathBuf> {
        let dir = self.trial_path(trial);
        fs::create_dir_all(&dir).map_err(|e| StoreError::io("create directory", &dir, e))?;
        Ok(dir)
    }
}

fn lock_flag(m: &Mutex<bool>) -> MutexGuard<'_, bool> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for FsStore {
    /// Stops and joins the flusher thread, then syncs what is still unsynced (errors cannot be
    /// reported here: call [`Store::sync`] first to see them).
    fn drop(&mut self) {
        self.stop_flusher();
        let _ = self.sync_to_disk();
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
        self.journal.append(event)?;
        if event.is_boundary() && self.policy.is_grouped() {
            self.ensure_flusher()?;
        }
        Ok(())
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
    fn sync(&self) -> slurptuna_core::Result<()> {
        Ok(self.sync_to_disk()?)
    }
    fn run_dir(&self) -> Option<&Path> {
        Some(&self.run_dir)
    }
    fn trial_dir(&self, trial: TrialNumber) -> slurptuna_core::Result<Option<PathBuf>> {
        Ok(Some(self.trial_path(trial)))
    }

    fn save_control_values(
        &self,
        trial: TrialNumber,
        values: &[f64],
    ) -> slurptuna_core::Result<()> {
        let dir = self.create_trial_dir(trial)?;
        let bytes = crate::seed_values::encode_control_values(values);
        write_bytes_atomic(
            &dir.join(crate::seed_values::CONTROL_VALUES_FILE),
            &bytes,
            Durability::Synced,
        )?;
        Ok(())
    }

    fn control_values(&self, trial: TrialNumber) -> slurptuna_core::Result<Option<Vec<f64>>> {
        let path = self
            .trial_path(trial)
            .join(crate::seed_values::CONTROL_VALUES_FILE);
        match fs::read(&path) {
            Ok(bytes) => Ok(crate::seed_values::decode_control_values(&bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", &path, e).into()),
        }
    }

    fn discard_seed_values(&self, trial: TrialNumber) -> slurptuna_core::Result<()> {
        let dir = self.trial_path(trial);
        let gone = |r: io::Result<()>| match r {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        let values = dir.join(crate::journal::VALUES_DIR);
        gone(fs::remove_dir_all(&values)).map_err(|e| StoreError::io("remove", &values, e))?;
        let control = dir.join(crate::seed_values::CONTROL_VALUES_FILE);
        gone(fs::remove_file(&control)).map_err(|e| StoreError::io("remove", &control, e))?;
        Ok(())
    }
}
