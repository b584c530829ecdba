//! The files of a trial directory, shared between the controller and its array tasks.
//!
//! ```text
//! <trial dir>/
//!   task.json                  what every task of the trial evaluates (loss, entry, params, seeds)
//!   chunk_task.sh              the fixed batch script
//!   jobs.json                  the jobs submitted for the trial (re-adopted on resume), and the
//!                              submissions under way (found by their unique job name on resume)
//!   chunks/chunk_NNNNN.json    a chunk's result, with its key
//!   chunks/chunk_NNNNN.failed.json  why a chunk's loss failed
//!   logs/chunk_<job>_<task>.{out,err}
//! ```
//!
//! The formats are those of slurptuna 0.1.0 (format 1): run directories it wrote resume. Every
//! file is written through [`crate::fs::write_atomic`].

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::batch::client::JobId;
use crate::error::CoreError;
use crate::evaluate::ChunkResult;
use crate::fs::{write_atomic, Durability};
use crate::params::Params;
use crate::seeds::SeedLayout;
use crate::trial::{ChunkIndex, TrialNumber};

/// Version of the task and chunk file formats.
pub(crate) const FORMAT: u32 = 1;

/// The environment variable holding a task's index in task files that do not name one: those
/// of slurptuna 0.1.0 (Slurm only), and Slurm's today, which leave the field out so that they
/// stay byte-identical to 0.1.0's (and their keys stable).
pub(crate) const LEGACY_TASK_INDEX_ENV: &str = "SLURM_ARRAY_TASK_ID";

/// The batch script: its arguments are the task file, the program and the program's arguments.
/// It is fixed text; nothing in it comes from user data.
pub(crate) const BATCH_SCRIPT: &str = r#"#!/bin/sh
# slurptuna chunk task: evaluates the seeds of one chunk of one trial (the chunk is the task's
# index within its job array, plus SLURPTUNA_CHUNK_OFFSET).
# Usage (by the scheduler): chunk_task.sh <task file> <worker program> [program arguments...]
# The task file holds the loss name, entry, parameters and seeds as data; nothing is evaluated here.
SLURPTUNA_TASK_FILE="$1"
export SLURPTUNA_TASK_FILE
shift
exec "$@"
"#;

fn legacy_task_index_env() -> String {
    LEGACY_TASK_INDEX_ENV.to_string()
}

fn is_legacy_task_index_env(name: &str) -> bool {
    name == LEGACY_TASK_INDEX_ENV
}

/// What every task of a trial evaluates. Written by the controller, read by the worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct TaskFile {
    pub(crate) format: u32,
    pub(crate) loss_name: String,
    pub(crate) entry_id: Option<String>,
    pub(crate) trial: TrialNumber,
    pub(crate) params: Params,
    pub(crate) layout: SeedLayout,
    pub(crate) keep_seed_values: bool,
    pub(crate) worker_parallelism: usize,
    /// Absolute directory of the chunk results.
    pub(crate) chunks_dir: PathBuf,
    /// The environment variable holding the task's index within its array.
    #[serde(
        default = "legacy_task_index_env",
        skip_serializing_if = "is_legacy_task_index_env"
    )]
    pub(crate) task_index_env: String,
}

/// A chunk result as a worker writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChunkFile {
    pub(crate) format: u32,
    pub(crate) chunk: ChunkIndex,
    pub(crate) key: String,
    pub(crate) result: ChunkResult,
}

/// Why a chunk's loss failed, written by the worker next to where the result would be.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct FailureFile {
    pub(crate) chunk: ChunkIndex,
    pub(crate) key: String,
    pub(crate) reason: String,
}

/// One submitted array, recorded so that a resumed controller can re-adopt it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    pub(crate) job: JobId,
    /// Added to the array index to get the chunk index.
    pub(crate) offset: u64,
    pub(crate) chunks: Vec<ChunkIndex>,
    /// Fingerprint of the task file the array evaluates.
    pub(crate) task_key: String,
}

/// An array about to be submitted: recorded before the submission, under a job name unique to
/// it, so that a controller that dies before it can record the job id leaves enough behind for
/// the next one to find the array by name instead of submitting it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PendingRecord {
    pub(crate) name: String,
    pub(crate) offset: u64,
    pub(crate) chunks: Vec<ChunkIndex>,
    pub(crate) task_key: String,
}

