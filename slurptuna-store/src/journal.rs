//! The append-only trial journal (`journal.jsonl`) and the per-seed value sidecars.
//!
//! The record format and the recovery rules are described in the crate documentation
//! ("Run directory format"). Reading holds chunk records back until the end of the journal:
//! those of trials that finished are discarded without opening their sidecars, so only the
//! sidecars of in-flight trials are read and a resume stays fast however long the run is.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::time::Instant;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use slurptuna_core::{
    fingerprint_hex, ChunkIndex, ChunkKey, ChunkResult, Params, RaceOutcome, RunHistory, SeedStats,
    TrialEvent, TrialNumber,
};

use crate::atomic::{sync_dir, write_bytes_atomic, Durability};
use crate::error::{Result, StoreError};
use crate::sync::{SyncCounter, SyncPolicy};

/// File name of the journal inside a run directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// Directory (inside a run directory) holding one `trial_NNNNN` directory per trial.
pub const TRIALS_DIR: &str = "trials";
/// Directory (inside a trial directory) holding the per-seed value sidecars.
pub(crate) const VALUES_DIR: &str = "seed_values";

/// `run_dir/trials/trial_NNNNN`.
pub(crate) fn trial_dir_path(run_dir: &Path, trial: TrialNumber) -> PathBuf {
    run_dir
        .join(TRIALS_DIR)
        .join(format!("trial_{:05}", trial.0))
}

fn values_path(run_dir: &Path, trial: TrialNumber, chunk: ChunkIndex, key: &str) -> PathBuf {
    trial_dir_path(run_dir, trial)
        .join(VALUES_DIR)
        .join(format!(
            "chunk_{:05}_{}.f64",
            chunk.0,
            fingerprint_hex(key.as_bytes())
        ))
}

/// What [`crate::FsStore::load_with_report`] found besides the history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Whole records read and applied.
    pub records: u64,
    /// 1-based line of the torn or damaged tail that was dropped, if any.
    pub dropped_tail_line: Option<u64>,
    /// Bytes dropped from the end of the journal (a torn record and what followed it).
    pub dropped_tail_bytes: u64,
    /// Chunk records of unfinished trials whose per-seed values were missing or did not match
    /// (not returned; the chunk must be recomputed).
    pub invalid_chunks: u64,
}

/// A float that survives JSON: finite values are numbers, the others strings.
#[derive(Clone, Copy, Debug, PartialEq)]
struct JsonF64(f64);

impl Serialize for JsonF64 {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let x = self.0;
        if x.is_finite() {
            s.serialize_f64(x)
        } else if x.is_nan() {
            s.serialize_str("NaN")
        } else if x > 0.0 {
            s.serialize_str("Infinity")
        } else {
            s.serialize_str("-Infinity")
        }
    }
}

