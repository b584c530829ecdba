//! The scheduler-independent layer of batch schedulers (feature `batch`): everything a
//! DISTRIBUTED backend does that does not depend on which scheduler runs the job arrays.
//!
//! A scheduler backend (`slurptuna-exec-slurm`, and tomorrow PBS, LSF, HTCondor or Flux)
//! implements the small [`BatchClient`] trait — submit an array, report task states in one
//! call, cancel, find a job by name — and gets the rest from here:
//!
//! - [`BatchExecutor`], the [`crate::Executor`]: one job array per trial attempt, one task per
//!   chunk of seeds; one state poll per interval for every live job of every trial and entry
//!   ([`BatchConfig::poll_interval`]); a global cap on running tasks; arrays split at the
//!   scheduler's maximum array size with a chunk offset; stored chunk results delivered instead
//!   of recomputed; results found with one `stat` of each trial's chunk directory per check
//!   (listed only when it changed, and checks back off to [`CHECK_BACKOFF`] times the interval
//!   while nothing arrives); dropped evaluations and [`crate::Executor::shutdown`] cancel their jobs
//!   unless they are kept for a resume.
//! - Submission records: every array is recorded in the trial directory's `jobs.json` **before**
//!   it is submitted, under a job name unique to it, and with its id after, so a resumed
//!   controller re-adopts live jobs and finds by name an array whose id was never recorded,
//!   instead of submitting it twice.
//! - The retry policy ([`RetryPolicy`]) decides on typed [`crate::FailureKind`]s reported by
//!   the client ([`TaskState::Ended`]) or found by the executor (attempt timeout, vanished
//!   task, no result): only the chunks without a result are ever resubmitted. Client errors
//!   carry a [`ClientErrorKind`] (submit limit: back off; transient: retry; fatal: stop).
//! - The generic worker, [`is_batch_worker`] and [`run_batch_worker`]: an array task re-executes
//!   the user's program with [`TASK_FILE_ENV`] set; that program reaches `optimize_run`, which
//!   calls them to evaluate one chunk and write its result atomically. A new scheduler needs no
//!   worker code: its client only names the variable holding a task's index
//!   ([`BatchClient::task_index_env`]).
//!
//! Each trial directory holds (the formats of slurptuna 0.1.0, whose run directories resume):
//!
//! ```text
//! task.json                       loss, entry, params and the exact seed list, as data
//! chunk_task.sh                   the fixed batch script (task file, program, argv as arguments)
//! jobs.json                       {"jobs":[{"job":5,"offset":0,"chunks":[0,1],"task_key":"…"}],"pending":[]}
//! chunks/chunk_NNNNN.json         a chunk's result, with its key (TrialJob::chunk_key)
//! chunks/chunk_NNNNN.failed.json  why a chunk's loss failed
//! logs/chunk_<job>_<task>.{out,err}
//! ```
//!
//! No shell command is ever built from user data: ids, names and params travel in the task
//! file, and the batch script is fixed text. A worker never submits jobs. Every file is written
//! through [`crate::fs::write_atomic`].
//!
//! This module does **not** know any scheduler's commands, options or state names (that is the
//! client's job), and it is not the controller loop.
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use slurptuna_core::batch::{
//!     ArraySubmission, BatchClient, BatchConfig, BatchExecutor, ClientError, JobId, TaskRef,
//!     TaskStatus,
//! };
//! use slurptuna_core::{Executor, WorkerCommand};
//!
//! /// The skeleton of a new scheduler's client.
//! struct Pbs;
//!
//! #[async_trait]
//! impl BatchClient for Pbs {
//!     fn name(&self) -> &'static str { "pbs" }
//!     fn task_index_env(&self) -> &'static str { "PBS_ARRAY_INDEX" }
//!     async fn submit(&self, _: &ArraySubmission) -> Result<JobId, ClientError> {
//!         Err(ClientError::fatal("qsub is not wired up in this example"))
//!     }
//!     async fn states(&self, _: &[JobId]) -> Result<Vec<TaskStatus>, ClientError> { Ok(vec![]) }
//!     async fn cancel(&self, _: &[TaskRef]) -> Result<(), ClientError> { Ok(()) }
//!     async fn find(&self, _: &str) -> Result<Vec<JobId>, ClientError> { Ok(vec![]) }
//! }
//!
//! let worker = WorkerCommand { program: "/bin/prog".into(), args: vec![], cwd: "/work".into() };
//! let exec = BatchExecutor::new(Arc::new(Pbs), BatchConfig::default(), worker, 1);
//! assert_eq!(exec.name(), "pbs");
//! ```

mod adopt;
mod client;
mod config;
mod executor;
mod files;
mod policy;
mod poller;
mod submit;
mod worker;

#[cfg(test)]
mod tests;

pub use client::{
    ArraySubmission, BatchClient, ClientError, ClientErrorKind, JobId, TaskRef, TaskState,
    TaskStatus, DEFAULT_MAX_ARRAY_SIZE,
};
pub use config::BatchConfig;
pub use executor::{scratch_trial_dir, BatchExecutor, CHECK_BACKOFF, MAX_STATE_ERRORS};
pub use policy::{RetryDecision, RetryPolicy};
pub use worker::{
    is_batch_worker, run_batch_worker, run_batch_worker_with, task_layout, CHUNK_OFFSET_ENV,
    TASK_FILE_ENV,
};
