//! DISTRIBUTED mode of slurptuna on Slurm: the seeds of every trial run as one Slurm job array,
//! one task per chunk, and the controller merges the chunks' statistics itself.
//!
//! This crate is only what is Slurm about it. Everything scheduler-independent — the executor
//! (one `squeue` per poll for all live jobs, the global cap on running tasks, `MaxArraySize`
//! splitting, stored results, submission records written before `sbatch` under a unique job
//! name, re-adoption on resume, retries of missing chunks, cancellation), the trial directory
//! formats and the worker side — is `slurptuna_core::batch` (feature `batch`), shared with any
//! other batch scheduler.
//!
//! The crate has three layers:
//! - [`SlurmClient`], typed calls for `sbatch`, `squeue`, `sacct`, `scancel` and `scontrol` in
//!   Slurm's terms ([`JobState`], [`SlurmTaskStatus`], [`SlurmError`]). [`CliSlurm`] runs the
//!   real commands; its argv builders ([`sbatch_argv`], ...) and output parsers
//!   ([`parse_sbatch`], [`parse_squeue`], ...) are pure functions. [`FakeSlurm`] runs array
//!   tasks as local processes for tests, driven through a [`FakeSlurmHandle`].
//! - [`SlurmBatchClient`], the adapter that makes any `SlurmClient` the batch layer's
//!   `BatchClient`: Slurm states become typed `TaskState`s ([`task_state`]: `TIMEOUT` is a
//!   time-limit failure, the other failures scheduler failures) and Slurm errors become client
//!   errors of a kind (submit limit, transient, fatal).
//! - [`SlurmOptions`], Slurm's own options (account, partition, gres, constraint, extra sbatch
//!   arguments, job names, scratch directory) in one struct with their one validator, a
//!   `slurptuna_core::Backend`; the scheduler-independent options of DISTRIBUTED mode (poll
//!   interval, attempt timeout, retries, cap on running tasks, and the CPUs, memory, time limit
//!   and QoS of every task) come as a `slurptuna_core::DistributedOptions`, which the facade
//!   builds from the seed's keyword arguments and checks once. [`SlurmExecutor`] is the batch
//!   layer's executor over a Slurm client, configured by both.
//!
//! The worker side needs nothing from this crate: an array task re-executes the user's program
//! with `SLURPTUNA_TASK_FILE` set, and `slurptuna_core::batch::run_batch_worker` evaluates its
//! chunk (its index in `SLURM_ARRAY_TASK_ID`, as the task file says). No shell command is ever
//! built from user data, and a worker never submits jobs.
//!
//! This crate is **not** the controller loop: it does not ask samplers or write the run
//! journal, and it does not talk to other executors. Users reach it through the `slurptuna`
//! facade (`ExecutionMode::Distributed`).
//!
//! ```
//! use std::time::Duration;
//! use slurptuna_core::{Backend, DistributedOptions, TaskResources, WorkerCommand};
//! use slurptuna_exec_slurm::{SlurmExecutor, SlurmOptions};
//!
//! let opts = SlurmOptions {
//!     slurm_partition: Some("short".into()),
//!     ..Default::default()
//! };
//! opts.validate().unwrap();
//! assert_eq!(opts.settings()["slurm_partition"], "short");
//! let seed = DistributedOptions::seed_defaults();
//! let distributed = DistributedOptions {
//!     poll_interval: Duration::from_secs(5),
//!     resources: TaskResources { mem_per_cpu: "500M".parse().unwrap(), ..seed.resources },
//!     ..seed
//! };
//! let worker = WorkerCommand {
//!     program: std::env::current_exe().unwrap(),
//!     args: Vec::new(),
//!     cwd: std::env::current_dir().unwrap(),
//! };
//! // Over the real commands on PATH; nothing runs until a trial is evaluated.
//! let exec = SlurmExecutor::cli(opts, distributed, worker, 1);
//! assert_eq!(exec.distributed().resources.mem_per_cpu.to_string(), "500M");
//! assert_eq!(exec.options().slurm_partition.as_deref(), Some("short"));
//! ```

mod adapter;
mod cli;
mod client;
mod error;
mod executor;
mod fake;
mod options;
mod sim;

pub use adapter::{task_state, SlurmBatchClient, RPC_BURST, SLURM_TASK_INDEX_ENV};
pub use cli::{
    array_spec, parse_config_value, parse_job_ids, parse_max_array_size, parse_sacct, parse_sbatch,
    parse_squeue, parse_submit_limit, sacct_argv, sbatch_argv, sbatch_test_argv, scancel_argv,
    slurm_time, squeue_argv, squeue_name_argv, CliSlurm,
};
pub use client::{JobState, SlurmClient, SlurmTaskStatus, SubmitLimits, SubmitRequest};
pub use error::SlurmError;
pub use executor::SlurmExecutor;
pub use fake::{FakeCall, FakeSlurm, FakeSlurmHandle, FakeSubmitError};
pub use options::SlurmOptions;
pub use sim::{SimConfig, SimSlurm, SimStats};
/// The batch layer's types that appear in this crate's API.
pub use slurptuna_core::batch::{ArraySubmission, JobId, TaskRef};