/// `jobs.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobsFile {
    pub(crate) jobs: Vec<JobRecord>,
    /// Submissions whose job id was not recorded (yet).
    #[serde(default)]
    pub(crate) pending: Vec<PendingRecord>,
}

/// Paths of one trial directory.
#[derive(Clone, Debug)]
pub(crate) struct TrialFiles {
    dir: PathBuf,
}

impl TrialFiles {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
    pub(crate) fn task(&self) -> PathBuf {
        self.dir.join("task.json")
    }
    pub(crate) fn script(&self) -> PathBuf {
        self.dir.join("chunk_task.sh")
    }
    pub(crate) fn jobs(&self) -> PathBuf {
        self.dir.join("jobs.json")
    }
    pub(crate) fn chunks_dir(&self) -> PathBuf {
        self.dir.join("chunks")
    }
    pub(crate) fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }
    /// The output pattern of a submission (`%A`: job id, `%a`: array index).
    pub(crate) fn stdout_pattern(&self) -> PathBuf {
        self.logs_dir().join("chunk_%A_%a.out")
    }
    /// The error pattern of a submission.
    pub(crate) fn stderr_pattern(&self) -> PathBuf {
        self.logs_dir().join("chunk_%A_%a.err")
    }
    /// [`TrialFiles::stderr_pattern`] expanded for one task.
    pub(crate) fn stderr_log(&self, job: JobId, task: u64) -> PathBuf {
        self.logs_dir().join(format!("chunk_{job}_{task}.err"))
    }
}

/// `chunk_NNNNN.json` under `chunks_dir`.
pub(crate) fn chunk_path(chunks_dir: &Path, c: ChunkIndex) -> PathBuf {
    chunks_dir.join(chunk_file_name(c))
}

/// `chunk_NNNNN.json`.
pub(crate) fn chunk_file_name(c: ChunkIndex) -> String {
    format!("chunk_{:05}.json", c.0)
}

/// `chunk_NNNNN.failed.json` under `chunks_dir`.
pub(crate) fn failure_path(chunks_dir: &Path, c: ChunkIndex) -> PathBuf {
    chunks_dir.join(format!("chunk_{:05}.failed.json", c.0))
}

