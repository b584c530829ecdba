//! The files of a trial directory, shared between the controller and its Slurm tasks.
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
//! Every file is written through [`write_atomic`] (temp file, fsync, rename, directory fsync).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use slurptuna_core::{ChunkIndex, ChunkResult, Params, SeedLayout, TrialNumber};

use crate::client::JobId;
use crate::error::SlurmError;

/// Version of the task and chunk file formats.
pub(crate) const FORMAT: u32 = 1;

/// The batch script: its arguments are the task file, the program and the program's arguments.
/// It is fixed text; nothing in it comes from user data.
pub(crate) const BATCH_SCRIPT: &str = r#"#!/bin/sh
# slurptuna chunk task: evaluates the seeds of chunk $SLURM_ARRAY_TASK_ID of one trial.
# Usage (by sbatch): chunk_task.sh <task file> <worker program> [program arguments...]
# The task file holds the loss name, entry, parameters and seeds as data; nothing is evaluated here.
SLURPTUNA_TASK_FILE="$1"
export SLURPTUNA_TASK_FILE
shift
exec "$@"
"#;

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
    /// Added to the array task id to get the chunk index.
    pub(crate) offset: u64,
    pub(crate) chunks: Vec<ChunkIndex>,
    /// Fingerprint of the task file the array evaluates.
    pub(crate) task_key: String,
}

/// An array about to be submitted: recorded before `sbatch` runs, under a job name unique to
/// this submission, so that a controller that dies before it can record the job id leaves
/// enough behind for the next one to find the array by name instead of submitting it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PendingRecord {
    pub(crate) name: String,
    pub(crate) offset: u64,
    pub(crate) chunks: Vec<ChunkIndex>,
    pub(crate) task_key: String,
}

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
    pub(crate) dir: PathBuf,
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
    pub(crate) fn stderr_log(&self, job: JobId, task: u64) -> PathBuf {
        self.logs_dir().join(format!("chunk_{job}_{task}.err"))
    }
}

/// `chunks/chunk_NNNNN.json` under `chunks_dir`.
pub(crate) fn chunk_path(chunks_dir: &Path, c: ChunkIndex) -> PathBuf {
    chunks_dir.join(format!("chunk_{:05}.json", c.0))
}

/// `chunks/chunk_NNNNN.failed.json` under `chunks_dir`.
pub(crate) fn failure_path(chunks_dir: &Path, c: ChunkIndex) -> PathBuf {
    chunks_dir.join(format!("chunk_{:05}.failed.json", c.0))
}

/// Creates `dir` and its parents.
pub(crate) fn create_dir(dir: &Path) -> Result<(), SlurmError> {
    std::fs::create_dir_all(dir).map_err(|e| SlurmError::io("cannot create directory", dir, e))
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory, fsync, rename,
/// then fsync of the directory. Readers see the old file or the new one, never a part.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), SlurmError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode.unwrap_or(0o644))
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        SlurmError::io("cannot write", path, e)
    })
}

/// Serialises `value` as JSON and writes it atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SlurmError> {
    let bytes = serde_json::to_vec(value).map_err(|source| SlurmError::Json {
        what: "json document",
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &bytes, None)
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<Option<T>, SlurmError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SlurmError::io("cannot read", path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| SlurmError::Json {
            what,
            path: path.to_path_buf(),
            source,
        })
}

/// The stored result of chunk `c` if it is there, well-formed and carries `key`.
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
    slurptuna_core::fingerprint_hex(serde_json::to_string(task).unwrap_or_default().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        write_atomic(&p, b"one", None).unwrap();
        write_atomic(&p, b"two", None).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        let e = write_atomic(&d.path().join("no/such/dir/f"), b"x", None).unwrap_err();
        assert!(e.to_string().contains("cannot write"), "{e}");
    }

    #[test]
    fn chunk_files_need_the_right_key() {
        let d = tempfile::tempdir().unwrap();
        let r = ChunkResult {
            stats: slurptuna_core::SeedStats::from_values(&[1.0, 2.0]),
            values: None,
        };
        let f = ChunkFile {
            format: FORMAT,
            chunk: ChunkIndex(3),
            key: "k".into(),
            result: r.clone(),
        };
        write_json(&chunk_path(d.path(), ChunkIndex(3)), &f).unwrap();
        assert_eq!(load_chunk(d.path(), ChunkIndex(3), "k", 2), Some(r));
        assert_eq!(load_chunk(d.path(), ChunkIndex(3), "other", 2), None);
        assert_eq!(load_chunk(d.path(), ChunkIndex(3), "k", 3), None);
        assert_eq!(load_chunk(d.path(), ChunkIndex(4), "k", 2), None);
        std::fs::write(chunk_path(d.path(), ChunkIndex(5)), b"{\"form").unwrap();
        assert_eq!(load_chunk(d.path(), ChunkIndex(5), "k", 2), None);
        std::fs::write(d.path().join("log"), "a\n\nb\nc\n").unwrap();
        assert_eq!(tail(&d.path().join("log"), 2).as_deref(), Some("b\nc"));
        assert_eq!(tail(&d.path().join("none"), 2), None);
    }
}
