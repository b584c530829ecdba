//! The crash-safe on-disk run store of slurptuna: run directories, the run lock, and the
//! append-only trial journal a resumed controller reads back.
//!
//! - [`FsStore`] implements `slurptuna_core::Store` for one run directory. It is created with
//!   [`FsStore::create_versioned`] (`run_root/<loss>_vNNNN`, claimed atomically) or
//!   [`FsStore::open_or_create`] (a named run, returning the stored [`RunMeta`] on resume), and
//!   holds the run's advisory lock while it lives ([`StoreError::Locked`] names a live holder's
//!   pid and host; a dead holder's lock is free).
//! - The journal (`journal.jsonl`) records trial events one JSON line at a time, fsynced at trial
//!   boundaries; a torn last record is skipped and truncated away. Per-seed values go to compact
//!   binary sidecars, verified by hash when read back. [`LoadReport`] says what was dropped.
//! - [`write_json_atomic`] is the one way documents are written (temp file, fsync, rename,
//!   directory fsync); [`read_json`] also accepts the Python original's `NaN`/`Infinity`.
//! - [`RunName`] and [`EntryLabel`] are checked directory names that can never leave their
//!   parent; [`create_versioned_dir`] claims `<base>_vNNNN` directories (the
//!   `optimize_entries` parent) and [`EntriesSummary`] is that parent's `summary.json`.
//!
//! # Run directory format
//!
//! ```text
//! <run_root>/<loss>_vNNNN/ (or <run_root>/<run_name>/)
//!   meta.json        RunMeta, pretty JSON, rewritten atomically (the original's field names)
//!   summary.json     RunSummary, pretty JSON, rewritten atomically
//!   journal.jsonl    append-only trial events, one JSON object per line
//!   run.lock         advisory lock of the live controller; holds its pid and host
//!   trials/trial_NNNNN/                  created on demand (task files, logs, ...)
//!     seed_values/chunk_NNNNN_<h>.f64    per-seed values of one chunk, little-endian f64
//! <run_root>/<loss>_entries_vNNNN/       optimize_entries: summary.json + one run per EntryLabel
//! ```
//!
//! Journal records (one `write` each; `asked`, `completed` and `failed` are fsynced, and with
//! them everything before; `chunk_done` survives a killed process):
//!
//! ```text
//! {"event":"asked","trial":0,"params":{"x":0.25}}
//! {"event":"chunk_done","trial":0,"chunk":0,"key":"…","stats":{"n":100,"mean":0.1,"m2":2.0},"values":{"len":100,"fnv":"…"}}
//! {"event":"completed","trial":0,"stats":{"n":1000,"mean":0.1,"m2":20.0}}
//! {"event":"failed","trial":1,"reason":"seed 7: …"}
//! ```
//!
//! Non-finite statistics are the strings `"NaN"`, `"Infinity"`, `"-Infinity"`. A `values`
//! reference names the length and FNV-1a hash of the chunk's sidecar (written by temp file +
//! rename before the record); a sidecar that is missing or does not match is never returned, so
//! the chunk is recomputed. On load, a torn last record (crash mid-write) is skipped and
//! truncated away before the next append; damage followed by a synced record cannot come from a
//! crash and is reported as [`StoreError::CorruptJournal`] rather than silently losing trials.
//!
//! This crate is **not** for deciding anything about a run: comparing a stored run with new
//! options, finishing in-flight trials and re-asking the sampler belong to the `slurptuna`
//! facade; what a record *means* (`TrialEvent`, `RunHistory`, `RunMeta`) is defined in
//! `slurptuna-core`. The in-memory store for tests is `slurptuna_core::testing::MemoryStore`.
//!
//! ```
//! use slurptuna_core::{SeedStats, Store, TrialEvent, TrialNumber};
//! use slurptuna_store::{create_versioned_dir, FsStore};
//!
//! let root = std::env::temp_dir().join(format!("slurptuna-doc-lib-{}", std::process::id()));
//! let dir = create_versioned_dir(&root, "bowl").unwrap();
//! let store = FsStore::attach(&dir).unwrap();
//! store.append(&TrialEvent::Asked { trial: TrialNumber(0), params: [("x", 0.3)].into_iter().collect() }).unwrap();
//! store.append(&TrialEvent::Completed { trial: TrialNumber(0), stats: SeedStats::from_values(&[1.0, 3.0]) }).unwrap();
//! drop(store); // releases the lock; a later controller resumes from the journal
//!
//! let store = FsStore::attach(&dir).unwrap();
//! let history = store.load().unwrap();
//! assert_eq!(history.n_finished(), 1);
//! assert_eq!(history.trial(TrialNumber(0)).and_then(|t| t.value()), Some(2.0));
//! # drop(store);
//! # std::fs::remove_dir_all(&root).unwrap();
//! ```

mod atomic;
mod entries;
mod error;
mod fs_store;
mod journal;
mod lock;
mod names;
mod version;

pub use atomic::{read_json, write_json_atomic};
pub use entries::EntriesSummary;
pub use error::{Result, StoreError};
pub use fs_store::{FsStore, META_FILE, SUMMARY_FILE};
pub use journal::{read_history, LoadReport, JOURNAL_FILE, TRIALS_DIR};
pub use lock::{host_name, LockHolder, LOCK_FILE};
pub use names::{EntryLabel, RunName, MAX_NAME_LEN};
pub use version::{create_versioned_dir, parse_version, versioned_name};

#[doc(no_inline)]
pub use slurptuna_core::RunMeta;