impl<'de> Deserialize<'de> for JsonF64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JsonF64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<JsonF64, E> {
                Ok(JsonF64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<JsonF64, E> {
                Ok(JsonF64(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<JsonF64, E> {
                Ok(JsonF64(v as f64))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<JsonF64, E> {
                Ok(JsonF64(f64::NAN))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<JsonF64, E> {
                match v {
                    "NaN" => Ok(JsonF64(f64::NAN)),
                    "Infinity" => Ok(JsonF64(f64::INFINITY)),
                    "-Infinity" => Ok(JsonF64(f64::NEG_INFINITY)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

/// [`SeedStats`] as the journal writes it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct StatsRepr {
    n: u64,
    mean: JsonF64,
    m2: JsonF64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pos_inf: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    neg_inf: u64,
}

impl From<&SeedStats> for StatsRepr {
    fn from(s: &SeedStats) -> Self {
        StatsRepr {
            n: s.n,
            mean: JsonF64(s.mean),
            m2: JsonF64(s.m2),
            pos_inf: s.pos_inf,
            neg_inf: s.neg_inf,
        }
    }
}

impl From<StatsRepr> for SeedStats {
    fn from(s: StatsRepr) -> Self {
        SeedStats {
            n: s.n,
            mean: s.mean.0,
            m2: s.m2.0,
            pos_inf: s.pos_inf,
            neg_inf: s.neg_inf,
        }
    }
}

/// Where a chunk's per-seed values are and how to check them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ValuesRef {
    /// Number of values (the sidecar has `8 * len` bytes).
    len: u64,
    /// FNV-1a hash of the sidecar's bytes.
    fnv: String,
}

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum LineOut<'a> {
    Asked {
        trial: TrialNumber,
        params: &'a Params,
        at: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        control: Option<TrialNumber>,
    },
    ChunkDone {
        trial: TrialNumber,
        chunk: ChunkIndex,
        key: &'a str,
        stats: StatsRepr,
        #[serde(skip_serializing_if = "Option::is_none")]
        values: Option<ValuesRef>,
    },
    Completed {
        trial: TrialNumber,
        stats: StatsRepr,
        at: f64,
    },
    Failed {
        trial: TrialNumber,
        reason: &'a str,
        at: f64,
    },
    Pruned {
        trial: TrialNumber,
        race: RaceRepr,
        at: f64,
    },
    ValidationChunkDone {
        trial: TrialNumber,
        chunk: ChunkIndex,
        key: &'a str,
        stats: StatsRepr,
    },
    Validated {
        trial: TrialNumber,
        stats: StatsRepr,
        at: f64,
    },
}

/// [`RaceOutcome`] as the journal writes it (floats that survive JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RaceRepr {
    seeds: u64,
    estimate: JsonF64,
    bound: JsonF64,
    beta: JsonF64,
    threshold: JsonF64,
    control: TrialNumber,
    alpha: JsonF64,
    stats: StatsRepr,
    #[serde(default)]
    looks: Vec<(u64, JsonF64)>,
}

impl From<&RaceOutcome> for RaceRepr {
    fn from(r: &RaceOutcome) -> Self {
        RaceRepr {
            seeds: r.seeds,
            estimate: JsonF64(r.estimate),
            bound: JsonF64(r.bound),
            beta: JsonF64(r.beta),
            threshold: JsonF64(r.threshold),
            control: r.control,
            alpha: JsonF64(r.alpha),
            stats: (&r.stats).into(),
            looks: r.looks.iter().map(|&(n, v)| (n, JsonF64(v))).collect(),
        }
    }
}

impl From<RaceRepr> for RaceOutcome {
    fn from(r: RaceRepr) -> Self {
        RaceOutcome {
            seeds: r.seeds,
            estimate: r.estimate.0,
            bound: r.bound.0,
            beta: r.beta.0,
            threshold: r.threshold.0,
            control: r.control,
            alpha: r.alpha.0,
            stats: r.stats.into(),
            looks: r.looks.into_iter().map(|(n, v)| (n, v.0)).collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Asked,
    ChunkDone,
    Completed,
    Failed,
    Pruned,
    ValidationChunkDone,
    Validated,
}

/// A journal line as read: flat, so parsing needs no buffering; checked by [`LineIn::check`].
#[derive(Deserialize)]
struct LineIn {
    event: Kind,
    trial: TrialNumber,
    #[serde(default)]
    params: Option<Params>,
    #[serde(default)]
    chunk: Option<ChunkIndex>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    stats: Option<StatsRepr>,
    #[serde(default)]
    values: Option<ValuesRef>,
    #[serde(default)]
    reason: Option<String>,
    /// The control of a racing trial (`asked`).
    #[serde(default)]
    control: Option<TrialNumber>,
    /// A pruned trial's race (`pruned`).
    #[serde(default)]
    race: Option<RaceRepr>,
    /// When the record was written (seconds since the Unix epoch); absent before 0.2.
    #[serde(default)]
    at: Option<f64>,
}

enum Record {
    /// A trial event and when it was written, if the record says.
    Event(TrialEvent, Option<f64>),
    Chunk(PendingChunk),
}

struct PendingChunk {
    trial: TrialNumber,
    chunk: ChunkIndex,
    key: String,
    stats: SeedStats,
    values: Option<ValuesRef>,
}

impl LineIn {
    fn check(self) -> std::result::Result<Record, String> {
        let trial = self.trial;
        let at = self.at;
        let missing = |field: &str| format!("record of trial {trial} has no '{field}'");
        Ok(match self.event {
            Kind::Asked => Record::Event(
                TrialEvent::Asked {
                    trial,
                    params: self.params.ok_or_else(|| missing("params"))?,
                    control: self.control,
                },
                at,
            ),
            Kind::ChunkDone => Record::Chunk(PendingChunk {
                trial,
                chunk: self.chunk.ok_or_else(|| missing("chunk"))?,
                key: self.key.ok_or_else(|| missing("key"))?,
                stats: self.stats.ok_or_else(|| missing("stats"))?.into(),
                values: self.values,
            }),
            Kind::Completed => Record::Event(
                TrialEvent::Completed {
                    trial,
                    stats: self.stats.ok_or_else(|| missing("stats"))?.into(),
                },
                at,
            ),
            Kind::Failed => Record::Event(
                TrialEvent::Failed {
                    trial,
                    reason: self.reason.ok_or_else(|| missing("reason"))?,
                },
                at,
            ),
            Kind::Pruned => Record::Event(
                TrialEvent::Pruned {
                    trial,
                    race: self.race.ok_or_else(|| missing("race"))?.into(),
                },
                at,
            ),
            Kind::ValidationChunkDone => Record::Event(
                TrialEvent::ValidationChunkDone {
                    trial,
                    chunk: self.chunk.ok_or_else(|| missing("chunk"))?,
                    key: ChunkKey::new(self.key.ok_or_else(|| missing("key"))?),
                    result: ChunkResult {
                        stats: self.stats.ok_or_else(|| missing("stats"))?.into(),
                        values: None,
                    },
                },
                None,
            ),
            Kind::Validated => Record::Event(
                TrialEvent::Validated {
                    trial,
                    stats: self.stats.ok_or_else(|| missing("stats"))?.into(),
                },
                None,
            ),
        })
    }
}

impl Record {
    fn is_boundary(&self) -> bool {
        matches!(self, Record::Event(..))
    }
}

fn parse_line(line: &[u8]) -> std::result::Result<Record, String> {
    serde_json::from_slice::<LineIn>(line)
        .map_err(|e| e.to_string())?
        .check()
}

fn encode_values(values: &[f64]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(values.len() * 8);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// Reads a chunk's sidecar and checks it against its reference and statistics.
fn read_values(
    run_dir: &Path,
    c: &PendingChunk,
    r: &ValuesRef,
) -> std::result::Result<Vec<f64>, String> {
    if r.len != c.stats.count() {
        return Err("the sidecar's length differs from the chunk's seed count".to_string());
    }
    read_sidecar(run_dir, c.trial, c.chunk, &c.key, r.len, &r.fnv)
}

/// Reads the per-seed values sidecar of `(trial, chunk, key)` and checks it against the length
/// and FNV hash its journal record names.
pub(crate) fn read_sidecar(
    run_dir: &Path,
    trial: TrialNumber,
    chunk: ChunkIndex,
    key: &str,
    len: u64,
    fnv: &str,
) -> std::result::Result<Vec<f64>, String> {
    let path = values_path(run_dir, trial, chunk, key);
    let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 != len.saturating_mul(8) {
        return Err(format!("{}: wrong length", path.display()));
    }
    if fingerprint_hex(&bytes) != fnv {
        return Err(format!("{}: hash mismatch", path.display()));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            f64::from_le_bytes(a)
        })
        .collect())
}

/// The result of reading a journal.
struct Scan {
    history: RunHistory,
    report: LoadReport,
    valid_len: u64,
    file_len: u64,
}

fn scan(path: &Path, run_dir: &Path) -> Result<Scan> {
    let mut out = Scan {
        history: RunHistory::default(),
        report: LoadReport::default(),
        valid_len: 0,
        file_len: 0,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io("open the journal", path, e)),
    };
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::with_capacity(1024);
    let mut line_no = 0u64;
    let mut damage: Option<(u64, String)> = None;
    // Chunk records of trials not yet finished, in journal order.
    let mut pending: HashMap<TrialNumber, Vec<PendingChunk>> = HashMap::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| StoreError::io("read the journal", path, e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        out.file_len += n as u64;
        let parsed = match buf.split_last() {
            Some((b'\n', line)) => parse_line(line),
            _ => Err("torn record (no end of line)".to_string()),
        };
        match (parsed, &damage) {
            (Ok(rec), None) => {
                out.report.records += 1;
                out.valid_len = out.file_len;
                apply(&mut out.history, &mut pending, rec);
            }
            (Ok(rec), Some((line, reason))) => {
                if rec.is_boundary() {
                    return Err(StoreError::CorruptJournal {
                        path: path.to_path_buf(),
                        line: *line,
                        reason: reason.clone(),
                    });
                }
            }
            (Err(reason), None) => damage = Some((line_no, reason)),
            (Err(_), Some(_)) => {}
        }
    }
    out.report.dropped_tail_line = damage.map(|(l, _)| l);
    out.report.dropped_tail_bytes = out.file_len - out.valid_len;
    let mut trials: Vec<_> = pending.into_iter().collect();
    trials.sort_by_key(|(t, _)| *t);
    for (_, chunks) in trials {
        for c in chunks {
            let values = match &c.values {
                None => None,
                Some(r) => match read_values(run_dir, &c, r) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        out.report.invalid_chunks += 1;
                        continue;
                    }
                },
            };
            out.history.apply(TrialEvent::ChunkDone {
                trial: c.trial,
                chunk: c.chunk,
                key: ChunkKey::new(c.key),
                result: ChunkResult {
                    stats: c.stats,
                    values,
                },
            });
        }
    }
    Ok(out)
}

/// Folds one record. Chunk records are held back until the end (their trial may finish, which
/// discards them), so the sidecars of finished trials are never read.
fn apply(
    history: &mut RunHistory,
    pending: &mut HashMap<TrialNumber, Vec<PendingChunk>>,
    rec: Record,
) {
    match rec {
        Record::Chunk(c) => {
            if history.trial(c.trial).is_some_and(|t| !t.is_finished()) {
                pending.entry(c.trial).or_default().push(c);
            }
        }
        Record::Event(e, at) => {
            let trial = e.trial();
            let finishes = matches!(
                e,
                TrialEvent::Completed { .. }
                    | TrialEvent::Failed { .. }
                    | TrialEvent::Pruned { .. }
            );
            history.apply(e);
            if let Some(at) = at {
                history.record_time(trial, finishes, at);
            }
            if finishes {
                pending.remove(&trial);
            }
        }
    }
}

/// Reads the journal of `run_dir` without taking the run lock and without changing any file
/// (a torn tail is skipped, not truncated): for inspecting a run, live or not.
pub fn read_history(run_dir: &Path) -> Result<RunHistory> {
    if !run_dir.join(JOURNAL_FILE).is_file() && !run_dir.join(crate::fs_store::META_FILE).is_file()
    {
        return Err(StoreError::NotARun {
            run_dir: run_dir.to_path_buf(),
        });
    }
    Ok(scan(&run_dir.join(JOURNAL_FILE), run_dir)?.history)
}

/// Which fsync [`Journal::sync`] is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SyncKind {
    /// From `append` under `Grouped`: only when a boundary record is unsynced and the last sync
    /// is at least the interval old, and only when no other sync is under way (that one, or
    /// the flusher after it, covers the record).
    Inline,
    /// From the flusher thread: like `Inline`, but waits for a sync under way.
    Flusher,
    /// `Store::sync`: everything written so far, now.
    All,
}

#[derive(Debug)]
struct State {
    /// The journal opened for appending.
    file: Option<File>,
    /// A second handle on the same open file: fsyncs run on it outside the mutex, so appends
    /// go on during a slow fsync.
    sync_file: Option<Arc<File>>,
    /// True once the file is known to end with a whole record.
    clean: bool,
    /// When to fsync.
    policy: SyncPolicy,
    /// Records written by this journal (the sequence number of the last one).
    written: u64,
    /// Sequence number of the last boundary record written.
    last_boundary: u64,
    /// Every record up to this sequence number is known to be on disk.
    synced: u64,
    /// When the journal was last fsynced by this store (`None`: not yet).
    last_sync: Option<Instant>,
    /// A background fsync failed: reported by the next `append` or `sync`.
    sync_error: Option<StoreError>,
    /// Asks the flusher thread to return.
    stop: bool,
}

/// The journal of one run directory. Appends are serialised by a mutex; the run lock keeps
/// other processes out. fsyncs are serialised by a second mutex and run on a cloned handle,
/// outside the first, so a slow fsync never holds up an append that does not wait for it.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    run_dir: PathBuf,
    state: Mutex<State>,
    /// Wakes the flusher thread: a first unsynced boundary record, a policy change, stop.
    wake: Condvar,
    /// Held while fsyncing the journal (lock order: `sync_lock`, then `state`).
    sync_lock: Mutex<()>,
    /// fsync/fdatasync calls issued by the store (journal, documents, directories).
    syncs: SyncCounter,
}

impl Journal {
    pub(crate) fn new(run_dir: &Path, policy: SyncPolicy) -> Self {
        Journal {
            path: run_dir.join(JOURNAL_FILE),
            run_dir: run_dir.to_path_buf(),
            state: Mutex::new(State {
                file: None,
                sync_file: None,
                clean: false,
                policy,
                written: 0,
                last_boundary: 0,
                synced: 0,
                last_sync: None,
                sync_error: None,
                stop: false,
            }),
            wake: Condvar::new(),
            sync_lock: Mutex::new(()),
            syncs: SyncCounter::default(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `n` fsync calls (of any file or directory of the store).
    pub(crate) fn count_syncs(&self, n: u64) {
        self.syncs.add(n);
    }

    /// The fsync counter.
    pub(crate) fn sync_counter(&self) -> &SyncCounter {
        &self.syncs
    }

    pub(crate) fn set_policy(&self, policy: SyncPolicy) {
        self.lock().policy = policy;
        self.wake.notify_all();
    }

    /// True while a record written by this journal is not known to be on disk.
    pub(crate) fn is_dirty(&self) -> bool {
        let st = self.lock();
        st.written > st.synced
    }

    /// Asks the flusher thread to return (`true`), or lets a new one run (`false`).
    pub(crate) fn set_stop(&self, stop: bool) {
        self.lock().stop = stop;
        self.wake.notify_all();
    }

    /// The error of a failed background fsync, once.
    pub(crate) fn take_sync_error(&self) -> Result<()> {
        let e = self.lock().sync_error.take();
        match e {
            None => Ok(()),
            Some(e) => {
                self.wake.notify_all();
                Err(e)
            }
        }
    }

    fn writer<'s>(&self, st: &'s mut State) -> Result<&'s mut File> {
        if st.file.is_none() {
            let existed = self.path.exists();
            let f = OpenOptions::new()
                .append(true)
                .create(true)
                .open(&self.path)
                .map_err(|e| StoreError::io("open the journal", &self.path, e))?;
            let handle = f
                .try_clone()
                .map_err(|e| StoreError::io("open the journal", &self.path, e))?;
            if !existed {
                self.count_syncs(1);
                sync_dir(&self.run_dir)?;
            }
            st.sync_file = Some(Arc::new(handle));
            st.file = Some(f);
        }
        st.file.as_mut().ok_or_else(|| {
            StoreError::io(
                "open the journal",
                &self.path,
                io::ErrorKind::NotFound.into(),
            )
        })
    }

    /// Forgets the open file after a failed write or fsync: the next append re-reads the
    /// journal (it may end in a partial record) and reopens it.
    fn reset(st: &mut State) {
        st.clean = false;
        st.file = None;
        st.sync_file = None;
    }

    /// Reads the journal; a torn tail is truncated away so the next append starts a fresh line.
    fn load_locked(&self, st: &mut State) -> Result<(RunHistory, LoadReport)> {
        let s = scan(&self.path, &self.run_dir)?;
        if s.valid_len < s.file_len {
            let f = self.writer(st)?;
            self.count_syncs(1);
            f.set_len(s.valid_len)
                .and_then(|()| f.sync_all())
                .map_err(|e| StoreError::io("truncate the torn end of", &self.path, e))?;
            st.synced = st.written;
            st.last_sync = Some(Instant::now());
        }
        st.clean = true;
        Ok((s.history, s.report))
    }

    pub(crate) fn load(&self) -> Result<(RunHistory, LoadReport)> {
        let mut st = self.lock();
        self.load_locked(&mut st)
    }

    /// Writes one record (with one `write`) before returning; syncs as the policy says.
    pub(crate) fn append(&self, event: &TrialEvent) -> Result<()> {
        // The sidecar goes first, outside the journal mutex: the record that names it is only
        // written once the sidecar is in place.
        let mut values_ref = None;
        if let TrialEvent::ChunkDone {
            trial,
            chunk,
            key,
            result: ChunkResult {
                values: Some(v), ..
            },
        } = event
        {
            let path = values_path(&self.run_dir, *trial, *chunk, key.as_str());
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(|e| StoreError::io("create directory", dir, e))?;
            }
            let bytes = encode_values(v);
            write_bytes_atomic(&path, &bytes, Durability::ProcessCrash)?;
            values_ref = Some(ValuesRef {
                len: v.len() as u64,
                fnv: fingerprint_hex(&bytes),
            });
        }
        // Millisecond resolution is enough for a timeline and keeps records short.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| (d.as_millis() as f64) / 1e3);
        let line = match event {
            TrialEvent::Asked {
                trial,
                params,
                control,
            } => LineOut::Asked {
                trial: *trial,
                params,
                at: now,
                control: *control,
            },
            TrialEvent::ChunkDone {
                trial,
                chunk,
                key,
                result,
            } => LineOut::ChunkDone {
                trial: *trial,
                chunk: *chunk,
                key: key.as_str(),
                stats: (&result.stats).into(),
                values: values_ref,
            },
            TrialEvent::Completed { trial, stats } => LineOut::Completed {
                trial: *trial,
                stats: stats.into(),
                at: now,
            },
            TrialEvent::Failed { trial, reason } => LineOut::Failed {
                trial: *trial,
                reason,
                at: now,
            },
            TrialEvent::Pruned { trial, race } => LineOut::Pruned {
                trial: *trial,
                race: race.into(),
                at: now,
            },
            TrialEvent::ValidationChunkDone {
                trial,
                chunk,
                key,
                result,
            } => LineOut::ValidationChunkDone {
                trial: *trial,
                chunk: *chunk,
                key: key.as_str(),
                stats: (&result.stats).into(),
            },
            TrialEvent::Validated { trial, stats } => LineOut::Validated {
                trial: *trial,
                stats: stats.into(),
                at: now,
            },
        };
        let mut bytes = serde_json::to_vec(&line).map_err(|e| StoreError::Json {
            what: "journal record",
            path: self.path.clone(),
            source: e,
        })?;
        bytes.push(b'\n');

        let mut st = self.lock();
        if let Some(e) = st.sync_error.take() {
            self.wake.notify_all();
            return Err(e);
        }
        if !st.clean {
            self.load_locked(&mut st)?;
        }
        let boundary = event.is_boundary();
        let sync_now = boundary && st.policy == SyncPolicy::Always;
        let f = self.writer(&mut st)?;
        if sync_now {
            self.count_syncs(1);
        }
        let written = f
            .write_all(&bytes)
            .and_then(|()| if sync_now { f.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            Self::reset(&mut st);
            return Err(StoreError::io("append to", &self.path, e));
        }
        st.written += 1;
        if !boundary {
            return Ok(());
        }
        let was_dirty = st.last_boundary > st.synced;
        st.last_boundary = st.written;
        if sync_now {
            st.synced = st.written;
            st.last_sync = Some(Instant::now());
            return Ok(());
        }
        if !was_dirty {
            self.wake.notify_all();
        }
        let due = match (st.policy, st.last_sync) {
            (SyncPolicy::Grouped { interval }, Some(t)) => t.elapsed() >= interval,
            _ => true,
        };
        drop(st);
        if due {
            self.sync(SyncKind::Inline)
        } else {
            Ok(())
        }
    }

    /// fsyncs the journal as `kind` says (see [`SyncKind`]).
    pub(crate) fn sync(&self, kind: SyncKind) -> Result<()> {
        let _serial = match kind {
            SyncKind::Inline => match self.sync_lock.try_lock() {
                Ok(g) => g,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return Ok(()),
            },
            SyncKind::Flusher | SyncKind::All => {
                self.sync_lock.lock().unwrap_or_else(|e| e.into_inner())
            }
        };
        let (target, handle) = {
            let mut st = self.lock();
            let pending = match kind {
                SyncKind::All => st.written > st.synced,
                SyncKind::Inline | SyncKind::Flusher => st.last_boundary > st.synced,
            };
            if !pending {
                return Ok(());
            }
            if kind != SyncKind::All {
                if let (SyncPolicy::Grouped { interval }, Some(t)) = (st.policy, st.last_sync) {
                    if t.elapsed() < interval {
                        return Ok(());
                    }
                }
            }
            if st.sync_file.is_none() {
                self.writer(&mut st)?;
            }
            match st.sync_file.clone() {
                Some(h) => (st.written, h),
                None => return Ok(()),
            }
        };
        self.count_syncs(1);
        let synced = handle.sync_data();
        let mut st = self.lock();
        st.last_sync = Some(Instant::now());
        match synced {
            Ok(()) => {
                st.synced = st.synced.max(target);
                Ok(())
            }
            Err(e) => {
                Self::reset(&mut st);
                Err(StoreError::io("sync", &self.path, e))
            }
        }
    }

    /// The flusher thread of a `Grouped` store: syncs an unsynced boundary record at
    /// `last sync + interval`; sleeps on [`Journal::wake`] otherwise. Returns on `set_stop(true)`.
    pub(crate) fn run_flusher(&self) {
        let mut st = self.lock();
        loop {
            if st.stop {
                return;
            }
            let due_at = match st.policy {
                SyncPolicy::Grouped { interval }
                    if st.last_boundary > st.synced && st.sync_error.is_none() =>
                {
                    match st.last_sync {
                        None => Some(Instant::now()),
                        Some(t) => t.checked_add(interval),
                    }
                }
                _ => None,
            };
            let Some(at) = due_at else {
                st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let now = Instant::now();
            if now < at {
                st = match self.wake.wait_timeout(st, at - now) {
                    Ok((g, _)) => g,
                    Err(e) => e.into_inner().0,
                };
                continue;
            }
            drop(st);
            let synced = self.sync(SyncKind::Flusher);
            st = self.lock();
            if let Err(e) = synced {
                st.sync_error = Some(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_stats_round_trip() {
        let s = SeedStats {
            n: 3,
            mean: f64::INFINITY,
            m2: f64::NAN,
            pos_inf: 1,
            neg_inf: 0,
        };
        let text = serde_json::to_string(&StatsRepr::from(&s)).unwrap();
        assert_eq!(text, r#"{"n":3,"mean":"Infinity","m2":"NaN","pos_inf":1}"#);
        let back: SeedStats = serde_json::from_str::<StatsRepr>(&text).unwrap().into();
        assert_eq!(back.mean, f64::INFINITY);
        assert!(back.m2.is_nan());
        let null: StatsRepr = serde_json::from_str(r#"{"n":1,"mean":null,"m2":2}"#).unwrap();
        assert!(null.mean.0.is_nan() && null.m2.0 == 2.0);
    }

    #[test]
    fn malformed_records_are_rejected_with_a_reason() {
        for (line, why) in [
            (r#"{"event":"asked","trial":0}"#, "params"),
            (
                r#"{"event":"chunk_done","trial":0,"chunk":1,"stats":{"n":1,"mean":1,"m2":0}}"#,
                "key",
            ),
            (r#"{"event":"teleported","trial":0}"#, "unknown variant"),
            (
                r#"{"event":"completed","trial":0,"stats":{"n":1,"mean":"x","m2":0}}"#,
                "invalid value",
            ),
            ("\u{0}\u{0}\u{0}", "expected"),
        ] {
            match parse_line(line.as_bytes()) {
                Err(e) => assert!(e.contains(why), "{line}: {e}"),
                Ok(_) => panic!("{line} parsed"),
            }
        }
    }

    #[test]
    fn sidecar_paths_stay_inside_the_trial_dir() {
        let p = values_path(Path::new("run"), TrialNumber(7), ChunkIndex(3), "../../x");
        assert!(p.starts_with("run/trials/trial_00007/seed_values"));
        assert!(!p.to_string_lossy().contains(".."));
    }
}
