//! DISTRIBUTED mode of slurptuna: the seeds of every trial run as one Slurm job array, one task
//! per chunk, and the controller merges the chunks' statistics itself.
//!
//! The crate has three layers:
//! - [`SlurmClient`], typed calls for `sbatch`, `squeue`, `sacct`, `scancel` and `scontrol`.
//!   [`CliSlurm`] runs the real commands. Its argv builders ([`sbatch_argv`], ...) and output
//!   parsers ([`parse_sbatch`], [`parse_squeue`], ...) are pure functions. [`FakeSlurm`] runs
//!   array tasks as local processes for tests, driven through a [`FakeSlurmHandle`].
//! - [`SlurmExecutor`] implements `slurptuna_core::Executor` on top of a client. It is
//!   configured by a [`SlurmConfig`].
//! - The worker side is [`is_slurm_worker`] and [`run_slurm_worker`]. An array task re-executes
//!   the user's program with [`TASK_FILE_ENV`] set. That program reaches `optimize_run`, which
//!   calls these to evaluate one chunk and write its result atomically.
//!
//! Each trial directory holds:
//! - a task file: loss, entry, params and the exact seed list, as JSON data;
//! - a fixed batch script, whose arguments are the task file, the program and its argv;
//! - the submitted job ids, so a resumed controller re-adopts live jobs (a submission is
//!   recorded under a unique job name before `sbatch` runs, so even one whose id was never
//!   recorded is found again);
//! - chunk results keyed by `TrialJob::chunk_key`;
//! - Slurm logs.
//!
//! No shell command is ever built from user data. One `squeue` per poll covers every live job
//! of the executor. A failed, timed-out, cancelled or vanished task is noticed at the next
//! poll. It is retried with only the missing chunks, and every job is cancelled when the trial
//! fails or the controller stops.
//!
//! This crate is **not** the controller loop: it does not ask samplers or write the run
//! journal. It does not talk to other executors either. Users reach it through the `slurptuna`
//! facade (`ExecutionMode::Distributed`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use slurptuna_exec_slurm::{CliSlurm, SlurmConfig, SlurmExecutor};
//! let cfg = SlurmConfig { qos: Some("short".into()), ..Default::default() };
//! cfg.validate().unwrap();
//! let exec = SlurmExecutor::new(cfg, Arc::new(CliSlurm::new()));
//! # let _ = exec;
//! ```

mod cli;
mod client;
mod config;
mod error;
mod executor;
mod fake;
mod files;
mod worker;

pub use cli::{
    array_spec, parse_job_ids, parse_max_array_size, parse_sacct, parse_sbatch, parse_squeue,
    sacct_argv, sbatch_argv, scancel_argv, slurm_time, squeue_argv, squeue_name_argv, CliSlurm,
};
#[cfg(test)]
pub use client::MockSlurmClient;
pub use client::{JobId, JobState, SlurmClient, SubmitRequest, TaskRef, TaskStatus};
pub use config::SlurmConfig;
pub use error::SlurmError;
pub use executor::{scratch_trial_dir, SlurmExecutor};
pub use fake::{FakeCall, FakeSlurm, FakeSlurmHandle, FakeSubmitError};
pub use worker::{is_slurm_worker, run_slurm_worker, CHUNK_OFFSET_ENV, TASK_FILE_ENV};
