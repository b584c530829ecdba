//! The `Executor` trait: evaluate the seeds of one trial somewhere.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::evaluate::ChunkResult;
use crate::hash::Fnv64;
use crate::params::Params;
use crate::seeds::SeedLayout;
use crate::trial::{ChunkIndex, ChunkKey, TrialNumber};

/// One trial's evaluation request.
#[derive(Clone, Debug)]
pub struct TrialJob {
    /// The loss name (workers look the loss up by it).
    pub loss_name: String,
    /// The entry being fitted (`optimize_entries`), if any.
    pub entry_id: Option<Arc<str>>,
    /// The trial number.
    pub trial: TrialNumber,
    /// The parameters to evaluate.
    pub params: Params,
    /// All seeds of the trial and their chunking.
    pub layout: Arc<SeedLayout>,
    /// The chunks still to evaluate (chunks whose results are stored are left out).
    pub chunks: Vec<ChunkIndex>,
    /// A directory reserved for this trial's files (task files, logs), when the store has one.
    pub trial_dir: Option<PathBuf>,
    /// Return per-seed values with each chunk.
    pub keep_seed_values: bool,
}

impl TrialJob {
    /// The shared part of this trial's chunk keys, for computing many of them
    /// ([`TrialKeys::key`]).
    pub fn keys(&self) -> TrialKeys {
        TrialKeys::new(
            &self.loss_name,
            self.entry_id.as_deref(),
            self.trial,
            &self.params,
        )
    }

    /// The key a result of chunk `c` must carry to be reused: a hash of the loss, entry, trial
    /// number, parameters and the chunk's seeds. A stored result with another key is stale.
    pub fn chunk_key(&self, c: ChunkIndex) -> ChunkKey {
        chunk_key(
            &self.loss_name,
            self.entry_id.as_deref(),
            self.trial,
            &self.params,
            &self.layout,
            c,
        )
    }
}

/// See [`TrialJob::chunk_key`].
pub fn chunk_key(
    loss_name: &str,
    entry_id: Option<&str>,
    trial: TrialNumber,
    params: &Params,
    layout: &SeedLayout,
    c: ChunkIndex,
) -> ChunkKey {
    TrialKeys::new(loss_name, entry_id, trial, params).key(c, layout.chunk_fingerprint(c))
}

/// The chunk keys of one trial, with the part they share (loss, entry, trial, params) hashed
/// once: `TrialKeys::new(..).key(c, layout.chunk_fingerprint(c))` equals [`chunk_key`].
#[derive(Clone, Debug)]
pub struct TrialKeys(Fnv64);

impl TrialKeys {
    /// Hashes what every chunk key of the trial starts with.
    pub fn new(
        loss_name: &str,
        entry_id: Option<&str>,
        trial: TrialNumber,
        params: &Params,
    ) -> Self {
        let mut h = Fnv64::new();
        h.write(loss_name.as_bytes());
        h.write(&[0]);
        h.write(entry_id.unwrap_or("\u{0}none").as_bytes());
        h.write(&[0]);
        h.write(&trial.0.to_le_bytes());
        h.write(params.to_json().as_bytes());
        TrialKeys(h)
    }

    /// The key of chunk `c`, whose seeds have the fingerprint `chunk_fingerprint`
    /// ([`SeedLayout::chunk_fingerprint`]).
    pub fn key(&self, c: ChunkIndex, chunk_fingerprint: u64) -> ChunkKey {
        let mut h = self.0.clone();
        h.write(&c.0.to_le_bytes());
        h.write(&chunk_fingerprint.to_le_bytes());
        ChunkKey::new(format!("{:016x}", h.finish()))
    }
}

/// What kind of failure ended a trial attempt. Backends decide retries on it; the reason text
/// is for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The loss failed on a seed: it returned an error, panicked or returned NaN.
    Loss,
    /// A worker process died (signal, non-zero exit) before it delivered its result.
    Crashed,
    /// The scheduler ended the task without success (`FAILED`, `OUT_OF_MEMORY`, `CANCELLED`,
    /// `NODE_FAIL`, ...); the scheduler's own state is in [`TrialFailure::state`].
    Scheduler,
    /// The scheduler killed the task at its time limit (Slurm's `TIMEOUT`).
    TimeLimit,
    /// The attempt did not finish within the attempt timeout (queue time counts); it was
    /// cancelled.
    AttemptTimeout,
    /// The task left the queue without a result and without a final state.
    Vanished,
    /// The task finished successfully but wrote no result.
    NoResult,
    /// Anything else (a backend's own reason).
    Other,
}

/// Why a trial failed. The trial is recorded as FAILED with this reason and the study goes on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialFailure {
    /// What kind of failure it was.
    pub kind: FailureKind,
    /// Human-readable reason: what failed, where (seed / chunk / job), and the backend's state.
    pub reason: String,
    /// The chunk that failed, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<ChunkIndex>,
    /// The scheduler's name for the state (`FAILED`, `TIMEOUT`, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl TrialFailure {
    /// A failure of `kind` with a reason.
    pub fn new(kind: FailureKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            chunk: None,
            state: None,
        }
    }

    /// A failure of the loss itself ([`FailureKind::Loss`]).
    pub fn loss(reason: impl Into<String>) -> Self {
        Self::new(FailureKind::Loss, reason)
    }

    /// The same failure, located in chunk `c`.
    pub fn in_chunk(mut self, c: ChunkIndex) -> Self {
        self.chunk = Some(c);
        self
    }

    /// The same failure, with the scheduler's name for the state.
    pub fn with_state(mut self, state: impl Into<String>) -> Self {
        self.state = Some(state.into());
        self
    }
}

