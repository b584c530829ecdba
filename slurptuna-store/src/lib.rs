//! The crash-safe on-disk run store of slurptuna: run directories, the run lock, and the
//! append-only trial journal a resumed controller reads back.
//!
//! - [`FsStore`] implements `slurptuna_core::Store` for one run directory. It is created with
//!   [`FsStore::create_versioned`] (`run_root/<loss>_vNNNN`, claimed atomically) or
//!   [`FsStore::open_or_create`] (a named run, returning the stored [`RunMeta`] on resume), and
//!   holds the run's advisory lock while it lives ([`StoreError::Locked`] names a live holder's
//!   pid and host; a dead holder's lock is free).
//! - The journal (`journal.jsonl`) records trial events one JSON line at a time, written before
//!   `append` returns and fsynced as the store's [`SyncPolicy`] says (group commit by default:
//!   at most one fsync per 100 ms; see "Durability"); a torn last record is skipped and
//!   truncated away. Per-seed values go to compact binary sidecars, verified by hash when read
//!   back. [`LoadReport`] says what was dropped.
//! - [`write_json_atomic`] is the one way documents are written (temp file, fsync, rename,
//!   directory fsync; `summary.json` under `Grouped`: temp file and rename, synced later);
//!   [`read_json`] also accepts the Python original's `NaN`/`Infinity`.
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
//!   trials/trial_NNNNN/                  created by whoever writes there (task files, logs, ...)
//!     seed_values/chunk_NNNNN_<h>.f64    per-seed values of one chunk, little-endian f64
//! <run_root>/<loss>_entries_vNNNN/       optimize_entries: summary.json + one run per EntryLabel
//! ```
//!
//! Journal records (one `write` each, so every record survives a killed process; `asked`,
//! `completed` and `failed` are the trial-boundary records the sync policy is about):
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
//! ## Durability
//!
//! What survives what, under each [`SyncPolicy`] (set with [`FsStore::with_sync_policy`]):
//!
//! - **Killed process** (`kill -9`, a panic, an abort): nothing that was appended is lost,
//!   under either policy. Every record goes to the journal with one `write()` on the file (no
//!   buffering in the process) before `append` returns; documents are replaced by rename.
//! - **OS crash or power loss**, [`SyncPolicy::Always`]: a boundary record (and every record
//!   before it) is fdatasynced before `append` returns; `summary.json` is fully synced (file
//!   fsync, rename, directory fsync) before `write_summary` returns. A trial pays one fsync per
//!   boundary event and two per summary: 1–30 ms each on NFS or Lustre.
//! - **OS crash or power loss**, [`SyncPolicy::Grouped`] (the default, `interval` 100 ms; like
//!   SQLite's WAL with `synchronous=NORMAL` or PostgreSQL's group commit): `append` does not
//!   fsync when the last sync is less than `interval` old; it marks the journal dirty. The
//!   journal is fdatasynced (a) inline by a boundary `append` when the last sync is at least
//!   `interval` old (a trial that computed longer than the interval is synced when it ends),
//!   (b) by the store's flusher thread at `last sync + interval` while a boundary record is
//!   unsynced, (c) by `Store::sync` ([`FsStore::sync_to_disk`]), and (d) when the store is
//!   dropped (after its flusher thread is stopped and joined). An OS crash loses at most about
//!   `interval` of boundary events (plus chunk records after them); the journal gets at most
//!   one periodic fsync per interval, and the flusher fsyncs a cloned file handle outside the
//!   journal's mutex, so appends go on during a slow fsync. `summary.json` is replaced
//!   atomically by rename without any fsync: after an OS crash it may be an older version (it
//!   is rebuilt from the journal); the next `sync` fsyncs it and the run directory.
//! - Under both policies: `meta.json` is always fully synced (it is written once per start);
//!   creating `journal.jsonl` fsyncs the run directory once; truncating a torn tail fsyncs the
//!   journal; `chunk_done` records are never fsynced on their own (they become durable with
//!   the next sync of the journal).
//! - Sidecars (`seed_values/*.f64`) keep their behaviour under both policies: written by temp
//!   file and rename before the record that names it, never fsynced. After an OS crash a
//!   sidecar whose record survived may be missing or incomplete; its length and hash then do
//!   not match, the chunk is not returned ([`LoadReport::invalid_chunks`]) and is recomputed:
//!   wrong values are never loaded. Sidecars of finished trials are never read.
//! - A failed fsync of the flusher thread is reported by the next `append` or `sync`.
//!
//! [`FsStore::sync_count`] (and [`SyncCounter`], which outlives the store) counts the fsync
//! calls a store issued, for tests and benchmarks.
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
//! store.append(&TrialEvent::Asked { trial: TrialNumber(0), params: [("x", 0.3)].into_iter().collect(), control: None }).unwrap();
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
mod seed_values;
mod sync;
mod version;

pub use atomic::{read_json, write_json_atomic};
pub use entries::EntriesSummary;
pub use error::{Result, StoreError};
pub use fs_store::{FsStore, META_FILE, SUMMARY_FILE};
pub use journal::{read_history, LoadReport, JOURNAL_FILE, TRIALS_DIR};
pub use lock::{host_name, LockHolder, LOCK_FILE};
pub use names::{EntryLabel, RunName, MAX_NAME_LEN};
pub use seed_values::{read_all_seed_values, read_seed_values, SeedValues};
pub use sync::{SyncCounter, SyncPolicy, DEFAULT_SYNC_INTERVAL};
pub use version::{create_versioned_dir, parse_version, versioned_name};

#[doc(no_inline)]
pub use slurptuna_core::RunMeta;