pub(crate) fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> CoreError {
    CoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` and its parents.
pub(crate) fn create_dir(dir: &Path) -> Result<(), CoreError> {
    std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create directory", dir, e))
}

/// Writes `bytes` to `path` atomically and durably ([`crate::fs::write_atomic`]).
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), CoreError> {
    write_atomic(path, bytes, Durability::Synced, mode)
        .map_err(|e| io_error("cannot write", path, e))
}

/// Serialises `value` as JSON and writes it atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), CoreError> {
    let bytes = serde_json::to_vec(value).map_err(|source| CoreError::Json {
        what: "json document",
        path: path.to_path_buf(),
        source,
    })?;
    write_file(path, &bytes, None)
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<Option<T>, CoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("cannot read", path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| CoreError::Json {
            what,
            path: path.to_path_buf(),
            source,
        })
}

/// The stored result of chunk `c` if it is there, well-formed, carries `key` and covers
/// `n_seeds` seeds.
pub(crate) fn load_chunk(
    chunks_dir: &Path,
    c: ChunkIndex,
    key: &str,
    n_seeds: u64,
) -> Option<ChunkResult> {
    let f: ChunkFile = read_json(&chunk_path(chunks_dir, c), "chunk result").ok()??;
    (f.format == FORMAT && f.chunk == c && f.key == key && f.result.stats.count() == n_seeds)
        .then_some(f.result)
}

/// The failure record of chunk `c` if there is one with `key`.
pub(crate) fn load_failure(chunks_dir: &Path, c: ChunkIndex, key: &str) -> Option<String> {
    let f: FailureFile = read_json(&failure_path(chunks_dir, c), "chunk failure").ok()??;
    (f.key == key).then_some(f.reason)
}

/// The last `max_lines` lines (at most 2 KiB) of a text file, or `None` if it is empty/missing.
pub(crate) fn tail(path: &Path, max_lines: usize) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let start = bytes.len().saturating_sub(2048);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return None;
    }
    Some(lines[lines.len().saturating_sub(max_lines)..].join("\n"))
}

/// A fingerprint of the task file content (which trial, params and seeds a job evaluates).
pub(crate) fn task_key(task: &TaskFile) -> String {
    crate::fingerprint_hex(serde_json::to_string(task).unwrap_or_default().as_bytes())
}

/// When a trial's chunk directory must be listed again to find new results, so that a check
/// costs one `stat` of the directory, not a listing (nor a `stat` per task): results are
/// renamed into the directory, which changes its modification time.
///
/// The directory is listed when its modification time differs from the one seen before the
/// last listing; when that listing came less than [`ChunkDirWatch::RESOLUTION`] after that
/// time (a result added within the file system's timestamp resolution would not change it);
/// and at least once per `relist` interval whatever the times say (directory times on network
/// file systems lag behind, and clocks of file server and controller differ).
#[derive(Debug, Default)]
pub(crate) struct ChunkDirWatch {
    /// The directory's modification time before the last listing, the wall-clock time and the
    /// (scheduler-clock) instant of that listing.
    last: Option<(SystemTime, SystemTime, tokio::time::Instant)>,
}

impl ChunkDirWatch {
    /// Coarsest directory timestamp resolution assumed (ext3 and some network file systems:
    /// one second).
    pub(crate) const RESOLUTION: Duration = Duration::from_secs(1);

    /// True when `dir` must be listed now; the caller lists it right after (a result added
    /// during the listing changes the time again, so it is found by the next check).
    pub(crate) fn must_list(&mut self, dir: &Path, relist: Duration) -> bool {
        let Ok(mtime) = std::fs::metadata(dir).and_then(|m| m.modified()) else {
            self.last = None;
            return true;
        };
        let now = SystemTime::now();
        let fresh = tokio::time::Instant::now();
        let unchanged = self.last.is_some_and(|(seen, listed_at, listed)| {
            seen == mtime
                && listed_at >= mtime + Self::RESOLUTION
                && fresh.duration_since(listed) < relist
        });
        if unchanged {
            return false;
        }
        self.last = Some((mtime, now, fresh));
        true
    }

    /// The next [`ChunkDirWatch::must_list`] says yes.
    pub(crate) fn invalidate(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "slurptuna-batch-files-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Files of a trial directory written by slurptuna 0.1.0
    /// (`slurptuna/tests/fixtures/runs-v1/distributed`, trial 2).
    const V1_TASK: &str = r#"{"format":1,"loss_name":"bowl","entry_id":null,"trial":2,"params":{"k":2,"x":0.3001283809047114,"y":0.3775449188664195},"layout":{"seeds":{"kind":"range","start":0,"count":6},"chunk_size":3},"keep_seed_values":false,"worker_parallelism":1,"chunks_dir":"/tmp/fixture-dist/legacy-dist/trials/trial_00002/chunks"}"#;
    const V1_JOBS: &str = r#"{"jobs":[{"job":5,"offset":0,"chunks":[0,1],"task_key":"9eccbb598d60a103"}],"pending":[]}"#;
    const V1_CHUNK: &str = r#"{"format":1,"chunk":0,"key":"763fb06e50cb06f8","result":{"stats":{"n":3,"mean":0.060486279603804566,"m2":2.0000000000000037e-6}}}"#;

    #[tokio::test(start_paused = true)]
    async fn a_chunk_dir_is_listed_when_it_changed_or_once_per_relist_interval() {
        let d = tempfile::tempdir().unwrap();
        let relist = Duration::from_secs(15);
        let mut w = ChunkDirWatch::default();
        assert!(w.must_list(&d.path().join("none"), relist), "missing: list");
        assert!(w.must_list(d.path(), relist), "first look");
        // Listed within the timestamp resolution of the last change: list again.
        assert!(w.must_list(d.path(), relist));
        // Pretend the last listing came long after the change: now a check is one stat.
        let (m, _, at) = w.last.unwrap();
        w.last = Some((m, m + Duration::from_secs(5), at));
        assert!(!w.must_list(d.path(), relist));
        std::fs::write(d.path().join("chunk_00000.json"), b"{}").unwrap();
        let m2 = std::fs::metadata(d.path()).unwrap().modified().unwrap();
        if m2 != m {
            assert!(
                w.must_list(d.path(), relist),
                "a new result changes the time"
            );
        }
        let (m, _, at) = w.last.unwrap();
        w.last = Some((m, m + Duration::from_secs(5), at));
        assert!(!w.must_list(d.path(), relist));
        tokio::time::advance(relist).await;
        assert!(w.must_list(d.path(), relist), "relisted once per interval");
    }

    #[test]
    fn files_of_the_previous_release_read_and_keep_their_keys() {
        let task: TaskFile = serde_json::from_str(V1_TASK).unwrap();
        assert_eq!(task.task_index_env, "SLURM_ARRAY_TASK_ID");
        // Re-written byte for byte, so the recorded jobs' task key still matches.
        assert_eq!(serde_json::to_string(&task).unwrap(), V1_TASK);
        assert_eq!(task_key(&task), "9eccbb598d60a103");
        let jobs: JobsFile = serde_json::from_str(V1_JOBS).unwrap();
        assert_eq!(jobs.jobs[0].job, JobId(5));
        assert_eq!(jobs.jobs[0].chunks, vec![ChunkIndex(0), ChunkIndex(1)]);
        assert_eq!(serde_json::to_string(&jobs).unwrap(), V1_JOBS);
        let without_pending: JobsFile = serde_json::from_str(r#"{"jobs":[]}"#).unwrap();
        assert!(without_pending.pending.is_empty());
        let d = tempdir("v1");
        std::fs::write(chunk_path(&d, ChunkIndex(0)), V1_CHUNK).unwrap();
        let r = load_chunk(&d, ChunkIndex(0), "763fb06e50cb06f8", 3).unwrap();
        assert_eq!(r.stats.count(), 3);
        assert!(r.values.is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn another_schedulers_task_index_variable_is_recorded() {
        let mut task: TaskFile = serde_json::from_str(V1_TASK).unwrap();
        task.task_index_env = "PBS_ARRAY_INDEX".into();
        let text = serde_json::to_string(&task).unwrap();
        assert!(
            text.contains(r#""task_index_env":"PBS_ARRAY_INDEX""#),
            "{text}"
        );
        let back: TaskFile = serde_json::from_str(&text).unwrap();
        assert_eq!(back, task);
        assert_ne!(task_key(&back), "9eccbb598d60a103");
    }

    #[test]
    fn chunk_files_need_the_right_key_and_writes_leave_no_temp() {
        let d = tempdir("chunks");
        let r = ChunkResult {
            stats: crate::SeedStats::from_values(&[1.0, 2.0]),
            values: None,
        };
        let f = ChunkFile {
            format: FORMAT,
            chunk: ChunkIndex(3),
            key: "k".into(),
            result: r.clone(),
        };
        write_json(&chunk_path(&d, ChunkIndex(3)), &f).unwrap();
        write_json(&chunk_path(&d, ChunkIndex(3)), &f).unwrap();
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        assert_eq!(load_chunk(&d, ChunkIndex(3), "k", 2), Some(r));
        assert_eq!(load_chunk(&d, ChunkIndex(3), "other", 2), None);
        assert_eq!(load_chunk(&d, ChunkIndex(3), "k", 3), None);
        assert_eq!(load_chunk(&d, ChunkIndex(4), "k", 2), None);
        std::fs::write(chunk_path(&d, ChunkIndex(5)), b"{\"form").unwrap();
        assert_eq!(load_chunk(&d, ChunkIndex(5), "k", 2), None);
        assert!(matches!(
            read_json::<ChunkFile>(&chunk_path(&d, ChunkIndex(5)), "chunk result"),
            Err(CoreError::Json { .. })
        ));
        let e = write_json(&d.join("no/such/dir/f"), &f).unwrap_err();
        assert!(e.to_string().contains("cannot write"), "{e}");
        std::fs::write(d.join("log"), "a\n\nb\nc\n").unwrap();
        assert_eq!(tail(&d.join("log"), 2).as_deref(), Some("b\nc"));
        assert_eq!(tail(&d.join("none"), 2), None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