impl fmt::Display for TrialFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// What `Executor::evaluate` can return besides success.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The trial failed (loss error, crash, scheduler state); the study goes on.
    #[error("trial failed: {0}")]
    Trial(TrialFailure),
    /// The run cannot go on (cancelled, store broken, scheduler unreachable).
    #[error(transparent)]
    Fatal(#[from] CoreError),
}

/// What a [`ChunkSink`] tells the executor after taking a chunk result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "an executor must stop the trial's other chunks on `Delivery::Stop`"]
pub enum Delivery {
    /// Keep evaluating the trial's other chunks.
    Continue,
    /// The trial is decided (a seed race pruned it): stop its other chunks now — drop queued
    /// work, stop running work without delivering it (cancel its jobs, whatever the keep-jobs
    /// setting says: they are no longer wanted) — and return `Ok(())` from `evaluate`.
    Stop,
}

/// Receives chunk results as they land, so they are stored before the trial finishes.
pub trait ChunkSink: Send + Sync {
    /// Called once per finished chunk. An error stops the evaluation with [`ExecError::Fatal`];
    /// [`Delivery::Stop`] ends it early (see [`Executor`]'s contract).
    fn chunk_done(
        &self,
        trial: TrialNumber,
        chunk: ChunkIndex,
        result: ChunkResult,
    ) -> Result<Delivery, CoreError>;
}

/// Evaluates the seeds of trials.
///
/// # Contract
/// - `evaluate` runs every chunk in `job.chunks` and hands each result to `sink` exactly once,
///   as soon as it is known (any order). It returns `Ok(())` when all of them were delivered.
/// - Chunks are started in the order of `job.chunks` as far as the backend allows (a seed
///   race's plan order: the prefix decides).
/// - When `sink` answers [`Delivery::Stop`], `evaluate` stops every other chunk of the trial
///   (queued ones never start, running ones are stopped and never delivered; batch jobs are
///   cancelled even when the executor keeps jobs on interrupt) and returns `Ok(())`.
/// - `Err(ExecError::Trial)` means the trial cannot produce a value after whatever retries the
///   backend does; chunks delivered before that stay valid. `Err(ExecError::Fatal)` stops the run.
/// - Several `evaluate` calls may run at once (`max_concurrent_trials`); results are tied to
///   their trial and chunk, never mixed.
/// - Dropping the future stops the work it started (threads notice a flag; processes and jobs
///   are killed or cancelled). [`Executor::shutdown`] stops everything the executor started.
#[async_trait]
pub trait Executor: Send + Sync {
    /// A short name for logs (`"threads"`, `"processes"`, `"slurm"`).
    fn name(&self) -> &'static str;

    /// Evaluates `job`, delivering chunk results to `sink`.
    async fn evaluate(&self, job: TrialJob, sink: &dyn ChunkSink) -> Result<(), ExecError>;

    /// Stops all work this executor started (cancels jobs, kills workers). With `keep_jobs`, a
    /// backend whose work outlives the controller (Slurm) leaves it running for a resume.
    async fn shutdown(&self, keep_jobs: bool) -> Result<(), CoreError> {
        let _ = keep_jobs;
        Ok(())
    }

    /// Checks, before the first trial and before any run directory exists, what only the
    /// backend can check: whether its scheduler would accept the tasks as configured (a QoS,
    /// account or partition it does not know). Submits nothing. Default: nothing to check.
    async fn preflight(&self) -> Result<(), CoreError> {
        Ok(())
    }
}

#[async_trait]
impl<E: Executor + ?Sized> Executor for Arc<E> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    async fn evaluate(&self, job: TrialJob, sink: &dyn ChunkSink) -> Result<(), ExecError> {
        (**self).evaluate(job, sink).await
    }
    async fn shutdown(&self, keep_jobs: bool) -> Result<(), CoreError> {
        (**self).shutdown(keep_jobs).await
    }
    async fn preflight(&self) -> Result<(), CoreError> {
        (**self).preflight().await
    }
}

#[async_trait]
impl<E: Executor + ?Sized> Executor for Box<E> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    async fn evaluate(&self, job: TrialJob, sink: &dyn ChunkSink) -> Result<(), ExecError> {
        (**self).evaluate(job, sink).await
    }
    async fn shutdown(&self, keep_jobs: bool) -> Result<(), CoreError> {
        (**self).shutdown(keep_jobs).await
    }
    async fn preflight(&self) -> Result<(), CoreError> {
        (**self).preflight().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::SeedSpec;

    #[test]
    fn trial_keys_give_the_chunk_keys_of_old_runs() {
        let layout = SeedLayout::resolve(
            &SeedSpec {
                n_seeds: Some(25),
                chunk_size: Some(10),
                ..Default::default()
            },
            3,
        )
        .unwrap();
        let params: Params = [("x", 0.25)].into_iter().collect();
        let keys = TrialKeys::new("bowl", Some("p01"), TrialNumber(7), &params);
        for c in layout.chunks() {
            assert_eq!(
                keys.key(c, layout.chunk_fingerprint(c)),
                chunk_key("bowl", Some("p01"), TrialNumber(7), &params, &layout, c)
            );
        }
        // Pinned: the keys stored in run directories must not change (old runs resume).
        assert_eq!(
            chunk_key(
                "bowl",
                None,
                TrialNumber(0),
                &params,
                &layout,
                ChunkIndex(1)
            )
            .as_str(),
            PINNED_KEY
        );
    }

    const PINNED_KEY: &str = "361da843bfa4e2ff";
}
